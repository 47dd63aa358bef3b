"""Discrete-time network hazard: who adopts in which period, given how many contacts already had.

Individual adoption data (one adoption time per person, right-censored at the end of
observation) becomes **person-periods**: for node ``i`` and period ``t = 1..T`` (period ``t`` is
``(periods[t-2], periods[t-1]]`` in years, period 1 everything up to ``periods[0]``)

* ``at_risk[i, t]``: ``i`` had not adopted before ``t`` and period ``t`` ends no later than
  ``i``'s end of observation;
* ``event[i, t]``: ``i`` adopts in ``t`` (only where at risk);
* ``exposure[i, t]``: the share of ``i``'s contacts who had adopted by the end of period
  ``t - lag``, ``E_i = sum_j A_ij a_j(t - lag) / sum_j A_ij`` with ``A[i, j]`` the tie ``i -> j``
  (``i`` names ``j``, so ``j`` influences ``i``: the out-ties of :func:`~spreadjax.calibrate.adjacency`,
  netdiffuseR's default); ``0`` for a node without contacts, ``NaN`` where ``t - lag < 1``
  (what happened before the first period is not observed).

The hazard of adopting in period ``t`` for a node at risk is

    h_it = g^-1(alpha[site_i] + gamma[t] + beta_exposure * exposure_it + x_it @ beta_cov)

with ``g`` the logit (default) or complementary log-log link, ``gamma`` one effect per period
(the first period with data is the base, ``gamma = 0``) or none (constant baseline). The
likelihood is the product of Bernoulli terms ``h^event (1 - h)^(1 - event)`` over the at-risk
person-periods: a discrete-time event-history model (Allison 1982), in which ``beta_exposure > 0``
means the hazard rises with the share of contacts who already adopted (the peer effect, estimated
here, not assumed).

This module imports only jax, numpyro, numpy, xarray and the standard library.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr
from numpyro.infer import MCMC, NUTS

from ._data import adjacency as _adjacency
from ._data import medical_innovation_individuals, medical_innovation_path
from ._diagnostics import summarize
from ._infer import EXTRA_FIELDS, Fit, chain_mapping
from ._priors import Prior

__all__ = [
    "HazardData",
    "fit_network_hazard",
    "format_peer_effect_table",
    "hazard_data",
    "hazard_loglik",
    "hazard_model",
    "hazard_posterior",
    "medical_innovation_design",
    "medical_innovation_peer_effect",
    "person_periods",
    "simulate_network_hazard",
]

LINKS = ("logit", "cloglog")
BASELINES = ("period", "constant")
PRIOR_GROUPS = ("alpha", "gamma", "beta_exposure", "beta_cov")
DEFAULT_PRIOR_SCALE = 2.5
_TOL = 1e-9  # relative tolerance when comparing times with period ends (m / 12 vs m / 12)


# --------------------------------------------------------------------------- person-periods


def _period_ends(periods: Any) -> np.ndarray:
    ends = np.asarray(periods, dtype=float)
    if ends.ndim != 1 or ends.size == 0:
        raise ValueError(f"periods must be a non-empty 1-D array of period end times; got shape {ends.shape}")
    if not np.all(np.isfinite(ends)) or np.any(np.diff(ends) <= 0):
        raise ValueError("periods must be finite and strictly increasing (the end time of each period)")
    return ends


def _adoption_period(times: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """1-based period of each time (``(ends[k-1], ends[k]]``), ``0`` for NaN or after the last end."""
    tol = _TOL * np.maximum(1.0, np.abs(ends)).max()
    k = np.searchsorted(ends, np.where(np.isnan(times), np.inf, times) - tol, side="left") + 1
    return np.where(np.isnan(times) | (k > ends.size), 0, k).astype(np.int64)


def person_periods(
    individuals: xr.Dataset, adjacency: Any, periods: Any, lag: int = 1
) -> xr.Dataset:
    """Person-period arrays, dims ``(node, period)``, for the discrete-time hazard.

    ``individuals``: a Dataset with ``adoption_time`` ``(node,)`` in years (NaN = not adopted by
    the end of observation), optional ``end_time`` ``(node,)`` (NaN or absent = observed through
    the last period) and the ``id``/``site`` coordinates, as from
    :func:`~spreadjax.calibrate.load_individuals`. ``adjacency``: ``(node, node)`` array or
    DataArray, ``A[i, j]`` = tie ``i -> j`` (``i`` names ``j``; ``j`` influences ``i``), as from
    :func:`~spreadjax.calibrate.adjacency`; weights are used as given (pass ``binary=True`` there
    for netdiffuseR's binary exposure). ``periods``: the end time of each period in years,
    strictly increasing, length ``T`` (``np.arange(1, 18) / 12`` for months 1..17). ``lag``:
    exposure is measured at the end of period ``t - lag`` (``lag >= 0``).

    Returns a Dataset with coords ``period`` (1..T), ``period_end`` ``(period,)`` (years) and the
    node coords of ``individuals``; variables

    * ``at_risk`` ``(node, period)`` bool: not adopted before ``t`` and ``period_end[t] <=
      end_time`` (a period that ends after the end of observation is not observed);
    * ``event`` ``(node, period)`` bool: adopts in ``t`` (implies ``at_risk``);
    * ``exposure`` ``(node, period)`` float: ``sum_j A_ij a_j(t - lag) / sum_j A_ij`` where
      ``a_j(s) = 1`` if ``j`` adopted by the end of period ``s``; ``0`` when ``i`` has no
      contacts; ``NaN`` where ``t - lag < 1``;
    * ``adoption_period`` ``(node,)`` int: the period of adoption, ``0`` if none in the window;
    * ``out_degree`` ``(node,)`` float: ``sum_j A_ij``.
    """
    if not isinstance(lag, (int, np.integer)) or isinstance(lag, bool) or lag < 0:
        raise ValueError(f"lag must be an integer >= 0; got {lag!r}")
    lag = int(lag)
    ends = _period_ends(periods)
    n_t = ends.size
    times = np.asarray(individuals["adoption_time"].values, dtype=float)
    n = times.size
    a = np.asarray(getattr(adjacency, "values", adjacency), dtype=float)
    if a.shape != (n, n):
        raise ValueError(f"adjacency must be (node, node) = ({n}, {n}); got shape {a.shape}")
    if "end_time" in individuals:
        end = np.asarray(individuals["end_time"].values, dtype=float)
    else:
        end = np.full(n, np.nan)
    tol = _TOL * max(1.0, float(np.abs(ends).max()))
    k = _adoption_period(times, ends)  # (node,), 0 = none in the window
    t = np.arange(1, n_t + 1)  # (period,)
    observed = np.isnan(end)[:, None] | (ends[None, :] <= end[:, None] + tol)  # (node, period)
    not_before = (k[:, None] == 0) | (t[None, :] <= k[:, None])
    at_risk = not_before & observed
    event = at_risk & (t[None, :] == k[:, None])
    adopted_by = (k[:, None] >= 1) & (k[:, None] <= t[None, :])  # (node j, period s)
    degree = a.sum(axis=1)
    share = (a @ adopted_by.astype(float)) / np.where(degree > 0, degree, 1.0)[:, None]  # (node, period)
    exposure = np.full((n, n_t), np.nan)
    if lag < n_t:
        exposure[:, lag:] = share[:, : n_t - lag]
    coords: dict[str, Any] = {k_: individuals[k_] for k_ in individuals.coords if individuals[k_].dims == ("node",)}
    coords.update(period=("period", t), period_end=("period", ends, {"units": "years"}))
    return xr.Dataset(
        {
            "at_risk": (("node", "period"), at_risk),
            "event": (("node", "period"), event),
            "exposure": (
                ("node", "period"),
                exposure,
                {"long_name": f"share of contacts (out-ties) adopted by the end of period t-{lag}"},
            ),
            "adoption_period": ("node", k),
            "out_degree": ("node", degree),
        },
        coords=coords,
        attrs={
            "lag": lag,
            "exposure": "E_i(t) = sum_j A_ij a_j(t - lag) / sum_j A_ij, A[i, j] = tie i -> j (j influences i); "
            "0 without contacts; NaN where t - lag < 1",
        },
    )


# --------------------------------------------------------------------------- design rows


@dataclass(frozen=True, eq=False)
class HazardData:
    """Usable person-periods as flat arrays ``(row,)`` (``covariates`` ``(row, covariate)``).

    ``site``/``period`` index ``site_names``/``period_labels``; ``base_period`` is the index of
    the period whose effect is fixed at 0. ``node`` indexes the nodes of the person-period Dataset.
    """

    event: np.ndarray
    exposure: np.ndarray
    site: np.ndarray
    period: np.ndarray
    covariates: np.ndarray
    node: np.ndarray
    site_names: tuple[str, ...]
    period_labels: tuple[int, ...]
    covariate_names: tuple[str, ...]
    base_period: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.event.size)

    def arrays(self) -> dict[str, Any]:
        """The arrays :func:`hazard_loglik` reads, as a dict."""
        return {k: getattr(self, k) for k in ("event", "exposure", "site", "period", "covariates")}


def hazard_data(
    pp: xr.Dataset,
    covariates: Mapping[str, Any] | xr.Dataset | None = None,
    *,
    base_period: int | None = None,
) -> HazardData:
    """Flatten the usable person-periods of :func:`person_periods` into model rows.

    ``covariates``: name -> array ``(node,)`` or ``(node, period)`` (NaN = missing). A row is
    usable when the node is at risk, the exposure is defined (not NaN) and every covariate is
    finite; other rows are dropped (as R's ``glm`` does with ``na.action = na.omit``).
    Sites and periods are those with at least one usable row, in order; ``base_period`` (a
    period label, default the first one with usable rows) gets effect 0.
    """
    n, n_t = pp.sizes["node"], pp.sizes["period"]
    names: list[str] = []
    cols: list[np.ndarray] = []
    if covariates is not None:
        items = covariates.data_vars.items() if isinstance(covariates, xr.Dataset) else covariates.items()
        for name, value in items:
            v = np.asarray(getattr(value, "values", value), dtype=float)
            if v.shape == (n,):
                v = np.broadcast_to(v[:, None], (n, n_t))
            if v.shape != (n, n_t):
                raise ValueError(f"covariate {name!r} must be (node,) = ({n},) or (node, period) = ({n}, {n_t}); "
                                 f"got shape {v.shape}")
            names.append(str(name))
            cols.append(v)
    x = np.stack(cols, axis=-1) if cols else np.zeros((n, n_t, 0))
    at_risk = np.asarray(pp["at_risk"].values, dtype=bool)
    exposure = np.asarray(pp["exposure"].values, dtype=float)
    usable = at_risk & np.isfinite(exposure) & np.all(np.isfinite(x), axis=-1)
    node_idx, per_idx = np.nonzero(usable)  # row-major: node by node, period within node
    site_all = np.asarray(pp["site"].values).astype(str) if "site" in pp.coords else np.full(n, "all")
    site_names = tuple(dict.fromkeys(site_all[node_idx].tolist()))
    site_code = {s: i for i, s in enumerate(site_names)}
    labels_all = np.asarray(pp["period"].values)
    used_periods = np.unique(per_idx)
    period_labels = tuple(int(labels_all[p]) for p in used_periods)
    period_code = np.full(n_t, -1)
    period_code[used_periods] = np.arange(used_periods.size)
    if base_period is None:
        base = 0
    elif int(base_period) in period_labels:
        base = period_labels.index(int(base_period))
    else:
        raise ValueError(f"base_period={base_period!r} has no usable rows; periods with rows are {period_labels}")
    return HazardData(
        event=np.asarray(pp["event"].values, dtype=float)[node_idx, per_idx],
        exposure=exposure[node_idx, per_idx],
        site=np.array([site_code[s] for s in site_all[node_idx]], dtype=np.int64),
        period=period_code[per_idx].astype(np.int64),
        covariates=x[node_idx, per_idx].reshape(node_idx.size, len(names)),
        node=node_idx.astype(np.int64),
        site_names=site_names,
        period_labels=period_labels,
        covariate_names=tuple(names),
        base_period=base,
        info={"at_risk": int(at_risk.sum()), "dropped": int(at_risk.sum() - usable.sum()),
              "events": int(np.asarray(pp["event"].values)[usable].sum()), "lag": pp.attrs.get("lag")},
    )


# --------------------------------------------------------------------------- likelihood


def _log1mexp(x: Any) -> Any:
    """``log(1 - exp(-x))`` for ``x > 0``, accurate at both ends, NaN-free gradients."""
    small = x < math.log(2.0)
    xs = jnp.where(small, x, 1.0)
    xl = jnp.where(small, 1.0, x)
    return jnp.where(small, jnp.log(-jnp.expm1(-xs)), jnp.log1p(-jnp.exp(-xl)))


def bernoulli_terms(eta: Any, event: Any, link: str = "logit") -> Any:
    """Per-row ``event * log h + (1 - event) * log(1 - h)`` with ``h = g^-1(eta)``."""
    if link == "logit":
        log_h, log_1mh = -jax.nn.softplus(-eta), -jax.nn.softplus(eta)
    elif link == "cloglog":
        mu = jnp.exp(eta)  # h = 1 - exp(-exp(eta))
        log_h, log_1mh = _log1mexp(mu), -mu
    else:
        raise ValueError(f"link={link!r}: expected one of {', '.join(LINKS)}")
    return event * log_h + (1.0 - event) * log_1mh


def inverse_link(eta: Any, link: str = "logit") -> Any:
    if link == "logit":
        return jax.nn.sigmoid(eta)
    if link == "cloglog":
        return -jnp.expm1(-jnp.exp(eta))
    raise ValueError(f"link={link!r}: expected one of {', '.join(LINKS)}")


def _link(p: float, link: str) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p)) if link == "logit" else math.log(-math.log1p(-p))


def _get(arrays: Any, name: str) -> Any:
    return arrays[name] if isinstance(arrays, Mapping) else getattr(arrays, name)


def hazard_eta(params: Mapping[str, Any], arrays: Any) -> Any:
    """Linear predictor per row: ``alpha[site] + gamma[period] + beta_exposure * exposure + x @ beta_cov``.

    ``params``: ``alpha`` ``(site,)``; optional ``gamma`` ``(period,)`` (all periods, base
    included; absent = constant baseline), ``beta_exposure`` (scalar, absent = 0) and
    ``beta_cov`` ``(covariate,)`` (absent = no covariates).
    """
    site = jnp.asarray(_get(arrays, "site"))
    eta = jnp.asarray(params["alpha"])[site]
    if params.get("gamma") is not None:
        eta = eta + jnp.asarray(params["gamma"])[jnp.asarray(_get(arrays, "period"))]
    if params.get("beta_exposure") is not None:
        eta = eta + params["beta_exposure"] * jnp.asarray(_get(arrays, "exposure"))
    x = jnp.asarray(_get(arrays, "covariates"))
    if params.get("beta_cov") is not None and x.shape[-1] > 0:
        eta = eta + x @ jnp.asarray(params["beta_cov"])
    return eta


def hazard_loglik(params: Mapping[str, Any], arrays: Any, link: str = "logit") -> Any:
    """Log-likelihood of the usable person-periods: ``sum_rows event log h + (1 - event) log(1 - h)``.

    A pure function of ``params`` (see :func:`hazard_eta`) and ``arrays`` (a :class:`HazardData`
    or a dict with ``event``, ``exposure``, ``site``, ``period``, ``covariates``); jit- and
    grad-able. For binary data, the deviance of R's ``glm`` is ``-2 * hazard_loglik``.
    """
    eta = hazard_eta(params, arrays)
    return jnp.sum(bernoulli_terms(eta, jnp.asarray(_get(arrays, "event"), eta.dtype), link))


# --------------------------------------------------------------------------- numpyro model


def _prior(priors: Mapping[str, Any] | None, group: str, scale: float) -> dist.Distribution:
    p = (priors or {}).get(group)
    if p is None:
        return dist.Normal(0.0, scale)
    if isinstance(p, Prior):
        return p.distribution()
    if isinstance(p, dist.Distribution):
        return p
    raise TypeError(f"priors[{group!r}] must be a spreadjax Prior or a numpyro Distribution; got {type(p).__name__}")


def _check_options(link: str, baseline: str, priors: Mapping[str, Any] | None) -> None:
    if link not in LINKS:
        raise ValueError(f"link={link!r}: expected one of {', '.join(LINKS)}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline={baseline!r}: expected one of {', '.join(BASELINES)}")
    unknown = sorted(set(priors or {}) - set(PRIOR_GROUPS))
    if unknown:
        raise ValueError(f"priors: unknown group(s) {unknown}; expected {', '.join(PRIOR_GROUPS)}")


def hazard_model(
    data: HazardData,
    *,
    link: str = "logit",
    baseline: str = "period",
    priors: Mapping[str, Any] | None = None,
    prior_scale: float = DEFAULT_PRIOR_SCALE,
    observe: bool = True,
) -> None:
    """numpyro model of the discrete-time network hazard.

    Sample sites: ``alpha_centered`` ``(site,)``, ``beta_exposure``, ``beta_cov`` ``(covariate,)``
    and, with ``baseline="period"``, ``gamma_rest`` (the non-base periods). Deterministic:
    ``alpha`` ``(site,)`` (site intercepts at exposure 0 and covariates 0, in the base period) and
    ``gamma`` ``(period,)`` (base = 0). With ``observe`` the Bernoulli likelihood enters as the
    factor ``loglik``; without it, ``event`` ``(row,)`` is sampled (prior/posterior predictive).

    Priors: ``Normal(0, prior_scale)`` (2.5 by default) on every group, overridable per group
    with ``priors={"alpha" | "gamma" | "beta_exposure" | "beta_cov": Prior or numpyro
    distribution}`` (univariate, applied to every element). The ``alpha`` prior is placed on the
    site intercepts at the *mean* exposure and covariates of the rows (``alpha_centered``), the
    convention of rstanarm: it keeps the intercept prior meaningful when covariates are far from
    0 and decorrelates it from the slopes; ``alpha`` is reported on the raw scale.
    """
    _check_options(link, baseline, priors)
    n_sites, n_periods, n_cov = len(data.site_names), len(data.period_labels), len(data.covariate_names)
    x_mean = np.asarray(data.covariates, dtype=float).mean(axis=0) if data.n_rows else np.zeros(n_cov)
    e_mean = float(np.mean(data.exposure)) if data.n_rows else 0.0
    with numpyro.plate("site", n_sites):
        alpha_c = numpyro.sample("alpha_centered", _prior(priors, "alpha", prior_scale))
    beta_e = numpyro.sample("beta_exposure", _prior(priors, "beta_exposure", prior_scale))
    shift = beta_e * e_mean
    beta_cov = None
    if n_cov:
        with numpyro.plate("covariate", n_cov):
            beta_cov = numpyro.sample("beta_cov", _prior(priors, "beta_cov", prior_scale))
        shift = shift + jnp.dot(jnp.asarray(x_mean, beta_cov.dtype), beta_cov)
    alpha = numpyro.deterministic("alpha", alpha_c - shift)
    gamma = None
    if baseline == "period" and n_periods > 1:
        with numpyro.plate("period_rest", n_periods - 1):
            rest = numpyro.sample("gamma_rest", _prior(priors, "gamma", prior_scale))
        b = data.base_period
        zero = jnp.zeros((1,), rest.dtype)
        gamma = numpyro.deterministic("gamma", jnp.concatenate([rest[:b], zero, rest[b:]]))
    params = {"alpha": alpha, "gamma": gamma, "beta_exposure": beta_e, "beta_cov": beta_cov}
    eta = hazard_eta(params, data.arrays())
    if observe:
        numpyro.factor("loglik", jnp.sum(bernoulli_terms(eta, jnp.asarray(data.event, eta.dtype), link)))
    else:
        with numpyro.plate("row", data.n_rows):
            numpyro.sample("event", dist.Bernoulli(probs=inverse_link(eta, link)))


# --------------------------------------------------------------------------- NUTS


def fit_network_hazard(
    data: HazardData,
    *,
    link: str = "logit",
    baseline: str = "period",
    priors: Mapping[str, Any] | None = None,
    prior_scale: float = DEFAULT_PRIOR_SCALE,
    chains: int = 4,
    warmup: int = 500,
    samples: int = 500,
    seed: int = 0,
    target_accept: float = 0.9,
    max_tree_depth: int = 8,
    dense_mass: bool = True,
    progress_bar: bool = False,
) -> Fit:
    """NUTS on :func:`hazard_model`; returns a :class:`~spreadjax.calibrate._infer.Fit`.

    Chains run vectorised on one device (in parallel when there are as many devices as chains),
    compiled once. Each chain starts at the link of the overall event rate for the intercepts
    and near 0 for the other coefficients, jittered by ``Uniform(-0.5, 0.5)`` so that R-hat can
    see disagreement. A dense mass matrix (default) absorbs the correlation between, e.g., a
    covariate and its square. ``fit.settings`` keeps the labels (``site_names``,
    ``period_labels``, ``covariate_names``) used by :func:`hazard_posterior`.
    """
    _check_options(link, baseline, priors)

    def model() -> None:
        hazard_model(data, link=link, baseline=baseline, priors=priors, prior_scale=prior_scale)

    kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth, dense_mass=dense_mass)
    method, mapping = chain_mapping(chains, progress_bar)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains, chain_method=mapping,
                progress_bar=progress_bar)
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    rate = float(np.mean(data.event)) if data.n_rows else 0.5
    centre = {"alpha_centered": (len(data.site_names), _link(rate, link)), "beta_exposure": ((), 0.0)}
    if data.covariate_names:
        centre["beta_cov"] = ((len(data.covariate_names),), 0.0)
    if baseline == "period" and len(data.period_labels) > 1:
        centre["gamma_rest"] = ((len(data.period_labels) - 1,), 0.0)
    keys = jax.random.split(key_init, len(centre))
    init = {}
    for k, (name, (shape, value)) in zip(keys, centre.items(), strict=True):
        shape = (shape,) if isinstance(shape, int) else shape
        jitter = jax.random.uniform(k, (chains, *shape), minval=-0.5, maxval=0.5)
        init[name] = value + jitter if chains > 1 else (value + jitter)[0]
    started = time.perf_counter()
    mcmc.run(key_run, init_params=init, extra_fields=EXTRA_FIELDS)
    draws = jax.device_get(mcmc.get_samples(group_by_chain=True))
    stats = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
    total = time.perf_counter() - started
    settings = dict(chains=chains, warmup=warmup, samples=samples, seed=seed, target_accept=target_accept,
                    max_tree_depth=max_tree_depth, dense_mass=dense_mass, chain_method=method, link=link,
                    baseline=baseline, prior_scale=prior_scale, site_names=data.site_names,
                    period_labels=data.period_labels, covariate_names=data.covariate_names,
                    n_rows=data.n_rows)
    return Fit("nuts", {k: np.asarray(v) for k, v in draws.items()},
               {k: np.asarray(v) for k, v in stats.items()}, {"total": total}, settings)


def hazard_posterior(fit: Fit) -> xr.Dataset:
    """The draws of a :func:`fit_network_hazard` fit as a labelled Dataset ``(chain, draw, ...)``.

    Variables ``alpha`` ``(site)``, ``gamma`` ``(period)`` (if any), ``beta_exposure`` and
    ``beta_cov`` ``(covariate)``, ready for :func:`~spreadjax.calibrate._diagnostics.summarize`.
    """
    s = fit.settings
    dims = {"alpha": ("site", s["site_names"]), "gamma": ("period", s["period_labels"]),
            "beta_cov": ("covariate", s["covariate_names"])}
    data: dict[str, Any] = {"beta_exposure": (("chain", "draw"), fit.samples["beta_exposure"])}
    coords: dict[str, Any] = {}
    for name, (dim, labels) in dims.items():
        if name in fit.samples:
            data[name] = (("chain", "draw", dim), fit.samples[name])
            coords[dim] = list(labels)
    return xr.Dataset(data, coords=coords)


# --------------------------------------------------------------------------- simulation


def simulate_network_hazard(
    adjacency: Any,
    site: Sequence[str] | np.ndarray,
    periods: Any,
    *,
    alpha: Any,
    beta_exposure: float,
    gamma: Any = None,
    covariates: Any = None,
    beta_cov: Any = None,
    link: str = "logit",
    lag: int = 1,
    seed: int = 0,
) -> xr.Dataset:
    """Simulate adoption from the network hazard, period by period (numpy).

    ``adjacency`` ``(node, node)`` with ``A[i, j]`` = tie ``i -> j`` (``j`` influences ``i``);
    ``site`` ``(node,)`` names; ``periods`` period end times (length ``T``). ``alpha`` is per
    site, in the order of first appearance in ``site``; ``gamma`` ``(T,)`` or None;
    ``covariates`` ``(node, k)`` with ``beta_cov`` ``(k,)``. Nobody has adopted before period 1,
    so the exposure at ``t - lag < 1`` is 0. A node adopting in period ``t`` gets adoption time
    ``periods[t-1]``.

    Returns a Dataset like :func:`~spreadjax.calibrate.load_individuals`: ``adoption_time``
    (NaN = not adopted by the last period), ``adopted``, ``end_time`` (the last period end) and
    coords ``id`` (0..n-1) and ``site``.
    """
    ends = _period_ends(periods)
    a = np.asarray(getattr(adjacency, "values", adjacency), dtype=float)
    site = np.asarray(site).astype(str)
    n, n_t = site.size, ends.size
    names = list(dict.fromkeys(site.tolist()))
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (len(names),))
    base = alpha[np.array([names.index(s) for s in site])]
    if covariates is not None:
        base = base + np.asarray(covariates, dtype=float).reshape(n, -1) @ np.asarray(beta_cov, dtype=float)
    g = np.zeros(n_t) if gamma is None else np.asarray(gamma, dtype=float)
    degree = a.sum(axis=1)
    norm = np.where(degree > 0, degree, 1.0)
    rng = np.random.default_rng(seed)
    adopted_in = np.zeros(n, dtype=np.int64)  # 0 = not yet
    for t in range(1, n_t + 1):
        s = t - lag
        exposure = (a @ ((adopted_in >= 1) & (adopted_in <= s)).astype(float)) / norm if s >= 1 else np.zeros(n)
        eta = base + g[t - 1] + beta_exposure * exposure
        h = 1.0 / (1.0 + np.exp(-eta)) if link == "logit" else -np.expm1(-np.exp(eta))
        new = (adopted_in == 0) & (rng.random(n) < h)
        adopted_in[new] = t
    times = np.where(adopted_in > 0, ends[np.maximum(adopted_in, 1) - 1], np.nan)
    return xr.Dataset(
        {"adoption_time": ("node", times), "adopted": ("node", adopted_in > 0),
         "end_time": ("node", np.full(n, ends[-1]))},
        coords={"id": ("node", np.arange(n)), "site": ("node", site)},
        attrs={"simulated": f"network hazard, link={link}, lag={lag}, beta_exposure={beta_exposure}, seed={seed}"},
    )


# --------------------------------------------------------------------------- Medical Innovation

#: netdiffuseR vignette, lagged-exposure logit (README 'Published reference results' item 3):
#: coefficient -> (estimate, standard error; NaN where not printed there).
PUBLISHED_MI = {
    "intercept": (-4.86017, math.nan),
    "city2": (-0.05152, math.nan),
    "city3": (-0.07965, math.nan),
    "city4": (-0.19764, math.nan),
    "exposure": (0.06835, 0.36290),
    "belief": (0.50842, 0.16589),
    "proage": (0.94983, 0.34181),
    "proage^2": (-0.10620, 0.04736),
}
PUBLISHED_MI_DEVIANCE = (548.47, 803)


def _mi_covariates(ind: xr.Dataset) -> dict[str, np.ndarray]:
    """``belief``, ``proage`` and ``proage^2`` per node (NaN = missing), from the Dataset or nodes.csv."""
    if "belief" in ind and "proage" in ind:
        belief = np.asarray(ind["belief"].values, dtype=float)
        proage = np.asarray(ind["proage"].values, dtype=float)
    else:
        table = np.genfromtxt(medical_innovation_path("nodes.csv"), delimiter=",", names=True, dtype=float,
                              encoding="utf-8")
        row = {int(i): r for r, i in enumerate(table["node_id"])}
        order = np.array([row[int(i)] for i in ind["id"].values])
        belief, proage = table["belief"][order], table["proage"][order]
    return {"belief": belief, "proage": proage, "proage^2": proage**2}


def medical_innovation_design(lag: int = 1) -> tuple[xr.Dataset, HazardData]:
    """Person-periods and model rows of the netdiffuseR lagged-exposure logit.

    Months 1..17 (``per <= toa & per < 18``), exposure lagged ``lag`` months on the binary
    union of the three networks along out-ties, covariates ``belief``, ``proage``,
    ``proage^2``; rows with a missing value are dropped, which drops every month 1 (no lagged
    exposure), leaving 826 rows for ``lag=1``. Base period: month 2; base site: city1.
    """
    ind = medical_innovation_individuals()
    a = _adjacency(ind, binary=True)
    pp = person_periods(ind, a, np.arange(1, 18) / 12.0, lag=lag)
    return pp, hazard_data(pp, _mi_covariates(ind))


def medical_innovation_peer_effect(
    seed: int = 0,
    *,
    prior_scale: float = DEFAULT_PRIOR_SCALE,
    priors: Mapping[str, Any] | None = None,
    chains: int = 4,
    warmup: int = 500,
    samples: int = 1000,
    return_fit: bool = False,
) -> xr.Dataset | tuple[xr.Dataset, Fit]:
    """The Medical Innovation peer effect, Bayesian, beside netdiffuseR's published GLM.

    The literature specification exactly: logit link, one effect per month (month 2 base),
    city effects (city1 base), ``belief``, ``proage``, ``proage^2`` and the exposure lagged one
    month on the binary union graph of out-ties; 826 person-periods (see
    :func:`medical_innovation_design`). Priors ``Normal(0, prior_scale)`` (see
    :func:`hazard_model`).

    Returns a Dataset along ``coefficient`` (intercept = city1 in month 2, city2..city4 as
    differences from city1, exposure, belief, proage, proage^2) with ``published`` and
    ``published_se`` (NaN where not printed), our posterior ``mean``, ``sd``, ``q5``, ``q95``,
    ``rhat``, ``ess_bulk`` and ``shift_in_se`` = (mean - published) / published_se; attrs
    ``divergences``, ``n_rows``, ``seconds``. With ``return_fit``, also the :class:`Fit`.
    """
    _, data = medical_innovation_design()
    fit = fit_network_hazard(data, link="logit", baseline="period", priors=priors, prior_scale=prior_scale,
                             chains=chains, warmup=warmup, samples=samples, seed=seed)
    alpha, beta_cov = fit.samples["alpha"], fit.samples["beta_cov"]
    draws = {
        "intercept": alpha[..., 0],
        **{data.site_names[k]: alpha[..., k] - alpha[..., 0] for k in range(1, len(data.site_names))},
        "exposure": fit.samples["beta_exposure"],
        **{name: beta_cov[..., k] for k, name in enumerate(data.covariate_names)},
    }
    summary = summarize(draws, {"diverging": fit.stats["diverging"]})
    names = list(PUBLISHED_MI)
    pick = lambda col: np.array([float(summary[col].sel(parameter=n)) for n in names])  # noqa: E731
    published = np.array([PUBLISHED_MI[n][0] for n in names])
    se = np.array([PUBLISHED_MI[n][1] for n in names])
    mean = pick("mean")
    table = xr.Dataset(
        {
            "published": ("coefficient", published),
            "published_se": ("coefficient", se),
            "mean": ("coefficient", mean),
            "sd": ("coefficient", pick("sd")),
            "q5": ("coefficient", pick("q5")),
            "q95": ("coefficient", pick("q95")),
            "rhat": ("coefficient", pick("rhat")),
            "ess_bulk": ("coefficient", pick("ess_bulk")),
            "shift_in_se": ("coefficient", (mean - published) / se),
        },
        coords={"coefficient": names},
        attrs={"divergences": summary.attrs.get("divergences", 0), "n_rows": data.n_rows,
               "seconds": fit.seconds["total"], "prior_scale": prior_scale, "seed": seed,
               "published": "netdiffuseR vignette glm(adopted ~ lagged_expo + factor(per) + factor(city) + "
               "belief + proage + I(proage^2), binomial); residual deviance 548.47 on 803 df"},
    )
    return (table, fit) if return_fit else table


def format_peer_effect_table(table: xr.Dataset) -> str:
    """Text table of :func:`medical_innovation_peer_effect`: published GLM vs our posterior."""
    head = (f"{'coefficient':<11} {'GLM est':>9} {'GLM SE':>8} {'post mean':>10} {'post sd':>8} {'90% CI':>19} "
            f"{'R-hat':>6}")
    lines = [head, "-" * len(head)]
    for i, name in enumerate(table["coefficient"].values):
        r = {k: float(table[k].values[i]) for k in table.data_vars}
        se = "" if math.isnan(r["published_se"]) else f"{r['published_se']:.5f}"
        ci = f"[{r['q5']:.3f}, {r['q95']:.3f}]"
        lines.append(f"{name:<11} {r['published']:>9.5f} {se:>8} {r['mean']:>10.5f} {r['sd']:>8.5f} {ci:>19} "
                     f"{r['rhat']:>6.3f}")
    lines.append(f"{table.attrs['n_rows']} person-periods; {table.attrs['divergences']} divergences; "
                 f"{table.attrs['seconds']:.1f} s")
    return "\n".join(lines) + "\n"
