"""Observation models linking the model's expected adoption to observed counts.

All work on arrays shaped ``(time, site)``. ``expected`` is the model's cumulative adoptions at
the start time followed by each observation time (``time + 1`` rows); ``observed`` the observed
cumulative adopters at the observation times; ``population`` is ``(site,)``.

- ``binomial``: new adopters in a period ~ Binomial(at risk, hazard), where at risk are those not
  yet adopted by the end of the previous period (observed) and the hazard is the model's share of
  its own not-yet-adopted who adopt in the period.
- ``beta_binomial``: the same mean with overdispersion ``concentration`` (a larger value is
  closer to binomial).
- ``negative_binomial``: new adopters ~ NegativeBinomial(mean = the model's new adoptions,
  concentration), for counts without a known population.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ._priors import Prior

OBSERVATIONS = ("binomial", "beta_binomial", "negative_binomial")
SCALES = ("count", "fraction")
CUMULATIVE = ("ever_adopted",)  # the flagship's cumulative-adopters stock
EPS = 1e-6  # keeps hazards inside (0, 1) and means positive


def period_hazard(expected: Any, population: Any) -> Any:
    """The model's hazard of adopting in each period, ``(time, site)``, clipped to (EPS, 1 - EPS)."""
    prev, cur = expected[:-1], expected[1:]
    remaining = jnp.maximum(jnp.asarray(population)[None] - prev, EPS)
    return jnp.clip((cur - prev) / remaining, EPS, 1 - EPS)


def at_risk(observed: Any, population: Any, initial: Any) -> Any:
    """Those not yet adopted at the start of each period, from the observed cumulative series."""
    prev = jnp.concatenate([initial[None, :], observed[:-1]], axis=0)
    return jnp.round(jnp.asarray(population)[None] - prev).astype(int)  # numpyro samples need integer counts


@dataclass(frozen=True)
class Observation:
    """An observation model, for overdispersed ones the prior of its concentration, and the model
    quantity the counts are compared with: the sum of the outputs ``cumulative`` (stocks or
    auxiliaries), in organisations (``scale = "count"``) or as a share of each site's population
    (``"fraction"``: expected count = population x share)."""

    kind: str = "binomial"
    concentration: Prior | None = None
    cumulative: tuple[str, ...] = CUMULATIVE
    scale: str = "count"

    def expected(self, out: dict[str, Any], population: Any) -> Any:
        """Expected cumulative adopters ``(time, site)`` (organisations) from simulation outputs
        ``out`` (``{name: (time, site)}``) and the data's ``population`` ``(site,)``."""
        total = out[self.cumulative[0]]
        for name in self.cumulative[1:]:
            total = total + out[name]
        return total * jnp.asarray(population)[None] if self.scale == "fraction" else total

    def distribution(self, expected: Any, observed: Any, population: Any, initial: Any) -> dist.Distribution:
        """Distribution of new adopters per period ``(time, site)``; samples ``concentration``."""
        if self.kind == "negative_binomial":
            mean = jnp.maximum(expected[1:] - expected[:-1], EPS)
            phi = self._concentration()
            return dist.NegativeBinomial2(mean, phi)
        n = at_risk(observed, population, initial)
        h = period_hazard(expected, population)
        if self.kind == "binomial":
            return dist.Binomial(total_count=n, probs=h)
        phi = self._concentration()
        return dist.BetaBinomial(h * phi, (1 - h) * phi, total_count=n)

    def _concentration(self) -> Any:
        prior = self.concentration or Prior("concentration", "Gamma", (("concentration", 2.0), ("rate", 0.1)))
        return numpyro.sample("concentration", prior.distribution())


def awareness_distribution(unaware: Any, population: Any) -> dist.Distribution:
    """Surveyed aware counts ~ Binomial(population, aware share of the model)."""
    pop = jnp.asarray(population)[None]
    share = jnp.clip((pop - unaware) / pop, EPS, 1 - EPS)
    return dist.Binomial(total_count=jnp.round(population).astype(int), probs=share)
