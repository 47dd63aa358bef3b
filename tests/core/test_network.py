"""Peer-network coupling: zero weights decouple sites; dense and sparse agree; scale."""

import jax.numpy as jnp
import numpy as np

from spreadjax.core import Simulation, compile_model, dense_network, simulate, sparse_network
from spreadjax.models import four_stage_model

from .helpers import flagship_sim

VALUES = dict(population=[40.0, 90.0, 25.0, 60.0], initial_adopters=[3.0, 0.0, 1.0, 0.0],
              pilot_evidence=[1.0, 0.0, 0.0, 0.2], q=[0.5, 0.9, 1.2, 0.7])


def test_zero_weights_give_independent_sites():
    cm, sim = flagship_sim(outputs=("adopted", "recognition"))
    params = cm.params(4, jnp.float64, **VALUES)
    coupled = simulate(sim, params, dense_network(np.zeros((4, 4)), 4, jnp.float64))
    for i in range(4):
        single = cm.params(1, jnp.float64, **{k: [v[i]] for k, v in VALUES.items()})
        alone = simulate(sim, single)
        for name in ("adopted", "recognition"):
            np.testing.assert_allclose(coupled[name][:, i], alone[name][:, 0], rtol=1e-12)


def test_dense_and_sparse_agree_and_coupling_spreads():
    cm, sim = flagship_sim(outputs=("adopted",))
    params = cm.params(4, jnp.float64, **VALUES)
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, (4, 4))
    np.fill_diagonal(w, 0)
    tgt, src = np.nonzero(w)
    dense = simulate(sim, params, dense_network(w, 4, jnp.float64))["adopted"]
    sparse = simulate(sim, params, sparse_network(src, tgt, w[tgt, src], 4, jnp.float64))["adopted"]
    np.testing.assert_allclose(dense, sparse, rtol=1e-12)
    alone = simulate(sim, params)["adopted"]
    # Site 2 has no pilots: peers' adopters and evidence make it adopt sooner.
    assert dense[-1, 1] > alone[-1, 1] * 1.05


def test_edge_direction_source_influences_target():
    cm, sim = flagship_sim(outputs=("adopted",))
    params = cm.params(2, jnp.float64, population=[50.0, 50.0], initial_adopters=[10.0, 0.0],
                       pilot_evidence=[1.0, 0.0], p=0.0)
    one_way = sparse_network(np.array([0]), np.array([1]), np.array([1.0]), 2, jnp.float64)
    out = simulate(sim, params, one_way)["adopted"]
    reverse = simulate(sim, params, sparse_network(np.array([1]), np.array([0]), np.array([1.0]), 2, jnp.float64))
    assert out[-1, 1] > 1.0  # site 1 hears from site 0
    assert float(reverse["adopted"][-1, 1]) == 0.0  # without push or a tie in, nothing starts


def test_ten_thousand_sites_sparse():
    n, k = 10_000, 5
    rng = np.random.default_rng(0)
    src = rng.integers(0, n, n * k)
    tgt = rng.integers(0, n, n * k)
    cm = compile_model(four_stage_model())
    sim = Simulation(cm, (0.0, 1.0, 2.0), 1 / 52, ("adopted",))
    params = cm.params(n, jnp.float32, initial_adopters=rng.integers(0, 2, n).astype(float))
    net = sparse_network(src, tgt, rng.uniform(0, 0.2, n * k), n, jnp.float32)
    out = simulate(sim, params, net)["adopted"]
    assert out.shape == (3, n) and np.all(np.isfinite(np.asarray(out)))
    total = simulate(Simulation(cm, (0.0, 1.0, 2.0), 1 / 52, ("unaware", "aware", "implementing", "adopted", "discontinued")), params, net)
    pop = sum(np.asarray(v, dtype=np.float64) for v in total.values())
    np.testing.assert_allclose(pop, 100.0, rtol=1e-4)
