"""Local dask workers pinned one to a core (Linux), so that they share the cores.

``WORKER_ENV``'s one-thread XLA flags no longer hold jax 0.10's CPU runtime to one core (a worker
used 1.8 of 2 cores), but XLA sizes its thread pool to the cores a process may run on: pinning
each worker before JAX starts in it makes N workers on N cores divide the machine instead of
contending for it."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class PinToCore(WorkerPlugin):
    """Gives local worker ``i`` of ``workers`` (its dask name) the cores ``cores[i::workers]`` when
    it starts (one each when there are as many workers as cores; all of them for one worker)."""

    def __init__(self, cores: list[int], workers: int):
        self.cores, self.workers = cores, workers

    def setup(self, worker: Any) -> None:
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            return
        mine = self.cores[index % self.workers::self.workers] or self.cores
        os.sched_setaffinity(0, set(mine))
