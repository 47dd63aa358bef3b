"""Summaries-only ensembles: reduce each chunk on the device, never keep trajectories.

``stream_summaries(config)`` runs the ensemble chunk by chunk in this process. Each chunk's
trajectories live only inside one jitted call, which turns them into per-member quantities
(adopted fraction over time, time to each threshold, final/peak/drop, paired differences, target
hits) and adds those to fixed-size histograms and counts. Memory therefore does not grow with
the number of members: 10^7 members cost what one chunk costs.

The result has the variables, dims and JSON of :func:`summarize_ensemble`, with two differences
stated in its attrs: quantiles are read off histograms of ``bins`` equal bins (linear within a
bin, so within one bin width of the exact quantile: 1/4096 of the range by default), and means
are exact sums. Probabilities and shares are exact counts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._batch import ChunkLayout, ChunkRunner, _batch
from ._adopted import ADOPTED, store_population
from ._summary import DEFAULT_Q, DIFF_Q, _parse_targets, _to_json, with_population

BINS = 4096


@dataclass(frozen=True)
class StreamSpec:
    """Static description of the reductions (hashable: part of what is compiled)."""

    layout: ChunkLayout
    fraction_output: str  # output whose share of the population is summarised
    population: str | None  # parameter holding the population (None: the output is a fraction)
    times: tuple[float, ...]  # output times, years
    thresholds: tuple[float, ...]
    targets: tuple[tuple[float, float], ...]  # (fraction, years)
    baseline: int | None  # scenario index of the paired-difference baseline
    bins: int = BINS


# ------------------------------------------------------------------------------ on the device
def _quantities(spec: StreamSpec, frac: Any) -> tuple[dict[str, tuple[Any, float, float]], dict[str, Any]]:
    """Per-member quantities ``{name: (values (member, ...), lo, hi)}`` from the adopted fraction
    ``frac`` (member, scenario, time, site+1), and the per-member paired-comparison indicators."""
    t = jnp.asarray(spec.times, frac.dtype)
    t_lo, t_hi = spec.times[0], spec.times[-1]
    span = t_hi - t_lo
    out: dict[str, tuple[Any, float, float]] = {"adopted_fraction": (frac, 0.0, 1.0)}
    final, peak = frac[:, :, -1], jnp.max(frac, axis=2)
    out["final_fraction"] = (final, 0.0, 1.0)
    out["peak_fraction"] = (peak, 0.0, 1.0)
    out["drop_fraction"] = (peak - final, 0.0, 1.0)
    crossing = jnp.stack([_first_time(frac, t, c) for c in spec.thresholds], axis=2)  # (m, S, K, site)
    out["threshold_time"] = (crossing, t_lo, t_hi)
    paired: dict[str, Any] = {}
    if spec.baseline is not None:
        others = [s for s in range(frac.shape[1]) if s != spec.baseline]
        diff = final[:, others] - final[:, spec.baseline][:, None]
        half = _first_time(frac, t, 0.5)
        t_alt, t_base = half[:, others], half[:, spec.baseline][:, None]
        dt = t_alt - t_base  # NaN unless both reach it
        out["diff_final_fraction"] = (diff, -1.0, 1.0)
        out["diff_threshold_time"] = (dt, -span, span)
        paired = {"better_final": diff > 0, "both_reach": ~jnp.isnan(dt),
                  "sooner": (t_alt < t_base) | (~jnp.isnan(t_alt) & jnp.isnan(t_base))}
    return out, paired


def _first_time(frac: Any, t: Any, c: float) -> Any:
    """First time (years) ``frac`` (m, S, T, site) reaches ``c``, linear between output times; NaN if never."""
    reached = frac >= c
    idx = jnp.argmax(reached, axis=2)
    i0 = jnp.maximum(idx - 1, 0)
    f1 = jnp.take_along_axis(frac, idx[:, :, None], axis=2)[:, :, 0]
    f0 = jnp.take_along_axis(frac, i0[:, :, None], axis=2)[:, :, 0]
    t0, t1 = t[i0], t[idx]
    slope = jnp.where(f1 > f0, (t1 - t0) / jnp.where(f1 > f0, f1 - f0, 1), 0)
    out = jnp.where(idx == 0, t[0], t0 + (c - f0) * slope)
    return jnp.where(jnp.any(reached, axis=2), out, jnp.nan)


def _target_hits(spec: StreamSpec, frac: Any) -> dict[str, Any]:
    """Per member, whether each target is reached: ``{"target_hits": (m, S, target, site)}``."""
    out: dict[str, Any] = {}
    if spec.targets:
        t = np.asarray(spec.times)
        hits = []
        for fraction, when in spec.targets:  # linear in time, as np.interp
            i0 = int(np.clip(np.searchsorted(t, when, side="right") - 1, 0, t.size - 1))
            i1 = min(i0 + 1, t.size - 1)
            w = 0.0 if i1 == i0 else (when - t[i0]) / (t[i1] - t[i0])
            value = frac[:, :, i0] + w * (frac[:, :, i1] - frac[:, :, i0])
            hits.append(value >= fraction)
        out["target_hits"] = jnp.stack(hits, axis=2)  # (m, S, target, site)
    return out


def _histogram(values: Any, weight: Any, lo: float, hi: float, bins: int) -> dict[str, Any]:
    """Counts of ``values`` (member, ...) in ``bins`` equal bins over [lo, hi] (clipped), their sum
    and count (finite values only), summed over members weighted by ``weight`` (member,)."""
    finite = ~jnp.isnan(values)
    w = weight.reshape((-1,) + (1,) * (values.ndim - 1)) * finite
    scale = bins / (hi - lo) if hi > lo else 0.0
    idx = jnp.clip(jnp.floor((jnp.where(finite, values, lo) - lo) * scale), 0, bins - 1).astype(jnp.int32)
    flat = values[0].size
    cell = jnp.arange(flat, dtype=jnp.int32).reshape(values.shape[1:])
    hist = jnp.zeros((flat * bins,), jnp.int32).at[(cell[None] * bins + idx).ravel()].add(
        jnp.broadcast_to(w, values.shape).astype(jnp.int32).ravel())
    return {"hist": hist.reshape(*values.shape[1:], bins),
            "sum": jnp.sum(jnp.where(finite, values, 0) * w, axis=0, dtype=jnp.float64 if jax.config.x64_enabled else None),
            "n": jnp.sum(w.astype(jnp.int32), axis=0)}


def _batch_stats(spec: StreamSpec, data: dict, draw_index: Any, draw_vals: dict, valid: Any) -> dict:
    """One batch's histograms and counts from its trajectories (which stay inside the call)."""
    out = _batch(spec.layout, data, draw_index, draw_vals)[spec.fraction_output]  # (D, S, R, T, site)
    if spec.population is None:  # a share: the populations it is of (1 with no data: the share itself)
        pop = data["population"] if "population" in data else jnp.ones(out.shape[-1:], out.dtype)
    else:
        pop = draw_vals.get(spec.population, data["base"][spec.population])  # (D, site) or (site,)
    pop = pop if pop.ndim == 2 else jnp.broadcast_to(pop, (out.shape[0], pop.shape[-1]))
    pop = pop[:, None, None, None, :]
    total = jnp.sum(out, axis=-1, keepdims=True) / jnp.sum(pop, axis=-1, keepdims=True)
    frac = jnp.concatenate([total, out / pop], axis=-1)  # site 'all' first
    d, s, r = frac.shape[:3]
    frac = jnp.moveaxis(frac, 2, 1).reshape(d * r, s, *frac.shape[3:])  # members = (draw, replicate)
    weight = jnp.repeat(valid.astype(jnp.int32), r)
    q, paired = _quantities(spec, frac)
    stats = {name: _histogram(v, weight, lo, hi, spec.bins) for name, (v, lo, hi) in q.items()}
    for name, hit in {**_target_hits(spec, frac), **paired}.items():
        stats[name] = jnp.sum(hit * weight.reshape((-1,) + (1,) * (hit.ndim - 1)), axis=0, dtype=jnp.int32)
    stats["members"] = jnp.sum(weight)
    return stats


@functools.partial(jax.jit, static_argnums=0)
def _batch_stats_call(spec: StreamSpec, data: dict, draw_index: Any, draw_vals: dict, valid: Any) -> dict:
    """:func:`_batch_stats` compiled once per spec; the host calls it batch by batch (as
    ``ChunkRunner`` does), so the working set is one batch's trajectories whatever the chunk size.
    Measured against a ``lax.scan`` over the batches inside one call: the same speed on CPU
    (2^18 flagship draws, 4.8 s either way)."""
    return _batch_stats(spec, data, draw_index, draw_vals, valid)


@jax.jit
def _add_stats(total: dict, stats: dict) -> dict:
    return jax.tree.map(jnp.add, total, stats)


# ---------------------------------------------------------------------------------- host side
def stream_summaries(config: Any, posterior: str | None = None, *, bins: int = BINS,
                     thresholds: tuple[float, ...] = (0.25, 0.5, 0.75), q: tuple[float, ...] = DEFAULT_Q,
                     progress: Callable[[int, int], None] | None = None) -> tuple[xr.Dataset, dict]:
    """Summaries of the config's ensemble without storing it: ``(summary Dataset, JSON dict)``
    shaped as :func:`summarize_ensemble`'s (histogram quantiles, see the module docstring)."""
    from ._plan import check_plan_fits, design_values, draw_values
    from ._run import plan_for

    plan = plan_for(config)
    check_plan_fits(config, plan, all_draws=config.ensemble.source != "design")
    runner = ChunkRunner(config)
    s = config.ensemble
    from ._run import require_adopted

    require_adopted(config)
    source = s.adopted
    output = ADOPTED if source.derived else source.outputs[0]  # 'adopted' computed in the chunk (_batch)
    population = source.population if source.populations is None else None
    sim = runner.sim
    missing = tuple(o for o in source.outputs if o not in sim.outputs)
    if missing:
        sim = type(sim)(sim.model, sim.ts, sim.dt, (*sim.outputs, *missing), sim.solver, sim.t0, sim.stochastic)
    # Batches that divide the chunk exactly; one device (streaming is not sharded yet).
    batch = math.gcd(plan.chunk_size, runner.layout.batch * runner.layout.devices)
    layout = dataclasses.replace(runner.layout, sim=sim, batch=batch, devices=1)
    coords = _coords(config, sim.ts)
    targets = [t.as_dict() for t in s.targets]
    parsed = _parse_targets(targets, coords) if targets else []
    names = list(plan.scenarios)
    baseline = names.index(s.baseline) if s.baseline is not None and len(names) > 1 else None
    spec = StreamSpec(layout, output, population, tuple(float(t) for t in sim.ts),
                      tuple(float(c) for c in thresholds),
                      tuple((float(p["fraction"]), float(p["time"])) for p in parsed), baseline, bins)
    # A design is drawn chunk by chunk (memory flat in the number of draws); other sources at once.
    draws = None if s.source == "design" else draw_values(config, posterior)
    progress = progress or (lambda done, total: None)
    total = None
    for i in range(plan.n_chunks):
        start, stop = plan.chunk(i)
        n = stop - start
        pad = plan.chunk_size - n
        chunk = (design_values(config, start, stop) if draws is None
                 else {k: v[start:stop] for k, v in draws.items()})
        vals = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in chunk.items()}
        index = np.arange(start, start + plan.chunk_size, dtype=np.int64)
        valid = np.arange(plan.chunk_size) < n
        for b in range(0, plan.chunk_size, batch):
            stats = _batch_stats_call(spec, runner.data, jnp.asarray(index[b:b + batch]),
                                      {k: jnp.asarray(v[b:b + batch], runner.dtype) for k, v in vals.items()},
                                      jnp.asarray(valid[b:b + batch]))
            total = stats if total is None else _add_stats(total, stats)
        progress(i + 1, plan.n_chunks)
    summary = _to_dataset(spec, jax.device_get(total), coords, names, list(config.sites), q, parsed, s.baseline)
    summary.attrs.update({"draws": plan.n_draws, "replicates": plan.n_replicates, "members": plan.n_members})
    if source.populations is not None:
        summary = with_population(summary, store_population(source, {}, config.n_sites))
    elif population is not None and population not in set(draws or {}) | {n for n, _ in s.design}:
        pop = np.broadcast_to(np.asarray(runner.data["base"][population], np.float64), (config.n_sites,))
        summary = with_population(summary, pop)
    return summary, _to_json(summary, parsed)


def _coords(config: Any, ts: tuple[float, ...]) -> xr.Dataset:
    t = np.asarray(ts, dtype=np.float64)
    coords: dict[str, Any] = {"time": t}
    if config.simulation.start_date:
        days = np.round((t - t[0]) * 365.25).astype("timedelta64[D]")
        coords["date"] = ("time", np.datetime64(config.simulation.start_date, "D") + days)
    return xr.Dataset(coords=coords)


def histogram_quantiles(hist: np.ndarray, lo: float, hi: float, q: np.ndarray, never: np.ndarray | None = None) -> np.ndarray:
    """Quantiles ``q`` from counts ``hist`` (..., bins) over [lo, hi], linear within a bin.

    ``never`` (...): members counted as beyond ``hi`` (a quantile that falls among them is NaN).
    Returns (quantile, ...)."""
    hist = np.asarray(hist, dtype=np.float64)
    bins = hist.shape[-1]
    edges = np.linspace(lo, hi, bins + 1)
    cum = np.cumsum(hist, axis=-1)
    n = cum[..., -1] + (0 if never is None else np.asarray(never, dtype=np.float64))
    out = np.full((len(q), *hist.shape[:-1]), np.nan)
    for k, qk in enumerate(q):
        rank = qk * n  # members at or below the quantile
        idx = np.minimum((cum < rank[..., None]).sum(axis=-1), bins - 1)
        below = np.where(idx > 0, np.take_along_axis(cum, np.maximum(idx - 1, 0)[..., None], -1)[..., 0], 0.0)
        inside = np.take_along_axis(hist, idx[..., None], -1)[..., 0]
        frac = np.clip(np.where(inside > 0, (rank - below) / np.where(inside > 0, inside, 1), 0.0), 0, 1)
        value = edges[idx] + frac * (edges[1] - edges[0])
        ok = (n > 0) & (rank <= cum[..., -1] + 1e-9)
        out[k] = np.where(ok, value, np.nan)
    return out


def _to_dataset(spec: StreamSpec, total: dict, coords: xr.Dataset, names: list[str], sites: list[str],
                q: tuple[float, ...], parsed: list[dict], baseline: str | None) -> xr.Dataset:
    """The accumulated histograms and counts as :func:`summarize_ensemble`'s Dataset."""
    members = float(total["members"])
    qa = np.asarray(q, dtype=np.float64)
    site = np.asarray(["all", *sites], dtype=object)
    scen = np.asarray(names, dtype=object)

    def stats(name: str, dims: tuple[str, ...], qdim: str, quantiles: np.ndarray, lo: float, hi: float,
              never: bool = False) -> tuple[xr.DataArray, xr.DataArray]:
        h = total[name]
        n = np.asarray(h["n"], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, np.asarray(h["sum"], dtype=np.float64) / n, np.nan)
        quant = histogram_quantiles(h["hist"], lo, hi, quantiles, members - n if never else None)
        return xr.DataArray(mean, dims=dims), xr.DataArray(quant, dims=(qdim, *dims))

    t_lo, t_hi = spec.times[0], spec.times[-1]
    out: dict[str, xr.DataArray] = {}
    mean, quant = stats("adopted_fraction", ("scenario", "time", "site"), "quantile", qa, 0.0, 1.0)
    out["adopted_fraction_quantile"] = quant.assign_attrs(units="1", long_name="quantile over members of the adopted fraction")
    out["adopted_fraction_mean"] = mean.assign_attrs(units="1", long_name="mean over members of the adopted fraction")
    mean, quant = stats("threshold_time", ("scenario", "threshold", "site"), "quantile", qa, t_lo, t_hi, never=True)
    out["threshold_time_quantile"] = quant.assign_attrs(units="years", long_name="quantile over members of the first time the threshold is reached (NaN: not by the horizon)")
    out["threshold_time_mean"] = mean.assign_attrs(units="years", long_name="mean first time the threshold is reached, over members that reach it")
    never = 1 - np.asarray(total["threshold_time"]["n"], dtype=np.float64) / members
    out["threshold_share_never"] = xr.DataArray(never, dims=("scenario", "threshold", "site"),
                                                attrs={"units": "1", "long_name": "share of members that never reach the threshold by the horizon"})
    for name, doc in (("final", "adopted fraction at the horizon"), ("peak", "maximum adopted fraction over time"),
                      ("drop", "drop from peak to final adopted fraction")):
        mean, quant = stats(f"{name}_fraction", ("scenario", "site"), "quantile", qa, 0.0, 1.0)
        out[f"{name}_fraction_mean"] = mean.assign_attrs(units="1", long_name=f"mean over members: {doc}")
        out[f"{name}_fraction_quantile"] = quant.assign_attrs(units="1", long_name=f"quantile over members: {doc}")
    extra: dict[str, Any] = {}
    if parsed:
        out["target_probability"] = xr.DataArray(
            np.asarray(total["target_hits"], dtype=np.float64) / members, dims=("scenario", "target", "site"),
            attrs={"units": "1", "long_name": "probability that the adopted fraction reaches the target fraction by the target time"})
        extra = {"target": [p["label"] for p in parsed],
                 "target_fraction": ("target", np.asarray([p["fraction"] for p in parsed])),
                 "target_time": ("target", np.asarray([p["time"] for p in parsed]), {"units": "years"})}
    attrs: dict[str, Any] = {}
    if spec.baseline is not None:
        span = t_hi - t_lo
        dq = np.asarray(DIFF_Q)
        d_mean, d_quant = stats("diff_final_fraction", ("contrast", "site"), "diff_quantile", dq, -1.0, 1.0)
        t_mean, t_quant = stats("diff_threshold_time", ("contrast", "site"), "diff_quantile", dq, -span, span)
        share = lambda k: xr.DataArray(np.asarray(total[k], dtype=np.float64) / members, dims=("contrast", "site"))  # noqa: E731
        out.update({
            "diff_final_fraction_mean": d_mean.assign_attrs(units="1", long_name="mean paired difference of the adopted fraction at the horizon"),
            "diff_final_fraction_quantile": d_quant.assign_attrs(units="1", long_name="quantile of the paired difference of the adopted fraction at the horizon"),
            "prob_better_final_fraction": share("better_final").assign_attrs(units="1", long_name="share of members with more adoption at the horizon than the baseline"),
            "diff_threshold_time_mean": t_mean.assign_attrs(units="years", long_name="mean paired difference of the time to 50%, members where both reach it"),
            "diff_threshold_time_quantile": t_quant.assign_attrs(units="years", long_name="quantile of the paired difference of the time to 50%, members where both reach it"),
            "share_both_reach_threshold": share("both_reach").assign_attrs(units="1", long_name="share of members where scenario and baseline both reach 50%"),
            "prob_sooner_threshold": share("sooner").assign_attrs(units="1", long_name="share of members reaching 50% sooner than the baseline"),
        })
        extra["contrast"] = np.asarray([n for i, n in enumerate(names) if i != spec.baseline], dtype=object)
        extra["diff_quantile"] = dq
        attrs = {"baseline": baseline, "paired_threshold": 0.5}
    summary = xr.Dataset(out, coords={"quantile": qa, "scenario": scen, "site": site,
                                      "threshold": np.asarray(spec.thresholds), **coords.coords, **extra})
    summary.attrs.update({
        **attrs,
        "time_units": "years",
        "quantile_method": f"histogram of {spec.bins} equal bins per quantity, linear within a bin "
                           "(within one bin width of the exact quantile) over members = (draw, replicate)",
        "site_all": "site 'all' is all sites together: sum of adopted / sum of population",
        "streamed": "summaries reduced on the device chunk by chunk; trajectories were not stored",
    })
    return summary
