"""A solved design as files: ``design.json`` (what the report reads) and ``design.nc`` (the arrays).

Shares are the adopted share of all sites together at the horizon. The gain of a programme over
another is paired: both are run on the same futures (posterior draws), and the gain is taken
future by future. ``mean_interval90`` is the 90% interval of the expected gain (normal, from the
paired differences' standard error); ``futures_interval90`` the 5% and 95% quantiles of the gain
across futures (what could happen in one future).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._io import write_atomic, write_netcdf
from ._problem import natural

SCHEMA = 1
Z90 = 1.6448536269514722  # standard normal 95% quantile: a two-sided 90% interval


def paired_gain(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Paired comparison of shares ``a`` and ``b`` ``(draw,)``: the gain ``a - b``'s mean, its 90%
    interval, the 5-95% range across futures, and P(a > b) (ties count half)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    q05, q95 = (float(v) for v in np.quantile(d, [0.05, 0.95]))
    p = float(np.mean(d > 0) + 0.5 * np.mean(d == 0))
    return {"mean": mean, "mean_interval90": [mean - Z90 * se, mean + Z90 * se],
            "futures_interval90": [q05, q95], "p_beats": p, "draws": int(n)}


def _date(config: Any, years: float) -> str | None:
    start = config.simulation.start_date
    if not start:
        return None
    return str(np.datetime64(start, "D") + np.timedelta64(int(round(years * 365.25)), "D"))


def design_json(result: Any, config: Any) -> dict[str, Any]:
    """The summary the report reads."""
    p, d = result.problem, result.settings
    sites = list(result.sites)
    times = np.asarray(result.times)
    knots = list(d.knots) + [p.t0 + p.n_steps * p.dt]
    piece = np.asarray(p.piece)

    def pieces(values: np.ndarray) -> list[dict[str, Any]]:
        rows = []
        for k in range(p.n_pieces):
            v = values[piece == k]
            rows.append({"start": float(knots[k]), "end": float(knots[k + 1]), "start_date": _date(config, knots[k]),
                         "intensity": {s: float(v[:, i].max()) if v.size else 0.0 for i, s in enumerate(sites)}})
        return rows

    def spend(values: np.ndarray) -> dict[str, float]:
        return {s: float(p.dt * values[:, i].sum()) for i, s in enumerate(sites)}

    from ._problem import withdrawal

    w = float(withdrawal(p, np.asarray(result.x)))
    chosen_spend = spend(result.values)
    base_spend = spend(result.baseline_values)
    grid_best = int(np.argmax(result.grid_scores))
    vs_grid = paired_gain(result.shares, result.grid_best_shares)
    objective_units = {"expected_adoption": "mean share adopted", "probability_of_target": "probability",
                       "cvar_shortfall": "share adopted (shortfall)"}[p.objective]
    searches = []
    for s in (result.gradient, result.evolution):
        searches.append({"method": s.method, "objective": natural(p, s.score), "seconds": s.seconds,
                         "evaluations": s.evaluations})
    beats_all = bool(result.score >= float(np.max(result.grid_scores)) - 1e-12)
    return {
        "schema": SCHEMA,
        "objective": {"name": p.objective, "units": objective_units, "horizon": float(p.t0 + p.n_steps * p.dt),
                      "horizon_date": _date(config, p.t0 + p.n_steps * p.dt), "target": d.target, "alpha": d.alpha,
                      "maximise": p.objective != "cvar_shortfall", "draws": int(result.shares.size)},
        "constraints": {"budget": d.budget, "intensity": list(d.intensity), "withdraw": list(p.w_range),
                        "withdraw_dates": [_date(config, v) for v in p.w_range], "min_duration": d.min_duration,
                        "allocate": d.allocate, "knots": list(d.knots)},
        "sites": sites,
        "chosen": {"method": result.chosen, "objective": natural(p, result.score), "withdraw": w,
                   "withdraw_date": _date(config, w), "spend": chosen_spend, "total_spend": sum(chosen_spend.values()),
                   "pieces": pieces(result.values), "mean_share": float(result.shares.mean())},
        "baseline": {"intensity": d.baseline.intensity, "withdraw": d.baseline.withdraw,
                     "withdraw_date": _date(config, d.baseline.withdraw), "objective": natural(p, result.baseline_score),
                     "spend": base_spend, "total_spend": sum(base_spend.values()),
                     "mean_share": float(result.baseline_shares.mean())},
        "gain": paired_gain(result.shares, result.baseline_shares),
        "gain_with_chance": None if result.chance is None else {
            **paired_gain(result.chance["chosen"].ravel(), result.chance["baseline"].ravel()),
            "replicates": int(result.chance["chosen"].shape[1]),
            "chosen_mean_share": float(result.chance["chosen"].mean()),
            "baseline_mean_share": float(result.chance["baseline"].mean())},
        "grid": {"levels": d.grid, "points": int(len(result.grid_scores)),
                 "best_objective": natural(p, float(np.max(result.grid_scores))),
                 "best_pieces": pieces(np.asarray(_grid_values(result, grid_best))),
                 "chosen_beats_all": beats_all, "gain_over_best": vs_grid},
        "searches": searches,
        "reliance": {"levers": result.levers, "budget_elasticity": result.budget_elasticity,
                     "withdrawal_per_year": result.withdrawal_value,
                     "marginal_per_programme_year": {s: float(v) for s, v in zip(sites, result.marginal)},
                     "period_elasticity": [{"start": float(knots[k]), "start_date": _date(config, knots[k]),
                                            "elasticity": {s: float(result.period_elasticity[k, i])
                                                           for i, s in enumerate(sites)}}
                                           for k in range(p.n_pieces)]},
    }


def _grid_values(result: Any, i: int) -> np.ndarray:
    import jax.numpy as jnp

    from ._problem import programme

    return np.asarray(programme(result.problem, jnp.asarray(result.grid_x[i]), jnp.asarray(result.settings.budget)))


def design_dataset(result: Any, summary: dict[str, Any]) -> xr.Dataset:
    """The arrays behind the summary, labelled."""
    draws = np.arange(result.shares.size)
    return xr.Dataset(
        {
            "programme": (("time", "site"), result.values, {"units": "1", "long_name": "chosen programme intensity"}),
            "baseline_programme": (("time", "site"), result.baseline_values, {"units": "1"}),
            "share": (("draw",), result.shares, {"units": "1", "long_name": "adopted share at the horizon, chosen"}),
            "baseline_share": (("draw",), result.baseline_shares, {"units": "1"}),
            "grid_best_share": (("draw",), result.grid_best_shares, {"units": "1"}),
            "gain": (("draw",), result.shares - result.baseline_shares,
                     {"units": "1", "long_name": "paired gain over the baseline per future"}),
            "grid_x": (("point", "variable"), result.grid_x),
            "grid_score": (("point",), result.grid_scores, {"long_name": "exact score (higher is better)"}),
            "trace": (("start", "iteration"), result.trace, {"long_name": "surrogate score per step (Adam) or per objective+gradient call (L-BFGS-B)"}),
            "x": (("variable",), result.x, {"long_name": "chosen decision in the unit box"}),
            **({} if result.chance is None else {
                "share_with_chance": (("draw", "replicate"), result.chance["chosen"], {"units": "1"}),
                "baseline_share_with_chance": (("draw", "replicate"), result.chance["baseline"], {"units": "1"})}),
            "period_elasticity": (("period", "site"), result.period_elasticity,
                                  {"long_name": "d log(mean share) / d log(intensity in the period at the site)"}),
        },
        coords={"time": np.asarray(result.times), "site": list(result.sites), "draw": draws},
        attrs={"schema": SCHEMA, "summary": json.dumps(summary, allow_nan=True)},
    )


def write_design(result: Any, config: Any, out_dir: Path) -> dict[str, Any]:
    """Write ``design.nc`` then ``design.json`` (last: its presence marks the step done)."""
    from .._jobs import config_hash

    summary = design_json(result, config)
    summary["config_sha256"] = config_hash(config)
    text = json.dumps(_finite(summary), indent=1, allow_nan=False)
    write_netcdf(design_dataset(result, summary), out_dir / "design.nc")
    write_atomic(out_dir / "design.json", lambda tmp: tmp.write_text(text))
    return summary


def _finite(obj: Any) -> Any:
    """NaN and infinities become None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def design_lines(summary: dict[str, Any]) -> list[str]:
    """A few plain lines on the chosen programme, for the terminal."""
    o, c, b, g = summary["objective"], summary["chosen"], summary["baseline"], summary["gain"]
    when = c.get("withdraw_date") or f"year {c['withdraw']:.2f}"
    lines = [f"chosen programme ({c['method']}): spend {c['total_spend']:.2f} programme-years, withdraw at {when}; "
             f"{o['name'].replace('_', ' ')} {c['objective']:.3f} vs {b['objective']:.3f} for the baseline",
             f"gain in share adopted over the baseline: {g['mean']:+.3f} (90% interval {g['mean_interval90'][0]:+.3f} "
             f"to {g['mean_interval90'][1]:+.3f}); better in {g['p_beats']:.0%} of {g['draws']} futures"]
    ch = summary.get("gain_with_chance")
    if ch:
        lines.append(f"with chance ({ch['replicates']} rolls per future, shared): {ch['mean']:+.3f} (90% interval "
                     f"{ch['mean_interval90'][0]:+.3f} to {ch['mean_interval90'][1]:+.3f}); better in "
                     f"{ch['p_beats']:.0%} of {ch['draws']}")
    for s in summary["searches"]:
        lines.append(f"  {s['method']}: objective {s['objective']:.4f} in {s['seconds']:.1f} s, "
                     f"{s['evaluations']:,} evaluations")
    grid = summary["grid"]
    lines.append(f"  coarse grid ({grid['points']} programmes): best {grid['best_objective']:.4f}"
                 f"{'; the chosen programme beats all of them' if grid['chosen_beats_all'] else ''}")
    return lines
