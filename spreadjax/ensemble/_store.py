"""The zarr store of an ensemble: layout, identity, chunk writes and resume.

Layout (``ensemble.zarr``, readable with ``xarray.open_zarr``): one array per output with dims
``(draw, scenario, replicate, time, site)`` chunked by the plan's draws; ``population``
``(site,)``; the varied parameter values ``draw_<name>`` ``(draw, site)``; ``chunk_checksum``
``(chunk, output)``, a BLAKE2b digest (8 bytes, as uint64) of each chunk's values as written, and
``chunk_done`` ``(chunk,)``, both set only after a chunk's data is written. Attributes record the
schema version, an identity hash of everything that determines the results (so a store from
another config is refused instead of mixed) and digests of the drawn values. The store is created
in a temporary folder and renamed into place; its metadata is consolidated once every chunk is
done. :func:`verify_store` rereads every finished chunk against its digest: a resumed run
recomputes the damaged ones, and ``spreadjax verify`` names them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ._adopted import ADOPTED, stored_outputs
from ._plan import EnsemblePlan

SCHEMA_VERSION = 2  # 2: chunk checksums, draw digests, consolidated metadata
_EXECUTION_ONLY = ("workers", "cluster")  # [ensemble] keys that do not change the results


def identity(config: Any, draw_vals: dict[str, np.ndarray]) -> str:
    """SHA-256 of the config content that determines results, and of the drawn values."""
    raw = json.loads(json.dumps(config.raw, sort_keys=True, default=str))
    raw.get("ensemble", {}).pop("workers", None)
    raw.get("ensemble", {}).pop("cluster", None)
    h = hashlib.sha256(json.dumps(raw, sort_keys=True).encode())
    h.update(repr(config.parameters).encode())  # with the populations the data fix
    if getattr(config, "model_file", None):  # an edited model file changes the results
        h.update(dict(config.model_options)["sha256"].encode())
    if config.data is not None:
        h.update(config.data.sha256.encode())
    source = config.ensemble.adopted
    if source is not None and source.derived:  # the adopted count computed another way (the flagship's hash is kept)
        h.update(repr(source).encode())
    for name in sorted(draw_vals):
        h.update(name.encode())
        h.update(np.ascontiguousarray(draw_vals[name], dtype=np.float64).tobytes())
    return h.hexdigest()


def create_store(path: Path, config: Any, plan: EnsemblePlan, draw_vals: dict[str, np.ndarray],
                 ident: str, times: np.ndarray, population: np.ndarray) -> None:
    """Create an empty store (metadata, draws, population) atomically at ``path``."""
    import dask.array as da

    outputs = stored_outputs(config.ensemble.outputs, config.ensemble.adopted)
    shape = (plan.n_draws, len(plan.scenarios), plan.n_replicates, len(times), config.n_sites)
    chunks = (plan.chunk_size, len(plan.scenarios), plan.n_replicates, len(times), config.n_sites)
    dtype = np.dtype(config.simulation.dtype)
    dims = ("draw", "scenario", "replicate", "time", "site")
    data: dict[str, Any] = {
        name: (dims, da.zeros(shape, dtype=dtype, chunks=chunks), {"units": _units(config, name)})
        for name in outputs
    }
    data["population"] = (("site",), np.asarray(population, dtype=float), {"units": "organisations"})
    for name, values in draw_vals.items():
        data[f"draw_{name}"] = (("draw", "site"), values, {"long_name": f"value of {name} in each draw"})
    data["chunk_checksum"] = (("chunk", "output"), np.zeros((plan.n_chunks, len(outputs)), np.uint64),
                              {"long_name": "BLAKE2b-64 digest of each chunk's values as written"})
    data["chunk_done"] = (("chunk",), np.zeros(plan.n_chunks, dtype=bool))
    coords: dict[str, Any] = {"output": list(outputs), "draw": np.arange(plan.n_draws), "scenario": list(plan.scenarios),
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
        "adopted_from": config.ensemble.adopted.describe() if config.ensemble.adopted is not None else ADOPTED,
        "draws_checksum": json.dumps({name: f"{checksum(np.asarray(v, float)):016x}" for name, v in draw_vals.items()}),
    })
    encoding = {name: {"chunks": chunks} for name in outputs}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.to_zarr(tmp, compute=False, mode="w", encoding=encoding, consolidated=False, zarr_format=2)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _units(config: Any, name: str) -> str:
    if name == ADOPTED and config.ensemble.adopted is not None and config.ensemble.adopted.derived:
        return "organisations"
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


def checksum(values: np.ndarray) -> int:
    """BLAKE2b digest (8 bytes, little-endian, as an unsigned int) of an array's bytes in C order."""
    digest = hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def write_chunk(path: Path, plan: EnsemblePlan, i: int, result: dict[str, np.ndarray]) -> dict[str, int]:
    """Write chunk ``i``'s outputs into its region of the store (idempotent); returns the
    :func:`checksum` of each output's values as written (in the store's dtype)."""
    import zarr

    start, stop = plan.chunk(i)
    group = zarr.open_group(str(path), mode="r")
    values = {name: np.asarray(value, dtype=group[name].dtype) for name, value in result.items()}
    dims = ("draw", "scenario", "replicate", "time", "site")
    ds = xr.Dataset({name: (dims, value) for name, value in values.items()})
    ds.to_zarr(path, region={"draw": slice(start, stop)}, mode="r+", consolidated=False)
    return {name: checksum(value) for name, value in values.items()}


def mark_done(path: Path, i: int, checksums: dict[str, int]) -> None:
    """Record chunk ``i``'s checksums, then flag it complete (called only after its data is written)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    names = [str(o) for o in group["output"][:]]
    group["chunk_checksum"][i] = np.array([checksums[n] for n in names], dtype=np.uint64)
    group["chunk_done"][i] = True


def mark_damaged(path: Path, chunks: list[int]) -> None:
    """Clear the done flags of ``chunks`` so that the run computes them again."""
    import zarr

    flags = zarr.open_group(str(path), mode="r+")["chunk_done"]
    for i in chunks:
        flags[i] = False


def finish_store(path: Path) -> None:
    """Consolidate the store's metadata (once every chunk is done): one read opens it."""
    import zarr

    zarr.consolidate_metadata(str(path))


@dataclass
class StoreCheck:
    """What :func:`verify_store` found: chunks checked and the damage, as (chunk, output, why)."""

    path: Path
    n_chunks: int
    checked: list[int]
    damaged: list[tuple[int, str, str]] = field(default_factory=list)
    bad_draws: list[str] = field(default_factory=list)

    @property
    def damaged_chunks(self) -> list[int]:
        return sorted({i for i, _, _ in self.damaged})

    def describe(self) -> str:
        """One line naming each damaged chunk and output (or the draws)."""
        parts = [f"chunk {i} {name} ({why})" for i, name, why in self.damaged]
        parts += [f"draw_{name} (checksum differs: the drawn values are damaged)" for name in self.bad_draws]
        return f"{self.path}: {len(parts)} damaged part(s): " + "; ".join(parts)


def verify_store(path: Path, chunks: list[int] | None = None) -> StoreCheck:
    """Reread the finished ``chunks`` (default: every chunk marked done) and the drawn values
    against their digests. Missing chunk files, undecodable bytes and changed values are damage;
    an unreadable or pre-checksum store is an :class:`InputError`."""
    import zarr

    attrs, done = read_store_state(path)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: store schema {attrs.get('schema_version')!r} has no chunk checksums "
                         f"(expected {SCHEMA_VERSION}); run it again into a new --out")
    group = zarr.open_group(str(path), mode="r")
    try:
        names = [str(o) for o in group["output"][:]]
        arrays = [group[name] for name in names]
        sums = np.asarray(group["chunk_checksum"][:], dtype=np.uint64)
        chunk = int(attrs["chunk_size"])
        draws = json.loads(attrs.get("draws_checksum", "{}"))
    except Exception as exc:  # noqa: BLE001 - the bookkeeping itself is damaged
        raise InputError(f"{path}: the store's metadata or checksums cannot be read ({type(exc).__name__}: "
                         f"{exc}); delete it or choose another --out") from None
    todo = [i for i in range(len(done)) if done[i]] if chunks is None else list(chunks)
    report = StoreCheck(Path(path), len(done), todo)
    for name, want in draws.items():
        try:
            got = f"{checksum(np.asarray(group[f'draw_{name}'][:], float)):016x}"
        except Exception:  # noqa: BLE001 - undecodable counts as damaged
            got = None
        if got != want:
            report.bad_draws.append(name)
    for i in todo:
        for k, (name, array) in enumerate(zip(names, arrays, strict=True)):
            why = _chunk_damage(path, array, i, chunk, int(sums[i, k]))
            if why:
                report.damaged.append((i, name, why))
    return report


def _chunk_damage(path: Path, array: Any, i: int, chunk: int, want: int) -> str | None:
    """Why chunk ``i`` of ``array`` does not match ``want``, or None when it does."""
    stop = min((i + 1) * chunk, array.shape[0])
    key = array.metadata.dimension_separator.join([str(i)] + ["0"] * (array.ndim - 1))
    if not (Path(path) / array.basename / key).exists():
        return "missing"
    try:
        values = np.asarray(array[i * chunk:stop])
    except Exception as exc:  # noqa: BLE001 - any decode failure is damage
        return f"unreadable: {type(exc).__name__}"
    return None if checksum(values) == want else "checksum differs"


def read_draws(path: Path, start: int, stop: int) -> dict[str, np.ndarray]:
    """The varied parameter values of draws ``[start, stop)`` as stored."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    return {name[len("draw_"):]: np.asarray(group[name][start:stop]) for name in group.array_keys()
            if name.startswith("draw_")}


def open_results(path: Path) -> xr.Dataset:
    """The finished store as a lazy (dask-backed) Dataset (consolidated metadata when complete)."""
    return xr.open_zarr(path, consolidated=(Path(path) / ".zmetadata").exists())
