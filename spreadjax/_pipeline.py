"""The main job, `spreadjax run`: calibrate, run the scenarios' ensemble from the posterior,
summarise, measure which lever matters most, and write the report.

Every stage leaves its files in the output folder and is skipped when a finished, matching file
is already there, so a run that stops resumes where it stopped:

    posterior.nc, diagnostics.*, *.png   calibration (on the data up to [run] fit_until)
    ensemble.zarr                        the ensemble (resumes chunk by chunk)
    summary.json, summary.nc             ensemble summaries
    sensitivity.json                     lever elasticities (jax.grad) and Sobol indices
    observed.json, run.json              the observed series and the provenance
    design.json, design.nc               with [design]: the programme to run (`spreadjax design`)
    report.html                          the report (rebuilt by `spreadjax report DIR`)

With ``--backtest``, ``backtest/``, ``backtest.*`` too, and with a ``[compare]`` section the
ranking of this config against the others (``compare.*``, one ``<config stem>/`` folder each).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError
from ._io import write_atomic

Say = Callable[[str], None]
STAGES = ("calibrate", "ensemble", "summarise", "sensitivity", "report")


def default_config_path() -> Path:
    """The bundled Medical Innovation example."""
    return Path(str(resources.files("spreadjax") / "configs" / "medical_innovation.toml"))


def run_pipeline(config: Any, out_dir: Path, *, say: Say = print, progress_bar: bool = False,
                 workers: int | None = None, chunk_progress: Callable[[int, int], None] | None = None,
                 backtest: bool = False) -> Path:
    """Run every stage for ``config`` into ``out_dir``; returns the report's path."""
    config.require_model("`spreadjax run` (the forecasting pipeline)")
    if config.calibration is None:
        raise InputError(f"{config.path}: `spreadjax run` needs [data] and [priors] to calibrate")
    if not config.scenarios:
        raise InputError(f"{config.path}: no scenarios to compare")
    from .ensemble._plan import check_plan_fits
    from .ensemble._run import check_workers, plan_for, require_adopted

    from .report._sensitivity import SOBOL_MIN_ROWS

    members = config.ensemble.draws * config.ensemble.replicates
    if members < SOBOL_MIN_ROWS:
        raise InputError(f"{config.path}: [ensemble] draws x replicates = {members}: the lever sensitivities of "
                         f"`spreadjax run` need at least {SOBOL_MIN_ROWS}; raise draws")
    require_adopted(config)  # before the long calibration
    check_workers(config, workers)  # sizes and worker counts are refused before the long calibration
    check_plan_fits(config, plan_for(config), out_dir)
    others = _compared_with(config) if backtest else []  # refused before the long calibration, not after
    store = out_dir / "ensemble.zarr"
    if store.exists():  # refuse a corrupt store before the long calibration, not after
        from .ensemble._store import read_store_state

        read_store_state(store)
    from ._lock import output_lock

    with output_lock(out_dir, "spreadjax run"):
        return _run_stages(config, out_dir, say, progress_bar, workers, chunk_progress, backtest, others)


def _compared_with(config: Any) -> list[Any]:
    """The configs of ``[compare] with``, checked against ``config`` (the same data, sites and
    backtest origins); none without a ``[compare]`` section."""
    if config.compare is None:
        return []
    from ._config import load_config
    from .backtest._compare import check_comparable

    others = [load_config(path) for path in config.compare.with_]
    for other in others:
        other.require_model(f"[compare] in {config.path}")
    check_comparable([config, *others])
    return others


def _run_stages(config: Any, out_dir: Path, say: Say, progress_bar: bool, workers: int | None,
                chunk_progress: Callable[[int, int], None] | None, backtest: bool, others: list[Any]) -> Path:
    """The five stages, with ``out_dir`` locked."""
    store = out_dir / "ensemble.zarr"
    started = _now()
    from ._jobs import config_hash

    sha = config_hash(config)
    posterior = out_dir / "posterior.nc"
    say(f"[1/5] calibrating on the data up to {_until_text(config)}")
    if _matches(config, posterior, sha, config.run.fit_until if config.run else None):
        say(f"      {posterior} is already there for this config: kept")
    else:
        _calibrate(config, out_dir, sha, progress_bar, say)
    say(f"[2/5] ensemble: {config.ensemble.draws} posterior draws x {len(config.scenarios)} scenario(s) "
        f"x {config.ensemble.replicates} replicate(s)")
    from .ensemble._run import run_ensemble

    report = run_ensemble(config, store, posterior=str(posterior), workers=workers, progress=chunk_progress)
    say(f"      {len(report.computed)} chunk(s) computed, {report.skipped} already done"
        + (f" ({report.repaired_text()})" if report.repaired else ""))
    say("[3/5] summarising pace, extent and targets")
    write_summaries(config, store, out_dir)
    say("[4/5] which lever matters most: jax.grad elasticities and Sobol indices")
    _sensitivity(config, store, out_dir)
    if config.design is not None:
        _design(config, out_dir, posterior, sha, say)
    if backtest:
        from .backtest import run_backtest

        say(f"[+] backtest: how the bands held on the past ({config.backtest.origins} origins as [backtest] sets)")
        result = run_backtest(config, out_dir, say=lambda text: say(f"      {text}"))
        from .report._backtest_figures import plot_backtest

        plot_backtest(result, out_dir / "backtest.png")
    if others:
        from .backtest._compare import run_compare
        from .report._compare_figures import plot_compare

        say(f"[+] which structure forecasts best: this config against {len(others)} other(s) in [compare]")
        ranked = run_compare([config, *others], out_dir, say=lambda text: say(f"      {text}"),
                             reuse={str(config.path): out_dir})
        plot_compare(ranked, out_dir / "compare.png")
    say("[5/5] writing the report")
    _observed(config, out_dir)
    _provenance(config, out_dir, sha, started)
    from .report import build_report

    return build_report(out_dir)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _until_text(config: Any) -> str:
    until = config.run.fit_until if config.run else None
    return "the end" if until is None else f"{until:g} years (then forecast the rest)"


def _matches(config: Any, posterior: Path, sha: str, fit_until: float | None) -> bool:
    """Whether ``posterior`` was written by this config, on the same data, with the same split."""
    if not posterior.exists():
        return False
    try:
        from .calibrate._identity import check_posterior
        from .calibrate._run import read_posterior

        groups = read_posterior(posterior)
        check_posterior(groups, config, posterior)
        attrs = groups["posterior"].attrs
    except InputError:
        return False
    return attrs.get("config_sha256") == sha and float(attrs.get("fit_until", -1.0)) == (
        -1.0 if fit_until is None else float(fit_until))


def _calibrate(config: Any, out_dir: Path, sha: str, progress_bar: bool, say: Say) -> None:
    from .calibrate._identity import calibration_identity
    from .calibrate._run import build_problem, calibrate, write_posterior
    from .report._calibration_figures import plot_calibration

    until = config.run.fit_until if config.run else None
    problem = build_problem(config, fit_until=until)
    s = config.calibration.settings
    attrs = {"config": str(config.path), "config_sha256": sha, "seed": s.seed,
             "fit_until": -1.0 if until is None else float(until), **calibration_identity(config)}
    result = calibrate(problem, s, progress_bar=progress_bar, attrs=attrs)
    table = result.table()
    flags = "\n".join(f"- {f}" for f in result.flags) or "- all diagnostics pass"
    write_atomic(out_dir / "diagnostics.txt", lambda tmp: tmp.write_text(f"{table}\n\nFlags:\n{flags}\n"))
    frame = result.summary.drop_vars(["ebfmi", "chain"], errors="ignore").to_dataframe()
    write_atomic(out_dir / "diagnostics.csv", lambda tmp: frame.to_csv(tmp))
    plot_calibration(result.groups, out_dir)
    write_posterior(result.groups, out_dir / "posterior.nc")  # last: its presence marks the stage done
    say(f"      {len(result.flags)} diagnostic warning(s)" if result.flags else "      diagnostics: all pass")


def write_summaries(config: Any, store: Path, out_dir: Path) -> None:
    """Summaries of a finished ensemble store: ``summary.nc`` and ``summary.json``."""
    from ._io import write_netcdf
    from .ensemble._store import open_results
    from .ensemble._summary import summarize_ensemble

    s = config.ensemble
    targets = [t.as_dict() for t in s.targets]
    summary, as_json = summarize_ensemble(open_results(store), targets=targets, baseline=s.baseline)
    as_json = with_model(as_json, config)
    write_netcdf(summary, out_dir / "summary.nc")
    write_atomic(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(as_json, indent=2, allow_nan=False)))


def model_record(config: Any) -> dict:
    """The model a result came from, as run.json and summary.json record it: name, options, levers,
    where the adopted count comes from, and a model file's whole structure (the report draws it)."""
    from .models import LEVERS, model_to_dict

    model = config.build_model()
    adopted = config.ensemble.adopted if config.ensemble is not None else None
    return {"name": config.model, "options": dict(config.model_options),
            "levers": {p.name: p.doc or LEVERS.get(p.name, "") for p in model.parameters if p.lever},
            **({"adopted": adopted.describe()} if adopted is not None and adopted.derived else {}),
            **({"structure": model_to_dict(model)} if config.model_spec is not None else {})}


def with_model(summary_json: dict, config: Any) -> dict:
    """``summary.json`` with the model it came from (``model_record``): a report built without
    run.json then draws that model, not the flagship."""
    return {**summary_json, "model": model_record(config)}


def _sensitivity(config: Any, store: Path, out_dir: Path) -> None:
    from .ensemble._store import open_results
    from .report._sensitivity import lever_elasticities, sobol_from_ensemble, write_sensitivity

    ds = open_results(store)
    n = min(config.run.sensitivity_draws if config.run else 100, ds.sizes["draw"])
    draws = {name[len("draw_"):]: np.asarray(ds[name].values[:n]) for name in ds.data_vars
             if name.startswith("draw_")}
    elasticities = lever_elasticities(config, draws or None)
    sobol = sobol_from_ensemble(ds, scenario=config.ensemble.baseline)
    write_sensitivity(out_dir / "sensitivity.json", elasticities, sobol)


def _design(config: Any, out_dir: Path, posterior: Path, sha: str, say: Say) -> None:
    """``[design]``: the programme optimised over the posterior's futures (design.json, design.nc);
    kept when this config's design.json is already there."""
    done = out_dir / "design.json"
    if done.exists():
        try:
            kept = json.loads(done.read_text()).get("config_sha256") == sha
        except (OSError, ValueError):
            kept = False
        if kept:
            say(f"      {done} is already there for this config: kept")
            return
    from .design import run_design
    from .design._result import design_json, design_lines

    d = config.design
    say(f"[+] what to do: the programme that does best on {d.objective.replace('_', ' ')}, on a budget of "
        f"{d.budget:g} programme-years ({d.draws} futures)")
    import time

    began = time.perf_counter()
    result = run_design(config, out_dir, str(posterior))
    for line in design_lines(design_json(result, config)):
        say(f"      {line}")
    say(f"      designed in {time.perf_counter() - began:.0f} s")


def _observed(config: Any, out_dir: Path) -> None:
    """The full observed series (in-sample and held-out) as adopted fractions."""
    from .calibrate._settings import load_count_data

    ds = load_count_data(config.calibration.data, config.sites)
    cum = ds["adopters"].transpose("time", "site").values.astype(float)
    pop = ds["population"].values.astype(float)
    times = [float(t) for t in ds["time"].values]
    start = config.simulation.start_date
    dates = None
    if start:
        origin = np.datetime64(start, "D")
        dates = [str(origin + np.timedelta64(int(round(t * 365.25)), "D")) for t in times]
    fractions = {"all": list(cum.sum(1) / pop.sum())}
    fractions.update({str(site): list(cum[:, i] / pop[i]) for i, site in enumerate(ds["site"].values)})
    doc = {"time": times, "date": dates, "adopted_fraction": fractions,
           "fit_until": config.run.fit_until if config.run else None}
    write_atomic(out_dir / "observed.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=1)))


def _provenance(config: Any, out_dir: Path, sha: str, started: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    import jax

    versions = {}
    for pkg in ("spreadjax", "jax", "jaxlib", "numpyro", "numpy", "xarray", "dask", "distributed", "zarr", "diffrax"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    path = Path(config.path)
    doc = {
        "title": config.title, "config_path": str(path), "config_sha256": sha,
        "config_text": path.read_text() if path.exists() else json.dumps(config.raw, indent=1, default=str),
        "data_files": {Path(config.data.file).name: config.data.sha256},
        "population": dict(zip(config.sites, config.data.population)),  # what the data fix, as the store holds
        "seed": {"calibration": config.calibration.settings.seed, "ensemble": config.ensemble.seed},
        "versions": versions, "devices": [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
                                          for d in jax.devices()],
        "started": started, "finished": _now(),
        "model": model_record(config),
        "scenarios": {sc.name: sc.description for sc in config.scenarios},
        "assumptions": list(config.run.assumptions) if config.run else [],
        "fit_until": config.run.fit_until if config.run else None,
        "horizon_date": _horizon_date(config),
    }
    write_atomic(out_dir / "run.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=1)))


def _horizon_date(config: Any) -> str | None:
    start = config.simulation.start_date
    if not start:
        return None
    days = int(round(config.simulation.end * 365.25))
    return str(np.datetime64(start, "D") + np.timedelta64(days, "D"))
