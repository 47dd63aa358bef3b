"""Summaries of an ensemble of simulated futures, computed lazily with xarray (and dask).

Input: an ``xr.Dataset`` with dims ``(draw, scenario, replicate, time, site)`` (``replicate`` may
have length 1) holding ``adopted`` (adopters, a count) and ``population`` (dims ``(site,)`` or
``(draw, site)``); coords ``time`` (years, float), optionally ``date`` (datetime64 along
``time``), ``scenario`` and ``site`` names.

Conventions used by every function here:

* The *adopted fraction* (units ``1``) is given for all sites together and for each site, along
  one ``site`` coordinate: ``'all'`` (sum of adopted over sites / sum of population) followed by
  the dataset's own sites. A dataset may therefore not already have a site called ``'all'``.
* *Members* are the ``(draw, replicate)`` pairs. Every statistic "over members" pools both dims.
  Scenarios share their members (common random numbers), so paired differences are per member.
* Quantiles are exact (numpy's default ``'linear'`` method, as ``np.quantile``). Dask-backed
  inputs stay lazy: each function returns dask-backed results, and only the reductions need
  all members of one slice in one chunk (``draw`` and ``replicate`` are rechunked to one chunk
  while the other dims are split so that a chunk stays near 64 MiB, or one slice of members if
  that is larger). Exact quantiles of ~1e6 members need ~8 MB per (scenario, time, site) slice.
  :func:`summarize_ensemble` computes everything in a single ``compute`` call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError

__all__ = [
    "adopted_fraction",
    "adoption_quantiles",
    "extent",
    "paired_differences",
    "probability_of_target",
    "summarize_ensemble",
    "time_to_thresholds",
]

DIMS = ("draw", "scenario", "replicate", "time", "site")
MEMBERS = ("draw", "replicate")
ALL = "all"
DEFAULT_Q = (0.05, 0.25, 0.5, 0.75, 0.95)
DIFF_Q = (0.05, 0.5, 0.95)
_CHUNK_BYTES = 64 * 2**20
_FRACTION_DIGITS = 4
_YEAR_DIGITS = 3
_STAT = "_stat"
_COMBINE = {"data_vars": "all", "coords": "minimal", "compat": "override", "join": "exact"}


# ------------------------------------------------------------------------------------ input
def adopted_fraction(ds: xr.Dataset) -> xr.DataArray:
    """Adopted fraction (units 1), dims ``(draw, scenario, replicate, time, site)`` with site
    ``'all'`` (sum adopted over sites / sum population) first, then each site. Lazy for dask."""
    for name in ("adopted", "population"):
        if name not in ds:
            raise InputError(f"ensemble dataset has no variable {name!r}; it needs 'adopted' and 'population'")
    adopted = ds["adopted"].reset_coords(drop=True)
    missing = [d for d in DIMS if d not in adopted.dims]
    extra = [d for d in adopted.dims if d not in DIMS]
    if missing or extra:
        raise InputError(f"'adopted' must have dims {DIMS}; got {adopted.dims}")
    pop = ds["population"].reset_coords(drop=True)
    if "site" not in pop.dims or not set(pop.dims) <= {"draw", "site"}:
        raise InputError(f"'population' must have dims ('site',) or ('draw', 'site'); got {pop.dims}")
    if "site" in ds.coords and ALL in [str(s) for s in ds["site"].values]:
        raise InputError(f"a site is named {ALL!r}, which is reserved for all sites together; rename it")
    if ds.sizes["draw"] == 0 or ds.sizes["replicate"] == 0 or ds.sizes["time"] < 2:
        raise InputError("an ensemble needs at least one draw and replicate and two output times")
    adopted = adopted.astype(np.float64)
    pop = pop.astype(np.float64)
    total = adopted.sum("site", skipna=False) / pop.sum("site", skipna=False)
    per_site = adopted / pop
    sites = per_site["site"].values if "site" in per_site.coords else np.arange(ds.sizes["site"])
    per_site = per_site.assign_coords(site=np.asarray([str(s) for s in sites], dtype=object))
    total = total.expand_dims(site=np.asarray([ALL], dtype=object))
    frac = xr.concat([total, per_site], dim="site", **_COMBINE).transpose(*DIMS)
    frac.attrs = {"units": "1", "long_name": "adopted fraction of the population"}
    return frac.rename("adopted_fraction")


def _is_dask(da: xr.DataArray) -> bool:
    return da.chunks is not None


def _gather(da: xr.DataArray, core: Sequence[str]) -> xr.DataArray:
    """Rechunk a dask-backed ``da`` so each chunk holds all of ``core``; the other dims are
    split (last dims first kept whole) so a chunk stays near ``_CHUNK_BYTES``."""
    if not _is_dask(da):
        return da
    per_slice = math.prod(da.sizes[d] for d in core) * 8
    budget = max(1, _CHUNK_BYTES // max(per_slice, 1))
    chunks: dict[str, int] = {d: -1 for d in core}
    for d in reversed([d for d in da.dims if d not in core]):
        size = max(1, min(da.sizes[d], budget))
        chunks[d] = size
        budget = max(1, budget // size)
    return da.chunk(chunks)


def _time_coords(ds: xr.Dataset) -> dict[str, Any]:
    coords: dict[str, Any] = {"time": ds["time"]}
    if "date" in ds.coords:
        coords["date"] = ds["date"]
    return coords


# ------------------------------------------------------------------------------ member stats
def _sorted_quantiles(x: np.ndarray, q: np.ndarray, never_as_inf: bool) -> np.ndarray:
    """Exact linear quantiles along the last axis (as ``np.quantile``); NaN is skipped, or
    counted as +inf when ``never_as_inf`` (a quantile that would involve +inf is NaN)."""
    if never_as_inf:
        x = np.where(np.isnan(x), np.inf, x)
    s = np.sort(x, axis=-1)  # NaN sorts last
    n = np.full(s.shape[:-1], s.shape[-1]) if never_as_inf else np.sum(~np.isnan(s), axis=-1)
    pos = (np.maximum(n, 1)[..., None] - 1) * q  # (..., nq)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n, 1)[..., None] - 1)
    w = pos - lo
    a = np.take_along_axis(s, lo, axis=-1)
    b = np.take_along_axis(s, hi, axis=-1)
    with np.errstate(invalid="ignore"):
        diff = b - a
        out = np.where(w >= 0.5, b - diff * (1 - w), a + diff * w)
    out = np.where(w == 0, a, out)
    out = np.where(np.isfinite(out), out, np.nan)
    return np.where((n > 0)[..., None], out, np.nan)


def _stats_kernel(x: np.ndarray, q: np.ndarray, never_as_inf: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
    valid = ~np.isnan(x)
    count = valid.sum(axis=-1)
    total = np.where(valid, x, 0.0).sum(axis=-1)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.concatenate([mean[..., None], _sorted_quantiles(x, q, never_as_inf)], axis=-1)


def _member_stats(
    da: xr.DataArray, q: Sequence[float], qdim: str, never_as_inf: bool = False
) -> tuple[xr.DataArray, xr.DataArray]:
    """(mean, quantiles) over members; NaN skipped (or, ``never_as_inf``, NaN = never)."""
    qa = _check_q(q)
    res = xr.apply_ufunc(
        _stats_kernel,
        _gather(da, MEMBERS),
        input_core_dims=[list(MEMBERS)],
        output_core_dims=[[_STAT]],
        kwargs={"q": qa, "never_as_inf": never_as_inf},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {_STAT: 1 + len(qa)}},
    )
    mean = res.isel({_STAT: 0}, drop=True)
    quant = res.isel({_STAT: slice(1, None)}).rename({_STAT: qdim}).assign_coords({qdim: qa})
    return mean, quant.transpose(qdim, ...)


def _share(mask: xr.DataArray) -> xr.DataArray:
    """Share (0-1) of members where ``mask`` holds."""
    return mask.astype(np.float64).mean(MEMBERS)


def _check_q(q: Sequence[float]) -> np.ndarray:
    qa = np.asarray(list(q), dtype=np.float64)
    if qa.ndim != 1 or qa.size == 0 or np.any(~np.isfinite(qa)) or np.any((qa < 0) | (qa > 1)):
        raise InputError(f"quantiles must be a non-empty list of numbers in [0, 1]; got {list(q)}")
    if len(np.unique(qa)) != qa.size:
        raise InputError(f"quantiles must be distinct; got {list(q)}")
    return qa


def _check_fractions(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or np.any(~np.isfinite(arr)) or len(np.unique(arr)) != arr.size:
        raise InputError(f"{what} must be a non-empty list of distinct finite numbers; got {list(values)}")
    return arr


# --------------------------------------------------------------------------- crossing times
def _crossing_kernel(f: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """First time ``f`` (..., T) reaches each level ``c`` (K,), linear between output times."""
    f = np.asarray(f, dtype=np.float64)[..., None, :]  # (..., 1, T)
    reached = f >= c[:, None]  # (..., K, T)
    idx = np.argmax(reached, axis=-1)  # (..., K)
    ever = reached.any(axis=-1)
    fb = np.broadcast_to(f, reached.shape)
    i0 = np.maximum(idx - 1, 0)
    f1 = np.take_along_axis(fb, idx[..., None], axis=-1)[..., 0]
    f0 = np.take_along_axis(fb, i0[..., None], axis=-1)[..., 0]
    t0, t1 = t[i0], t[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = t0 + (c - f0) * (t1 - t0) / (f1 - f0)
    out = np.where(idx == 0, t[0], out)
    return np.where(ever, out, np.nan)


def _crossing_times(frac: xr.DataArray, thresholds: np.ndarray) -> xr.DataArray:
    """Per member, first time (years) the fraction reaches each threshold; NaN if never."""
    t = np.asarray(frac["time"].values, dtype=np.float64)
    out = xr.apply_ufunc(
        _crossing_kernel,
        _gather(frac.drop_vars("time"), ["time"]),
        input_core_dims=[["time"]],
        output_core_dims=[["threshold"]],
        kwargs={"t": t, "c": thresholds},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"threshold": thresholds.size}},
    )
    return out.assign_coords(threshold=thresholds)


# ------------------------------------------------------------------------------- summaries
def adoption_quantiles(ds: xr.Dataset, q: Sequence[float] = DEFAULT_Q) -> xr.Dataset:
    """Bands of the adopted fraction (units 1) over time, over members.

    Returns ``adopted_fraction_quantile`` (quantile, scenario, time, site) and
    ``adopted_fraction_mean`` (scenario, time, site); site ``'all'`` is all sites together.
    Quantiles are exact (as ``np.quantile``, method 'linear'); see the module docstring.
    """
    return _adoption_quantiles(adopted_fraction(ds), q, _time_coords(ds))


def _adoption_quantiles(frac: xr.DataArray, q: Sequence[float], tcoords: Mapping[str, Any]) -> xr.Dataset:
    mean, quant = _member_stats(frac, q, "quantile")
    out = xr.Dataset({
        "adopted_fraction_quantile": quant.assign_attrs(units="1", long_name="quantile over members of the adopted fraction"),
        "adopted_fraction_mean": mean.assign_attrs(units="1", long_name="mean over members of the adopted fraction"),
    })
    return out.assign_coords(tcoords)


def time_to_thresholds(
    ds: xr.Dataset, thresholds: Sequence[float] = (0.25, 0.5, 0.75), q: Sequence[float] = DEFAULT_Q
) -> xr.Dataset:
    """Time (years) at which each member's adopted fraction first reaches each threshold.

    Crossing times are linear between output times (the first output time if already reached
    there). Returns, dims (scenario, threshold, site) [+ quantile]:
    ``threshold_time_quantile`` — quantiles over all members, counting a member that never
    reaches the threshold as later than the horizon (so NaN when that quantile is not reached
    by the horizon); ``threshold_time_mean`` — mean over the members that reach it (NaN if none);
    ``threshold_share_never`` — share (0-1) of members that never reach it.
    """
    return _time_to_thresholds(adopted_fraction(ds), thresholds, q)


def _time_to_thresholds(frac: xr.DataArray, thresholds: Sequence[float], q: Sequence[float]) -> xr.Dataset:
    times = _crossing_times(frac, _check_fractions(thresholds, "thresholds"))
    mean, quant = _member_stats(times, q, "quantile", never_as_inf=True)
    never = _share(times.isnull())
    return xr.Dataset({
        "threshold_time_quantile": quant.assign_attrs(
            units="years", long_name="quantile over members of the first time the threshold is reached (NaN: not by the horizon)"),
        "threshold_time_mean": mean.assign_attrs(
            units="years", long_name="mean first time the threshold is reached, over members that reach it"),
        "threshold_share_never": never.assign_attrs(
            units="1", long_name="share of members that never reach the threshold by the horizon"),
    })


def extent(ds: xr.Dataset, q: Sequence[float] = DEFAULT_Q) -> xr.Dataset:
    """How far adoption gets, per member, summarised over members (units 1).

    ``final``: adopted fraction at the horizon (last output time); ``peak``: its maximum over
    time; ``drop``: peak - final (how much fizzled after discontinuation). For each, ``*_mean``
    (scenario, site) and ``*_quantile`` (quantile, scenario, site), e.g. ``final_fraction_mean``.
    """
    return _extent(adopted_fraction(ds), q)


def _extent(frac: xr.DataArray, q: Sequence[float]) -> xr.Dataset:
    final = frac.isel(time=-1, drop=True)
    peak = frac.max("time", skipna=False)
    parts = {"final": (final, "adopted fraction at the horizon"),
             "peak": (peak, "maximum adopted fraction over time"),
             "drop": (peak - final, "drop from peak to final adopted fraction")}
    out = {}
    for name, (value, doc) in parts.items():
        mean, quant = _member_stats(value, q, "quantile")
        out[f"{name}_fraction_mean"] = mean.assign_attrs(units="1", long_name=f"mean over members: {doc}")
        out[f"{name}_fraction_quantile"] = quant.assign_attrs(units="1", long_name=f"quantile over members: {doc}")
    return xr.Dataset(out)


def _parse_targets(targets: Iterable[Any], ds: xr.Dataset) -> list[dict[str, Any]]:
    t = np.asarray(ds["time"].values, dtype=np.float64)
    dates = np.asarray(ds["date"].values) if "date" in ds.coords else None
    parsed = []
    for i, tg in enumerate(targets):
        where = f"target {i + 1} ({tg!r})"
        label = None
        date = None
        if isinstance(tg, Mapping):
            unknown = set(tg) - {"fraction", "by", "date", "label"}
            if unknown or "fraction" not in tg or ("by" in tg) == ("date" in tg):
                raise InputError(f"{where}: give 'fraction' and exactly one of 'by' (years) or 'date' (ISO)"
                                 + (f"; unknown keys {sorted(unknown)}" if unknown else ""))
            fraction = tg["fraction"]
            label = tg.get("label")
            if "date" in tg:
                if dates is None:
                    raise InputError(f"{where}: a target date needs a 'date' coordinate in the ensemble")
                date = str(tg["date"])
                try:
                    when = np.datetime64(date)
                except ValueError as exc:
                    raise InputError(f"{where}: {date!r} is not an ISO date") from exc
                days = (dates - dates[0]) / np.timedelta64(1, "D")
                target_days = (when - dates[0]) / np.timedelta64(1, "D")
                if not days[0] <= target_days <= days[-1]:
                    raise InputError(f"{where}: {date} is outside the output dates {_iso(dates[0])} to {_iso(dates[-1])}")
                time = float(np.interp(target_days, days, t))
            else:
                time = tg["by"]
        elif isinstance(tg, Sequence) and not isinstance(tg, str) and len(tg) == 2:
            fraction, time = tg
        else:
            raise InputError(f"{where}: expected (fraction, years) or a dict with 'fraction' and 'by' or 'date'")
        try:
            fraction, time = float(fraction), float(time)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: fraction and time must be numbers") from exc
        if not math.isfinite(fraction) or not math.isfinite(time):
            raise InputError(f"{where}: fraction and time must be finite")
        if not t[0] <= time <= t[-1]:
            raise InputError(f"{where}: time {time:g} years is outside the output times {t[0]:g} to {t[-1]:g}")
        if label is None:
            label = f"{fraction:g} by {date}" if date is not None else f"{fraction:g} by {time:g}y"
        parsed.append({"label": str(label), "fraction": fraction, "time": time, "date": date})
    labels = [p["label"] for p in parsed]
    if len(set(labels)) != len(labels):
        raise InputError(f"target labels must be distinct; got {labels}")
    return parsed


def _at_times(frac: xr.DataArray, times: np.ndarray, dim: str) -> xr.DataArray:
    """``frac`` linearly interpolated in time (as ``np.interp``) at ``times``, along ``dim``."""
    t = np.asarray(frac["time"].values, dtype=np.float64)
    i0 = np.clip(np.searchsorted(t, times, side="right") - 1, 0, t.size - 2)
    node = t[i0] == times
    at_end = times == t[-1]
    i0 = np.where(at_end, t.size - 1, i0)
    i1 = np.where(node | at_end, i0, i0 + 1)
    dt = np.where(i1 == i0, 1.0, t[i1] - t[i0])
    base = frac.drop_vars("time")
    f0 = base.isel(time=xr.DataArray(i0, dims=dim))
    f1 = base.isel(time=xr.DataArray(i1, dims=dim))
    slope = (f1 - f0) / xr.DataArray(dt, dims=dim)
    return f0 + slope * xr.DataArray(times - t[i0], dims=dim)


def probability_of_target(ds: xr.Dataset, targets: Iterable[Any]) -> xr.Dataset:
    """Probability (share of members, 0-1) that the adopted fraction is >= each target fraction
    at the target time (linear between output times).

    ``targets``: ``(fraction, years)`` pairs or dicts ``{fraction, by: years}`` or
    ``{fraction, date: 'YYYY-MM-DD'}`` (converted with the ``date`` coord), optional ``label``.
    Returns ``target_probability`` (scenario, target, site) with coords ``target`` (label),
    ``target_fraction`` and ``target_time`` (years).
    """
    return _probability_of_target(adopted_fraction(ds), _parse_targets(targets, ds))


def _probability_of_target(frac: xr.DataArray, parsed: list[dict[str, Any]]) -> xr.Dataset:
    if not parsed:
        raise InputError("probability_of_target needs at least one target")
    times = np.asarray([p["time"] for p in parsed])
    fractions = xr.DataArray(np.asarray([p["fraction"] for p in parsed]), dims="target")
    value = _at_times(frac, times, "target")
    prob = _share(value >= fractions).transpose("scenario", "target", "site")
    prob = prob.assign_attrs(units="1", long_name="probability that the adopted fraction reaches the target fraction by the target time")
    coords = {"target": [p["label"] for p in parsed], "target_fraction": ("target", fractions.values),
              "target_time": ("target", times, {"units": "years"})}
    return xr.Dataset({"target_probability": prob}).assign_coords(coords)


def paired_differences(
    ds: xr.Dataset, baseline: str, q: Sequence[float] = DIFF_Q, threshold: float = 0.5
) -> xr.Dataset:
    """Each other scenario minus ``baseline``, per member (same draw and replicate).

    Dims (contrast, site) [+ diff_quantile]; ``contrast`` names the non-baseline scenario.
    ``diff_final_fraction_{mean,quantile}``: difference of the adopted fraction at the horizon
    (units 1); ``prob_better_final_fraction``: share of members with a strictly higher one.
    ``diff_threshold_time_{mean,quantile}``: difference of the time (years) to ``threshold``
    (default 50%) over members where both reach it (negative = sooner), with
    ``share_both_reach_threshold``; ``prob_sooner_threshold``: share of members where the
    scenario reaches it strictly sooner (or reaches it and the baseline never does).
    """
    return _paired_differences(adopted_fraction(ds), baseline, q, threshold)


def _paired_differences(frac: xr.DataArray, baseline: str, q: Sequence[float], threshold: float) -> xr.Dataset:
    names = [str(s) for s in frac["scenario"].values]
    if baseline not in names:
        raise InputError(f"baseline scenario {baseline!r} is not among the scenarios {names}")
    others = [s for s in frac["scenario"].values if str(s) != baseline]
    if not others:
        raise InputError("paired differences need at least one scenario besides the baseline")
    thr = _check_fractions([threshold], "threshold")

    def split(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        base = da.sel(scenario=[s for s in da["scenario"].values if str(s) == baseline]).isel(scenario=0, drop=True)
        alt = da.sel(scenario=others).rename(scenario="contrast")
        return alt.assign_coords(contrast=np.asarray([str(s) for s in others], dtype=object)), base

    alt, base = split(frac.isel(time=-1, drop=True))
    diff = alt - base
    d_mean, d_quant = _member_stats(diff, q, "diff_quantile")
    t_alt, t_base = split(_crossing_times(frac, thr).isel(threshold=0, drop=True))
    both = t_alt.notnull() & t_base.notnull()
    dt = (t_alt - t_base).where(both)
    t_mean, t_quant = _member_stats(dt, q, "diff_quantile")
    sooner = (t_alt < t_base) | (t_alt.notnull() & t_base.isnull())
    pct = f"{100 * thr[0]:g}%"
    out = xr.Dataset({
        "diff_final_fraction_mean": d_mean.assign_attrs(units="1", long_name="mean paired difference of the adopted fraction at the horizon"),
        "diff_final_fraction_quantile": d_quant.assign_attrs(units="1", long_name="quantile of the paired difference of the adopted fraction at the horizon"),
        "prob_better_final_fraction": _share(diff > 0).assign_attrs(units="1", long_name="share of members with more adoption at the horizon than the baseline"),
        "diff_threshold_time_mean": t_mean.assign_attrs(units="years", long_name=f"mean paired difference of the time to {pct}, members where both reach it"),
        "diff_threshold_time_quantile": t_quant.assign_attrs(units="years", long_name=f"quantile of the paired difference of the time to {pct}, members where both reach it"),
        "share_both_reach_threshold": _share(both).assign_attrs(units="1", long_name=f"share of members where scenario and baseline both reach {pct}"),
        "prob_sooner_threshold": _share(sooner).assign_attrs(units="1", long_name=f"share of members reaching {pct} sooner than the baseline"),
    })
    out.attrs.update({"baseline": baseline, "paired_threshold": float(thr[0])})
    return out


# ----------------------------------------------------------------------------- everything
def summarize_ensemble(
    ds: xr.Dataset,
    targets: Iterable[Any] = (),
    baseline: str | None = None,
    *,
    q: Sequence[float] = DEFAULT_Q,
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
) -> tuple[xr.Dataset, dict[str, Any]]:
    """All summaries as one computed Dataset (for ``summary.nc``) and a JSON-ready dict (for
    ``summary.json``: floats rounded — fractions/probabilities to 4 decimals, years to 3 —
    ISO dates, scenario names as keys, NaN as ``None``). Dask inputs are computed once, here.
    Paired differences are included when ``baseline`` is given and there are other scenarios;
    target probabilities when any targets are given.
    """
    frac = adopted_fraction(ds)
    parsed = _parse_targets(targets, ds)
    parts = [_adoption_quantiles(frac, q, _time_coords(ds)), _time_to_thresholds(frac, thresholds, q), _extent(frac, q)]
    if parsed:
        parts.append(_probability_of_target(frac, parsed))
    names = [str(s) for s in frac["scenario"].values]
    if baseline is not None and baseline not in names:
        raise InputError(f"baseline scenario {baseline!r} is not among the scenarios {names}")
    if baseline is not None and len(names) > 1:
        parts.append(_paired_differences(frac, baseline, DIFF_Q, 0.5))
    summary = xr.merge(parts, join="exact", compat="no_conflicts", combine_attrs="drop_conflicts")
    summary.attrs.update({
        "time_units": "years",
        "draws": int(ds.sizes["draw"]),
        "replicates": int(ds.sizes["replicate"]),
        "members": int(ds.sizes["draw"] * ds.sizes["replicate"]),
        "quantile_method": "exact, linear (as numpy.quantile) over members = (draw, replicate)",
        "site_all": "site 'all' is all sites together: sum of adopted / sum of population",
    })
    if baseline is not None:
        summary.attrs["baseline"] = baseline
    if "adopted_from" in ds.attrs:  # the store's adopted count, e.g. "adopters (a share) x the data's population"
        summary.attrs["adopted_from"] = ds.attrs["adopted_from"]
    pop = ds["population"].reset_coords(drop=True)
    if pop.dims == ("site",):
        summary = with_population(summary, np.asarray(pop.values, dtype=np.float64))
    summary = summary.compute()
    return summary, _to_json(summary, parsed)


def with_population(summary: xr.Dataset, population: np.ndarray) -> xr.Dataset:
    """``summary`` with ``population`` ``(site,)``: all sites' total first, then each site's
    (organisations), so counts can be read beside the fractions."""
    values = np.concatenate([[population.sum()], population])
    return summary.assign(population=xr.DataArray(values, dims="site", coords={"site": summary["site"].values},
                                                  attrs={"units": "organisations"}))


def _num(x: Any, digits: int) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _iso(value: Any) -> str | None:
    if np.isnat(value):
        return None
    return str(np.datetime64(value, "D"))


def _qlabel(q: float) -> str:
    return f"q{100 * float(q):g}"


def _to_json(summary: xr.Dataset, parsed: list[dict[str, Any]]) -> dict[str, Any]:
    fd, yd = _FRACTION_DIGITS, _YEAR_DIGITS
    t = np.asarray(summary["time"].values, dtype=np.float64)
    dates = np.asarray(summary["date"].values) if "date" in summary.coords else None
    sites = [str(s) for s in summary["site"].values]
    quantiles = [float(v) for v in summary["quantile"].values]

    def to_date(years: float) -> str | None:
        if dates is None or not math.isfinite(years):
            return None
        days = (dates - dates[0]) / np.timedelta64(1, "D")
        return _iso(dates[0] + np.timedelta64(int(round(float(np.interp(years, t, days)))), "D"))

    out: dict[str, Any] = {
        "schema": "spreadjax.ensemble.summary/1",
        "time_units": "years",
        "members": {k: int(summary.attrs[k]) for k in ("draws", "replicates", "members")},
        "sites": sites,
        "quantiles": quantiles,
        "horizon": {"time": _num(t[-1], yd), "date": _iso(dates[-1]) if dates is not None else None},
        "time": [_num(v, yd) for v in t],
    }
    if dates is not None:
        out["date"] = [_iso(v) for v in dates]
    if parsed:
        out["targets"] = [{"label": p["label"], "fraction": p["fraction"], "time": _num(p["time"], yd), "date": p["date"]}
                          for p in parsed]
    baseline = summary.attrs.get("baseline")
    out["baseline"] = baseline
    pop = {site: float(summary["population"].sel(site=site)) for site in sites} if "population" in summary else None
    if pop is not None:
        out["population"] = pop
    scenarios: dict[str, Any] = {}
    for sc in summary["scenario"].values:
        s = summary.sel(scenario=sc)
        entry: dict[str, Any] = {}
        entry["adoption"] = {
            site: {"mean": [_num(v, fd) for v in s["adopted_fraction_mean"].sel(site=site).values],
                   **{_qlabel(qq): [_num(v, fd) for v in s["adopted_fraction_quantile"].sel(site=site, quantile=qq).values]
                      for qq in quantiles}}
            for site in sites}
        thresholds: dict[str, Any] = {}
        for thr in summary["threshold"].values:
            per_site = {}
            for site in sites:
                cell = s.sel(threshold=thr, site=site)
                qs = {_qlabel(qq): float(cell["threshold_time_quantile"].sel(quantile=qq)) for qq in quantiles}
                item: dict[str, Any] = {"mean_if_reached": _num(cell["threshold_time_mean"], yd),
                                        **{k: _num(v, yd) for k, v in qs.items()},
                                        "share_never": _num(cell["threshold_share_never"], fd)}
                if dates is not None:
                    item["date"] = {k: to_date(v) for k, v in qs.items()}
                per_site[site] = item
            thresholds[f"{float(thr):g}"] = per_site
        entry["time_to_threshold"] = thresholds
        entry["extent"] = {
            site: {part: {"mean": _num(s[f"{part}_fraction_mean"].sel(site=site), fd),
                          **{_qlabel(qq): _num(s[f"{part}_fraction_quantile"].sel(site=site, quantile=qq), fd)
                             for qq in quantiles}}
                   for part in ("final", "peak", "drop")}
            for site in sites}
        if pop is not None:  # organisations adopted at the horizon: the final fraction times the population
            entry["adopted_at_horizon"] = {
                site: {k: None if v is None else round(v * pop[site], 1) for k, v in entry["extent"][site]["final"].items()}
                for site in sites}
        if "target_probability" in summary:
            entry["targets"] = {str(label): {site: _num(s["target_probability"].sel(target=label, site=site), fd) for site in sites}
                                for label in summary["target"].values}
        if baseline is not None and str(sc) != baseline:
            c = summary.sel(contrast=str(sc))
            dq = [float(v) for v in summary["diff_quantile"].values]
            pct = f"{100 * float(summary.attrs.get('paired_threshold', 0.5)):g}%"
            entry["vs_baseline"] = {
                site: {
                    "final_fraction": {"mean": _num(c["diff_final_fraction_mean"].sel(site=site), fd),
                                       **{_qlabel(qq): _num(c["diff_final_fraction_quantile"].sel(site=site, diff_quantile=qq), fd) for qq in dq},
                                       "prob_better": _num(c["prob_better_final_fraction"].sel(site=site), fd)},
                    f"time_to_{pct}": {"mean_if_both_reach": _num(c["diff_threshold_time_mean"].sel(site=site), yd),
                                       **{_qlabel(qq): _num(c["diff_threshold_time_quantile"].sel(site=site, diff_quantile=qq), yd) for qq in dq},
                                       "share_both_reach": _num(c["share_both_reach_threshold"].sel(site=site), fd),
                                       "prob_sooner": _num(c["prob_sooner_threshold"].sel(site=site), fd)},
                }
                for site in sites}
        scenarios[str(sc)] = entry
    out["scenarios"] = scenarios
    return out
