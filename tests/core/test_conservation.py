"""Counted stocks sum to the population and stay non-negative, whatever the parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import Euler, dense_network, simulate

from .helpers import COUNTED, flagship_sim

DRAWN = ("p", "q", "decision_rate", "implementation_time", "discontinuation_rate", "commitment",
         "disillusionment", "capacity", "withdrawal_effect")


def random_values(seed, n_sites):
    rng = np.random.default_rng(seed)
    vals = {k: np.exp(rng.normal(np.log(0.5), 0.8, n_sites)) for k in DRAWN}
    vals["commitment"] = rng.uniform(0.5, 1.0, n_sites)
    vals["population"] = rng.integers(10, 500, n_sites).astype(float)
    vals["initial_adopters"] = np.minimum(vals["population"], rng.integers(0, 5, n_sites))
    vals["programme"] = {"times": [0.0, rng.uniform(1, 5)], "values": [1.0, 0.0]}
    return vals


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", [{}, {"awareness_stage": False, "implementation_order": 1}])
def test_population_conserved_and_non_negative(seed, options):
    n = 5
    outputs = tuple(c for c in COUNTED if c != "aware" or options.get("awareness_stage", True))
    cm, sim = flagship_sim(outputs=outputs, **options)
    vals = random_values(seed, n)
    params = cm.params(n, jnp.float64, **vals)
    rng = np.random.default_rng(seed + 100)
    w = rng.uniform(0, 0.5, (n, n)) * (rng.uniform(size=(n, n)) < 0.5)
    np.fill_diagonal(w, 0)
    out = simulate(sim, params, dense_network(w, n, jnp.float64))
    names = [c for c in COUNTED if c in out]
    total = sum(np.asarray(out[c]) for c in names)
    np.testing.assert_allclose(total, np.broadcast_to(vals["population"], total.shape), rtol=1e-12)
    for c in names:
        # Every outflow is proportional to its stock, so RK4 at weekly steps stays >= 0 up to
        # round-off for these rates (all well below 52 per year).
        assert np.min(np.asarray(out[c])) > -1e-9, c


def test_conservation_in_float32():
    cm, sim = flagship_sim()
    params = cm.params(3, jnp.float32, **random_values(7, 3))
    out = simulate(sim, params)
    total = sum(np.asarray(out[c], dtype=np.float64) for c in COUNTED)
    assert out["adopted"].dtype == jnp.float32
    np.testing.assert_allclose(total, np.broadcast_to(np.asarray(params["population"]), total.shape), rtol=1e-5)


def test_euler_step_conserves_exactly_per_step():
    cm, sim = flagship_sim(solver=Euler(), dt=1 / 365, ts=np.arange(0, 3651, 365) / 365)
    params = cm.params(2, jnp.float64, **random_values(3, 2))
    y = cm.init(params)
    dy = cm.rhs(0.3, y, params)
    # Flows leave one counted row and enter another: the counted derivatives sum to zero.
    rows = list(cm.counted_rows())
    np.testing.assert_allclose(np.asarray(dy[jnp.array(rows)]).sum(0), 0.0, atol=1e-12)
    out = simulate(sim, params)
    total = sum(np.asarray(out[c]) for c in COUNTED)
    np.testing.assert_allclose(total, np.broadcast_to(np.asarray(params["population"]), total.shape), rtol=1e-12)


def test_vmap_over_members_matches_loop():
    cm, sim = flagship_sim(outputs=("adopted",))
    members = [cm.params(2, jnp.float64, **random_values(s, 2)) for s in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)
    batched = jax.jit(jax.vmap(sim, in_axes=(0, None, None)))(stacked, None, None)["adopted"]
    for i, m in enumerate(members):
        np.testing.assert_allclose(batched[i], simulate(sim, m)["adopted"], rtol=1e-12)
