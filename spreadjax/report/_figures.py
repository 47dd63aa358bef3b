"""Figures for simulations, with colour-blind-safe colours (Okabe-Ito)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .._io import write_atomic

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STAGES = ("unaware", "aware", "implementing", "adopted", "discontinued")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_outputs(ds: xr.Dataset, path: str | Path) -> Path:
    """One panel per saved output (at most 6), one line per site: for models without ``adopted``."""
    plt = _pyplot()
    x = ds["date"].values if "date" in ds.coords else ds["time"].values
    names = [n for n in ds.data_vars if "time" in ds[n].dims][:6]
    ncols = min(3, max(1, len(names)))
    nrows = -(-max(1, len(names)) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        da = ds[name]
        sites = ds["site"].values if "site" in da.dims else [None]
        for i, site in enumerate(sites):
            series = da.sel(site=site) if site is not None else da
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            label = str(site) if site is not None else name
            if "replicate" in series.dims:
                lo, mid, hi = (series.quantile(q, "replicate").values for q in (0.05, 0.5, 0.95))
                ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)
                ax.plot(x, mid, color=colour, label=f"{label} (median, 5-95%)")
            else:
                ax.plot(x, series.values, color=colour, label=label)
        units = da.attrs.get("units", "")
        ax.set_title(name)
        ax.set_ylabel(f"{name} ({units})" if units else name)
        ax.set_xlabel("date" if "date" in ds.coords else "time (years)")
        if len(sites) <= 12:
            ax.legend(fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(str(ds.attrs.get("title", "")), fontsize=11)
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def plot_simulation(ds: xr.Dataset, path: str | Path) -> Path:
    """Save a PNG: stage shares over time, and the adopted fraction per site.

    Stochastic datasets (with a ``replicate`` dimension) show the median and the 5-95% band. A model
    without an ``adopted`` stock (a user model) gets one panel per saved output instead.
    """
    if "adopted" not in ds:
        return _plot_outputs(ds, path)
    plt = _pyplot()
    x = ds["date"].values if "date" in ds.coords else ds["time"].values
    xlabel = "date" if "date" in ds.coords else "time (years)"
    stages = [s for s in STAGES if s in ds]
    pop = ds["population"] if "population" in ds else None
    ncols = 2 if stages and pop is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    if stages and pop is not None:
        total = pop.sum("site")
        shares = [(ds[s].sum("site") / total) for s in stages]
        if "replicate" in ds.dims:
            shares = [s.mean("replicate") for s in shares]
        ax.stackplot(x, *[np.asarray(s) for s in shares], labels=stages, colors=OKABE_ITO[: len(stages)], alpha=0.85)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of all organisations")
        ax.set_title("Stages of spread, all sites" + (" (mean of replicates)" if "replicate" in ds.dims else ""))
        ax.legend(loc="center left", fontsize=8, frameon=False)
        ax.set_xlabel(xlabel)
        ax = axes[0, 1]
    frac = ds["adopted"] / ds["population"] if pop is not None else ds["adopted"]
    for i, site in enumerate(ds["site"].values):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        series = frac.sel(site=site)
        if "replicate" in series.dims:
            lo, mid, hi = (series.quantile(q, "replicate").values for q in (0.05, 0.5, 0.95))
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)
            ax.plot(x, mid, color=colour, label=f"{site} (median, 5-95%)")
        else:
            ax.plot(x, series.values, color=colour, label=str(site))
    ax.set_ylabel("adopted fraction" if pop is not None else "adopted")
    ax.set_xlabel(xlabel)
    ax.set_title("Adoption by site")
    if pop is not None:
        ax.set_ylim(0, 1)
    if ds.sizes["site"] <= 12:
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(str(ds.attrs.get("title", "")), fontsize=11)
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out
