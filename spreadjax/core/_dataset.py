"""Simulation outputs as a labelled xarray Dataset: dims ``(*batch, time, site)``, units, docs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._simulate import Simulation

YEAR_DAYS = 365.25


def to_dataset(
    sim: Simulation,
    result: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    sites: Sequence[str] | None = None,
    batch_dims: Sequence[str] = (),
    start_date: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Label ``result`` (``{name: (*batch, time, site)}``) from ``sim``.

    ``params`` adds the model's population parameter as a ``(site,)`` variable (so
    ``adopted / population`` is the adopted fraction); ``start_date`` (ISO date of time 0) adds a
    ``date`` coordinate. Time is in years.
    """
    spec = sim.model.model
    docs = _docs(spec)
    first = np.asarray(next(iter(result.values())))
    n_sites = first.shape[-1]
    sites = list(sites) if sites is not None else [f"site{i + 1}" for i in range(n_sites)]
    dims = (*batch_dims, "time", "site")
    coords: dict[str, Any] = {"time": ("time", np.asarray(sim.ts), {"units": "years", "long_name": "model time"}),
                              "site": ("site", np.asarray(sites, dtype=object))}
    if start_date is not None:
        origin = np.datetime64(start_date, "D")
        days = np.round(np.asarray(sim.ts) * YEAR_DAYS).astype("timedelta64[D]")
        coords["date"] = ("time", origin + days)
    data = {}
    for name, value in result.items():
        arr = np.asarray(value)
        if sim.stochastic and sim.model.model.names.get(name) in ("stock", "delay") and _counted(spec, name):
            arr = np.rint(arr).astype(np.int64)
        units, doc = docs.get(name, ("1", ""))
        data[name] = (dims, arr, {"units": units, "long_name": doc or name})
    if params is not None and spec.population is not None:
        pop = np.asarray(params[spec.population])
        units, doc = docs[spec.population]
        pop_dims = ("site",) if pop.ndim == 1 else (*batch_dims[: pop.ndim - 1], "site")
        data[spec.population] = (pop_dims, pop, {"units": units, "long_name": doc})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({
        "model": spec.name,
        "solver": sim.solver.name,
        "dt_years": sim.dt,
        "mode": "stochastic" if sim.stochastic else "deterministic",
        "time_units": "years",
        "spreadjax_version": _version(),
    })
    ds.attrs.update(dict(attrs or {}))
    return ds


def _docs(spec) -> dict[str, tuple[str, str]]:
    out = {}
    for kind in ("parameters", "stocks", "flows", "auxiliaries", "delays", "smooths", "schedules"):
        for el in getattr(spec, kind):
            out[el.name] = (el.units, el.doc)
    return out


def _counted(spec, name: str) -> bool:
    for el in (*spec.stocks, *spec.delays):
        if el.name == name:
            return el.counted
    return False


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spreadjax")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
