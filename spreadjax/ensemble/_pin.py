"""Local dask workers pinned one to a core (Linux), so that they share the cores.

``WORKER_ENV``'s one-thread XLA flags no longer hold jax 0.10's CPU runtime to one core (a
process started with them used 1.8 of 2 cores), but XLA sizes its thread pool to the cores a
process may run on: pinning each worker before JAX starts in it makes N workers on N cores
divide the machine instead of contending for it."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


def pin_workers(client: Any, workers: int) -> bool:
    """Pin the ``workers`` local workers of ``client`` to their share of this process's cores;
    nothing on a system without CPU affinity or when JAX sees GPUs. Returns whether it pinned."""
    import jax

    if not hasattr(os, "sched_setaffinity") or any(d.platform == "gpu" for d in jax.devices()):
        return False
    client.register_plugin(PinToCore(sorted(os.sched_getaffinity(0)), workers), name="spreadjax-pin-to-core")
    return True


class PinToCore(WorkerPlugin):
    """Gives local worker ``i`` of ``workers`` (its dask name) the cores ``cores[i::workers]`` when
    it starts: all of them for one worker, one each for as many workers as cores, and core
    ``i % len(cores)`` when there are more workers than cores."""

    def __init__(self, cores: list[int], workers: int):
        self.cores, self.workers = cores, workers

    def setup(self, worker: Any) -> None:
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            return
        step = min(self.workers, len(self.cores))
        os.sched_setaffinity(0, set(self.cores[index % step::step]))
