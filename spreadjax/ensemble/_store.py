"""The zarr store of an ensemble: layout, identity, chunk writes and resume.

Layout (``ensemble.zarr``, readable with ``xarray.open_zarr``): one array per output with dims
``(draw, scenario, replicate, time, site)`` chunked by the plan's draws; ``population``
``(site,)``; the varied parameter values ``draw_<name>`` ``(draw, site)``; ``chunk_done``
``(chunk,)``, set only after a chunk's data is written. Attributes record the schema version and
an identity hash of everything that determines the results, so a store from another config is
refused instead of mixed. The store is created in a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ._plan import EnsemblePlan

SCHEMA_VERSION = 1
_EXECUTION_ONLY = ("workers", "cluster")  # [ensemble] keys that do not change the results


def identity(config: Any, draw_vals: dict[str, np.ndarray]) -> str:
    """SHA-256 of the config content that determines results, and of the drawn values."""
    raw = json.loads(json.dumps(config.raw, sort_keys=True, default=str))
    raw.get("ensemble", {}).pop("workers", None)
    raw.get("ensemble", {}).pop("cluster", None)
    h = hashlib.sha256(json.dumps(raw, sort_keys=True).encode())
    h.update(repr(config.parameters).encode())  # with the populations the data fix
    if config.data is not None:
        h.update(config.data.sha256.encode())
    for name in sorted(draw_vals):
        h.update(name.encode())
        h.update(np.ascontiguousarray(draw_vals[name], dtype=np.float64).tobytes())
    return h.hexdigest()


def create_store(path: Path, config: Any, plan: EnsemblePlan, draw_vals: dict[str, np.ndarray],
                 ident: str, times: np.ndarray, population: np.ndarray) -> None:
    """Create an empty store (metadata, draws, population) atomically at ``path``."""
    import dask.array as da

    shape = (plan.n_draws, len(plan.scenarios), plan.n_replicates, len(times), config.n_sites)
    chunks = (plan.chunk_size, len(plan.scenarios), plan.n_replicates, len(times), config.n_sites)
    dtype = np.dtype(config.simulation.dtype)
    dims = ("draw", "scenario", "replicate", "time", "site")
    data: dict[str, Any] = {
        name: (dims, da.zeros(shape, dtype=dtype, chunks=chunks), {"units": _units(config, name)})
        for name in config.ensemble.outputs
    }
    data["population"] = (("site",), np.asarray(population, dtype=float), {"units": "organisations"})
    for name, values in draw_vals.items():
        data[f"draw_{name}"] = (("draw", "site"), values, {"long_name": f"value of {name} in each draw"})
    data["chunk_done"] = (("chunk",), np.zeros(plan.n_chunks, dtype=bool))
    coords: dict[str, Any] = {"draw": np.arange(plan.n_draws), "scenario": list(plan.scenarios),
                              "replicate": np.arange(plan.n_replicates), "site": list(config.sites),
                              "time": ("time", np.asarray(times, float), {"units": "years"})}
    if config.simulation.start_date:
        days = np.round(np.asarray(times) * 365.25).astype("timedelta64[D]")
        coords["date"] = ("time", np.datetime64(config.simulation.start_date, "D") + days)
    from .. import __version__

    ds = xr.Dataset(data, coords=coords, attrs={
        "schema_version": SCHEMA_VERSION, "identity": ident, "config": str(config.path),
        "title": config.title, "chunk_size": plan.chunk_size, "n_chunks": plan.n_chunks,
        "seed": plan.seed, "source": config.ensemble.source, "spreadjax_version": __version__,
        "mode": "stochastic" if config.stochastic.enabled else "deterministic",
    })
    encoding = {name: {"chunks": chunks} for name in config.ensemble.outputs}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.to_zarr(tmp, compute=False, mode="w", encoding=encoding, consolidated=False, zarr_format=2)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _units(config: Any, name: str) -> str:
    for kind in ("stocks", "flows", "auxiliaries", "delays", "smooths", "schedules"):
        for el in getattr(config.build_model(), kind):
            if el.name == name:
                return el.units
    return "1"


def read_store_state(path: Path) -> tuple[dict, np.ndarray]:
    """The attributes and ``chunk_done`` flags of an existing store; :class:`InputError` if unreadable."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        return dict(group.attrs), np.asarray(group["chunk_done"][:], dtype=bool)
    except Exception as exc:  # noqa: BLE001 - any failure to read means a corrupt store
        raise InputError(f"{path}: not a readable spreadjax ensemble store ({type(exc).__name__}: {exc}); "
                         "delete it or choose another --out") from None


def check_store(path: Path, ident: str) -> np.ndarray:
    """Open an existing store for resuming; returns its ``chunk_done`` flags.

    Raises :class:`InputError` when it was written by a different config or is unreadable.
    """
    attrs, done = read_store_state(path)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: store schema {attrs.get('schema_version')!r}, expected {SCHEMA_VERSION}; "
                         "choose another --out")
    if attrs.get("identity") != ident:
        raise InputError(
            f"{path}: this store was written by a different config or posterior "
            f"(its {attrs.get('config', '?')!r}); results would be mixed. Choose another --out or delete it"
        )
    return done


def write_chunk(path: Path, plan: EnsemblePlan, i: int, result: dict[str, np.ndarray]) -> None:
    """Write chunk ``i``'s outputs into its region of the store (idempotent)."""
    start, stop = plan.chunk(i)
    dims = ("draw", "scenario", "replicate", "time", "site")
    ds = xr.Dataset({name: (dims, value) for name, value in result.items()})
    ds.to_zarr(path, region={"draw": slice(start, stop)}, mode="r+", consolidated=False)


def mark_done(path: Path, i: int) -> None:
    """Flag chunk ``i`` as complete (called only after its data is written)."""
    import zarr

    zarr.open_group(str(path), mode="r+")["chunk_done"][i] = True


def read_draws(path: Path, start: int, stop: int) -> dict[str, np.ndarray]:
    """The varied parameter values of draws ``[start, stop)`` as stored."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    return {name[len("draw_"):]: np.asarray(group[name][start:stop]) for name in group.array_keys()
            if name.startswith("draw_")}


def open_results(path: Path) -> xr.Dataset:
    """The finished store as a lazy (dask-backed) Dataset."""
    return xr.open_zarr(path, consolidated=False)
