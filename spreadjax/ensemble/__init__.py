"""Ensembles: draws x scenarios x seeds on dask.distributed, results in a resumable zarr store,
and their summaries. Import this layer where it is used: it brings in dask and zarr."""

from ._batch import ChunkRunner as ChunkRunner
from ._plan import EnsemblePlan as EnsemblePlan
from ._plan import draw_values as draw_values
from ._run import RunReport as RunReport
from ._run import run_ensemble as run_ensemble
from ._store import open_results as open_results
