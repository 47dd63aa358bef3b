"""Ensembles: draws x scenarios x seeds on dask.distributed, results in a resumable zarr store,
and their summaries (or summaries alone, reduced on the device: ``stream_summaries``).

Names load on first use: the chunk computation and streamed summaries need only JAX, numpy and
xarray, so they run where dask and zarr are not installed (a bare GPU machine); the runner and
the store bring dask and zarr in.
"""

import importlib

_EXPORTS = {
    "ChunkRunner": "._batch",
    "EnsemblePlan": "._plan",
    "draw_values": "._plan",
    "RunReport": "._run",
    "run_ensemble": "._run",
    "open_results": "._store",
    "stream_summaries": "._stream",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
