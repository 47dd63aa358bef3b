"""Forecasts of observed counts from an origin: the calibrated model's, and the references'.

A forecast is a set of samples of the cumulative adopters at each held-out observation time,
``(sample, time, site)`` in organisations. Every forecaster starts from what was observed at the
origin and adds new adopters period by period with the observation model the calibration uses:

- ``binomial``: new ~ Binomial(not yet adopted, hazard), the hazard being the forecaster's share
  of its own not-yet-adopted who adopt in the period;
- ``beta_binomial``: the hazard first drawn from Beta(h phi, (1 - h) phi);
- ``negative_binomial``: new ~ NegativeBinomial(mean = the forecaster's new adoptions, phi).

So the samples carry parameter uncertainty (posterior draws, bootstrap fits) and observation
noise, as a policy lead's band should, and never use a count after the origin.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-6


def hazards(expected: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Per-period hazards ``(sample, time, site)`` from cumulative curves ``(sample, time + 1, site)``
    (the first row at the origin), clipped to (EPS, 1 - EPS)."""
    prev, cur = expected[:, :-1], expected[:, 1:]
    remaining = np.maximum(population[None, None, :] - prev, EPS)
    return np.clip((cur - prev) / remaining, EPS, 1 - EPS)


@functools.partial(jax.jit, static_argnames="kind")
def _sample(key: Any, start: Any, population: Any, hazard: Any, mean_new: Any, phi: Any, kind: str) -> Any:
    """Cumulative counts ``(sample, time, site)``: ``lax.scan`` over the held-out periods."""

    def step(cum, xs):
        k, h, m = xs
        k1, k2 = jax.random.split(k)
        left = jnp.maximum(population[None, :] - cum, 0.0)
        if kind == "negative_binomial":
            rate = jax.random.gamma(k1, phi[:, None], m.shape) / phi[:, None] * jnp.maximum(m, EPS)
            new = jnp.minimum(jax.random.poisson(k2, rate, m.shape).astype(cum.dtype), left)
        else:
            if kind == "beta_binomial":
                h = jax.random.beta(k1, h * phi[:, None], (1 - h) * phi[:, None])
            new = jax.random.binomial(k2, left, jnp.clip(h, 0.0, 1.0), dtype=cum.dtype)
        cum = cum + new
        return cum, cum

    keys = jax.random.split(key, hazard.shape[1])
    xs = (keys, jnp.moveaxis(hazard, 1, 0), jnp.moveaxis(mean_new, 1, 0))
    _, path = jax.lax.scan(step, jnp.broadcast_to(start, hazard[:, 0].shape), xs)
    return jnp.moveaxis(path, 0, 1)


def sample_counts(expected: np.ndarray, observed_at_origin: np.ndarray, population: np.ndarray,
                  kind: str, seed: int, concentration: np.ndarray | None = None) -> np.ndarray:
    """Samples of cumulative observed adopters ``(sample, time, site)`` at the held-out times.

    ``expected``: the forecaster's cumulative adoptions ``(sample, time + 1, site)``, the first row
    at the origin; ``observed_at_origin`` ``(site,)``; ``concentration`` ``(sample,)`` for the
    overdispersed observation models.
    """
    expected = np.asarray(expected, np.float64)
    pop = np.asarray(population, np.float64)
    n = expected.shape[0]
    phi = np.ones(n) if concentration is None else np.broadcast_to(np.asarray(concentration, float), (n,))
    h = hazards(expected, pop)
    mean_new = np.maximum(np.diff(expected, axis=1), 0.0)
    out = _sample(jax.random.PRNGKey(seed), jnp.asarray(np.round(observed_at_origin), jnp.float32),
                  jnp.asarray(pop, jnp.float32), jnp.asarray(h, jnp.float32), jnp.asarray(mean_new, jnp.float32),
                  jnp.asarray(phi, jnp.float32), kind)
    return np.asarray(out, np.float64)


def no_change(observed_at_origin: np.ndarray, n_times: int) -> np.ndarray:
    """The "no change" reference: the origin's counts at every held-out time, one sample."""
    return np.broadcast_to(np.asarray(observed_at_origin, float)[None, None, :],
                           (1, n_times, len(observed_at_origin))).copy()
