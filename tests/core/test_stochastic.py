"""Stochastic mode: integer counts, exact conservation, reproducible keys, mean -> deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import Euler, RK4, Simulation, compile_model, simulate
from spreadjax import ModelError
from spreadjax.models import four_stage_model

from .helpers import COUNTED

VALUES = dict(population=2000.0, initial_adopters=20.0, p=0.3, q=1.5, recognition_baseline=0.5,
              decision_rate=3.0, implementation_time=0.5, discontinuation_rate=0.2, commitment=0.8,
              programme={"times": [0.0, 2.0], "values": [1.0, 0.0]})


def stochastic_sim(dt=1 / 365):
    cm = compile_model(four_stage_model())
    ts = tuple(np.arange(0, 5) * 1.0)
    return cm, Simulation(cm, ts, dt, COUNTED, Euler(), stochastic=True)


def run_many(cm, sim, params, n, seed=0):
    keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.PRNGKey(seed), r))(jnp.arange(n))
    return jax.jit(jax.vmap(sim, in_axes=(None, None, 0)))(params, None, keys)


def test_counts_are_integers_and_conserved():
    cm, sim = stochastic_sim(dt=1 / 52)
    params = cm.params(2, jnp.float64, **{**VALUES, "population": [57.0, 246.0], "initial_adopters": [2.0, 3.0]})
    out = run_many(cm, sim, params, 50)
    total = sum(np.asarray(out[c]) for c in COUNTED)
    np.testing.assert_array_equal(total, np.broadcast_to([57.0, 246.0], total.shape))
    for c in COUNTED:
        arr = np.asarray(out[c])
        np.testing.assert_array_equal(arr, np.rint(arr))
        assert arr.min() >= 0
    # The tally of completed implementations counts real moves: integer, never decreasing, and at
    # least the current adopters (some of whom may have discontinued since).
    tally_sim = Simulation(cm, sim.ts, sim.dt, ("ever_adopted", "adopted"), Euler(), stochastic=True)
    tally = run_many(cm, tally_sim, params, 50)
    ever = np.asarray(tally["ever_adopted"])
    np.testing.assert_array_equal(ever, np.rint(ever))
    assert np.all(np.diff(ever, axis=1) >= 0) and np.all(ever >= np.asarray(tally["adopted"]))
    assert np.any(ever > np.asarray(tally["adopted"]))


def test_same_key_same_path_and_keys_differ():
    cm, sim = stochastic_sim(dt=1 / 52)
    params = cm.params(1, jnp.float64, **VALUES)
    key = jax.random.PRNGKey(3)
    a = simulate(sim, params, None, key)["adopted"]
    b = simulate(sim, params, None, key)["adopted"]
    c = simulate(sim, params, None, jax.random.PRNGKey(4))["adopted"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.slow
def test_mean_of_many_runs_approaches_deterministic_path():
    cm, sim = stochastic_sim()
    params = cm.params(1, jnp.float64, **VALUES)
    n = 1000
    out = run_many(cm, sim, params, n)
    det = simulate(Simulation(cm, sim.ts, 1 / 365, COUNTED, RK4()), params)
    for c in COUNTED:
        runs = np.asarray(out[c])[:, :, 0]
        mean, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(n)
        # Differences come from sampling (bounded by 4 standard errors) plus the O(1/N) gap
        # between a stochastic mean and the mean-field path and O(dt) from binomial steps
        # (together under 0.5% of N = 2000, i.e. 10 organisations).
        gap = np.abs(mean - np.asarray(det[c])[:, 0])
        assert np.all(gap <= 4 * se + 10.0), (c, gap, se)
    assert np.asarray(out["adopted"])[:, -1].std() > 1.0  # chance really matters


def test_stochastic_needs_key_and_fixed_steps():
    cm, sim = stochastic_sim()
    with pytest.raises(ModelError, match="PRNG key"):
        sim(cm.params(1, jnp.float64, **VALUES))
    from spreadjax.core import Adaptive

    with pytest.raises(ModelError, match="fixed dt"):
        Simulation(cm, (0.0, 1.0), 0.1, ("adopted",), Adaptive(), stochastic=True)
