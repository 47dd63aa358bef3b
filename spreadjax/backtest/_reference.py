"""The naive reference: a Bass curve fitted to each site by least squares, with a parametric
bootstrap for its uncertainty.

Per site, the cumulative adopted fraction ``F(t) = f0 + (m - f0) B(t - t0)`` with the Bass curve
``B(s) = (1 - e^{-(p+q)s}) / (1 + (q/p) e^{-(p+q)s})`` (Bass 1969), ``f0`` the share adopted at
the start and ``m`` the ceiling, is fitted to the training counts by ``scipy.optimize``'s
bounded least squares. The bootstrap redraws the training counts from the fitted curve
(binomial new adopters per period) and refits; each refit is one forecast curve. Samples then
get observation noise from the origin on, as the model's do (:mod:`._forecast`).
"""

from __future__ import annotations

import warnings

import numpy as np

BOUNDS = ([1e-5, 0.0, 1e-3], [2.0, 10.0, 1.0])  # p, q (per year), m (share of the population)


def bass_fraction(t: np.ndarray, p: float, q: float, m: float, f0: float, t0: float) -> np.ndarray:
    """Cumulative adopted share at years ``t`` of a Bass curve that starts at ``f0`` at ``t0``."""
    s = np.maximum(np.asarray(t, float) - t0, 0.0)
    e = np.exp(-(p + q) * s)
    return f0 + (max(m, f0) - f0) * (1.0 - e) / (1.0 + (q / p) * e)


def fit_bass(t: np.ndarray, share: np.ndarray, f0: float, t0: float) -> np.ndarray:
    """Least-squares ``(p, q, m)`` of one site's observed shares ``share`` at years ``t``."""
    from scipy.optimize import least_squares

    lo = max(float(np.max(share, initial=f0)), BOUNDS[0][2])
    x0 = np.array([0.03, 0.5, min(max(lo * 1.2, 0.5), 1.0)])
    bounds = (np.array([BOUNDS[0][0], BOUNDS[0][1], min(lo, 1.0 - 1e-9)]), np.array(BOUNDS[1]))
    x0 = np.clip(x0, bounds[0], bounds[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = least_squares(lambda x: bass_fraction(t, *x, f0, t0) - share, x0, bounds=bounds, method="trf")
    return fit.x


def bass_bootstrap(times: np.ndarray, cumulative: np.ndarray, initial: np.ndarray, population: np.ndarray,
                   t0: float, ahead: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrapped Bass forecasts of cumulative adoptions ``(n_boot, len(ahead) + 1, site)``: each
    refit's curve at the origin (``times[-1]``) and at the years ``ahead``, in organisations.

    ``times`` ``(time,)`` and ``cumulative`` ``(time, site)``: the training observations;
    ``initial`` ``(site,)``: adopters at ``t0``.
    """
    rng = np.random.default_rng(seed)
    pop = np.asarray(population, float)
    f0 = np.asarray(initial, float) / pop
    at = np.concatenate([[times[-1]], ahead])
    out = np.empty((n_boot, len(at), len(pop)))
    for j in range(len(pop)):
        share = np.asarray(cumulative[:, j], float) / pop[j]
        best = fit_bass(times, share, f0[j], t0)
        curve = bass_fraction(np.concatenate([[t0], times]), *best, f0[j], t0)
        hazard = np.clip(np.diff(curve) / np.maximum(1.0 - curve[:-1], 1e-9), 0.0, 1.0)
        cum = np.empty((n_boot, len(times)))
        c = np.full(n_boot, float(initial[j]))
        for i, h in enumerate(hazard):  # the training periods, every bootstrap draw at once
            c = c + rng.binomial(np.round(pop[j] - c).astype(np.int64), h)
            cum[:, i] = c
        for b in range(n_boot):  # one bounded least-squares refit per draw
            refit = fit_bass(times, cum[b] / pop[j], f0[j], t0)
            out[b, :, j] = pop[j] * bass_fraction(at, *refit, f0[j], t0)
    return out
