"""The per-site ceiling and the take-off date against Bass closed forms.

With a ceiling ``c`` the Bass special case is ``dA/dt = (p + q A / (c N)) (c N - A)``, whose
solution is ``c N`` times the Bass curve. With the pace multiplier ``m(t)`` on push and pull,
``dF/dt = m(t) (p + q F)(1 - F)``, so ``F(t)`` is the Bass curve at the operational time
``M(t) = integral of m from 0 to t``, which has a closed form for the logistic take-off.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import RK4, Simulation, compile_model, simulate
from spreadjax.models import four_stage_model

from .helpers import BASS_VALUES, bass_closed_form

P, Q = 0.03, 0.38


def _sim(ts, outputs=("adopted", "ever_adopted")):
    cm = compile_model(four_stage_model(awareness_stage=False, implementation_order=0))
    return cm, Simulation(cm, tuple(ts), 1 / 104, outputs, RK4())


def operational_time(t, early, takeoff, width):
    """``M(t)`` for ``m(s) = early + (1 - early) logistic((s - takeoff) / width)``."""
    softplus = lambda x: np.logaddexp(0.0, x)  # noqa: E731
    t = np.asarray(t, float)
    return early * t + (1 - early) * width * (softplus((t - takeoff) / width) - softplus(-takeoff / width))


def test_a_site_ceiling_scales_the_bass_curve_per_site():
    ts = np.linspace(0.0, 20.0, 41)
    cm, sim = _sim(ts)
    ceilings = [0.35, 0.8, 1.0]
    values = {**BASS_VALUES, "population": [7.0, 900.0, 40.0]}
    out = simulate(sim, cm.params(3, jnp.float64, ceiling=ceilings, **values))
    exact = bass_closed_form(ts, P, Q)[:, None] * np.array(ceilings)[None] * np.array([7.0, 900.0, 40.0])[None]
    np.testing.assert_allclose(np.asarray(out["ever_adopted"]), exact, rtol=1e-9, atol=1e-9)
    # never above the ceiling's share, however long the run
    assert np.all(np.asarray(out["adopted"])[-1] <= exact[-1] + 1e-9)


@pytest.mark.parametrize("early, takeoff, width", [(0.1, 6.0, 0.5), (0.3, 2.5, 1.5), (0.0, 4.0, 0.25)])
def test_a_takeoff_runs_the_bass_curve_on_operational_time(early, takeoff, width):
    ts = np.linspace(0.0, 15.0, 31)
    cm, sim = _sim(ts)
    params = cm.params(2, jnp.float64, ceiling=[0.6, 1.0], early_pace=early, takeoff=takeoff,
                       takeoff_width=width, **BASS_VALUES)
    out = np.asarray(simulate(sim, params)["ever_adopted"])
    exact = bass_closed_form(operational_time(ts, early, takeoff, width), P, Q)[:, None] * np.array([0.6, 1.0])
    np.testing.assert_allclose(out, exact, rtol=1e-7, atol=1e-9)


def test_neutral_values_leave_the_model_unchanged():
    # early_pace = 1 makes the pace exactly 1 whatever the take-off date: the same numbers bit for bit
    ts = np.linspace(0.0, 10.0, 21)
    cm, sim = _sim(ts)
    base = np.asarray(simulate(sim, cm.params(1, jnp.float64, **BASS_VALUES))["ever_adopted"])
    moved = np.asarray(simulate(sim, cm.params(1, jnp.float64, takeoff=3.0, takeoff_width=0.1,
                                               **BASS_VALUES))["ever_adopted"])
    np.testing.assert_array_equal(base, moved)


def test_gradients_in_ceiling_and_takeoff_match_finite_differences():
    ts = (0.0, 4.0, 8.0)
    cm, sim = _sim(ts, outputs=("ever_adopted",))

    def final(x):
        params = cm.params(1, jnp.float64, **{**BASS_VALUES, "q": 0.9}, ceiling=x[0], early_pace=x[1],
                           takeoff=x[2], takeoff_width=x[3])
        return simulate(sim, params)["ever_adopted"][-1, 0]

    x = jnp.array([0.7, 0.2, 3.0, 0.8])
    grad = np.asarray(jax.grad(final)(x))
    h = 1e-6
    fd = np.array([(final(x.at[i].add(h)) - final(x.at[i].add(-h))) / (2 * h) for i in range(4)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    assert np.all(np.abs(grad) > 1e-4)  # each of the four moves the forecast


def test_a_takeoff_far_ahead_keeps_gradients_finite():
    # (t - takeoff) / width of -400: a naive 1 / (1 + exp(-x)) overflows and its gradient is nan
    cm, sim = _sim((0.0, 1.0), outputs=("ever_adopted",))

    def final(takeoff):
        params = cm.params(1, jnp.float64, early_pace=0.2, takeoff=takeoff, takeoff_width=0.01, **BASS_VALUES)
        return simulate(sim, params)["ever_adopted"][-1, 0]

    g = jax.grad(final)(jnp.float64(5.0))
    assert np.isfinite(float(final(5.0))) and np.isfinite(float(g))
