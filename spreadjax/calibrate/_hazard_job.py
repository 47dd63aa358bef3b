"""The network-hazard calibration job: a validated config -> data -> NUTS -> InferenceData groups.

:func:`load_hazard_inputs` reads the individuals, their covariates and the edge files a
:class:`~spreadjax.calibrate._hazard_settings.HazardCalibration` names, and builds the
person-periods; :func:`calibrate_hazard` fits them and returns a
:class:`~spreadjax.calibrate._run.CalibrationResult` whose groups ``write_posterior`` stores:

* ``posterior``: ``beta_exposure`` (the peer effect), ``beta_cov`` ``(covariate)``, ``alpha``
  ``(site)``, ``gamma`` ``(period)`` and ``expected_adopters`` ``(time, site)``;
* ``prior``: the same coefficients drawn from the prior;
* ``observed_data``: ``new_adopters``, ``adopters`` (cumulative) and ``at_risk`` ``(time, site)``,
  ``population`` ``(site)`` (individuals per site);
* ``prior_predictive``, ``posterior_predictive``: ``new_adopters`` ``(chain, draw, time, site)``;
* ``sample_stats``: NUTS statistics.

``time`` is the end of each period in years. Predictions are **one step ahead**, as the
likelihood conditions: each at-risk person-period adopts with its hazard, given the observed
history (risk set and exposure); the rows the model does not score (the first ``lag`` periods,
without lagged exposure, and rows with a missing covariate) keep their observed adoptions.
``expected_adopters`` = observed cumulative at the previous period + the sum of the hazards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import ConfigError, DataError
from ._data import (
    TIME_UNITS,
    _edges_from_table,
    _read_table,
    adjacency,
    load_individuals,
    medical_innovation_individuals,
    medical_innovation_path,
)
from ._hazard import (
    HazardData,
    fit_network_hazard,
    hazard_data,
    hazard_eta,
    hazard_posterior,
    inverse_link,
    person_periods,
)
from ._hazard_settings import BUNDLED, SQUARE, HazardCalibration
from ._run import CalibrationResult, base_attrs, fit_attrs, nuts_stats

COEFFICIENTS = ("beta_exposure", "beta_cov", "alpha", "gamma")
_MAX_CELLS_PER_BATCH = 2**22  # draws x rows held at once when predicting (floats)


@dataclass(frozen=True, eq=False)
class HazardInputs:
    """Loaded data: ``individuals`` ``(node,)``, the ``adjacency`` ``(node, node)`` used for exposure,
    ``person_periods`` ``(node, period)``, the model rows ``data`` and all ``sites`` in file order."""

    individuals: xr.Dataset
    adjacency: xr.DataArray
    networks: tuple[str, ...]
    person_periods: xr.Dataset
    data: HazardData
    sites: tuple[str, ...]


# --------------------------------------------------------------------------- loading
def load_hazard_inputs(cal: HazardCalibration) -> HazardInputs:
    """Read and check the files of ``cal``; raises DataError/ConfigError naming file, key and value."""
    d, obs, where = cal.data, cal.observation, cal.where
    per_year = TIME_UNITS[d.time_unit]
    if d.individuals in BUNDLED:
        ind = medical_innovation_individuals()
        ind = xr.Dataset({k: ind[k] for k in ("adoption_time", "adopted", "end_time")}, attrs=ind.attrs)
        table_path, id_column = medical_innovation_path("nodes.csv"), "node_id"
        if d.end_time is not None:
            ind["end_time"] = ind["end_time"].fillna(d.end_time / per_year)
    else:
        ind = load_individuals(d.individuals, end_time=d.end_time, time_unit=d.time_unit)
        table_path, id_column = Path(d.individuals), "id"
        blank = int(np.isnan(ind["end_time"].values).sum())
        if blank:
            raise DataError(f"{d.individuals}: {blank} row(s) have no end of observation (no 'end_time' column or "
                            f"a blank cell); add the column, or set [data] end_time (in {d.time_unit}s) in {where}")
    covariates = _covariates(table_path, id_column, ind, obs.covariates, where)
    edges = _edges(cal, ind)
    present = list(dict.fromkeys(edges["network"].values.tolist()))
    for name in obs.networks or ():
        if name not in present:
            raise ConfigError(f"{where}: [observation] networks: {name!r} is not a network of the edge files; "
                              f"they have {', '.join(map(repr, present)) or 'no edges'}")
    networks = tuple(obs.networks or present)
    a = adjacency(edges, list(networks), binary=obs.ties == "binary")
    end = float(np.max(ind["end_time"].values))
    length = d.period_length / per_year
    n = math.floor(end / length + 1e-9)
    if n < 1:
        raise DataError(f"{d.individuals}: observation ends at {end * per_year:g} {d.time_unit}s, before the end of "
                        f"the first period ([data] period_length = {d.period_length:g} in {where})")
    ends = d.period_length * np.arange(1, n + 1) / per_year
    pp = person_periods(ind, a, ends, lag=obs.lag)
    try:
        rows = hazard_data(pp, covariates, base_period=obs.base_period)
    except ValueError as exc:
        raise ConfigError(f"{where}: [observation] base_period = {obs.base_period}: {exc}") from None
    if rows.n_rows == 0 or rows.info["events"] == 0:
        what = "no usable person-periods" if rows.n_rows == 0 else "no adoptions in the usable person-periods"
        raise DataError(f"{d.individuals}: {what} ({n} period(s), lag = {obs.lag}, {len(obs.covariates)} "
                        f"covariate(s)): nothing to fit; check [data] period_length and [observation] lag in {where}")
    sites = tuple(dict.fromkeys(np.asarray(ind["site"].values).astype(str).tolist()))
    return HazardInputs(ind, a, networks, pp, rows, sites)


def _covariates(path: Any, id_column: str, ind: xr.Dataset, names: tuple[str, ...], where: str) -> dict:
    """name -> ``(node,)`` float values (NaN where blank) from the columns of the individuals file."""
    if not names:
        return {}
    tab = _read_table(path, (id_column,))
    position = {str(v): i for i, v in enumerate(ind["id"].values.tolist())}
    integer = np.issubdtype(ind["id"].dtype, np.integer)
    out = {}
    for name in names:
        column = name.removesuffix(SQUARE)
        if column not in tab.columns:
            raise ConfigError(f"{where}: [observation] covariates: {column!r} is not a column of {tab.path}; "
                              f"its columns: {', '.join(c for c in tab.columns if c not in ('id', id_column))}")
        values = np.full(len(position), np.nan)
        for row in tab.rows:
            key = row.values[id_column]
            node = position[str(int(key)) if integer else key]
            text = row.values[column]
            if text == "":
                continue
            try:
                value = float(text)
            except ValueError:
                raise tab.error(row, column, "not a number; covariates must be numeric (blank = missing)") from None
            if not math.isfinite(value):
                raise tab.error(row, column, "not a finite number; leave the cell blank for a missing value")
            values[node] = value
        out[name] = values**2 if name.endswith(SQUARE) else values
    return out


def _edges(cal: HazardCalibration, ind: xr.Dataset) -> xr.Dataset:
    """All edge files as one :func:`load_edges`-style Dataset; a file without a network column names
    its network after the file (``advice.csv`` -> ``advice``)."""
    parts = []
    for src in cal.data.edges:
        path = medical_innovation_path("edges.csv") if src.path in BUNDLED else Path(src.path)
        tab = _read_table(path, ("source", "target"), allow_no_rows=True)
        if src.network is not None and "network" in tab.columns:
            raise DataError(f"{tab.path}, line 1 (header): has a 'network' column, but [data.edges] {src.network} "
                            f"already names its network in {cal.where}; use the list form edges = [...]")
        parts.append(_edges_from_table(tab, ind, default_network=src.network or path.stem))
    seen: dict[tuple[str, int, int], str] = {}
    for part in parts:
        for net, s, t, a, b in zip(part["network"].values, part["source_index"].values, part["target_index"].values,
                                   part["source"].values, part["target"].values, strict=True):
            first = seen.setdefault((str(net), int(s), int(t)), part.attrs["edges_file"])
            if first != part.attrs["edges_file"]:
                raise DataError(f"{part.attrs['edges_file']}: edge {a} -> {b} of network {str(net)!r} is also in "
                                f"{first}; list each tie once")
    names = ("source", "target", "source_index", "target_index", "weight", "network")
    data = {k: ("edge", np.concatenate([p[k].values for p in parts])) for k in names}
    return xr.Dataset(data, coords={"id": ("node", ind["id"].values)},
                      attrs={"edges_file": ", ".join(p.attrs["edges_file"] for p in parts)})


# --------------------------------------------------------------------------- fitting
def calibrate_hazard(inputs: HazardInputs, cal: HazardCalibration, *, progress_bar: bool = False,
                     attrs: dict[str, Any] | None = None) -> CalibrationResult:
    """NUTS on the network hazard; the InferenceData groups, diagnostics summary and flags."""
    import jax
    from numpyro.infer import Predictive

    from .._jobs import enable_dtype
    from ._diagnostics import diagnostic_flags, summarize
    from ._hazard import hazard_model

    s, obs, data = cal.settings, cal.observation, inputs.data
    enable_dtype(s.dtype)
    options = {"link": obs.link, "baseline": obs.baseline, "priors": cal.prior_map()}
    fit = fit_network_hazard(data, **options, chains=s.chains, warmup=s.warmup, samples=s.samples, seed=s.seed,
                             target_accept=s.target_accept, max_tree_depth=s.max_tree_depth,
                             progress_bar=progress_bar)
    post = hazard_posterior(fit)
    post = post.assign_coords(chain=np.arange(post.sizes["chain"]), draw=np.arange(post.sizes["draw"]))
    prior_draws = Predictive(lambda: hazard_model(data, **options, observe=False), num_samples=s.prior_draws,
                             return_sites=[k for k in COEFFICIENTS if k in post])
    prior_raw = {k: np.asarray(v)[None] for k, v in prior_draws(jax.random.PRNGKey(s.seed + 1)).items()}
    prior = _labelled(prior_raw, post)
    common = base_attrs(fit, attrs or {})
    observed = _observed(inputs)
    cells = _Cells(inputs, observed)
    (post_sum, post_new), (_, prior_new) = cells.predict([post, prior], data, obs.link, s.seed + 2)
    units = _units(obs.link)
    posterior = xr.Dataset({k: post[k].assign_attrs(units=units[k]) for k in COEFFICIENTS if k in post})
    posterior["expected_adopters"] = cells.expected(post_sum)
    posterior.attrs.update({**common, **fit_attrs(fit), "peer_effect_units": _peer_units(obs.link)})
    stats = xr.Dataset({k: (("chain", "draw"), v) for k, v in nuts_stats(fit).items()},
                       coords={"chain": post["chain"], "draw": post["draw"]}, attrs=common)
    groups = {
        "posterior": posterior,
        "sample_stats": stats,
        "observed_data": observed.assign_attrs(common),
        "prior": prior.assign_attrs(common),
        "prior_predictive": xr.Dataset({"new_adopters": prior_new}, attrs=common),
        "posterior_predictive": xr.Dataset({"new_adopters": post_new}, attrs=common),
    }
    summary = summarize(posterior, stats, var_names=[k for k in COEFFICIENTS if k in posterior])
    return CalibrationResult(groups, summary, diagnostic_flags(summary), fit)


def _units(link: str) -> dict[str, str]:
    """Short units of each coefficient group (axis labels)."""
    scale = "log-odds" if link == "logit" else "cloglog"
    return {"alpha": scale, "gamma": f"{scale} vs base period", "beta_exposure": f"{scale} per unit exposure",
            "beta_cov": f"{scale} per unit"}


def _peer_units(link: str) -> str:
    scale = "log-odds" if link == "logit" else "log hazard ratio (cloglog)"
    return f"{scale} per unit exposure, from no contacts adopted to all"


def _labelled(raw: dict[str, np.ndarray], like: xr.Dataset) -> xr.Dataset:
    """Prior draws ``(1, draw, ...)`` with the dims and coords of the posterior's variables."""
    out = {}
    for k in COEFFICIENTS:
        if k in like:
            dims = like[k].dims
            coords = {d: like[d].values for d in dims[2:]}
            out[k] = xr.DataArray(raw[k], dims=dims, coords={"chain": [0], "draw": np.arange(raw[k].shape[1]),
                                                               **coords})
    return xr.Dataset(out)


def _observed(inputs: HazardInputs) -> xr.Dataset:
    pp, sites = inputs.person_periods, inputs.sites
    site_of = np.asarray(pp["site"].values).astype(str)
    onehot = (site_of[:, None] == np.array(sites)[None, :]).astype(np.int64)  # (node, site)
    new = np.asarray(pp["event"].values, np.int64).T @ onehot  # (period, site)
    at_risk = np.asarray(pp["at_risk"].values, np.int64).T @ onehot
    times = np.asarray(pp["period_end"].values, dtype=float)
    coords = {"time": ("time", times, {"units": "years", "long_name": "end of the period"}),
              "period": ("time", np.asarray(pp["period"].values)), "site": list(sites)}
    return xr.Dataset(
        {"new_adopters": (("time", "site"), new, {"units": "people", "long_name": "adoptions in the period"}),
         "adopters": (("time", "site"), np.cumsum(new, axis=0), {"units": "people"}),
         "at_risk": (("time", "site"), at_risk, {"units": "people", "long_name": "not adopted, still observed"}),
         "population": (("site",), onehot.sum(axis=0), {"units": "people", "long_name": "individuals"})},
        coords=coords)


class _Cells:
    """Sums over the usable rows of each (period, site) cell, plus the observed adoptions of the rows
    the model does not score."""

    def __init__(self, inputs: HazardInputs, observed: xr.Dataset):
        data = inputs.data
        self.shape = (observed.sizes["time"], observed.sizes["site"])
        period = np.asarray(data.period_labels)[data.period] - 1
        site = np.array([inputs.sites.index(s) for s in data.site_names])[data.site]
        self.cell = period * self.shape[1] + site  # (row,)
        modelled = np.bincount(self.cell, weights=data.event, minlength=self.shape[0] * self.shape[1])
        self.unscored = observed["new_adopters"].values - np.rint(modelled).astype(np.int64).reshape(self.shape)
        self.previous = (observed["adopters"] - observed["new_adopters"]).values  # (time, site)
        self.coords = {"time": observed["time"], "site": observed["site"]}

    def predict(self, draws: list[xr.Dataset], data: HazardData, link: str, seed: int) -> list[tuple]:
        """Per Dataset of draws ``(chain, draw, ...)``: the summed hazards and the predicted new adopters,
        each ``(chain, draw, time, site)``. Row events are Bernoulli(hazard) with the key
        ``fold_in(fold_in(PRNGKey(seed), k), i)`` for draw ``i`` (flattened) of Dataset ``k``; all
        draws go through one compiled map, ``_MAX_CELLS_PER_BATCH // rows`` at a time."""
        import jax
        import jax.numpy as jnp

        names = [k for k in COEFFICIENTS if k in draws[0]]
        sizes = [ds.sizes["chain"] * ds.sizes["draw"] for ds in draws]
        flat = {k: jnp.asarray(np.concatenate([ds[k].values.reshape((n,) + ds[k].shape[2:])
                                               for ds, n in zip(draws, sizes, strict=True)])) for k in names}
        stream = np.repeat(np.arange(len(draws)), sizes)
        index = np.concatenate([np.arange(n) for n in sizes])
        arrays = {k: jnp.asarray(v) for k, v in data.arrays().items()}
        cell, n_cells, root = jnp.asarray(self.cell), self.shape[0] * self.shape[1], jax.random.PRNGKey(seed)

        def one(x):
            params, k, i = x
            h = inverse_link(hazard_eta(params, arrays), link)
            events = jax.random.bernoulli(jax.random.fold_in(jax.random.fold_in(root, k), i), h)
            return (jax.ops.segment_sum(h, cell, n_cells),
                    jax.ops.segment_sum(events.astype(jnp.int32), cell, n_cells))

        batch = max(1, min(_MAX_CELLS_PER_BATCH // max(data.n_rows, 1), len(stream)))
        h_sum, new = jax.jit(lambda x: jax.lax.map(one, x, batch_size=batch))((flat, stream, index))
        h_sum, new = np.asarray(h_sum), np.asarray(new, dtype=np.int64)
        out, start = [], 0
        for ds, n in zip(draws, sizes, strict=True):
            shape = (ds.sizes["chain"], ds.sizes["draw"], *self.shape)
            predicted = new[start:start + n].reshape(shape) + self.unscored
            out.append((h_sum[start:start + n].reshape(shape),
                        self._array(predicted, units="people",
                                    long_name="one-step-ahead predicted adoptions in the period")))
            start += n
        return out

    def _array(self, x: np.ndarray, **attrs: Any) -> xr.DataArray:
        return xr.DataArray(x, dims=("chain", "draw", "time", "site"), coords=self.coords, attrs=attrs)

    def expected(self, h_sum: np.ndarray) -> xr.DataArray:
        """Observed cumulative at the previous period + unscored adoptions + summed hazards."""
        return self._array(self.previous + self.unscored + h_sum, units="people",
                           long_name="expected cumulative adopters, one step ahead")


def peer_effect(summary: xr.Dataset) -> dict[str, float]:
    """Posterior ``mean``, ``sd``, ``q5``, ``q95`` and ``rhat`` of ``beta_exposure``."""
    row = summary.sel(parameter="beta_exposure")
    return {k: float(row[k]) for k in ("mean", "sd", "q5", "q95", "rhat")}


def peer_effect_line(result: CalibrationResult) -> str:
    """The peer effect of a :func:`calibrate_hazard` result in words: mean, sd and 90% interval."""
    pe = peer_effect(result.summary)
    units = result.groups["posterior"].attrs["peer_effect_units"]
    return (f"peer effect (beta_exposure, {units}): posterior mean {pe['mean']:.4f}, sd {pe['sd']:.4f}, "
            f"90% interval [{pe['q5']:.3f}, {pe['q95']:.3f}]")


def describe(inputs: HazardInputs, cal: HazardCalibration) -> str:
    """One line: the model and the data it will fit."""
    obs, d = cal.observation, inputs.data
    cov = f"covariates {', '.join(obs.covariates)}" if obs.covariates else "no covariates"
    return (f"network hazard ({obs.link} link, {obs.baseline} baseline, lag {obs.lag}): "
            f"{inputs.individuals.sizes['node']} individuals in {len(inputs.sites)} site(s), "
            f"{obs.ties} ties of {', '.join(inputs.networks)}, {cov}; {d.n_rows} usable person-periods "
            f"(of {d.info['at_risk']} at risk) over {inputs.person_periods.sizes['period']} periods, "
            f"{d.info['events']} adoptions")


__all__ = ["HazardInputs", "calibrate_hazard", "describe", "load_hazard_inputs", "peer_effect", "peer_effect_line"]
