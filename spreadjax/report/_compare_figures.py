"""Which structure forecasts best, at a glance: from ``compare.nc``, mean CRPS per backtest origin
for each config (lower is better; the ranking's score), and beside it the share of held-out points
inside each config's 90% and 50% bands against their nominal levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .._io import write_atomic
from ._figures import OKABE_ITO, _pyplot


def plot_compare(result: xr.Dataset, path: str | Path) -> Path:
    """Save the two-panel PNG of a comparison (configs in ranking order, best first)."""
    plt = _pyplot()
    origins = np.asarray(result["origin"].values, float)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, name in enumerate(result["config"].values):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        r = result.sel(config=name)
        label = f"{i + 1}. {name} (mean CRPS {float(r['crps']):.4f})"
        axes[0].plot(origins, r["crps_by_origin"].values, "o-", color=colour, label=label)
        axes[1].plot(origins, r["covered90_by_origin"].values, "o-", color=colour, label=f"{name}: 90% band")
        axes[1].plot(origins, r["covered50_by_origin"].values, "s--", color=colour, label=f"{name}: 50% band")
    axes[0].set(xlabel="forecast origin (years)", ylabel="mean CRPS (share of organisations)",
                title="Forecast error by origin (lower is better)")
    axes[0].legend(fontsize=8)
    for nominal in (0.9, 0.5):
        axes[1].axhline(nominal, color="grey", lw=0.8, ls=":")
    axes[1].set(xlabel="forecast origin (years)", ylabel="held-out points inside the band", ylim=(0, 1.05),
                title="Coverage by origin (dotted: nominal 90% and 50%)")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out
