"""Which model structure forecasts best? Configs ranked by their out-of-sample scores.

Every config must fit the same data (by content hash), sites and backtest origins; each gets
its own folder ``DIR/<config stem>/`` holding

- its rolling-origin backtest (:func:`run_backtest`, resumed fold by fold): the leave-future-out
  scores, CRPS and coverage of every held-out point, and the one-step-ahead ``elpd_lfo``;
- a calibration on all the data, ``posterior.nc`` with its pointwise ``log_likelihood`` group
  (kept when one with the same config, data and split is there), for PSIS-LOO.

The ranking uses the backtest: mean CRPS over every held-out point of every origin (lower is
better), with the 50% and 90% coverage and ``elpd_lfo`` beside it. PSIS-LOO (``arviz.compare``)
is shown too, but does not rank: leaving one month out of a cumulative adoption curve lets the
model see both its neighbours, which a forecast never does, and its Pareto k often exceeds 0.7
for time series (Bürkner, Gabry and Vehtari 2020). The table goes to ``DIR/compare.json`` and
``DIR/compare.nc``; the figure (:mod:`spreadjax.report._compare_figures`) to ``DIR/compare.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ._run import backtest_origins, run_backtest

Say = Callable[[str], None]
PARETO_K_MAX = 0.7  # above it PSIS-LOO's estimate of that point is unreliable (Vehtari et al. 2024)
RESERVED = ("backtest",)  # folders `spreadjax run` writes beside the per-config ones
LOO_NOTE = ("PSIS-LOO leaves one observation out and lets the model see the months on both sides of it, which "
            "a forecast never does; for time series its Pareto k often exceeds 0.7. It is shown beside the "
            "leave-future-out scores, but the ranking uses leave-future-out (the backtest's CRPS).")


def stems(configs: Sequence[Any]) -> list[str]:
    """The configs' names (file stems), which name their folders."""
    return [Path(c.path).stem for c in configs]


def check_comparable(configs: Sequence[Any]) -> None:
    """Refuse, with one line naming the files, configs that cannot be ranked together: fewer than
    two, two of the same name, ones that cannot be backtested, or ones fitted to another data
    file (by content), other sites or other backtest origins."""
    if len(configs) < 2:
        named = ", ".join(str(c.path) for c in configs) or "none"
        raise InputError(f"a comparison needs at least 2 configs; got {len(configs)}: {named}")
    names = stems(configs)
    for i, name in enumerate(names):
        if name in names[:i]:
            j = names.index(name)
            raise InputError(f"{configs[j].path} and {configs[i].path}: both are named {name!r} (their folder in "
                             "--out); rename one")
        if name in RESERVED:
            raise InputError(f"{configs[i].path}: a config named {name!r} would write into the folder `spreadjax "
                             "run` keeps its own backtest in; rename it")
    first = configs[0]
    t0, k0 = backtest_origins(first)
    for c in configs[1:]:
        times, k = backtest_origins(c)
        if c.data.sha256 != first.data.sha256:
            raise InputError(f"{first.path} and {c.path} fit different data: {first.data.file} (sha256 "
                             f"{first.data.sha256[:12]}) and {c.data.file} (sha256 {c.data.sha256[:12]}); "
                             "structures are compared on the same data")
        if tuple(c.sites) != tuple(first.sites):
            raise InputError(f"{first.path} and {c.path} have different sites: {list(first.sites)} and "
                             f"{list(c.sites)}")
        ours, theirs = _times(t0, k0), _times(times, k)
        if ours != theirs:
            raise InputError(f"{first.path} and {c.path} have different [backtest] origins: {ours} and {theirs} "
                             "years; give both the same [backtest] origins")


def _times(times: np.ndarray, idx: list[int]) -> list[float]:
    return [round(float(times[k]), 9) for k in idx]


def run_compare(configs: Sequence[Any], out_dir: Path, say: Say = print,
                reuse: Mapping[str, Path] | None = None) -> xr.Dataset:
    """Backtest and calibrate every config into ``out_dir/<stem>/`` (resuming), rank them, and write
    ``out_dir/compare.json`` and ``out_dir/compare.nc``; returns the ranking as a dataset.

    ``reuse`` maps a config's path to a folder whose ``backtest/`` folds it may start from (the
    folder `spreadjax run --backtest` just scored it in)."""
    from .._lock import output_lock

    check_comparable(configs)
    names = stems(configs)
    reuse = {str(Path(k)): Path(v) for k, v in (reuse or {}).items()}
    with output_lock(out_dir, "spreadjax compare"):
        backtests, posteriors = {}, {}
        for n, (name, config) in enumerate(zip(names, configs), 1):
            folder = out_dir / name
            say(f"[{n}/{len(configs)}] {name}: backtest ({config.path})")
            _seed_folds(reuse.get(str(Path(config.path))), folder)
            backtests[name] = run_backtest(config, folder, say=lambda text: say(f"      {text}"))
            say(f"[{n}/{len(configs)}] {name}: calibrating on all the data (for PSIS-LOO)")
            posteriors[name] = full_posterior(config, folder, say=lambda text: say(f"      {text}"))
        say("ranking by leave-future-out CRPS; PSIS-LOO beside it (arviz.compare)")
        loo, loo_warnings = loo_table(posteriors)
        result = ranking(configs, backtests, loo)
        result.attrs["loo_warnings"] = json.dumps(loo_warnings)
        from .._io import write_atomic, write_netcdf

        write_netcdf(result, out_dir / "compare.nc")
        doc = compare_json(result)
        write_atomic(out_dir / "compare.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=2, allow_nan=False)))
    return result


def _seed_folds(source: Path | None, folder: Path) -> None:
    """Copy scored folds from ``source/backtest`` that ``folder/backtest`` lacks (each is still
    checked against its identity before use)."""
    if source is None or not (source / "backtest").is_dir():
        return
    for fold in (source / "backtest").glob("origin-*.nc"):
        target = folder / "backtest" / fold.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fold, target)


def full_posterior(config: Any, folder: Path, say: Say = print) -> Path:
    """``folder/posterior.nc``: the config's calibration on all its data, with the pointwise
    log-likelihood; kept when it is there for the same config, data and split."""
    from .._io import write_atomic
    from .._jobs import config_hash
    from ..calibrate._identity import calibration_identity
    from ..calibrate._run import build_problem, calibrate, write_posterior

    path = folder / "posterior.nc"
    sha = config_hash(config)
    if _posterior_matches(config, path, sha):
        say(f"{path} is already there for this config: kept")
        return path
    problem = build_problem(config, fit_until=math.inf)
    s = config.calibration.settings
    attrs = {"config": str(config.path), "config_sha256": sha, "seed": s.seed, "fit_until": -1.0,
             **calibration_identity(config)}
    result = calibrate(problem, s, attrs=attrs)
    flags = "\n".join(f"- {f}" for f in result.flags) or "- all diagnostics pass"
    write_atomic(folder / "diagnostics.txt", lambda tmp: tmp.write_text(f"{result.table()}\n\nFlags:\n{flags}\n"))
    frame = result.summary.drop_vars(["ebfmi", "chain"], errors="ignore").to_dataframe()
    write_atomic(folder / "diagnostics.csv", lambda tmp: frame.to_csv(tmp))
    write_posterior(result.groups, path)  # last: its presence marks the calibration done
    say(f"{len(result.flags)} diagnostic warning(s) (see {folder / 'diagnostics.txt'})" if result.flags
        else "diagnostics: all pass")
    return path


def _posterior_matches(config: Any, path: Path, sha: str) -> bool:
    if not path.exists():
        return False
    from ..calibrate._identity import check_posterior
    from ..calibrate._run import read_posterior

    try:
        groups = read_posterior(path)
        check_posterior(groups, config, path)
    except InputError:
        return False
    attrs = groups["posterior"].attrs
    return (attrs.get("config_sha256") == sha and float(attrs.get("fit_until", 0.0)) == -1.0
            and "new_adopters" in groups.get("log_likelihood", {}))


def loo_table(posteriors: Mapping[str, Path]) -> tuple[Any, list[str]]:
    """``arviz.compare`` (PSIS-LOO of ``new_adopters``, stacking weights) of the posteriors, with
    each one's largest Pareto k and how many points exceed :data:`PARETO_K_MAX`; and ArviZ's
    warnings in words."""
    import arviz as az

    idata = {name: az.from_netcdf(path) for name, path in posteriors.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.compare(idata, ic="loo", var_name="new_adopters").copy()
        ks = {name: np.asarray(az.loo(d, var_name="new_adopters", pointwise=True)["pareto_k"]).ravel()
              for name, d in idata.items()}
    table["pareto_k_max"] = [float(np.max(ks[name])) for name in table.index]
    table["pareto_k_high"] = [int(np.sum(ks[name] > PARETO_K_MAX)) for name in table.index]
    said = []
    for w in caught:
        text = str(w.message).split("\n")[0]
        if "deprecated" not in text and text not in said:
            said.append(text)
    return table, said


def ranking(configs: Sequence[Any], backtests: Mapping[str, xr.Dataset], loo: Any) -> xr.Dataset:
    """The ranking table as a dataset, dims ``config`` (best first), ``origin`` and ``site``."""
    from .._jobs import config_hash

    names = stems(configs)
    row = {}
    for name, config in zip(names, configs):
        bt = backtests[name]
        pick = lambda v: float(bt[v].sel(forecaster="model"))  # noqa: E731
        row[name] = {"crps": pick("crps_by_all"), "covered50": pick("covered50_by_all"),
                     "covered90": pick("covered90_by_all"), "elpd_lfo": pick("elpd_lfo_by_all"),
                     "elpd_lfo_se": pick("elpd_lfo_se_by_all")}
    order = sorted(names, key=lambda n: (row[n]["crps"], -row[n]["elpd_lfo"]))
    scalars = {k: ("config", [row[n][k] for n in order]) for k in next(iter(row.values()))}
    scalars["rank"] = ("config", np.arange(1, len(order) + 1))
    for col, name in (("elpd_loo", "elpd_loo"), ("se", "loo_se"), ("dse", "loo_dse"), ("weight", "loo_weight"),
                      ("p_loo", "p_loo"), ("rank", "loo_rank"), ("pareto_k_max", "pareto_k_max"),
                      ("pareto_k_high", "pareto_k_high")):
        values = [loo.loc[n, col] for n in order]
        scalars[name] = ("config", np.asarray(values, int if name in ("loo_rank", "pareto_k_high") else float))
    scalars["loo_rank"] = ("config", scalars["loo_rank"][1] + 1)  # ArviZ counts from 0
    by_config = {n: c for n, c in zip(names, configs)}
    scalars["config_path"] = ("config", [str(by_config[n].path) for n in order])
    scalars["config_sha256"] = ("config", [config_hash(by_config[n]) for n in order])
    per_origin = {}
    for var in ("crps_by_origin", "covered50_by_origin", "covered90_by_origin", "elpd_lfo_by_origin"):
        per_origin[var] = xr.concat([backtests[n][var].sel(forecaster="model", drop=True) for n in order], "config")
    per_origin["lpd_one_ahead"] = xr.concat(
        [backtests[n]["lpd_one_ahead"].sel(forecaster="model", drop=True) for n in order], "config")
    ref = backtests[order[0]]
    references = {f"reference_crps_{f}": float(ref["crps_by_all"].sel(forecaster=f)) for f in ("bass", "no_change")}
    ds = xr.Dataset({**scalars, **per_origin}, coords={"config": order})
    ds.attrs = {"ranked_by": "crps", "points": int(ref["points_by_all"]), "loo_note": LOO_NOTE,
                "pareto_k_max_ok": PARETO_K_MAX, **references}
    return ds


def compare_json(result: xr.Dataset) -> dict:
    """The ranking table for readers (the report, the CLI): best first."""
    def num(v: Any) -> Any:
        x = float(v)
        return round(x, 6) if math.isfinite(x) else None

    rows = []
    for i, name in enumerate(result["config"].values):
        r = result.isel(config=i)
        rows.append({
            "name": str(name), "config": str(r["config_path"].values), "config_sha256": str(r["config_sha256"].values),
            "rank": int(r["rank"]), "crps": num(r["crps"]), "covered50": num(r["covered50"]),
            "covered90": num(r["covered90"]), "elpd_lfo": num(r["elpd_lfo"]), "elpd_lfo_se": num(r["elpd_lfo_se"]),
            "elpd_loo": num(r["elpd_loo"]), "loo_se": num(r["loo_se"]), "loo_dse": num(r["loo_dse"]),
            "loo_weight": num(r["loo_weight"]), "p_loo": num(r["p_loo"]), "loo_rank": int(r["loo_rank"]),
            "pareto_k_max": num(r["pareto_k_max"]), "pareto_k_high": int(r["pareto_k_high"]),
            "crps_by_origin": [num(v) for v in r["crps_by_origin"].values],
            "covered90_by_origin": [num(v) for v in r["covered90_by_origin"].values],
        })
    warn = [f"{r['name']}: {r['pareto_k_high']} point(s) with Pareto k > {PARETO_K_MAX:g}: its PSIS-LOO is "
            "unreliable there (expected for a time series)" for r in rows if r["pareto_k_high"]]
    return {
        "ranked_by": "mean CRPS over every held-out point of every backtest origin (leave-future-out; lower is better)",
        "origins": [float(t) for t in result["origin"].values],
        "points": int(result.attrs["points"]),
        "references": {"bass": num(result.attrs["reference_crps_bass"]),
                       "no_change": num(result.attrs["reference_crps_no_change"])},
        "rows": rows,
        "loo_note": LOO_NOTE,
        "loo_warnings": warn + [f"arviz: {w}" for w in json.loads(result.attrs.get("loo_warnings", "[]"))],
    }
