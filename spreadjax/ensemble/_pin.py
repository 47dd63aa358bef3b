"""Local dask workers pinned to their share of the machine: one GPU each, or their share of the cores.

With GPUs, worker i sees only GPU i (``CUDA_VISIBLE_DEVICES``, set before JAX starts in it) and
allocates GPU memory as it needs it, so workers neither share a GPU nor each claim 75% of every
GPU's memory at start (JAX's default), which would leave the next worker none.

On CPUs (Linux): ``WORKER_ENV``'s one-thread XLA flags no longer hold jax 0.10's CPU runtime to
one core (a process started with them used 1.8 of 2 cores), but XLA sizes its thread pool to the
cores a process may run on: pinning each worker before JAX starts in it makes N workers on N
cores divide the machine instead of contending for it."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


def pin_workers(client: Any, workers: int) -> bool:
    """Pin the ``workers`` local workers of ``client``: one GPU each when JAX sees GPUs here, else
    their share of this process's cores (nothing without CPU affinity). Returns whether it pinned."""
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [g for g in visible.split(",") if g.strip()] if visible else [str(i) for i in range(len(gpus))]
        client.register_plugin(PinToGPU(ids[:len(gpus)]), name="spreadjax-pin-to-gpu")
        return True
    if not hasattr(os, "sched_setaffinity"):
        return False
    client.register_plugin(PinToCore(sorted(os.sched_getaffinity(0)), workers), name="spreadjax-pin-to-core")
    return True


class PinToGPU(WorkerPlugin):
    """Gives local worker ``i`` (its dask name) the GPU ``gpus[i % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``)
    and on-demand GPU memory (``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless already set), when it
    starts and before JAX does."""

    def __init__(self, gpus: list[str]):
        self.gpus = gpus

    def setup(self, worker: Any) -> None:
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            return
        os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


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
