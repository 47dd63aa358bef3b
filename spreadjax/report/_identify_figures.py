"""Figures of ``spreadjax identify``: SBC rank histograms, and posterior z-score against contraction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def rank_histograms(res: Any, path: str | Path) -> Path:
    """One rank histogram per value of an :class:`~spreadjax.calibrate._sbc.SBCResult`, with the
    99% band of a bin count under uniform ranks (binomial); written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    from .._io import write_atomic

    n, k = res.ranks.shape
    cols = min(4, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    expected = n / res.bins
    lo, hi = binom.ppf([0.005, 0.995], n, 1 / res.bins)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.axis("off")
            continue
        counts = np.bincount((res.ranks[:, i] * res.bins) // (res.draws + 1), minlength=res.bins)
        bad = res.p_values[i] < 0.01
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.axhline(expected, color="0.5", lw=0.8)
        ax.bar(np.arange(res.bins), counts, width=0.9, color="#c0392b" if bad else "#2c7fb8", zorder=2)
        ax.set_title(f"{res.labels[i]}\nchi-square p = {res.p_values[i]:.2g}", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    fig.suptitle(f"SBC rank histograms: {n} replications, ranks among {res.draws} draws in {res.bins} bins "
                 "(grey: 99% band if uniform)", fontsize=9)
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def zscore_contraction(res: Any, path: str | Path) -> Path:
    """Posterior z-score against contraction, one point per replication and value (Schad,
    Betancourt & Vasishth 2021): well-identified values sit at the right with |z| < 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import write_atomic

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, lab in enumerate(res.labels):
        ax.scatter(res.contraction[:, i], res.zscore[:, i], s=8, alpha=0.6, label=lab)
    ax.axvline(0.1, color="0.6", ls=":", lw=0.8)
    ax.axvline(0.5, color="0.6", ls="--", lw=0.8)
    ax.set_xlim(min(-0.05, float(np.nanmin(res.contraction))), 1.02)
    ax.set_xlabel("posterior contraction 1 - var(post) / var(prior)")
    ax.set_ylabel("posterior z-score (mean - truth) / sd")
    ax.legend(fontsize=6, ncol=2, markerscale=1.5)
    fig.tight_layout()
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out
