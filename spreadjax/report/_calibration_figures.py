"""Figures for calibration results: posterior predictive checks, trace/rank plots, prior vs posterior.

``groups`` is the dict of xarray Datasets that :func:`spreadjax.calibrate._run.calibrate` returns
(or :func:`~spreadjax.calibrate._run.read_posterior` reads back), shaped like ArviZ InferenceData
groups. Only matplotlib is used (Agg backend); colours are Okabe-Ito.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._figures import OKABE_ITO, _pyplot, write_atomic

_SAMPLE_DIMS = ("chain", "draw")
_MAX_TRACE_ROWS = 12
_MAX_SITE_PANELS = 24
_MAX_DENSITY_PANELS = 40
_DPI = 120
_STYLES = {"prior": {"color": OKABE_ITO[7], "linewidth": 1.0, "linestyle": "--"},
           "posterior": {"color": OKABE_ITO[0], "linewidth": 1.4}}

__all__ = ["plot_calibration", "plot_predictive", "plot_prior_posterior", "plot_trace_rank"]


# --------------------------------------------------------------------------------------------- helpers
def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    try:
        out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=_DPI, format="png"))
    finally:
        plt.close(fig)
    return out


def _title(groups: Mapping[str, xr.Dataset]) -> str:
    post = groups.get("posterior")
    method = str(post.attrs.get("method", "")) if post is not None else ""
    return f" ({method})" if method else ""


def _time_axis(obs: xr.Dataset) -> tuple[np.ndarray, str]:
    """x values and label: dates if ``obs`` has a ``date`` coord, else time (months if monthly)."""
    if "date" in obs.coords:
        return np.asarray(obs["date"].values), "date"
    t = np.asarray(obs["time"].values, dtype=float)
    if t.size > 1 and np.allclose(np.diff(t), 1.0 / 12.0, rtol=1e-3, atol=1e-6):
        return t * 12.0, "time (months)"
    return t, "time (years)"


def _default_var_names(groups: Mapping[str, xr.Dataset]) -> list[str]:
    post = groups["posterior"]
    prior = groups.get("prior")
    names = []
    for name in post.data_vars:
        if name == "expected_adopters" or str(name).endswith("_z") or "time" in post[name].dims:
            continue
        if prior is not None and name not in prior:
            continue
        names.append(str(name))
    return names


def _elements(ds: xr.Dataset, var_names: Sequence[str],
              prior: xr.Dataset | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, variable, selection) for each scalar element of each variable, over non-sample dims.

    Elements fixed by construction (one value in every posterior draw and, where ``prior`` has the
    variable, every prior draw too: e.g. the base period's effect, 0) are left out.
    """
    return [e for e in _all_elements(ds, var_names) if not _fixed(ds, prior, e)]


def _fixed(post: xr.Dataset, prior: xr.Dataset | None, element: tuple[str, str, dict[str, Any]]) -> bool:
    _, name, sel = element
    if prior is None or name not in prior:
        return False  # a point estimate (MAP) is constant too, but not fixed: keep it
    q, p = _draws(post, name, sel), _draws(prior, name, sel)
    return bool(q.size and p.size and np.all(q == q.flat[0]) and np.all(p == q.flat[0]))


def _all_elements(ds: xr.Dataset, var_names: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for name in var_names:
        if name not in ds:
            raise KeyError(f"{name!r} is not a variable of the posterior; have: {', '.join(map(str, ds.data_vars))}")
        da = ds[name]
        dims = [d for d in da.dims if d not in _SAMPLE_DIMS]
        if not dims:
            out.append((name, name, {}))
            continue
        shape = [da.sizes[d] for d in dims]
        for idx in np.ndindex(*shape):
            sel = dict(zip(dims, idx))
            labels = []
            for d, i in sel.items():
                value = da[d].values[i] if d in da.coords else i
                labels.append(f"{d}={value}" if len(dims) > 1 or d != "site" else str(value))
            out.append((f"{name}[{', '.join(labels)}]", name, sel))
    return out


def _draws(ds: xr.Dataset, name: str, sel: Mapping[str, int]) -> np.ndarray:
    """Values of one element as ``(chain, draw)`` floats."""
    da = ds[name].isel(sel) if sel else ds[name]
    return np.asarray(da.transpose(*_SAMPLE_DIMS).values, dtype=float)


def _units(ds: xr.Dataset, name: str) -> str:
    units = ds[name].attrs.get("units") if name in ds else None
    if units:
        return str(units)
    if name.endswith("_tau"):
        return "unconstrained scale"
    return "model units"


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a flat array (ties get their average rank)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts + 1
    return (start + (counts - 1) / 2.0)[inverse.reshape(-1)]


def _chain_colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


# ------------------------------------------------------------------------------------ predictive check
def plot_predictive(groups: Mapping[str, xr.Dataset], path: str | Path) -> Path:
    """Observed cumulative adopters per site against the posterior predictive and the model's expectation.

    Predictive cumulative = observed cumulative at the previous period + predicted new adopters
    (one-step-ahead, as the observation model predicts); the model's expected cumulative adopters
    (``posterior.expected_adopters``) are drawn as a separate median line and 90% band.
    """
    plt = _pyplot()
    obs = groups["observed_data"]
    post = groups.get("posterior")
    pp = groups.get("posterior_predictive")
    x, xlabel = _time_axis(obs)
    cum = obs["adopters"].transpose("time", "site")
    prev = cum - obs["new_adopters"].transpose("time", "site")
    pred = None
    if pp is not None and "new_adopters" in pp:
        stacked = (prev + pp["new_adopters"]).stack(sample=_SAMPLE_DIMS)
        pred = stacked.quantile([0.05, 0.25, 0.5, 0.75, 0.95], dim="sample").transpose("quantile", "time", "site")
    expected = None
    if post is not None and "expected_adopters" in post:
        stacked = post["expected_adopters"].stack(sample=_SAMPLE_DIMS)
        expected = stacked.quantile([0.05, 0.5, 0.95], dim="sample").transpose("quantile", "time", "site")

    sites = list(obs["site"].values)
    shown = sites[:_MAX_SITE_PANELS]
    ncols = min(len(shown), 3 if len(shown) != 4 else 2)
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows + 1.0), squeeze=False)
    pop = obs["population"] if "population" in obs else None
    handles: dict[str, Any] = {}
    for k, site in enumerate(shown):
        ax = axes[k // ncols, k % ncols]
        if pred is not None:
            q = pred.sel(site=site).values
            h90 = ax.fill_between(x, q[0], q[4], color=OKABE_ITO[4], alpha=0.35, linewidth=0, step=None)
            h50 = ax.fill_between(x, q[1], q[3], color=OKABE_ITO[0], alpha=0.45, linewidth=0)
            (hmed,) = ax.plot(x, q[2], color=OKABE_ITO[0], linewidth=1.4)
            handles["one-step predictive 90%"] = h90
            handles["one-step predictive 50%"] = h50
            handles["one-step predictive median"] = hmed
        if expected is not None:
            e = expected.sel(site=site).values
            (he,) = ax.plot(x, e[1], color=OKABE_ITO[1], linewidth=1.4, linestyle="-")
            ax.plot(x, e[0], color=OKABE_ITO[1], linewidth=0.8, linestyle=":")
            ax.plot(x, e[2], color=OKABE_ITO[1], linewidth=0.8, linestyle=":")
            handles["expected cumulative median"] = he
            handles["expected cumulative 90% (dotted)"] = ax.plot([], [], color=OKABE_ITO[1], linewidth=0.8,
                                                                  linestyle=":")[0]
        ho = ax.scatter(x, cum.sel(site=site).values, s=14, color=OKABE_ITO[7], zorder=5)
        handles["observed cumulative"] = ho
        if pop is not None:
            hp = ax.axhline(float(pop.sel(site=site)), color=OKABE_ITO[5], linestyle="--", linewidth=1.0)
            handles["population"] = hp
        ax.set_title(str(site), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cumulative adopters (count)")
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
        if xlabel == "date":
            import matplotlib.dates as mdates

            locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for k in range(len(shown), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    more = f"; first {len(shown)} of {len(sites)} sites" if len(shown) < len(sites) else ""
    fig.suptitle(f"Posterior predictive check: cumulative adopters by site{_title(groups)}{more}\n"
                 "blue bands: observed cumulative at the previous period + predicted new adopters\n"
                 "(one-step-ahead, as the observation model predicts); orange: the model's expected cumulative",
                 fontsize=10)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
               ncol=min(4, len(handles)), fontsize=8, frameon=False)
    legend_rows = math.ceil(len(handles) / 4)
    bottom = (0.1 + 0.2 * legend_rows) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _save(fig, plt, path)


# ---------------------------------------------------------------------------------- trace and rank plot
def plot_trace_rank(groups: Mapping[str, xr.Dataset], path: str | Path,
                    var_names: Sequence[str] | None = None) -> Path:
    """Per parameter element: a trace (draw vs value, a line per chain) and per-chain rank histograms.

    Ranks are those of all draws pooled; they are binned into ~20 bins, one step line per chain,
    with the uniform expectation dashed. At most 12 rows are drawn.
    """
    plt = _pyplot()
    post = groups["posterior"]
    names = list(var_names) if var_names is not None else _default_var_names(groups)
    elements = _elements(post, names, groups.get("prior"))
    if not elements:
        raise ValueError("no parameters to plot")
    shown = elements[:_MAX_TRACE_ROWS]
    nchains, ndraws = post.sizes["chain"], post.sizes["draw"]
    nbins = max(1, min(20, ndraws))
    diverging = None
    stats = groups.get("sample_stats")
    if stats is not None and "diverging" in stats:
        diverging = np.asarray(stats["diverging"].transpose(*_SAMPLE_DIMS).values, dtype=bool)
    fig, axes = plt.subplots(len(shown), 2, figsize=(11.0, 1.55 * len(shown) + 1.2), squeeze=False,
                             gridspec_kw={"width_ratios": (2.2, 1.0)})
    handles: dict[str, Any] = {}
    for row, (label, name, sel) in enumerate(shown):
        values = _draws(post, name, sel)
        ax_t, ax_r = axes[row]
        draws = np.arange(ndraws)
        for c in range(nchains):
            (h,) = ax_t.plot(draws, values[c], color=_chain_colour(c), linewidth=0.6, alpha=0.85)
            handles.setdefault(f"chain {c}", h)
        if diverging is not None and diverging.any():
            _, ds = np.nonzero(diverging)
            hd = ax_t.plot(ds, np.zeros(ds.shape), "|", color=OKABE_ITO[5], markersize=8, alpha=0.9,
                           transform=ax_t.get_xaxis_transform(), clip_on=False)[0]
            handles.setdefault("divergent transition", hd)
        ax_t.set_ylabel(f"{label}\n({_units(post, name)})", fontsize=8)
        ax_t.tick_params(labelsize=7)
        ax_t.margins(x=0)
        ranks = _ranks(values.reshape(-1)).reshape(values.shape)
        edges = np.linspace(0.5, values.size + 0.5, nbins + 1)
        for c in range(nchains):
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax_r.stairs(counts, edges, color=_chain_colour(c), linewidth=1.1)
        hu = ax_r.axhline(ndraws / nbins, color=OKABE_ITO[7], linestyle="--", linewidth=0.9)
        handles.setdefault("uniform expectation", hu)
        ax_r.set_ylim(bottom=0)
        ax_r.set_ylabel("draws per bin", fontsize=8)
        ax_r.tick_params(labelsize=7)
        ax_r.margins(x=0)
        if row == 0:
            ax_t.set_title("trace", fontsize=10)
            ax_r.set_title(f"rank histogram per chain ({nbins} bins)", fontsize=10)
        if row < len(shown) - 1:
            ax_t.tick_params(labelbottom=False)
            ax_r.tick_params(labelbottom=False)
    axes[-1, 0].set_xlabel("draw (after warm-up)")
    axes[-1, 1].set_xlabel("rank among all chains' draws")
    notes = []
    if nchains == 1:
        notes.append("one chain (approximate fit?): ranks are uniform by construction, so only the trace informs")
    if len(shown) < len(elements):
        notes.append(f"first {len(shown)} of {len(elements)} parameter elements")
    fig.suptitle(f"Trace and rank plots{_title(groups)}: {nchains} chain(s) x {ndraws} draws"
                 + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
               ncol=min(6, len(handles)), fontsize=8, frameon=False)
    legend_rows = math.ceil(len(handles) / 6)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, (0.1 + 0.2 * legend_rows) / height, 1, 1 - (0.25 + 0.2 * len(notes)) / height))
    return _save(fig, plt, path)


# -------------------------------------------------------------------------------- prior vs posterior
def _density(values: np.ndarray, edges: np.ndarray, log: bool) -> np.ndarray:
    """Histogram density over ``edges`` (log10 space if ``log``), normalised by all draws."""
    v = values[np.isfinite(values)]
    if log:
        v = np.log10(v[v > 0])
    counts, _ = np.histogram(v, bins=edges)
    return counts / max(values.size, 1) / np.diff(edges)


def _edges(values: np.ndarray) -> np.ndarray:
    """Histogram edges over the central 99% of ``values`` (a unit-wide bin around a constant)."""
    lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (np.nan, np.nan)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        centre = float(np.median(values)) if values.size else 0.0
        lo, hi = centre - 0.5, centre + 0.5
    return np.linspace(lo, hi, int(np.clip(np.sqrt(values.size), 10, 40)) + 1)


def plot_prior_posterior(groups: Mapping[str, xr.Dataset], path: str | Path,
                         var_names: Sequence[str] | None = None) -> Path:
    """Prior vs posterior draws, one small panel per parameter element (histogram densities, step lines).

    Prior and posterior are binned separately, each over the central 99% of its draws, so a
    posterior far narrower than its prior is still resolved. Positive parameters whose prior spans
    more than two orders of magnitude (central 99% of draws) are drawn on a log x-axis, as density
    per decade.
    """
    plt = _pyplot()
    post = groups["posterior"]
    prior = groups.get("prior")
    names = list(var_names) if var_names is not None else _default_var_names(groups)
    elements = _elements(post, names, prior)
    if not elements:
        raise ValueError("no parameters to plot")
    shown = elements[:_MAX_DENSITY_PANELS]
    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.6 * nrows + 1.0), squeeze=False)
    handles: dict[str, Any] = {}
    for k, (label, name, sel) in enumerate(shown):
        ax = axes[k // ncols, k % ncols]
        q = _draws(post, name, sel).reshape(-1)
        q = q[np.isfinite(q)]
        p = None
        if prior is not None and name in prior:
            p = _draws(prior, name, sel).reshape(-1)
            p = p[np.isfinite(p)]
        both = np.concatenate([q, p]) if p is not None else q
        log = False
        if p is not None and p.size and np.all(both > 0):
            lo, hi = np.percentile(p, [0.5, 99.5])
            log = lo > 0 and hi / lo > 100.0
        for kind, values in (("prior", p), ("posterior", q)):
            if values is None or not values.size:
                continue
            edges = _edges(np.log10(values[values > 0]) if log else values)
            xs = 10.0 ** edges if log else edges
            handles.setdefault(kind, ax.stairs(_density(values, edges, log), xs, **_STYLES[kind]))
        if log:
            ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"value ({_units(post, name)}{', log axis' if log else ''})", fontsize=8)
        ax.set_ylabel("density per decade" if log else "density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
    for k in range(len(shown), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    more = f" (first {len(shown)} of {len(elements)} parameter elements)" if len(shown) < len(elements) else ""
    note = "" if prior is not None else "; no prior group: posterior only"
    fig.suptitle(f"Prior vs posterior{_title(groups)}{more}{note}\n"
                 "histogram densities, each over the central 99% of its own draws", fontsize=10)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return _save(fig, plt, path)


# ----------------------------------------------------------------------------------------- all three
def plot_calibration(groups: Mapping[str, xr.Dataset], out_dir: str | Path) -> list[Path]:
    """Write ``predictive.png``, ``trace_rank.png`` and ``prior_posterior.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_predictive(groups, out / "predictive.png"),
        plot_trace_rank(groups, out / "trace_rank.png"),
        plot_prior_posterior(groups, out / "prior_posterior.png"),
    ]
