"""The backtest at a glance: did the bands hold what happened, and did the model beat the references?

Three panels from ``backtest.nc``: the share of held-out points inside the 50% and 90% bands per
origin against their nominal levels (the 85-95% target shaded; a 90% coverage outside it in
red), the PIT histogram (flat when the forecast is calibrated), and mean CRPS per origin for the
model, the per-site Bass fit and "no change" (lower is better).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .._io import write_atomic
from ._figures import OKABE_ITO, _pyplot

RED = "#D55E00"
LABELS = {"model": "spreadjax model", "bass": "Bass fit per site", "no_change": "no change"}


def plot_backtest(result: xr.Dataset, path: str | Path) -> Path:
    """Save the three-panel PNG of a backtest's scores."""
    plt = _pyplot()
    lo, hi = result.attrs.get("coverage90_ok", (0.85, 0.95))
    origins = np.asarray(result["origin"].values, float)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    ax.axhspan(lo, hi, color="#009E73", alpha=0.15, label=f"target for the 90% band ({lo:.0%}-{hi:.0%})")
    for name, nominal, style in (("covered90", 0.9, "o-"), ("covered50", 0.5, "s--")):
        cov = result[f"{name}_by_origin"].sel(forecaster="model").values
        ax.plot(origins, cov, style, color=OKABE_ITO[0], label=f"{int(nominal * 100)}% band: share inside")
        ax.axhline(nominal, color="grey", lw=0.8, ls=":")
        if name == "covered90":
            bad = (cov < lo) | (cov > hi)
            ax.plot(origins[bad], cov[bad], "o", color=RED, ms=9, label="90% coverage off target")
    ax.set(xlabel="forecast origin (years)", ylabel="held-out points inside the band", ylim=(0, 1.05),
           title="Did the bands hold what happened?")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    hist = result["pit_histogram"].values
    centres = result["pit_bin"].values
    ax.bar(centres, hist, width=0.09, color=OKABE_ITO[0])
    ax.axhline(hist.sum() / len(hist), color="grey", ls=":", label="calibrated (flat)")
    ax.set(xlabel="PIT (where the observation fell in the forecast)", ylabel="held-out points",
           title="PIT histogram (U-shape: too narrow; hump: too wide)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for i, f in enumerate(result["forecaster"].values):
        ax.plot(origins, result["crps_by_origin"].sel(forecaster=f).values, "o-", color=OKABE_ITO[i],
                label=LABELS.get(str(f), str(f)))
    ax.set(xlabel="forecast origin (years)", ylabel="mean CRPS (share of organisations)",
           title="Forecast error (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out
