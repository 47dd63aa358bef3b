"""Priors for free parameters, shared by all sites or per site, pooled or not.

A :class:`Prior` names a numpyro distribution and its arguments, and how sites share it
(``pooling``):

- ``"complete"`` (the default): one value for every site, drawn from the prior;
- ``"partial"`` (``hierarchical = true`` in a config): the prior describes the population-level
  value ``theta``; each site gets ``theta_s = T(T^-1(theta) + tau * z_s)`` with
  ``z_s ~ Normal(0, 1)`` and ``tau ~ HalfNormal(group_scale)``, where ``T`` maps the real line
  onto the prior's support (``exp`` for positive parameters, a scaled logistic for intervals).
  That is the non-centred parameterisation, which NUTS samples well when sites carry little
  information;
- ``"none"``: each site draws its own value from the prior, independently, so the data of one
  site say nothing about another's and differences between sites are never shrunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to

from .._errors import ConfigError

#: Distribution name -> (numpyro class, argument names in order).
DISTRIBUTIONS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "Normal": (dist.Normal, ("loc", "scale")),
    "LogNormal": (dist.LogNormal, ("loc", "scale")),
    "HalfNormal": (dist.HalfNormal, ("scale",)),
    "HalfCauchy": (dist.HalfCauchy, ("scale",)),
    "Beta": (dist.Beta, ("concentration1", "concentration0")),
    "Gamma": (dist.Gamma, ("concentration", "rate")),
    "Exponential": (dist.Exponential, ("rate",)),
    "Uniform": (dist.Uniform, ("low", "high")),
    "TruncatedNormal": (dist.TruncatedNormal, ("loc", "scale", "low", "high")),
}
POOLING = ("complete", "partial", "none")
_POSITIVE_ARGS = {"scale", "concentration1", "concentration0", "concentration", "rate"}


@dataclass(frozen=True)
class Prior:
    """A prior on parameter ``name``: ``dist`` with ``args`` (name -> value)."""

    name: str
    dist: str
    args: tuple[tuple[str, float], ...]
    pooling: str = "complete"
    group_scale: float = 0.5
    #: 0 for a parameter; ``k`` for a schedule's ``k`` breakpoint values, one draw each, shared by all
    #: sites (a time-varying input estimated from the data). Left out of the repr, which is part of a
    #: config's identity: the breakpoints are already there through the config's schedules.
    breakpoints: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.pooling not in POOLING:
            raise ValueError(f"pooling = {self.pooling!r}: expected one of {', '.join(POOLING)}")

    @property
    def hierarchical(self) -> bool:
        """Partially pooled across sites."""
        return self.pooling == "partial"

    @property
    def per_site(self) -> bool:
        """One value per site (partial or no pooling)."""
        return self.pooling != "complete"

    def latent_names(self) -> tuple[str, ...]:
        """The numpyro sample sites this prior draws (what NUTS samples)."""
        return (f"{self.name}_pop", f"{self.name}_tau", f"{self.name}_z") if self.hierarchical else (self.name,)

    def reported_names(self) -> tuple[str, ...]:
        """The values a posterior reports: the parameter, and for partial pooling its population
        value and between-site scale."""
        return (self.name, f"{self.name}_pop", f"{self.name}_tau") if self.hierarchical else (self.name,)

    def distribution(self) -> dist.Distribution:
        cls, _ = DISTRIBUTIONS[self.dist]
        return cls(**dict(self.args))

    def support_bounds(self) -> tuple[float, float]:
        """Lower and upper ends of the prior's support."""
        d = dict(self.args)
        if self.dist in ("Normal",):
            return -math.inf, math.inf
        if self.dist in ("LogNormal", "HalfNormal", "HalfCauchy", "Gamma", "Exponential"):
            return 0.0, math.inf
        if self.dist == "Beta":
            return 0.0, 1.0
        return float(d.get("low", -math.inf)), float(d.get("high", math.inf))


def parse_prior(name: str, table: Any, where: str, lower: float, upper: float) -> Prior:
    """Validate one ``[priors.NAME]`` table against the parameter's valid range."""
    label = f"[priors.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {label} must be a table like {{ dist = \"LogNormal\", loc = 0, scale = 1 }}")
    allowed_keys = {"dist", "hierarchical", "pooling", "group_scale"}
    kind = table.get("dist")
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: {label} dist = {kind!r}: expected one of {', '.join(DISTRIBUTIONS)}")
    _, arg_names = DISTRIBUTIONS[kind]
    for key in table:
        if key not in allowed_keys | set(arg_names):
            raise ConfigError(f"{where}: {label} unknown key {key!r}; {kind} takes {', '.join(arg_names)}")
    args = []
    for arg in arg_names:
        if arg not in table:
            raise ConfigError(f"{where}: {label} {kind} needs {arg} (it takes {', '.join(arg_names)})")
        value = table[arg]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {label} {arg} = {value!r}: expected a finite number")
        if arg in _POSITIVE_ARGS and value <= 0:
            raise ConfigError(f"{where}: {label} {arg} = {value!r} must be positive")
        args.append((arg, float(value)))
    pooling = _pooling(table, label, where)
    group_scale = table.get("group_scale", 0.5)
    if isinstance(group_scale, bool) or not isinstance(group_scale, (int, float)) or not 0 < group_scale < math.inf:
        raise ConfigError(f"{where}: {label} group_scale = {group_scale!r} must be a positive, finite number")
    if "group_scale" in table and pooling != "partial":
        raise ConfigError(f"{where}: {label} group_scale is the between-site scale of partial pooling; "
                          f"this prior has pooling = {pooling!r}")
    prior = Prior(name, kind, tuple(args), pooling, float(group_scale))
    lo, hi = prior.support_bounds()
    if kind in ("Uniform", "TruncatedNormal") and not lo < hi:
        raise ConfigError(f"{where}: {label} low = {lo:g} must be below high = {hi:g}")
    if lo < lower or hi > upper:
        raise ConfigError(
            f"{where}: {label} {kind} has support [{lo:g}, {hi:g}] but {name} must lie in "
            f"[{lower:g}, {upper:g}]; choose a prior on that range (e.g. LogNormal or Gamma for rates, "
            "Beta for shares)"
        )
    return prior


def _pooling(table: dict, label: str, where: str) -> str:
    """``pooling`` from a prior's table; ``hierarchical = true`` is the older spelling of
    ``pooling = "partial"``."""
    hierarchical = table.get("hierarchical")
    if hierarchical is not None and not isinstance(hierarchical, bool):
        raise ConfigError(f"{where}: {label} hierarchical = {hierarchical!r}: expected true or false")
    pooling = table.get("pooling")
    if pooling is None:
        return "partial" if hierarchical else "complete"
    if pooling not in POOLING:
        raise ConfigError(f"{where}: {label} pooling = {pooling!r}: expected one of "
                          + ", ".join(f'"{p}"' for p in POOLING))
    if hierarchical is not None and hierarchical != (pooling == "partial"):
        raise ConfigError(f"{where}: {label} hierarchical = {str(hierarchical).lower()} contradicts "
                          f"pooling = {pooling!r}; give pooling alone")
    return pooling


def sample_parameter(prior: Prior, n_sites: int) -> Any:
    """Sample ``prior`` inside a numpyro model; returns a scalar (complete pooling) or ``(site,)``.

    A schedule's prior (``breakpoints > 0``) draws one value per breakpoint, ``(breakpoint,)``,
    shared by all sites. Sample sites: with partial pooling ``{name}_pop`` is the population-level value, ``{name}_tau``
    the between-site scale and ``{name}_z`` the standardised site offsets; otherwise ``{name}``.
    """
    if prior.breakpoints:
        with numpyro.plate(f"{prior.name}_breakpoint", prior.breakpoints):
            return numpyro.sample(prior.name, prior.distribution())
    if prior.pooling == "none":
        with numpyro.plate("site", n_sites):
            return numpyro.sample(prior.name, prior.distribution())
    theta = numpyro.sample(prior.name if not prior.hierarchical else f"{prior.name}_pop", prior.distribution())
    if not prior.hierarchical:
        return theta
    d = prior.distribution()
    transform = biject_to(d.support)
    tau = numpyro.sample(f"{prior.name}_tau", dist.HalfNormal(prior.group_scale))
    with numpyro.plate("site", n_sites):
        z = numpyro.sample(f"{prior.name}_z", dist.Normal(0.0, 1.0))
    per_site = transform(transform.inv(theta) + tau * z)
    return numpyro.deterministic(prior.name, per_site)


__all__ = ["DISTRIBUTIONS", "POOLING", "Prior", "parse_prior", "sample_parameter"]
