"""The design problem's pure functions: constraints hold exactly, values never recompile, and the
gradient the search follows matches finite differences.

A two-site model (7 and 900 organisations) with futures from a Sobol design over q, so that no
posterior is needed; 12 steps a year keep each compile short.
"""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax._config import parse_config
from spreadjax.design._problem import make_problem, objective, programme, spend, withdrawal
from spreadjax.design._run import futures_for

import tomllib


def config(design: str = "", sites: str = '["Ashford", "Leeds"]', population: str = "[7, 900]", extra: str = ""):
    text = textwrap.dedent(f"""
        title = "design"
        [model]
        name = "four_stage"
        [model.options]
        awareness_stage = false
        implementation_order = 0
        [sites]
        names = {sites}
        [parameters]
        population = {population}
        initial_adopters = [1, 3]
        recognition_baseline = 1.0
        pilot_evidence = 0.0
        adopter_evidence = 0.0
        discontinuation_rate = 0.2
        withdrawal_effect = 3.0
        p = 0.4
        [simulation]
        end = 2.0
        steps_per_year = 12
        outputs_per_year = 4
        dtype = "float64"
        {extra}
        [ensemble]
        source = "design"
        design = {{ q = [0.2, 1.2] }}
        draws = 4
        [design]
        """) + textwrap.dedent(design)
    return parse_config(tomllib.loads(text), "design.toml")


DESIGN = """
knots = [0.0, 0.5, 1.0]
intensity = [0.2, 0.9]
withdraw = [0.25, 1.75]
min_duration = 0.5
budget = 1.8
draws = 6
"""


@pytest.fixture(scope="module")
def problem():
    cfg = config(DESIGN)
    sim, futures = futures_for(cfg, None)
    return cfg, make_problem(sim, "population", cfg.n_sites, cfg.design), futures


def test_constraints_hold_exactly_for_random_decisions(problem):
    cfg, p, _ = problem
    d = cfg.design
    assert p.n_vars == 3 * 2 + 1 and p.w_range == (0.5, 1.75)  # min_duration lifts the earliest date to 0.5
    rng = np.random.default_rng(3)
    xs = np.vstack([rng.uniform(0, 1, (400, p.n_vars)), np.eye(p.n_vars), np.ones((1, p.n_vars)),
                    np.zeros((1, p.n_vars))])
    for budget in (0.7, 1.8, 50.0):
        values = np.asarray(jax.vmap(lambda x: programme(p, x, jnp.asarray(budget)))(jnp.asarray(xs)))
        w = np.asarray(jax.vmap(lambda x: withdrawal(p, x))(jnp.asarray(xs)))
        used = np.asarray(jax.vmap(lambda v: spend(p, v).sum())(jnp.asarray(values)))
        t = p.step_times
        assert np.all(w >= d.knots[0] + d.min_duration - 1e-12) and np.all(w <= d.withdraw[1] + 1e-12)
        assert np.all(used <= budget * (1 + 1e-12))  # the budget: never exceeded
        floor = 0.2 * np.clip((w[:, None] - t[None]) / p.dt, 0, 1)  # the floor while it runs, 0 after
        full = t[None] + p.dt <= w[:, None]  # steps wholly before the withdrawal
        assert np.all(values >= floor[..., None] - 1e-12)
        assert np.all(values[full] <= 0.9 + 1e-12)  # the bounds while it runs
        assert np.all(values[t[None] >= w[:, None]] == 0)  # withdrawn: nothing after the date
        # a programme that would overspend is scaled to spend exactly the budget
        raw = np.asarray(jax.vmap(lambda x: spend(p, programme(p, x, jnp.asarray(1e9))).sum())(jnp.asarray(xs)))
        over = raw > budget
        np.testing.assert_allclose(used[over], budget, rtol=1e-12)
        np.testing.assert_allclose(used[~over], raw[~over], rtol=1e-12)


def test_changing_decisions_budget_or_draws_does_not_recompile(problem):
    _, p, futures = problem
    traces = []

    def f(x, budget, fut):
        traces.append(1)
        return objective(p, x, budget, fut)

    fn = jax.jit(f)
    rng = np.random.default_rng(0)
    values = [float(fn(jnp.asarray(rng.uniform(0, 1, p.n_vars)), jnp.asarray(b), futures)) for b in (0.5, 1.8, 3.0)]
    other = futures._replace(draws={k: v * 1.1 for k, v in futures.draws.items()})
    values.append(float(fn(jnp.asarray(rng.uniform(0, 1, p.n_vars)), jnp.asarray(1.0), other)))
    assert len(traces) == 1, "a new decision, budget or set of draws retraced the objective"
    assert len(set(values)) == len(values)  # and each call did compute something different


def test_objective_and_gradient_are_the_same_under_jit_and_not(problem):
    """The objective is one float64 computation whether jitted or not: the programme's breakpoints
    sit on the step grid, and RK4's last stage (t + dt) reads the next one whichever way the
    compiler rounds t + dt (they differed by ~1e-3 relative when that was left to rounding)."""
    _, p, futures = problem
    x, b = jnp.asarray([0.3, 0.6, 0.45, 0.7, 0.2, 0.55, 0.51]), jnp.asarray(1.0)  # the budget binds
    vg = jax.value_and_grad(lambda x: objective(p, x, b, futures))
    (v, g), (vj, gj) = vg(x), jax.jit(vg)(x)  # un-jitted: ~20 s of op-by-op reverse mode
    assert v.dtype == jnp.float64 and g.dtype == jnp.float64
    # the same float64 operations, perhaps fused and ordered otherwise: ~1e-16 relative per step, 24 steps
    np.testing.assert_allclose(float(vj), float(v), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(gj), np.asarray(g), rtol=1e-10, atol=1e-12)
    assert np.any(np.abs(np.asarray(g)) > 1e-4)  # a gradient that says something


@pytest.mark.parametrize("objective_name", ["expected_adoption", "probability_of_target", "cvar_shortfall"])
def test_gradient_matches_finite_differences(objective_name):
    extra = "" if objective_name == "expected_adoption" else "target = 0.3\nsmoothing = 0.05\nalpha = 0.5\n"
    cfg = config(DESIGN + f'objective = "{objective_name}"\n' + extra)
    sim, futures = futures_for(cfg, None)
    p = make_problem(sim, "population", cfg.n_sites, cfg.design)
    # an interior point: withdrawal inside a step (the ramp is linear there), intensities away from 0/1
    x = jnp.asarray([0.3, 0.6, 0.45, 0.7, 0.2, 0.55, 0.51])
    vg = jax.jit(jax.value_and_grad(lambda x, b: objective(p, x, b, futures, smooth=True)))
    for budget in (1.0, 10.0):  # the budget binds (intensity scaled), and it does not
        b = jnp.asarray(budget)
        g = np.asarray(vg(x, b)[1])
        h = 1e-6
        fd = np.array([(float(vg(x.at[i].add(h), b)[0]) - float(vg(x.at[i].add(-h), b)[0])) / (2 * h)
                       for i in range(p.n_vars)])
        # central differences in float64: truncation O(h^2) ~ 1e-12 and round-off ~ 1e-16 / h ~ 1e-10
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)
        assert np.any(np.abs(g) > 1e-4)  # not a flat point where any gradient would pass


def test_chance_uses_common_rolls():
    from spreadjax.design._run import stochastic_shares

    cfg = config(DESIGN, extra="[stochastic]\nenabled = true")
    sim, futures = futures_for(cfg, None)
    p = make_problem(sim, "population", cfg.n_sites, cfg.design)
    a = programme(p, jnp.full(p.n_vars, 0.8), jnp.asarray(1.8))
    b = programme(p, jnp.full(p.n_vars, 0.2), jnp.asarray(1.8))
    first, again = stochastic_shares(p, a, futures, 5, 3), stochastic_shares(p, a, futures, 5, 3)
    assert first.shape == (6, 3) and np.array_equal(first, again)  # the same rolls: the same futures
    counts = first * (7 + 900)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole organisations adopt
    assert not np.array_equal(first, stochastic_shares(p, a, futures, 6, 3))  # another seed, other rolls
    assert not np.array_equal(first, stochastic_shares(p, b, futures, 5, 3))  # another programme, other shares


def test_rounded_budget_map_spends_at_most_the_budget_and_tends_to_the_exact_one(problem):
    """The quasi-Newton surrogate's budget map (kink rounded over a relative width ``soft``): never
    over the budget, within ~soft of the exact programme, and exactly it when a traced soft is 0."""
    _, p, _ = problem
    rng = np.random.default_rng(5)
    xs = jnp.asarray(rng.uniform(0, 1, (200, p.n_vars)))
    b = jnp.asarray(1.8)
    exact = jax.vmap(lambda x: programme(p, x, b))(xs)
    for soft in (1e-2, 1e-4):
        rounded = jax.vmap(lambda x: programme(p, x, b, soft))(xs)
        used = np.asarray(jax.vmap(lambda v: spend(p, v).sum())(rounded))
        assert np.all(used <= 1.8 * (1 + 1e-12))
        assert float(jnp.max(jnp.abs(rounded - exact))) <= soft  # scale differs by < soft ln 2 (relative)
    at_zero = jax.jit(jax.vmap(lambda x, s: programme(p, x, b, s), in_axes=(0, None)))(xs, jnp.asarray(0.0))
    np.testing.assert_allclose(np.asarray(at_zero), np.asarray(exact), rtol=1e-13, atol=1e-15)


def test_quasi_newton_gradient_forward_and_reverse_agree_with_finite_differences(problem):
    from spreadjax.design._optimise import _value_grad_fn

    _, p, futures = problem
    x = jnp.asarray([0.3, 0.6, 0.45, 0.7, 0.2, 0.55, 0.51])
    b, soft = jnp.asarray(1.0), jnp.asarray(1e-2)  # the budget binds, near the rounded kink
    (v_f, exact_f), g_f = _value_grad_fn(p, True)(x, b, futures, soft)
    (v_r, exact_r), g_r = _value_grad_fn(p, False)(x, b, futures, soft)
    np.testing.assert_allclose(np.asarray(g_f), np.asarray(g_r), rtol=1e-9, atol=1e-12)
    assert float(v_f) == pytest.approx(float(v_r), rel=1e-12) and float(exact_f) == float(exact_r)
    # with soft = 0 the same compiled function gives the exact objective (its end-point scores)
    exact0 = float(_value_grad_fn(p, True)(x, b, futures, jnp.asarray(0.0))[0][1])
    assert exact0 == pytest.approx(float(jax.jit(lambda x: objective(p, x, b, futures))(x)), rel=1e-12)
    assert abs(float(exact_f) - exact0) < 1e-2  # the rounded map is within ~soft of it
    h = 1e-6
    fd = [(float(_value_grad_fn(p, True)(x.at[i].add(h), b, futures, soft)[0][0])
           - float(_value_grad_fn(p, True)(x.at[i].add(-h), b, futures, soft)[0][0])) / (2 * h) for i in range(7)]
    np.testing.assert_allclose(np.asarray(g_f), fd, rtol=1e-5, atol=1e-8)


def test_unknown_search_method_is_refused():
    from spreadjax._errors import ConfigError

    with pytest.raises(ConfigError, match=r"design.toml: \[design\] method = 'newton': expected one of lbfgs, adam"):
        config(DESIGN + 'method = "newton"\n')
    assert config(DESIGN).design.method == "lbfgs" and config(DESIGN + 'method = "adam"\n').design.method == "adam"
