"""Gradients through the solvers agree with central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import RK4, Adaptive, Simulation, compile_model, dense_network
from spreadjax.models import four_stage_model

NAMES = ("p", "q", "decision_rate", "implementation_time", "discontinuation_rate", "recognition_time",
         "peer_influence", "barriers")


def horizon_adopted(cm, sim, network, programme):
    def f(theta):
        params = cm.params(3, jnp.float64, population=[50.0, 80.0, 30.0], initial_adopters=[2.0, 0.0, 0.0],
                           capacity=0.5, disillusionment=0.3, programme=programme,
                           **dict(zip(NAMES, theta)))
        out = sim(params, network)
        return jnp.sum(out["adopted"][-1]) + 0.1 * jnp.sum(out["discontinued"][-1])

    return f


@pytest.mark.parametrize("solver", ["rk4", "adaptive"])
def test_grad_matches_finite_differences(solver):
    cm = compile_model(four_stage_model())
    ts = tuple(np.arange(0, 313, 26) / 52)
    adaptive = solver == "adaptive"
    sim = Simulation(cm, ts, 1 / 52, ("adopted", "discontinued"), Adaptive(1e-9, 1e-9) if adaptive else RK4())
    w = np.array([[0, 0.4, 0.1], [0.4, 0, 0.2], [0.1, 0.3, 0]])
    # A programme cut (a discontinuity in time) is fine for fixed steps; adaptive steps would
    # place their steps differently for each finite-difference probe, so keep it smooth there.
    programme = {"times": [0.0, 2.5], "values": [1.0, 1.0 if adaptive else 0.2]}
    f = jax.jit(horizon_adopted(cm, sim, dense_network(w, 3, jnp.float64), programme))
    theta = jnp.array([0.1, 0.8, 1.5, 1.2, 0.05, 0.6, 1.0, 1.0])
    grad = np.asarray(jax.grad(f)(theta))
    h = 1e-5
    fd = np.array([(f(theta.at[i].add(h)) - f(theta.at[i].add(-h))) / (2 * h) for i in range(len(theta))])
    # Central differences in float64 with h = 1e-5 are accurate to ~1e-9 relative; the adaptive
    # solver's step choices add noise of order its tolerance (1e-10) / h.
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(grad) > 0)  # every lever moves the outcome
    assert grad[NAMES.index("barriers")] < 0 < grad[NAMES.index("peer_influence")]
