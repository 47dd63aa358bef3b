"""A design problem with a known optimum: Bass diffusion with a constant push under a budget.

One district of 900 organisations, Bass p = 0.6 and q = 0.5 per year, horizon 3 years. The decision
is a constant intensity u in [0, 1] and a withdrawal date w in [0.25, 3]; the budget is u * w <= 1
programme-year. Push is worth most early, when it seeds the imitation that compounds until the
horizon, so the optimum spends the budget at full intensity from the start: u* = 1, w* = 1 year.
A fine grid over (u, w) confirms it, and the adopted share there has a closed form: Bass up to w,
then the logistic of imitation alone. With the push set every quarter (13 variables) the optimum is
the same front-loaded bang-bang programme: full push for the first year, then none.
"""

from __future__ import annotations

import math
import textwrap
import tomllib

import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax._config import parse_config
from spreadjax.design import solve_design
from spreadjax.design._optimise import _value_grad_fn, evaluate, quasi_newton_search
from spreadjax.design._problem import make_problem, withdrawal
from spreadjax.design._run import futures_for

P, Q, H, BUDGET = 0.6, 0.5, 3.0, 1.0

BASS = textwrap.dedent(f"""
    title = "Bass with a budgeted constant push"
    [model]
    name = "four_stage"
    [model.options]
    awareness_stage = false
    implementation_order = 0
    [sites]
    names = ["district"]
    [parameters]
    population = 900.0
    initial_adopters = 0.0
    p = {P}
    q = {Q}
    recognition_baseline = 1.0
    pilot_evidence = 0.0
    adopter_evidence = 0.0
    discontinuation_rate = 0.0
    [simulation]
    end = {H}
    steps_per_year = 24
    outputs_per_year = 4
    dtype = "float64"
    [design]
    knots = [0.0]
    withdraw = [0.25, {H}]
    budget = {BUDGET}
    steps = 300
    learning_rate = 0.1
    starts = 2
    de_generations = 40
    de_popsize = 10
    grid = 5
    """)


def bass_then_imitation(w: float, u: float = 1.0) -> float:
    """Adopted share at H: Bass (u p, q) until w, then dF/dt = q F (1 - F)."""
    pu = u * P
    e = math.exp(-(pu + Q) * w)
    f = (1 - e) / (1 + Q / pu * e)
    return 1 / (1 + (1 / f - 1) * math.exp(-Q * (H - w)))


@pytest.fixture(scope="module")
def solved():
    cfg = parse_config(tomllib.loads(BASS), "bass_design.toml")
    return cfg, solve_design(cfg)


def test_gradient_search_finds_the_known_optimum(solved):
    cfg, r = solved
    p = r.problem
    assert r.gradient.x.shape == (2,) and r.chosen in ("gradient", "evolution")
    u, w = r.gradient.x[0], float(withdrawal(p, jnp.asarray(r.gradient.x)))
    spent = float(np.sum(r.values) * p.dt) if r.chosen == "gradient" else None
    # the intensity reaches its bound (L-BFGS-B holds the box's bounds directly), and the date is
    # within 4 days of w* = 1 year: the objective's slope there is ~0.07 per year, so 4 days is ~1e-4
    assert u > 0.995, u
    assert abs(w - BUDGET) < 0.01, w
    if spent is not None:
        assert spent == pytest.approx(BUDGET, rel=1e-9)  # the budget binds, exactly

    # a fine grid over (u, w), on the same exact objective: its best point is the closed-form optimum
    sim, futures = futures_for(cfg, None)
    uu, ww = np.linspace(0, 1, 41), np.linspace(0, 1, 111)  # w steps of 0.025 years
    xs = np.array([[a, b] for a in uu for b in ww])
    scores = evaluate(p, futures, BUDGET, xs, 512)
    best = int(np.argmax(scores))
    w_best = p.w_range[0] + xs[best, 1] * (p.w_range[1] - p.w_range[0])
    assert xs[best, 0] == 1.0 and abs(w_best - BUDGET) < 0.0125 + 1e-9, (xs[best], w_best)
    # the search is no worse than the fine grid (tolerance: the slope above times 4 days, ~1e-4)
    assert r.gradient.score >= scores[best] - 1e-4, (r.gradient.score, scores[best])
    # and the objective agrees with the closed form at the optimum: RK4 is 4th order away from the
    # switch, but its last stage at w already sees the push off, which costs ~dt p (1 - F) / 6 ~ 3e-3
    assert r.gradient.score == pytest.approx(bass_then_imitation(BUDGET), abs=3e-3)
    # the closed form agrees that the budget is best spent at once: half the push for twice as long is worse
    assert bass_then_imitation(BUDGET) > bass_then_imitation(2 * BUDGET, 0.5) + 1e-3


def test_derivative_free_check_and_grid_agree(solved):
    _, r = solved
    # differential evolution on 2 variables reaches the optimum too; the 5-level grid does worse
    assert r.evolution.score == pytest.approx(r.gradient.score, abs=5e-4)
    assert r.score >= float(np.max(r.grid_scores)) - 1e-12
    assert r.shares.shape == (1,) and r.baseline_score < r.score  # the evenly spread baseline is worse


def test_quarterly_push_lands_on_the_front_loaded_programme(solved):
    """13 variables (12 quarterly intensities and the withdrawal date): L-BFGS-B from the baseline
    and two seeded starts reaches the 2-variable optimum's objective within 1e-4 and its schedule,
    full push until 1 year and none after, within 2% of a programme-year; one compile for every
    start and budget."""
    from spreadjax.design._run import _starts, baseline_x

    cfg0, r = solved
    knots = ", ".join(f"{0.25 * k:g}" for k in range(12))
    cfg = parse_config(tomllib.loads(BASS.replace("knots = [0.0]", f"knots = [{knots}]").replace("grid = 5", "grid = 2")),
                       "bass_pieces.toml")
    sim, futures = futures_for(cfg, None)
    p = make_problem(sim, "population", 1, cfg.design)
    assert p.n_vars == 13
    starts = _starts(p, baseline_x(p, cfg.design), 3, cfg.design.seed)
    found, trace = quasi_newton_search(p, futures, BUDGET, starts, 300)
    # the reference: the 2-variable problem's fine-grid optimum on the same model and step grid
    p2 = r.problem
    _, fut2 = futures_for(cfg0, None)
    uu, ww = np.ones(1), np.linspace(0, 1, 221)
    best = float(np.max(evaluate(p2, fut2, BUDGET, np.array([[a, b] for a in uu for b in ww]), 256)))
    assert found.score >= best - 1e-4, (found.score, best)
    assert found.score <= best + 1e-6  # the bang-bang programme is the optimum: nothing beats it
    from spreadjax.design._problem import programme

    values = np.asarray(programme(p, jnp.asarray(found.x), jnp.asarray(BUDGET)))[:, 0]
    t = p.step_times
    ideal = (t + p.dt <= BUDGET + 1e-9).astype(float)  # full push for 1 year, then none
    assert np.sum(np.abs(values - ideal)) * p.dt < 0.02, np.round(values, 3)
    assert found.evaluations == int(np.sum(np.isfinite(trace))) and found.evaluations < 600
    # another budget and other starts reuse the one compiled objective+gradient
    quasi_newton_search(p, futures, 0.8, starts[:1] * 0.9, 20)
    assert _value_grad_fn(p, True)._cache_size() == 1  # 13 variables: forward-mode gradients
