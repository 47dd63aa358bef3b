"""The stock-and-flow layer against closed forms: Erlang delays, smooths, schedules; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax import ModelError
from spreadjax.core import (RK4, Auxiliary, Delay, Euler, Flow, Model, Parameter, Schedule, Simulation,
                            Smooth, Stock, compile_model, simulate)


def erlang_model(order):
    return Model(
        "erlang",
        parameters=(Parameter("T", 2.0, "yr"),),
        stocks=(Stock("done", 0.0),),
        delays=(Delay("pipe", "T", order, init=1.0),),
        flows=(Flow("exit", "pipe_exit", "pipe", "done"),),
    )


@pytest.mark.parametrize("order", [1, 3, 6])
def test_erlang_delay_matches_gamma_distribution(order):
    """Content starts spread evenly over the n stages (the delay's ``init``), so the exit time is
    the equal mixture of Erlang(k, rate n/T) laws for k = 1..n."""
    from scipy.stats import gamma

    cm = compile_model(erlang_model(order))
    ts = np.arange(0, 20 * 100 + 1, 50) / 100
    sim = Simulation(cm, tuple(ts), 1 / 100, ("done", "pipe", "pipe_exit"), RK4())
    out = simulate(sim, cm.params(1, jnp.float64))
    ks = np.arange(1, order + 1)[:, None]
    cdf = gamma.cdf(ts, a=ks, scale=2.0 / order).mean(0)
    pdf = gamma.pdf(ts, a=ks, scale=2.0 / order).mean(0)
    # RK4 with dt = 0.01 yr on a linear system: error ~1e-10.
    np.testing.assert_allclose(np.asarray(out["done"][:, 0]), cdf, atol=1e-8)
    np.testing.assert_allclose(np.asarray(out["pipe_exit"][:, 0]), pdf, atol=1e-7)
    np.testing.assert_allclose(np.asarray(out["pipe"] + out["done"]), 1.0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 3])
def test_smooth_of_a_step_matches_closed_form(order):
    from scipy.stats import gamma

    model = Model(
        "smooth",
        parameters=(Parameter("T", 1.5),),
        schedules=(Schedule("signal", (0.0, 1.0), (0.0, 1.0)),),
        smooths=(Smooth("level", "signal", "T", order, init=0.0),),
    )
    cm = compile_model(model)
    ts = np.arange(0, 801, 20) / 100
    out = simulate(Simulation(cm, tuple(ts), 1 / 100, ("level", "signal"), RK4()), cm.params(1, jnp.float64))
    expected = np.where(ts >= 1.0, gamma.cdf(ts - 1.0, a=order, scale=1.5 / order), 0.0)
    # RK4's last stage of the step ending at t = 1 already sees the new value, an O(dt) error of
    # at most dt * jump / (T / order) / 6 ~ 2e-3 that then decays; elsewhere the linear system is
    # integrated to ~1e-9.
    err = np.abs(np.asarray(out["level"][:, 0]) - expected)
    assert err.max() < (1 / 100) * order / 1.5
    assert err[ts > 6].max() < 1e-3 * np.exp(-5 / 1.5) * 10
    np.testing.assert_allclose(np.asarray(out["signal"][:, 0]), (ts >= 1.0).astype(float))


def test_schedules_step_and_linear_values():
    model = Model(
        "sched",
        schedules=(Schedule("s", (1.0, 2.0, 4.0), (1.0, 3.0, 0.0), "step"),
                   Schedule("l", (1.0, 2.0, 4.0), (1.0, 3.0, 0.0), "linear")),
        auxiliaries=(Auxiliary("both", "s + 10 * l"),),
    )
    cm = compile_model(model)
    params = cm.params(2, jnp.float64, l={"values": [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]})
    y = jnp.zeros((0, 2))
    for t, s, l0, l1 in [(0.0, 1, 1, 2), (1.5, 1, 2, 3), (2.0, 3, 3, 4), (3.0, 3, 1.5, 2), (9.0, 0, 0, 0)]:
        env = cm.evaluate(t, y, params)
        np.testing.assert_allclose(env["s"], [s, s])
        np.testing.assert_allclose(env["l"], [l0, l1])


def test_step_schedule_on_the_step_grid_is_the_same_under_jit_and_not():
    """RK4 over dS/dt = s(t) with a step schedule breaking at every step: k1 to k3 read the step's
    value v_i, k4 at t_i + dt the next one, so S(T) = dt sum_i (5 v_i + v_{i+1}) / 6 exactly. The
    stage time t_i + dt lands on the breakpoint t_{i+1} or an ulp below it depending on how the
    compiler rounds; both runs must read v_{i+1} there (they differed by 1e-3 relative before)."""
    n, dt = 24, 1 / 12  # 1/12 is inexact in binary: several k dt + dt round below (k+1) dt
    model = Model("integrate", schedules=(Schedule("s", (0.0,), (1.0,)),), stocks=(Stock("S", 0.0),),
                  flows=(Flow("in", "s", None, "S"),))
    sim = Simulation(compile_model(model), (n * dt,), dt, ("S",), RK4(), 0.0)
    values = np.random.default_rng(1).uniform(0, 1, (n, 2))
    params = {"s": {"times": jnp.asarray(dt * np.arange(n)), "values": jnp.asarray(values)}}
    nxt = np.vstack([values[1:], values[-1:]])  # after the last breakpoint its value holds
    exact = dt * np.sum(5 * values + nxt, axis=0) / 6
    eager, jitted = np.asarray(sim(params)["S"][-1]), np.asarray(jax.jit(sim)(params)["S"][-1])
    np.testing.assert_allclose(eager, exact, rtol=1e-13)  # 24 float64 additions: ~1e-15 round-off
    np.testing.assert_allclose(jitted, exact, rtol=1e-13)
    # a time that rounds just below a breakpoint (0.7 + 0.1 = 0.7999999999999999) is at it
    cm = compile_model(Model("s", schedules=(Schedule("s", (0.0, 0.8), (1.0, 2.0)),)))
    env = cm.evaluate(jnp.asarray(0.7) + jnp.asarray(0.1), jnp.zeros((0, 1)), cm.params(1, jnp.float64))
    assert float(0.7 + 0.1) < 0.8 and float(env["s"][0]) == 2.0


@pytest.mark.parametrize("solver", [Euler(), RK4()], ids=["euler", "rk4"])
def test_step_and_pulse_starting_on_the_step_grid_match_closed_forms(solver):
    """dS/dt = step(1, k dt) and dP/dt = pulse(k dt, 5 dt) for every k on the grid: Euler counts the
    steps from k on, S(T) = (n - k) dt and P(T) = 5 dt; RK4's last stage reads the start one step
    early (+dt/6) and the end of the pulse too (-dt/6). Whether t + dt reached k dt was left to
    rounding before (4 of 23 starts missed at dt = 1/12)."""
    n, dt = 24, 1 / 12
    model = Model("events", parameters=(Parameter("start", 0.0),), stocks=(Stock("S", 0.0), Stock("P", 0.0)),
                  flows=(Flow("a", "step(1, start)", None, "S"), Flow("b", "pulse(start, 5 / 12)", None, "P")))
    cm = compile_model(model)
    sim = Simulation(cm, (n * dt,), dt, ("S", "P"), solver, 0.0)
    k = np.arange(1, n - 5)
    run = jax.jit(jax.vmap(lambda s: sim(cm.params(1, jnp.float64, start=s))))
    out = run(jnp.asarray(k * dt))
    early = dt / 6 if isinstance(solver, RK4) else 0.0
    # 24 float64 steps: round-off ~1e-15; a missed tie would be off by dt / 6 or dt
    np.testing.assert_allclose(np.asarray(out["S"][:, -1, 0]), (n - k) * dt + early, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out["P"][:, -1, 0]), 5 * dt, rtol=1e-12)


def test_expression_functions():
    model = Model(
        "fns",
        parameters=(Parameter("a", 2.0), Parameter("b", 0.0)),
        auxiliaries=(
            Auxiliary("c", "min(a, 1) + max(a, 3) + clip(a, 0, 1.5) + safe_div(a, b)"),
            Auxiliary("d", "step(5, 1) + pulse(0.5, 1) + ramp(2, 1, 3)"),
            Auxiliary("e", "1 if a > 1 and not b > 0 else 0"),
            Auxiliary("f", "site_sum(a) + site_mean(a) + network(a)"),
        ),
    )
    cm = compile_model(model)
    env = cm.evaluate(2.0, jnp.zeros((0, 3)), cm.params(3, jnp.float64))
    np.testing.assert_allclose(env["c"], 1 + 3 + 1.5 + 0)
    np.testing.assert_allclose(env["d"], 5 + 0 + 2)
    np.testing.assert_allclose(env["e"], 1)
    np.testing.assert_allclose(env["f"], 6 + 2 + 0)


def test_division_by_a_literal_is_correctly_rounded_under_jit():
    """XLA turns ``x / 10`` into ``x * 0.1``, one rounding off (60 * 0.1 - 10 fused: -4 + 4e-16);
    equations keep such a division exact, as numpy's IEEE division, eager, jitted and vmapped,
    and its derivative is still 1 / 10."""
    model = Model("div", parameters=(Parameter("a", 3.0),),
                  auxiliaries=(Auxiliary("x", "t / 10 - 10"), Auxiliary("y", "a / -3 + t / 0.5")))
    cm = compile_model(model)
    params = cm.params(1, jnp.float64)
    ts = np.arange(201.0)
    x = jax.jit(jax.vmap(lambda t: cm.evaluate(t, jnp.zeros((0, 1)), params)["x"]))(jnp.asarray(ts))
    x = np.asarray(x).reshape(len(ts))  # (a function of t alone may come back without a site axis)
    np.testing.assert_array_equal(x, ts / 10 - 10)
    np.testing.assert_array_equal(np.trunc(x), np.trunc(ts / 10 - 10))  # -4 at t = 60
    y = cm.evaluate(2.0, jnp.zeros((0, 1)), params)["y"]
    np.testing.assert_array_equal(np.asarray(y), 3.0 / -3 + 2.0 / 0.5)
    dx = jax.jit(jax.grad(lambda t: cm.evaluate(t, jnp.zeros((0, 1)), params)["x"].sum()))(60.0)
    np.testing.assert_allclose(dx, 0.1, rtol=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    (dict(auxiliaries=(Auxiliary("x", "y + 1"), Auxiliary("y", "x * 2"))), "algebraic loop"),
    (dict(auxiliaries=(Auxiliary("x", "nope + 1"),)), "unknown name"),
    (dict(auxiliaries=(Auxiliary("x", "a.__class__"),)), "Attribute is not allowed"),
    (dict(auxiliaries=(Auxiliary("x", "__import__('os')"),)), "unknown function"),
    (dict(auxiliaries=(Auxiliary("x", "a +"),)), "cannot parse"),
    (dict(auxiliaries=(Auxiliary("a", "1"),)), "already used"),
    (dict(auxiliaries=(Auxiliary("t", "1"),)), "reserved"),
    (dict(stocks=(Stock("s", "s + 1"),)), "may read only parameters"),
    (dict(flows=(Flow("f", "1", "nowhere", None),)), "is not a stock or delay"),
    (dict(delays=(Delay("d", "a", 0),)), "order must be"),
    (dict(schedules=(Schedule("s", (2.0, 1.0), (0.0, 1.0)),)), "must not decrease"),
])
def test_invalid_models_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ModelError, match=message):
        compile_model(Model("bad", parameters=(Parameter("a", 1.0),), **kwargs))


def test_counted_and_continuous_stocks_cannot_exchange():
    with pytest.raises(ModelError, match="counted"):
        compile_model(Model("bad", stocks=(Stock("a", 1.0), Stock("b", 0.0, counted=False)),
                            flows=(Flow("f", "a", "a", "b"),)))


def test_changing_values_never_recompiles():
    from spreadjax.core._simulate import _run
    from spreadjax.models import four_stage_model

    cm = compile_model(four_stage_model())
    sim = Simulation(cm, (0.0, 1.0, 2.0), 1 / 52, ("adopted",))
    traces = []
    fn = jax.jit(lambda p: (traces.append(1), sim(p))[1])
    base = _run._cache_size()
    for q in (0.1, 0.5, 0.9):
        params = cm.params(3, jnp.float32, q=q, programme={"times": [0.0], "values": [q]})
        fn(params)
        simulate(sim, params)
    assert len(traces) == 1
    assert _run._cache_size() == base + 1
    # A per-site list of values has the same shape as a scalar broadcast: no new trace either.
    fn(cm.params(3, jnp.float32, q=[0.1, 0.2, 0.3]))
    assert len(traces) == 1
