"""Rolling-origin backtests: fit on the data up to each origin, forecast the rest, score it.

For each origin the config's calibration (same priors, observation model and sampler settings)
is fitted to the observations up to that time only. ``draws`` posterior draws are then run
through the model over the whole observed span, and new adopters are drawn period by period from
the origin's observed counts with the observation model (:mod:`._forecast`). The same held-out
points are forecast by a per-site Bass fit with a bootstrap and by "no change"; all three are
scored (:mod:`._scores`). Each origin's scores go to ``DIR/backtest/origin-K.nc`` as soon as
they are done, named by a hash of the config, the data and the origin, so a rerun skips the
origins already scored; the combined ``DIR/backtest.nc`` and ``DIR/backtest.json`` come last.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ._forecast import no_change, sample_counts
from ._lpd import binomial_lpd_one_ahead, model_lpd_one_ahead
from ._reference import bass_bootstrap
from ._scores import QUANTILES, score_samples, summarize_scores

FORECASTERS = ("model", "bass", "no_change")
#: Bumped when a fold's contents change, so that folds scored by an older spreadjax are scored again.
FOLD_SCHEMA = 2  # 2: lpd_one_ahead
NOMINAL = {"covered50": 0.5, "covered90": 0.9}
#: The band a 90% interval's coverage must fall in to be called calibrated (issue's target).
COVERAGE90_OK = (0.85, 0.95)
Say = Callable[[str], None]


def fold_identity(config: Any, origin: float) -> str:
    """SHA-256 of what determines one origin's scores: the config, the data and the origin."""
    from .._jobs import config_hash

    h = hashlib.sha256(config_hash(config).encode())
    h.update(json.dumps({"origin": float(origin), "backtest": repr(config.backtest),
                         "schema": FOLD_SCHEMA}).encode())
    return h.hexdigest()


def backtest_origins(config: Any) -> tuple[np.ndarray, list[int]]:
    """The data's observation times (years) and the indices of the ``[backtest]`` origins among
    them; :class:`InputError` when the config cannot be backtested."""
    if config.calibration is None or config.is_hazard or not config.calibration.priors:
        raise InputError(f"{config.path}: a backtest needs [data] and [priors] (it calibrates at each origin)")
    from ..calibrate._settings import load_count_data

    times = np.asarray(load_count_data(config.calibration.data, config.sites)["time"].values, float)
    return times, config.backtest.origin_indices(times)


def run_backtest(config: Any, out_dir: Path, say: Say = print) -> xr.Dataset:
    """Score the config's forecasts from each ``[backtest]`` origin; writes ``out_dir/backtest.nc``
    and ``out_dir/backtest.json`` and returns the scores with their summaries."""
    from .._lock import output_lock

    from ..calibrate._run import build_problem

    times, origins = backtest_origins(config)
    full = build_problem(config, fit_until=math.inf)
    settings = config.backtest
    fitter = _Fitter(config, full)
    with output_lock(out_dir, "spreadjax backtest"):
        folds = []
        for n, k in enumerate(origins, 1):
            path = out_dir / "backtest" / f"origin-{k}.nc"
            ident = fold_identity(config, times[k])
            fold = _read_fold(path, ident)
            if fold is None:
                say(f"[{n}/{len(origins)}] origin {times[k]:g} years: calibrating on {k + 1} observation times, "
                    f"forecasting {len(settings.held_out(times, k))}")
                fold = _fold(config, full, k, ident, fitter)
                from .._io import write_netcdf

                write_netcdf(fold, path)
            else:
                say(f"[{n}/{len(origins)}] origin {times[k]:g} years: already scored in {path}: kept")
            folds.append(fold)
        scores = xr.concat(folds, dim="origin", join="outer")
        result = xr.merge([scores, summarize_scores(scores)])
        result.attrs = {"config": str(config.path), "coverage90_ok": list(COVERAGE90_OK),
                        "quantiles": list(QUANTILES)}
        from .._io import write_atomic, write_netcdf

        write_netcdf(result, out_dir / "backtest.nc")
        write_atomic(out_dir / "backtest.json",
                     lambda tmp: tmp.write_text(json.dumps(backtest_json(result), indent=2, allow_nan=False)))
    return result


def _read_fold(path: Path, ident: str) -> xr.Dataset | None:
    """An origin's scores from an earlier run of the same config and data, or None."""
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception:  # noqa: BLE001 - a damaged fold is scored again, never read as data
        return None
    return ds if ds.attrs.get("identity") == ident else None


class _Fitter:
    """The config's calibration fitted to the data up to one origin after another. NUTS fits share
    one compiled program (the data are its arguments, the periods past the origin masked), built
    at the first fit; other methods calibrate on the data cut at the origin."""

    def __init__(self, config: Any, full: Any):
        self.config, self.full, self._refitter = config, full, None

    def __call__(self, until: float) -> tuple[dict[str, np.ndarray], list[str]]:
        """Posterior draws ``{name: (chain, draw, ...)}`` and the diagnostics' flags."""
        from ..calibrate._run import build_problem, calibrate, check_fit_fits

        s = self.config.calibration.settings
        if s.method != "nuts":
            result = calibrate(build_problem(self.config, fit_until=until), s)
            return result.fit.samples, result.flags
        from ..calibrate._diagnostics import diagnostic_flags, summarize
        from ..calibrate._infer import Fit, latent_names
        from ..calibrate._refit import BatchSettings, Refitter
        from ..calibrate._run import nuts_stats, parameter_names

        check_fit_fits(self.full, s)
        reported = parameter_names(self.full)
        if self._refitter is None:
            names = tuple(dict.fromkeys([*sorted(latent_names(self.full)), *reported]))
            batch = BatchSettings(s.chains, s.warmup, s.samples, s.target_accept, s.max_tree_depth)
            self._refitter = Refitter(self.full, batch, s.seed, names)
        draws, stats, _ = self._refitter.fit(until)
        summary = summarize(draws, nuts_stats(Fit("nuts", draws, stats)), var_names=reported)
        return draws, diagnostic_flags(summary)


def _fold(config: Any, full: Any, k: int, ident: str, fit: _Fitter) -> xr.Dataset:
    """Calibrate on the observations up to index ``k``, forecast the held-out ones, score all three."""
    from ..calibrate._infer import predictive

    settings = config.backtest
    times = np.asarray(full.data.times, float)
    ahead = settings.held_out(times, k)
    draws, flags = fit(float(times[k]))
    samples = _thin(draws, settings.draws)
    expected = predictive(full, samples, settings.seed + k)["expected_adopters"][0]  # (draw, time, site)
    rows = np.concatenate([[k], ahead])
    pop = np.asarray(full.data.population, float)
    observed = np.asarray(full.data.cumulative, float)
    kind = config.calibration.observation.kind
    conc = np.asarray(samples["concentration"][0]) if "concentration" in samples else None
    bass = bass_bootstrap(times[:k + 1], observed[:k + 1], np.asarray(full.data.initial, float), pop,
                          float(config.simulation.start), times[ahead], settings.bootstrap, settings.seed + k)
    forecasts = {
        "model": sample_counts(expected[:, rows], observed[k], pop, kind, settings.seed + k, conc),
        "bass": sample_counts(bass, observed[k], pop, "binomial", settings.seed + k + 1),
        "no_change": no_change(observed[k], len(ahead)),
    }
    # leave-future-out: the exact log density of the next observation (none for a point forecast)
    lpd = np.full((len(FORECASTERS), len(pop)), np.nan)
    lpd[0] = model_lpd_one_ahead(full, samples, k)
    if ahead[0] == k + 1:  # the Bass curves are evaluated at the held-out times only
        lpd[1] = binomial_lpd_one_ahead(bass, observed[k], observed[k + 1], pop)
    truth = observed[ahead]
    scored = {f: score_samples(truth, s, pop, settings.seed + k) for f, s in forecasts.items()}
    data = {name: (("forecaster", "time", "site"), np.stack([scored[f][name] for f in FORECASTERS]))
            for name in ("crps", "covered50", "covered90", "pit", "bias")}
    data["forecast"] = (("forecaster", "quantile", "time", "site"), np.stack([scored[f]["quantiles"] for f in FORECASTERS]))
    data["observed"] = (("time", "site"), truth / pop[None])
    ds = xr.Dataset(data, coords={"forecaster": list(FORECASTERS), "quantile": list(QUANTILES),
                                  "time": times[ahead], "site": list(full.data.sites)})
    ds = ds.expand_dims(origin=[float(times[k])])
    ds["diagnostic_flags"] = ("origin", [len(flags)])
    ds["trained_share"] = ("origin", [float((k + 1) / len(times))])
    ds["lpd_one_ahead"] = (("origin", "forecaster", "site"), lpd[None],
                           {"long_name": "log predictive density of the next observation's new adopters"})
    ds["lpd_time"] = ("origin", [float(times[k + 1])], {"long_name": "time of the observation lpd_one_ahead scores"})
    ds.attrs = {"identity": ident, "observation": kind}
    return ds


def _thin(samples: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``n`` draws spread evenly over all chains' draws, shaped ``(1, n, ...)``."""
    flat = {k: np.reshape(v, (-1,) + v.shape[2:]) for k, v in samples.items()}
    total = next(iter(flat.values())).shape[0]
    pick = np.linspace(0, total - 1, min(n, total)).round().astype(int)
    return {k: v[pick][None] for k, v in flat.items()}


def backtest_json(result: xr.Dataset) -> dict:
    """The summaries a reader needs: pooled and per-origin coverage and CRPS, beside the references."""
    def table(by: str) -> dict:
        out = {}
        for f in FORECASTERS:
            row = {}
            for name in ("covered50", "covered90", "crps", "relative_crps", "bias"):
                da = result[f"{name}_by_{by}"].sel(forecaster=f)
                row[name] = _rounded(da.values) if da.ndim else _rounded(float(da))
            out[f] = row
        return out

    lo, hi = COVERAGE90_OK
    cov = float(result["covered90_by_all"].sel(forecaster="model"))
    return {
        "origins": [float(t) for t in result["origin"].values],
        "points": int(result["points_by_all"]),
        "pooled": table("all"),
        "by_origin": table("origin"),
        "by_site": {"sites": [str(s) for s in result["site"].values], **table("site")},
        "pit_histogram": [int(v) for v in result["pit_histogram"].values],
        "elpd_lfo": {f: _rounded(result["elpd_lfo_by_all"].sel(forecaster=f).values) for f in FORECASTERS},
        "elpd_lfo_se": {f: _rounded(result["elpd_lfo_se_by_all"].sel(forecaster=f).values) for f in FORECASTERS},
        "elpd_lfo_by_origin": {f: _rounded(result["elpd_lfo_by_origin"].sel(forecaster=f).values)
                               for f in FORECASTERS},
        "calibrated": bool(lo <= cov <= hi),
        "verdict": _verdict(cov, lo, hi),
    }


def _verdict(coverage: float, lo: float, hi: float) -> str:
    if coverage < lo:
        return (f"the 90% bands held {coverage:.0%} of what happened: too narrow or off-centre; "
                "trust the forecast's bands less than they say")
    if coverage > hi:
        return f"the 90% bands held {coverage:.0%} of what happened: wider than they need to be"
    return f"the 90% bands held {coverage:.0%} of what happened, close to the 90% they claim"


def _rounded(v: Any) -> Any:
    a = np.asarray(v, float)
    if a.ndim == 0:
        return None if not np.isfinite(a) else round(float(a), 5)
    return [None if not np.isfinite(x) else round(float(x), 5) for x in a]
