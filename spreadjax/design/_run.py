"""`spreadjax design`: optimise the programme over the posterior's futures and compare it.

:func:`solve_design` draws the futures (the same posterior draws the ensemble uses, via
``ensemble._plan.draw_values``), builds the problem, runs the gradient search and the
derivative-free baseline, scores the baseline programme and the coarse grid on the same futures,
and measures what the chosen programme relies on. :func:`run_design` writes the result.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._errors import InputError
from ._optimise import Search, differential_evolution, evaluate, gradient_search, grid_points, quasi_newton_search
from ._problem import DesignProblem, Futures, adoption, constant_programme, make_problem, programme

Progress = Callable[[int, int], None]


def futures_for(config: Any, posterior: str | None) -> tuple[Any, Futures]:
    """``(simulation, futures)``: the config's simulation and ``[design] draws`` parameter draws from
    the ensemble's source (a posterior's draws, seeded with ``[design] seed``)."""
    from .._jobs import build_simulation
    from ..ensemble._plan import draw_values

    d = config.design
    sim, base, network = build_simulation(config)
    ens = dataclasses.replace(config.ensemble, draws=d.draws, seed=d.seed)
    draws = draw_values(dataclasses.replace(config, ensemble=ens), posterior)
    import jax.numpy as jnp

    pop = sim.model.model.population
    dtype = jnp.asarray(base[pop]).dtype
    if not draws:  # nothing varies: one future, the config's values
        draws = {pop: np.asarray(base[pop])[None]}
    draws = {k: jnp.asarray(v, dtype) for k, v in draws.items()}
    return sim, Futures(draws, base, network)


def _starts(p: DesignProblem, baseline_x: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """The baseline (where the unit box holds it) and ``n - 1`` seeded random points inside the box."""
    rng = np.random.default_rng(seed)
    rows = [] if baseline_x is None else [np.clip(baseline_x, 0.05, 0.95)]
    while len(rows) < n:
        rows.append(rng.uniform(0.1, 0.9, p.n_vars))
    return np.asarray(rows)


def baseline_x(p: DesignProblem, settings: Any) -> np.ndarray | None:
    """The baseline programme as a decision vector, or None where the box cannot hold it."""
    b = settings.baseline
    u = 0.0 if p.high == p.low else (b.intensity - p.low) / (p.high - p.low)
    x = np.full(p.n_intensity, u)
    if p.moves_withdrawal:
        x = np.append(x, (b.withdraw - p.w_range[0]) / (p.w_range[1] - p.w_range[0]))
    elif abs(b.withdraw - p.w_range[1]) > 1e-9:
        return None
    return x if np.all((x >= 0) & (x <= 1)) else None


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """What :func:`solve_design` found; every share is the adopted share of all sites at the horizon."""

    problem: DesignProblem
    settings: Any
    sites: tuple[str, ...]
    times: np.ndarray  # (step,) start of each step, years
    gradient: Search
    evolution: Search
    chosen: str  # "gradient" or "evolution": the better exact score
    x: np.ndarray
    values: np.ndarray  # (step, site) chosen programme
    baseline_values: np.ndarray  # (step, site)
    shares: np.ndarray  # (draw,) chosen
    baseline_shares: np.ndarray
    baseline_score: float
    grid_x: np.ndarray  # (point, n_vars)
    grid_scores: np.ndarray  # (point,)
    grid_best_shares: np.ndarray  # (draw,)
    trace: np.ndarray  # (start, step) surrogate score
    levers: dict  # name -> elasticity of the mean share
    budget_elasticity: float
    withdrawal_value: float | None  # d mean share / d withdrawal date, per year
    marginal: np.ndarray  # (site,) d mean share per extra programme-year at the site
    period_elasticity: np.ndarray  # (piece, site) d log(mean share) / d log(intensity in the period there)
    chance: dict | None = None  # stochastic configs: shares with chance, {"chosen", "baseline"}: (draw, replicate)

    @property
    def score(self) -> float:
        return (self.gradient if self.chosen == "gradient" else self.evolution).score


def solve_design(config: Any, posterior: str | None = None, progress: Progress | None = None) -> DesignResult:
    """Solve ``config``'s ``[design]`` on its futures (see the module docstring)."""
    import jax.numpy as jnp

    d = config.design
    if d is None:
        raise InputError(f"{config.path}: no [design] section: add one to say the budget and what to optimise "
                         "(docs/design.md)")
    sim, futures = futures_for(config, posterior)
    pop = sim.model.model.population
    p = make_problem(sim, pop, config.n_sites, d)
    dtype = jnp.asarray(futures.base[pop]).dtype
    chunk = d.de_popsize * p.n_vars
    grid = grid_points(p, d.grid)
    total = d.steps * d.starts + (d.de_generations + 1) * chunk + len(grid)
    tick = progress or (lambda done, total: None)
    tick(0, total)
    bx = baseline_x(p, d)
    grad, trace = search(p, futures, d, _starts(p, bx, d.starts, d.seed))
    done = d.steps * d.starts
    tick(done, total)
    evo = differential_evolution(p, futures, d.budget, d.de_generations, d.de_popsize, d.seed,
                                 progress=lambda n: tick(done + min(n, total - done - len(grid)), total))
    done = total - len(grid)
    tick(done, total)
    grid_scores = evaluate(p, futures, d.budget, grid, chunk)
    tick(total, total)
    chosen = "gradient" if grad.score >= evo.score else "evolution"
    x = (grad if chosen == "gradient" else evo).x
    budget = jnp.asarray(d.budget, dtype)
    values = programme(p, jnp.asarray(x, dtype), budget)
    base_values = constant_programme(p, d.baseline.intensity, d.baseline.withdraw, dtype)
    best_grid = programme(p, jnp.asarray(grid[int(np.argmax(grid_scores))], dtype), budget)
    share_fn = _share_fn(p)
    shares, base_shares, grid_shares = (np.asarray(share_fn(v, futures), float)
                                        for v in (values, base_values, best_grid))
    from ._problem import score

    base_score = float(score(p, jnp.asarray(base_shares), smooth=False))
    levers, budget_el, w_value, marginal, periods = _reliance(p, futures, jnp.asarray(x, dtype), budget, values)
    chance = None
    if config.stochastic.enabled:  # the same futures with chance: common rolls for both programmes
        reps = max(1, int(config.ensemble.replicates))
        chance = {name: stochastic_shares(p, v, futures, d.seed, reps)
                  for name, v in (("chosen", values), ("baseline", base_values))}
    return DesignResult(p, d, tuple(config.sites), p.step_times, grad, evo, chosen, np.asarray(x),
                        np.asarray(values, float), np.asarray(base_values, float), shares, base_shares, base_score,
                        grid, grid_scores, grid_shares, trace, levers, budget_el, w_value, marginal, periods,
                        chance)


def search(p: DesignProblem, futures: Futures, settings: Any, starts: np.ndarray) -> tuple[Search, np.ndarray]:
    """The gradient search ``settings.method`` asks for, from ``starts`` ``(start, n_vars)``."""
    if settings.method == "adam":
        return gradient_search(p, futures, settings.budget, starts, settings.steps, settings.learning_rate)
    return quasi_newton_search(p, futures, settings.budget, starts, settings.steps)


@functools.lru_cache(maxsize=8)
def _share_fn(p: DesignProblem) -> Callable:
    """``jit((values, futures) -> shares (draw,))``, compiled once per problem."""
    import jax

    return jax.jit(lambda values, futures: adoption(p, values, futures))


@functools.lru_cache(maxsize=8)
def _chance_fn(p: DesignProblem) -> Callable:
    """``jit((values, futures, keys (draw,)) -> adopted share (draw,))`` with binomial chance."""
    import jax
    import jax.numpy as jnp

    from ..core import Simulation

    sim = Simulation(p.sim.model, p.sim.ts, p.sim.dt, ("adopted",), p.sim.solver, p.sim.t0, True)

    def run(values, futures, keys):
        params = dict(futures.base)
        params.update(futures.draws)
        params["programme"] = {"times": jnp.asarray(p.step_times, values.dtype), "values": values}
        axes = {name: (0 if name in futures.draws else None) for name in params}
        out = sim.batch(params, futures.network, keys, axes=axes)["adopted"]  # (draw, 1, site)
        pop = jnp.broadcast_to(params[p.population], out.shape[::2])
        return jnp.sum(out[:, -1, :], axis=-1) / jnp.sum(pop, axis=-1)

    return jax.jit(run)


def stochastic_shares(p: DesignProblem, values: Any, futures: Futures, seed: int, replicates: int) -> np.ndarray:
    """Adopted shares ``(draw, replicate)`` with binomial chance; draw ``i``'s replicate ``r`` rolls with
    ``fold_in(PRNGKey(seed), i * replicates + r)`` whatever the programme (common random numbers)."""
    import jax

    n = int(next(iter(futures.draws.values())).shape[0])
    root = jax.random.PRNGKey(seed)
    fn = _chance_fn(p)
    cols = []
    for r in range(replicates):
        keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(np.arange(n) * replicates + r)
        cols.append(np.asarray(fn(values, futures, keys), float))
    return np.stack(cols, axis=1)


#: Relative step of the central differences of :func:`_reliance` (their error is O(h^2) ~ 1e-4 relative).
FD_STEP = 0.01


def _reliance(p: DesignProblem, futures: Futures, x: Any, budget: Any, values: Any):
    """What the chosen programme relies on, as central differences of the mean share through the
    compiled model (the same compiled function that scores the programmes, so no new compile):
    its elasticity to each lever (``param * exp(+-h)``, all sites together) and to the budget; its
    slope in the withdrawal date (share per year); per site, the share gained per extra
    programme-year spread over the months the programme runs there; and the elasticity to each
    period's intensity at each site (the design variables; NaN where the programme is off)."""
    import jax.numpy as jnp

    share = _share_fn(p)
    h = FD_STEP

    def mean(v, f=futures):
        return float(np.mean(np.asarray(share(v, f))))

    level = mean(values)
    model = p.sim.model.model
    names = [n for n in dict.fromkeys([*model.levers(), "p", "q"])
             if n in futures.base and not isinstance(futures.base[n], dict)]
    levers = {}
    for name in names:
        ends = []
        for sign in (1.0, -1.0):
            scaled = (Futures({**futures.draws, name: futures.draws[name] * np.exp(sign * h)}, futures.base,
                              futures.network) if name in futures.draws else
                      Futures(futures.draws, {**futures.base, name: futures.base[name] * np.exp(sign * h)},
                              futures.network))
            ends.append(mean(values, scaled))
        levers[name] = (ends[0] - ends[1]) / (2 * h) / level if level > 0 else float("nan")
    up, down = (mean(programme(p, x, budget * np.exp(s * h))) for s in (1.0, -1.0))
    budget_el = (up - down) / (2 * h) / level if level > 0 else float("nan")
    w_value = None
    if p.moves_withdrawal:
        i = p.n_intensity
        lo, hi = max(float(x[i]) - h, 0.0), min(float(x[i]) + h, 1.0)
        ends = [mean(programme(p, x.at[i].set(v), budget)) for v in (hi, lo)]
        w_value = (ends[0] - ends[1]) / ((hi - lo) * (p.w_range[1] - p.w_range[0]))
    marginal = np.zeros(p.n_sites)
    vals = np.asarray(values)
    for j in range(p.n_sites):
        on = vals[:, j] > 0
        if not on.any():
            on = np.ones_like(on)
        bump = np.zeros_like(vals)
        bump[on, j] = h / (p.dt * on.sum())  # h programme-years, spread evenly over the running steps
        ends = [mean(values + sign * jnp.asarray(bump, values.dtype)) for sign in (1.0, -1.0)]
        marginal[j] = (ends[0] - ends[1]) / (2 * h)
    # the design variables: each period's intensity at each site scaled by exp(+-h), the rest held
    periods = np.full((p.n_pieces, p.n_sites), np.nan)
    piece = np.asarray(p.piece)
    for k in range(p.n_pieces):
        for j in range(p.n_sites):
            if level <= 0 or not np.any(vals[piece == k, j] > 0):
                continue
            mask = np.zeros_like(vals)
            mask[piece == k, j] = 1.0
            ends = [mean(values * jnp.asarray(np.exp(sign * h * mask), values.dtype)) for sign in (1.0, -1.0)]
            periods[k, j] = (ends[0] - ends[1]) / (2 * h) / level
    return levers, budget_el, w_value, marginal, periods


def run_design(config: Any, out_dir: Path, posterior: str | None = None, progress: Progress | None = None) -> DesignResult:
    """Solve ``config``'s ``[design]`` and write ``design.json`` and ``design.nc`` into ``out_dir``."""
    from ._result import write_design

    result = solve_design(config, posterior, progress)
    write_design(result, config, Path(out_dir))
    return result


__all__ = ["DesignResult", "futures_for", "run_design", "solve_design"]
