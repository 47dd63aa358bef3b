"""Leave-future-out: the exact one-step-ahead log predictive density at each origin.

At origin ``k`` (observations up to index ``k`` seen), the forecast of the next period's new
adopters ``y_{k+1}`` is a mixture over the forecaster's draws ``s`` of the observation model
conditioned on the counts observed at the origin:

    lpd_{k+1} = log (1/S) sum_s p(y_{k+1} | draw s, C_k)

(Bürkner, Gabry and Vehtari 2020, "Approximate leave-future-out cross-validation for Bayesian
time series models"; here exact: the model is refitted at every origin). For the calibrated model
``p`` is the calibration's own observation model (binomial, beta-binomial with the draw's
concentration, or negative binomial), evaluated by ``numpyro.infer.util.log_likelihood`` on the
full data; for the per-site Bass reference it is the binomial the Bass forecast samples from.
"No change" is a point forecast with no density, so it has none. Summed over origins and sites
this is ``elpd_lfo``: larger is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._forecast import hazards


def mixture_lpd(log_lik: np.ndarray) -> np.ndarray:
    """``log mean_s exp(log_lik[s])`` over the leading (draw) axis, computed stably."""
    from scipy.special import logsumexp

    log_lik = np.asarray(log_lik, float)
    return logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])


def model_lpd_one_ahead(full: Any, samples: dict[str, np.ndarray], k: int) -> np.ndarray:
    """``(site,)``: the one-step-ahead log predictive density of the observation after index ``k``
    under the posterior draws ``samples`` (``(chain, draw, ...)``, fitted up to ``k``), with
    ``full`` the calibration problem on all the data (its observation model, conditioned on the
    observed counts)."""
    from ..calibrate._infer import pointwise_log_likelihood

    ll = pointwise_log_likelihood(full, samples)["new_adopters"]  # (chain, draw, time, site)
    return mixture_lpd(ll.reshape((-1,) + ll.shape[2:])[:, k + 1])


def binomial_lpd_one_ahead(expected: np.ndarray, at_origin: np.ndarray, observed_next: np.ndarray,
                           population: np.ndarray) -> np.ndarray:
    """``(site,)``: log mean_s Binomial(y | population - at_origin, h_s), with ``h_s`` the hazard of
    each sampled curve ``expected`` ``(sample, 2, site)`` (at the origin and one period on, in
    organisations) as :func:`._forecast.sample_counts` draws it; ``at_origin`` and
    ``observed_next`` the observed cumulative adopters."""
    from scipy.stats import binom

    pop = np.asarray(population, float)
    h = hazards(np.asarray(expected, float)[:, :2], pop)[:, 0]
    left = np.round(pop - np.asarray(at_origin, float))
    y = np.round(np.asarray(observed_next, float) - np.asarray(at_origin, float))
    return mixture_lpd(binom.logpmf(y[None], left[None], h))
