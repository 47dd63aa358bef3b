"""A calibration problem: a simulation, fixed parameters, priors, data and an observation model,
turned into a numpyro model.

The simulation saves the model's cumulative adoptions (and, with survey data, the unaware) at
the start time and every observation time; the numpyro model samples the free parameters,
simulates once, and scores the observed new adopters per period.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import xarray as xr

from .._errors import DataError
from ..core import Simulation
from ..core._sensitivity import FORWARD_MAX_INPUTS, forward_sensitivities, n_inputs
from ._observe import Observation, awareness_distribution
from ._priors import Prior, sample_parameter

GRADIENTS = ("auto", "forward", "reverse")


@dataclass(frozen=True, eq=False)
class CountData:
    """Observed counts as arrays: ``new``/``cumulative`` ``(time, site)``, ``population``
    ``(site,)``, ``initial`` adopters before the first period, optional ``aware`` with a mask, and
    an optional ``fit_mask`` ``(time,)``: only the periods where it is true are scored (a fit up to
    an origin that keeps the data's full length, so that every origin shares one program)."""

    times: np.ndarray
    sites: tuple[str, ...]
    new: Any
    cumulative: Any
    population: Any
    initial: Any
    aware: Any = None
    aware_mask: Any = None
    fit_mask: Any = None

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, sites: tuple[str, ...], dtype: Any) -> "CountData":
        """From a dataset of :func:`load_counts`, in the config's site order."""
        missing = [s for s in sites if s not in ds["site"].values]
        extra = [s for s in ds["site"].values if s not in sites]
        if missing or extra:
            raise DataError(
                f"{ds.attrs.get('file', 'data')}: sites {sorted(map(str, ds['site'].values))} do not match "
                f"the config's [sites] names {list(sites)}"
            )
        ds = ds.sel(site=list(sites))
        cum = np.asarray(ds["adopters"].values, dtype=float)
        new = np.asarray(ds["new_adopters"].values, dtype=float)
        initial = cum[0] - new[0]
        aware = mask = None
        if "aware" in ds and np.any(np.isfinite(ds["aware"].values)):
            raw = np.asarray(ds["aware"].values, dtype=float)
            mask = np.isfinite(raw)
            aware = np.where(mask, raw, 0.0)
        to = lambda a: None if a is None else jnp.asarray(a, dtype)  # noqa: E731
        return cls(np.asarray(ds["time"].values, dtype=float), tuple(sites), to(new), to(cum),
                   to(np.asarray(ds["population"].values, dtype=float)), to(initial), to(aware),
                   None if mask is None else jnp.asarray(mask))

    def truncate(self, until: float) -> "CountData":
        """Only the periods ending at or before ``until`` years (for out-of-sample checks)."""
        keep = self.times <= until + 1e-9
        if not keep.any():
            raise DataError(f"no observations at or before {until:g} years")
        cut = lambda a: None if a is None else a[np.flatnonzero(keep)]  # noqa: E731
        return CountData(self.times[keep], self.sites, cut(self.new), cut(self.cumulative), self.population,
                         self.initial, cut(self.aware), cut(self.aware_mask))

    def mask_after(self, until: float) -> "CountData":
        """The same periods, with only those ending at or before ``until`` years scored: a fit to
        this equals a fit to :meth:`truncate`, and has the full data's shapes."""
        keep = self.times <= until + 1e-9
        if not keep.any():
            raise DataError(f"no observations at or before {until:g} years")
        return replace(self, fit_mask=jnp.asarray(keep))


@dataclass(frozen=True, eq=False)
class CalibrationProblem:
    """Everything needed to score parameter values against data.

    ``sim`` must output the names ``observation.cumulative`` (and ``unaware`` when ``data.aware`` is given) at
    ``(t0, *data.times)``; ``base_params`` hold the fixed values; ``priors`` the free ones.
    ``gradients``: how the simulation is differentiated: ``"forward"`` sensitivities (one pass
    with a tangent per free number; fastest for a few), ``"reverse"`` mode (needed for Hessians,
    as in the Laplace approximation), or ``"auto"`` (forward up to
    ``FORWARD_MAX_INPUTS`` free numbers).
    """

    sim: Simulation
    base_params: dict
    network: Any
    priors: tuple[Prior, ...]
    observation: Observation
    data: CountData
    gradients: str = "auto"

    def __post_init__(self) -> None:
        if self.gradients not in GRADIENTS:
            raise ValueError(f"gradients = {self.gradients!r}: expected one of {', '.join(GRADIENTS)}")

    @property
    def n_sites(self) -> int:
        return len(self.data.sites)

    def params(self, values: dict[str, Any]) -> dict:
        """Base parameters with ``values`` (scalars or ``(site,)``; a schedule's ``(breakpoint,)``
        values, shared by the sites) substituted."""
        params = dict(self.base_params)
        for name, value in values.items():
            like = params[name]
            if isinstance(like, dict):  # a schedule: {"times": (k,), "values": (k, site)}
                shape = like["values"].shape
                value = jnp.broadcast_to(jnp.asarray(value, like["values"].dtype)[:, None], shape)
                params[name] = {**like, "values": value}
                continue
            params[name] = jnp.broadcast_to(jnp.asarray(value, like.dtype), like.shape)
        return params

    def simulate(self, values: dict[str, Any]) -> dict[str, Any]:
        """The simulation's outputs with the free ``values`` substituted, differentiable in
        ``values`` as ``gradients`` says."""
        run = lambda v: self.sim(self.params(v), self.network)  # noqa: E731
        forward = self.gradients == "forward" or (
            self.gradients == "auto" and n_inputs(values) <= FORWARD_MAX_INPUTS)
        if not forward:
            return run(values)
        # sites independent: no network and no site_sum/site_mean (any other callable: assume coupled)
        independent = (self.network is None and not getattr(getattr(self.sim, "model", None), "couples_sites", True)
                       and not any(p.breakpoints for p in self.priors))  # a schedule shared by the sites couples them
        return forward_sensitivities(run, independent_sites=independent)(values)

    def model(self, observe: bool = True) -> None:
        """The numpyro model. With ``observe=False`` it samples data instead (predictive)."""
        values = {p.name: sample_parameter(p, self.n_sites) for p in self.priors}
        out = self.simulate(values)
        d = self.data
        expected = self.observation.expected(out, d.population)
        numpyro.deterministic("expected_adopters", expected[1:])
        obs_dist = self.observation.distribution(expected, d.cumulative, d.population, d.initial)
        if d.fit_mask is not None:
            obs_dist = obs_dist.mask(jnp.asarray(d.fit_mask)[:, None])
        numpyro.sample("new_adopters", obs_dist, obs=d.new if observe else None)
        if d.aware is not None:
            unaware = out["unaware"][1:]  # a share, as the cumulative quantity, with scale = "fraction"
            unaware = unaware * jnp.asarray(d.population)[None] if self.observation.scale == "fraction" else unaware
            mask = d.aware_mask if d.fit_mask is None else d.aware_mask & jnp.asarray(d.fit_mask)[:, None]
            aware_dist = awareness_distribution(unaware, d.population).mask(mask)
            numpyro.sample("aware", aware_dist, obs=d.aware if observe else None)
