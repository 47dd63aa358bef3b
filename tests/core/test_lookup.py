"""Lookups (graphical functions): values against numpy, gradients against finite differences,
batching under vmap, and refusals of malformed tables and misuse in equations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax._errors import ModelError
from spreadjax.core import Flow, Lookup, Model, Parameter, Simulation, Stock, compile_model, simulate
from spreadjax.core._expr import lookup_function

X = (0.0, 0.5, 1.0, 2.0)
Y = (1.0, 1.0, 0.8, 0.3)
#: points inside, on the breakpoints and on both sides outside the table
ARGS = np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.5])


def _reference(v: np.ndarray, extrapolation: str) -> np.ndarray:
    """Independent truth: numpy's interp, plus the end-segment lines or a left-continuous step."""
    x, y = np.asarray(X), np.asarray(Y)
    if extrapolation == "step":
        return np.array([y[max(0, np.sum(x <= u) - 1)] for u in v])
    out = np.interp(v, x, y)
    if extrapolation == "linear":
        lo = y[0] + (y[1] - y[0]) / (x[1] - x[0]) * (v - x[0])
        hi = y[-1] + (y[-1] - y[-2]) / (x[-1] - x[-2]) * (v - x[-1])
        out = np.where(v < x[0], lo, np.where(v > x[-1], hi, out))
    return out


@pytest.mark.parametrize("extrapolation", ["hold", "linear", "step"])
def test_values_match_numpy_on_any_shape(extrapolation):
    f = lookup_function(X, Y, extrapolation, jnp)
    expect = _reference(ARGS, extrapolation)
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(ARGS))), expect, rtol=1e-6)
    # (site, member) arrays: elementwise
    grid = ARGS.reshape(3, 3)
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(grid))), expect.reshape(3, 3), rtol=1e-6)
    # numpy evaluation (reference implementations) agrees with jax
    np.testing.assert_allclose(lookup_function(X, Y, extrapolation, np)(ARGS), expect, rtol=1e-12)


def test_hold_clamps_and_linear_extends_the_end_segments():
    hold = lookup_function(X, Y, "hold", jnp)
    linear = lookup_function(X, Y, "linear", jnp)
    assert float(hold(10.0)) == pytest.approx(0.3)
    assert float(linear(3.0)) == pytest.approx(0.3 - 0.5 * 1.0)  # slope -0.5 beyond x = 2
    assert float(linear(-2.0)) == pytest.approx(1.0)  # the first segment is flat


def test_single_point_lookup_is_constant():
    for ex in ("hold", "linear", "step"):
        f = lookup_function((2.0,), (0.7,), ex, jnp)
        np.testing.assert_allclose(np.asarray(f(jnp.asarray([-5.0, 2.0, 9.0]))), 0.7)


@pytest.mark.parametrize("extrapolation", ["hold", "linear"])
def test_gradient_matches_finite_differences(extrapolation):
    assert jax.config.jax_enable_x64  # tests/conftest.py: float64 for the whole suite (never switched off here)
    f = lookup_function(X, Y, extrapolation, jnp)
    points = np.array([-0.7, 0.2, 0.6, 0.9, 1.3, 1.9, 2.6])  # away from the kinks
    grad = jax.vmap(jax.grad(lambda v: f(v)))(jnp.asarray(points, jnp.float64))
    h = 1e-6
    fd = (_reference(points + h, extrapolation) - _reference(points - h, extrapolation)) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-9)


def _clinic(extrapolation: str = "hold") -> Model:
    P = Parameter
    return Model(
        "clinic",
        parameters=(P("population", 900.0, "patients", positive=True, lower=0.0),
                    P("capacity", 300.0, "patients", positive=True, lower=0.0),
                    P("wait_time", 0.5, "yr", positive=True, lower=0.0)),
        stocks=(Stock("waiting", "population", "patients"), Stock("treated", 0.0, "patients")),
        flows=(Flow("treat", "waiting * effect_of_load(waiting / capacity) / wait_time", "waiting", "treated"),),
        lookups=(Lookup("effect_of_load", X, Y, extrapolation),),
        population="population",
    )


def test_lookup_in_a_model_rhs_and_under_vmap_over_members():
    cm = compile_model(_clinic())
    params = cm.params(3, population=[7.0, 900.0, 450.0], capacity=[300.0, 300.0, 300.0])
    y = cm.init(params)
    load = np.array([7.0, 900.0, 450.0]) / 300.0
    expect = np.array([7.0, 900.0, 450.0]) * np.interp(load, X, Y) / 0.5
    np.testing.assert_allclose(np.asarray(cm.rhs(0.0, y, params))[1], expect, rtol=1e-6)
    # a batch of capacities, one compiled function over members
    caps = jnp.asarray([100.0, 300.0, 900.0, 2000.0])

    def treat_rate(cap):
        p = {**params, "capacity": jnp.broadcast_to(cap, (3,))}
        return cm.rhs(0.0, cm.init(p), p)[1]

    batched = jax.vmap(treat_rate)(caps)
    for i, cap in enumerate(np.asarray(caps)):
        pops = np.array([7.0, 900.0, 450.0])
        np.testing.assert_allclose(np.asarray(batched[i]), pops * np.interp(pops / cap, X, Y) / 0.5, rtol=1e-5)


def test_simulation_through_a_lookup_conserves_patients_and_differentiates():
    cm = compile_model(_clinic())
    params = cm.params(2, population=[7.0, 900.0])
    sim = simulate(Simulation(cm, tuple(np.arange(13) * 0.25), 1 / 52, ("waiting", "treated")), params)
    total = np.asarray(sim["waiting"]) + np.asarray(sim["treated"])
    np.testing.assert_allclose(total, np.broadcast_to([7.0, 900.0], total.shape), rtol=1e-5)

    def final_waiting(cap):
        p = {**params, "capacity": jnp.broadcast_to(cap, (2,))}
        return simulate(Simulation(cm, (0.0, 1.0), 1 / 52, ("waiting",)), p)["waiting"][-1, 1]

    g = float(jax.grad(final_waiting)(300.0))
    h = 1.0
    fd = (float(final_waiting(300.0 + h)) - float(final_waiting(300.0 - h))) / (2 * h)
    assert g == pytest.approx(fd, rel=2e-2)
    assert g != 0.0


@pytest.mark.parametrize("lookup, message", [
    (Lookup("effect_of_load", (0.0, 1.0), (1.0,)), "x has 2 points but y has 1"),
    (Lookup("effect_of_load", (0.0, 1.0, 1.0), (1.0, 0.5, 0.2)), "strictly increasing, but x[2] = 1 follows x[1] = 1"),
    (Lookup("effect_of_load", (), ()), "at least one point"),
    (Lookup("effect_of_load", (0.0, float("nan")), (1.0, 0.5)), "finite"),
    (Lookup("effect_of_load", (0.0, 1.0), (1.0, 0.5), "extrapolate"), "extrapolation must be one of"),
    (Lookup("effect_of_load", (0.0, "a"), (1.0, 0.5)), "x must be a list of numbers"),
])
def test_malformed_lookups_are_refused_naming_model_and_lookup(lookup, message):
    good = _clinic()
    with pytest.raises(ModelError) as err:
        Model(good.name, good.parameters, good.stocks, good.flows, lookups=(lookup,), population="population")
    assert "model 'clinic': lookup 'effect_of_load'" in str(err.value)
    assert message in str(err.value)


def test_lookup_names_and_calls_are_checked():
    good = _clinic()
    base = dict(parameters=good.parameters, stocks=good.stocks, population="population")
    # a lookup named like a function, or like another name
    with pytest.raises(ModelError, match="'exp' is reserved"):
        Model("clinic", **base, flows=good.flows, lookups=good.lookups + (Lookup("exp", (0.0,), (1.0,)),))
    with pytest.raises(ModelError, match="'capacity': the name is already used by a parameter"):
        Model("clinic", **base, flows=good.flows, lookups=good.lookups + (Lookup("capacity", (0.0,), (1.0,)),))
    # calling a model name that is not a lookup
    with pytest.raises(ModelError, match="unknown function 'capacity'"):
        Model("clinic", **base, flows=(Flow("treat", "waiting * capacity(waiting) / wait_time", "waiting", "treated"),),
              lookups=good.lookups)
    # reading a lookup as a value, or calling it with two arguments
    with pytest.raises(ModelError, match="'effect_of_load' is a lookup; call it with one argument"):
        Model("clinic", **base, flows=(Flow("treat", "waiting * effect_of_load / wait_time", "waiting", "treated"),),
              lookups=good.lookups)
    with pytest.raises(ModelError, match="lookup 'effect_of_load' takes one argument, got 2"):
        Model("clinic", **base, flows=(Flow("treat", "effect_of_load(waiting, 1)", "waiting", "treated"),),
              lookups=good.lookups)


def test_changing_a_value_does_not_recompile_and_lookups_are_hashable():
    a, b = _clinic(), _clinic()
    assert a == b and hash(a) == hash(b)
    assert _clinic("linear") != a
    cm = compile_model(a)
    traces = []

    @jax.jit
    def rate(params):
        traces.append(1)
        return cm.rhs(0.0, cm.init(params), params)

    for pop in (7.0, 900.0, 450.0):
        rate(cm.params(2, population=pop))
    assert len(traces) == 1


@pytest.mark.parametrize("extrapolation", ["hold", "linear", "step"])
def test_large_tables_take_the_search_path_and_agree_with_numpy(extrapolation):
    """Tables above LOOKUP_SEGMENTS_MAX points interpolate by search; both paths give numpy's values."""
    from spreadjax.core._expr import LOOKUP_SEGMENTS_MAX

    rng = np.random.default_rng(7)
    for k in (LOOKUP_SEGMENTS_MAX, LOOKUP_SEGMENTS_MAX + 9):
        x = tuple(np.cumsum(rng.uniform(0.1, 1.0, k)).tolist())
        y = tuple(rng.normal(size=k).tolist())
        v = np.linspace(x[0] - 2, x[-1] + 2, 301)
        xa, ya = np.asarray(x), np.asarray(y)
        if extrapolation == "step":
            expect = ya[np.clip(np.searchsorted(xa, v, side="right") - 1, 0, k - 1)]
        else:
            expect = np.interp(v, xa, ya)
            if extrapolation == "linear":
                lo = ya[0] + (ya[1] - ya[0]) / (xa[1] - xa[0]) * (v - xa[0])
                hi = ya[-1] + (ya[-1] - ya[-2]) / (xa[-1] - xa[-2]) * (v - xa[-1])
                expect = np.where(v < xa[0], lo, np.where(v > xa[-1], hi, expect))
        np.testing.assert_allclose(lookup_function(x, y, extrapolation, np)(v), expect, rtol=1e-9, atol=1e-9)
        got = lookup_function(x, y, extrapolation, jnp)(jnp.asarray(v, jnp.float32))
        np.testing.assert_allclose(np.asarray(got), expect, rtol=2e-4, atol=2e-4)


def test_gradient_at_a_breakpoint_is_the_mean_of_the_two_slopes():
    f = lookup_function(X, Y, "hold", jnp)
    assert float(jax.grad(f)(1.0)) == pytest.approx(0.5 * (-0.4 + -0.5))  # slopes -0.4 before, -0.5 after
    assert float(jax.grad(f)(5.0)) == 0.0  # held flat beyond the last point
