"""``[design]``: the programme-design problem, validated once against the config's time axis.

The decision is the central programme schedule (``programme``, 0 = withdrawn, 1 = full support):

- ``knots``: start of each piece of a piecewise-constant push intensity (years or dates; the
  first is the simulation start; default: 4 equal pieces up to the latest withdrawal date);
- ``intensity``: ``[low, high]`` bounds on the intensity while the programme runs (default
  ``[0, 1]``, the schedule's own bounds);
- ``withdraw``: ``[earliest, latest]`` withdrawal date (years or dates; default: the horizon, i.e.
  never withdrawn before it); ``min_duration``: the programme runs at least this many years;
- ``budget``: programme-years to spend, summed over sites (intensity x years x sites);
- ``allocate``: optimise each site's intensities (true) or give every site the same schedule;
- ``objective``: ``expected_adoption`` (maximise the mean adopted share of all sites at
  ``horizon``), ``probability_of_target`` (maximise P(share >= ``target``)) or
  ``cvar_shortfall`` (minimise the mean shortfall below ``target`` in the worst ``1 - alpha`` of
  futures); ``smoothing``: the scale (share adopted) of the smooth surrogate for the last two;
- ``draws``, ``seed``: posterior draws (common to every programme compared) and their seed;
- ``method``: the gradient search: ``lbfgs`` (default: scipy L-BFGS-B in the unit box on the
  compiled model's gradient; ``steps`` caps its iterations per start) or ``adam`` (optax Adam,
  ``steps`` steps of ``learning_rate``); ``starts``: the baseline and seeded random points;
- ``de_generations``, ``de_popsize``: the derivative-free baseline (scipy differential evolution);
- ``grid``: levels per piece (and withdrawal dates) on the coarse grid of shared schedules;
- ``baseline``: ``{ intensity = 0.5, withdraw = ... }``: the constant programme to beat (default:
  the budget spread evenly over every site until the latest withdrawal date).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._limits import MAX_SEED
from .._errors import ConfigError, check_keys

OBJECTIVES = ("expected_adoption", "probability_of_target", "cvar_shortfall")
METHODS = ("lbfgs", "adam")
KEYS = ("objective", "horizon", "target", "alpha", "smoothing", "knots", "intensity", "withdraw", "min_duration",
        "budget", "allocate", "draws", "seed", "method", "steps", "learning_rate", "starts", "de_generations", "de_popsize",
        "grid", "baseline")
#: Draws x programmes evaluated at once are bounded by memory; a design over more than this many
#: posterior draws adds little (the Monte Carlo error of a mean over 1,000 draws is already ~3%).
MAX_DRAWS = 5_000
MAX_STEPS = 100_000
MAX_KNOTS = 48
MAX_GRID = 9
#: Programmes on the coarse grid: each is scored over every draw.
MAX_GRID_POINTS = 20_000


@dataclass(frozen=True)
class Baseline:
    """A constant programme: ``intensity`` at every site from the start until ``withdraw`` (years)."""

    intensity: float
    withdraw: float


@dataclass(frozen=True)
class DesignSettings:
    """The validated ``[design]`` section (times in years from the simulation's origin)."""

    objective: str
    horizon: float
    target: float | None
    alpha: float
    smoothing: float
    knots: tuple[float, ...]
    intensity: tuple[float, float]
    withdraw: tuple[float, float]
    min_duration: float
    budget: float
    allocate: bool
    draws: int
    seed: int
    steps: int
    learning_rate: float
    starts: int
    de_generations: int
    de_popsize: int
    grid: int
    baseline: Baseline
    method: str = "lbfgs"

    @property
    def earliest_withdrawal(self) -> float:
        """The earliest withdrawal the constraints allow: ``max(withdraw[0], start + min_duration)``."""
        return max(self.withdraw[0], self.knots[0] + self.min_duration)


def _number(value: Any, where: str, key: str, what: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: [design] {key} = {value!r}: expected {what}")
    return float(value)


def _whole(table: dict, key: str, default: int, lo: int, hi: int, where: str) -> int:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{where}: [design] {key} = {v!r}: expected a whole number from {lo:,} to {hi:,}")
    return v


def _when(value: Any, where: str, key: str, start_date: str | None) -> float:
    """Years from the origin: a number of years, or a date when [simulation] has a start_date."""
    if isinstance(value, str):
        if start_date is None:
            raise ConfigError(f"{where}: [design] {key} = {value!r} is a date but [simulation] has no start_date; "
                              "give years instead")
        try:
            date = _dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where}: [design] {key} = {value!r}: expected a date like 1954-06-01 or years") from None
        return (date - _dt.date.fromisoformat(start_date)).days / 365.25
    return _number(value, where, key, "years or a date like 1954-06-01")


def _pair(value: Any, where: str, key: str, conv) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{where}: [design] {key} = {value!r}: expected [low, high]")
    lo, hi = conv(value[0], f"{key}[0]"), conv(value[1], f"{key}[1]")
    if lo > hi:
        raise ConfigError(f"{where}: [design] {key} = {value!r}: low > high; swap them")
    return lo, hi


def parse_design(raw: dict, where: str, model: Any, simulation: Any, n_sites: int) -> DesignSettings | None:
    """``[design]`` of a config, or None when absent. ``model`` must have a ``programme`` schedule,
    an ``adopted`` stock and a population parameter."""
    if "design" not in raw:
        return None
    table = raw["design"]
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [design] must be a table")
    check_keys(table, KEYS, where, "[design]")
    names = model.names
    if names.get("programme") != "schedule" or names.get("adopted") != "stock" or model.population is None:
        raise ConfigError(f"{where}: [design] designs the 'programme' schedule and scores the 'adopted' stock; "
                          f"model {model.name!r} lacks one of them")
    sched = next(s for s in model.schedules if s.name == "programme")
    start, end, dt = float(simulation.start), float(simulation.end), float(simulation.dt)
    start_date = simulation.start_date

    def when(v, key):
        return _when(v, where, key, start_date)

    objective = table.get("objective", "expected_adoption")
    if objective not in OBJECTIVES:
        raise ConfigError(f"{where}: [design] objective = {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    horizon = when(table["horizon"], "horizon") if "horizon" in table else end
    steps_to = round((horizon - start) / dt)
    if not (start < horizon <= end + 1e-9) or steps_to < 1:
        raise ConfigError(f"{where}: [design] horizon = {table.get('horizon')!r} ({horizon:.4g} years) must lie after "
                          f"the start and by the end of [simulation] ({start:g} to {end:g} years)")
    horizon = start + steps_to * dt  # on the step grid: outputs are saved on it
    target = table.get("target")
    if objective != "expected_adoption" and target is None:
        raise ConfigError(f"{where}: [design] objective = {objective!r} needs target (a share adopted, e.g. 0.8)")
    if target is not None:
        target = _number(target, where, "target", "a share adopted in (0, 1]")
        if not 0 < target <= 1:
            raise ConfigError(f"{where}: [design] target = {target:g}: expected a share adopted in (0, 1]")
    alpha = _number(table.get("alpha", 0.9), where, "alpha", "a level in (0, 1), e.g. 0.9")
    if not 0 < alpha < 1:
        raise ConfigError(f"{where}: [design] alpha = {alpha:g}: expected a level in (0, 1) (0.9: the worst 10% of futures)")
    smoothing = _number(table.get("smoothing", 0.02), where, "smoothing", "a share adopted > 0")
    if not 0 < smoothing < 1:
        raise ConfigError(f"{where}: [design] smoothing = {smoothing:g}: expected a small share adopted in (0, 1), e.g. 0.02")

    lo_i, hi_i = _pair(table.get("intensity", [sched.lower if math.isfinite(sched.lower) else 0.0,
                                               sched.upper if math.isfinite(sched.upper) else 1.0]),
                       where, "intensity", lambda v, k: _number(v, where, k))
    if lo_i < sched.lower or hi_i > sched.upper or lo_i < 0 or hi_i <= 0:
        raise ConfigError(f"{where}: [design] intensity = [{lo_i:g}, {hi_i:g}] leaves the programme's range "
                          f"[{max(sched.lower, 0):g}, {sched.upper:g}] (or allows no push)")
    withdraw = _pair(table["withdraw"], where, "withdraw", when) if "withdraw" in table else (horizon, horizon)
    if withdraw[0] <= start or withdraw[1] > horizon + 1e-9:
        raise ConfigError(f"{where}: [design] withdraw = {table.get('withdraw')!r} ({withdraw[0]:.4g} to "
                          f"{withdraw[1]:.4g} years) must lie after the start ({start:g}) and by the horizon "
                          f"({horizon:.4g} years)")
    min_duration = _number(table.get("min_duration", 0.0), where, "min_duration", "years >= 0")
    if min_duration < 0:
        raise ConfigError(f"{where}: [design] min_duration = {min_duration:g}: expected years >= 0")
    if start + min_duration > withdraw[1] + 1e-9:
        raise ConfigError(f"{where}: [design] min_duration = {min_duration:g} years ends after the latest withdrawal "
                          f"({withdraw[1]:.4g} years): no programme meets both; shorten it or withdraw later")

    if "knots" in table:
        knots_raw = table["knots"]
        if not isinstance(knots_raw, list) or not knots_raw or len(knots_raw) > MAX_KNOTS:
            raise ConfigError(f"{where}: [design] knots = {knots_raw!r}: expected a list of 1 to {MAX_KNOTS} "
                              "times (years or dates), the first at the start")
        knots = tuple(when(v, f"knots[{i}]") for i, v in enumerate(knots_raw))
    else:
        knots = tuple(start + (withdraw[1] - start) * np.arange(4) / 4)
    if abs(knots[0] - start) > 1e-9:
        raise ConfigError(f"{where}: [design] knots[0] = {table['knots'][0]!r}: the first piece starts at the "
                          f"simulation start ({start:g} years)")
    if any(b <= a for a, b in zip(knots, knots[1:])) or knots[-1] >= withdraw[1] - 1e-9 and len(knots) > 1:
        raise ConfigError(f"{where}: [design] knots = {table.get('knots')!r}: expected increasing times before "
                          f"the latest withdrawal ({withdraw[1]:.4g} years)")

    if "budget" not in table:
        raise ConfigError(f"{where}: [design] budget is missing: give the programme-years to spend "
                          "(intensity x years x sites, e.g. 3.0)")
    budget = _number(table["budget"], where, "budget", "programme-years > 0 (intensity x years x sites)")
    if budget <= 0:
        raise ConfigError(f"{where}: [design] budget = {budget:g}: expected programme-years > 0")
    allocate = table.get("allocate", True)
    if not isinstance(allocate, bool):
        raise ConfigError(f"{where}: [design] allocate = {allocate!r}: expected true or false")

    draws = _whole(table, "draws", 200, 1, MAX_DRAWS, where)
    seed = _whole(table, "seed", 0, 0, MAX_SEED, where)
    method = table.get("method", "lbfgs")
    if method not in METHODS:
        raise ConfigError(f"{where}: [design] method = {method!r}: expected one of {', '.join(METHODS)}")
    steps = _whole(table, "steps", 300, 1, MAX_STEPS, where)
    starts = _whole(table, "starts", 4, 1, 64, where)
    lr = _number(table.get("learning_rate", 0.1), where, "learning_rate", "a step size > 0, e.g. 0.1")
    if not 0 < lr <= 10:
        raise ConfigError(f"{where}: [design] learning_rate = {lr:g}: expected a step size in (0, 10], e.g. 0.1")
    de_generations = _whole(table, "de_generations", 60, 1, 10_000, where)
    de_popsize = _whole(table, "de_popsize", 10, 2, 100, where)
    grid = _whole(table, "grid", 3, 2, MAX_GRID, where)

    b = table.get("baseline", {})
    if not isinstance(b, dict):
        raise ConfigError(f"{where}: [design] baseline = {b!r}: expected {{ intensity = 0.5, withdraw = ... }}")
    check_keys(b, ("intensity", "withdraw"), where, "[design.baseline]")
    even = budget / max((withdraw[1] - start) * n_sites, 1e-12)  # default: the budget spread evenly
    b_int = _number(b.get("intensity", min(hi_i, max(lo_i, even))), where, "baseline.intensity", "an intensity")
    if not lo_i <= b_int <= hi_i:
        raise ConfigError(f"{where}: [design] baseline.intensity = {b_int:g} leaves the bounds intensity = "
                          f"[{lo_i:g}, {hi_i:g}]")
    b_w = when(b["withdraw"], "baseline.withdraw") if "withdraw" in b else withdraw[1]
    earliest = max(withdraw[0], start + min_duration)
    if not earliest - 1e-9 <= b_w <= withdraw[1] + 1e-9:
        raise ConfigError(f"{where}: [design] baseline.withdraw = {b.get('withdraw')!r} ({b_w:.4g} years) leaves "
                          f"the allowed withdrawal dates ({earliest:.4g} to {withdraw[1]:.4g} years)")
    out = DesignSettings(objective, float(horizon), target, alpha, smoothing, knots, (lo_i, hi_i),
                         (float(withdraw[0]), float(withdraw[1])), min_duration, budget, allocate, draws, seed,
                         steps, lr, starts, de_generations, de_popsize, grid, Baseline(b_int, float(b_w)), method)
    check_design_sites(out, n_sites, where)
    n_grid = grid ** len(knots) * (grid if withdraw[1] - earliest > 1e-12 else 1)
    if n_grid > MAX_GRID_POINTS:
        raise ConfigError(f"{where}: [design] grid = {grid} over {len(knots)} piece(s) makes {n_grid:,} programmes to "
                          f"compare (at most {MAX_GRID_POINTS:,}); lower grid or use fewer knots")
    return out


def check_design_sites(d: DesignSettings, n_sites: int, where: str) -> None:
    """Budgets the sites must meet: the floor intensity until the latest withdrawal fits the budget,
    and the baseline spends no more than it (else the comparison would not be fair)."""
    start = d.knots[0]
    floor = d.intensity[0] * (d.withdraw[1] - start) * n_sites
    if floor > d.budget + 1e-9:
        raise ConfigError(f"{where}: [design] budget = {d.budget:g} programme-years is below the floor: intensity "
                          f"{d.intensity[0]:g} x {d.withdraw[1] - start:.4g} years x {n_sites} site(s) = {floor:.4g}; "
                          "raise the budget or lower intensity[0]")
    spend = d.baseline.intensity * (d.baseline.withdraw - start) * n_sites
    if spend > d.budget * (1 + 1e-6):
        raise ConfigError(f"{where}: [design] baseline spends {spend:.4g} programme-years ({d.baseline.intensity:g} x "
                          f"{d.baseline.withdraw - start:.4g} years x {n_sites} site(s)), more than budget = "
                          f"{d.budget:g}; lower its intensity or withdraw it earlier")
