"""Scores of sampled forecasts against what was observed, and their summaries.

Everything is in shares of the population (adopted / population), so sites of 7 and 900
organisations weigh alike. Per held-out (time, site) point:

- ``crps``: the continuous ranked probability score of the samples (``scoringrules.crps_ensemble``
  with the probability-weighted-moment estimator: the "fair" CRPS, unbiased whatever the number of
  samples, so forecasts of 400 and of 100 samples compare fairly, in O(m log m) time and O(m)
  memory; a single sample, a point forecast, scores its absolute error);
- ``covered50`` / ``covered90``: whether the observation lies in the central 50% / 90% interval of
  the samples (quantiles of type 7; an observation on a boundary is inside);
- ``pit``: the randomised probability integral transform ``F(y-) + V (F(y) - F(y-))``, uniform on
  (0, 1) for a calibrated forecast of counts (Czado, Gneiting and Held 2009);
- ``bias``: the median forecast minus the observation.

Beside them, per origin and site, ``lpd_one_ahead``: the log predictive density of the next
observation (:mod:`._lpd`), summed to ``elpd_lfo`` (leave-future-out; larger is better).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PIT_BINS = 10


def score_samples(observed: np.ndarray, samples: np.ndarray, population: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Scores of ``samples`` ``(sample, time, site)`` against ``observed`` ``(time, site)``, counts;
    returns arrays ``(time, site)`` (and ``quantiles`` ``(quantile, time, site)``), shares."""
    import scoringrules

    pop = np.asarray(population, float)[None, :]
    y = np.asarray(observed, float) / pop
    x = np.asarray(samples, float) / pop[None]
    q = np.quantile(x, QUANTILES, axis=0)
    below = (x < y[None] - 1e-12).mean(axis=0)
    at_most = (x <= y[None] + 1e-12).mean(axis=0)
    v = np.random.default_rng(seed).uniform(size=y.shape)
    return {
        "crps": (np.abs(x[0] - y) if x.shape[0] == 1 else
                 np.asarray(scoringrules.crps_ensemble(y, x, m_axis=0, estimator="pwm"), float)),
        "covered50": ((q[1] <= y + 1e-12) & (y <= q[3] + 1e-12)).astype(float),
        "covered90": ((q[0] <= y + 1e-12) & (y <= q[4] + 1e-12)).astype(float),
        "pit": below + v * (at_most - below),
        "bias": q[2] - y,
        "quantiles": q,
    }


def summarize_scores(scores: xr.Dataset) -> xr.Dataset:
    """Coverage, mean CRPS, CRPS relative to each reference, bias and the PIT histogram, pooled over
    every held-out point, by origin and by site. ``scores`` has dims ``(origin, forecaster, time,
    site)`` with NaN where a point was not held out."""
    def pooled(da: xr.DataArray, keep: tuple[str, ...]) -> xr.DataArray:
        return da.mean([d for d in da.dims if d not in keep], skipna=True)

    out = {}
    for by, keep in (("all", ("forecaster",)), ("origin", ("forecaster", "origin")), ("site", ("forecaster", "site"))):
        for name in ("covered50", "covered90", "crps", "bias"):
            out[f"{name}_by_{by}"] = pooled(scores[name], keep)
        crps = out[f"crps_by_{by}"]
        out[f"relative_crps_by_{by}"] = crps.sel(forecaster="model") / crps
        out[f"points_by_{by}"] = scores["crps"].sel(forecaster="model").notnull().sum(
            [d for d in scores["crps"].dims if d not in keep and d != "forecaster"])
    if "lpd_one_ahead" in scores:  # leave-future-out: summed log densities, NaN where a forecaster has none
        lpd = scores["lpd_one_ahead"]
        out["elpd_lfo_by_all"] = lpd.sum(["origin", "site"], skipna=False)
        out["elpd_lfo_by_origin"] = lpd.sum("site", skipna=False)
        out["elpd_lfo_by_site"] = lpd.sum("origin", skipna=False)
        n = lpd.sizes["origin"] * lpd.sizes["site"]  # its standard error as for LOO: sqrt(n var(lpd_i))
        out["elpd_lfo_se_by_all"] = np.sqrt(n * lpd.var(["origin", "site"], ddof=1, skipna=False))
    pit = scores["pit"].sel(forecaster="model").values
    pit = pit[np.isfinite(pit)]
    hist, edges = np.histogram(pit, bins=PIT_BINS, range=(0.0, 1.0))
    out["pit_histogram"] = xr.DataArray(hist, dims="pit_bin", coords={"pit_bin": (edges[:-1] + edges[1:]) / 2})
    return xr.Dataset(out)
