"""Running an ensemble on dask.distributed, chunk by chunk into a resumable zarr store.

By default a ``LocalCluster`` sized to the machine (one single-threaded worker process per core,
or one per GPU); ``scheduler`` connects to a running cluster; ``[ensemble.cluster]`` starts SLURM
or PBS jobs through dask-jobqueue. Each chunk is a task: the worker builds the compiled chunk
function once, simulates its draws, writes them into the store and returns their checksums; the
client records those and marks the chunk done. A chunk lost with its worker is recomputed
elsewhere; a restarted run rereads the chunks already done against their checksums, skips the
sound ones and recomputes the damaged ones. ``workers=0`` runs every chunk in this process,
without dask. One process writes a store at a time (a lock on its folder).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError, check_keys
from ._plan import EnsemblePlan, check_plan_fits, chunk_size_for, draw_values
from ._store import (check_store, create_store, finish_store, identity, mark_damaged, mark_done, read_draws,
                     read_store_state, verify_store, write_chunk)

Progress = Callable[[int, int], None]
WORKER_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "OMP_NUM_THREADS": "1"}


@dataclass
class RunReport:
    """What a run did: chunks computed now, chunks found done and sound, damaged chunks found done
    and computed again (``repaired``, as (chunk, output, why)), where the store is."""

    store: Path
    plan: EnsemblePlan
    computed: list[int]
    skipped: int
    repaired: list[tuple[int, str, str]] = field(default_factory=list)

    def repaired_text(self) -> str:
        """The repairs in words: which finished chunks failed their checksums and were recomputed."""
        chunks = sorted({i for i, _, _ in self.repaired})
        return (f"{len(chunks)} damaged chunk(s) recomputed: "
                + ", ".join(f"chunk {i} {name} ({why})" for i, name, why in self.repaired))


def plan_for(config: Any, store: Path | None = None) -> EnsemblePlan:
    """The config's plan; an "auto" chunk size keeps the one of an existing ``store``."""
    s = config.ensemble
    store_chunk = None
    if s.chunk_size == "auto" and store is not None and store.exists():
        try:
            store_chunk = read_store_state(store)[0].get("chunk_size")
        except InputError:
            store_chunk = None  # an unreadable store is reported by check_store
    chunk = min(chunk_size_for(config, store_chunk=store_chunk), max(s.draws, 1))  # never pad past the draws
    return EnsemblePlan(s.draws, tuple(sc.name for sc in config.scenarios), s.replicates, chunk, s.seed)


def _worker_config(config: Any, plan: EnsemblePlan) -> Any:
    """The typed config for workers (pickled to them: they read no file), with an "auto" chunk
    size replaced by the plan's, so every process computes the same chunks whatever its memory."""
    return dataclasses.replace(config, ensemble=dataclasses.replace(config.ensemble, chunk_size=plan.chunk_size))


def prepare(config: Any, store: Path, posterior: str | None = None) -> tuple[EnsemblePlan, list[int], int]:
    """Create the store, or check an existing one; returns the plan, pending chunks and skipped count."""
    plan, pending, skipped, _ = _open_or_create(config, store, _check(config, store, posterior))
    return plan, pending, skipped


@dataclass
class _Checked:
    """What :func:`_check` found (nothing written): ``done`` is None for a new store; ``damage``
    lists the finished chunks that failed their checksums."""

    plan: EnsemblePlan
    vals: dict
    ident: str
    done: np.ndarray | None
    damage: list[tuple[int, str, str]]


def require_adopted(config: Any) -> None:
    """Refuse, in one line, a model with no adopted count to store: neither an ``adopted`` stock over a
    population parameter nor ``[observation] cumulative`` naming the adopted quantity."""
    if config.ensemble.adopted is None:
        from ._adopted import adopted_source

        try:
            adopted_source(config.build_model())
        except InputError as exc:
            raise InputError(f"{config.path}: {exc}") from None


def _check(config: Any, store: Path, posterior: str | None) -> _Checked:
    """Draw the values and check an existing store, its finished chunks reread (writes nothing)."""
    require_adopted(config)
    plan = plan_for(config, store)
    check_plan_fits(config, plan, store.parent)  # before any draw is made or byte written
    vals = draw_values(config, posterior)
    ident = identity(config, vals)
    done, damage = None, []
    if store.exists():
        done = check_store(store, ident)
        found = verify_store(store)
        if found.bad_draws:  # every chunk would be simulated from damaged values
            raise InputError(f"{found.describe()}; delete the store and run again")
        damage = found.damaged
    return _Checked(plan, vals, ident, done, damage)


def _open_or_create(config: Any, store: Path, c: _Checked) -> tuple[EnsemblePlan, list[int], int, list]:
    from .._jobs import build_simulation
    from ._adopted import store_population

    done = c.done
    if done is None:
        sim, base, _ = build_simulation(config)
        population = store_population(config.ensemble.adopted, base, config.n_sites)
        create_store(store, config, c.plan, c.vals, c.ident, np.asarray(sim.ts), population)
        done = np.zeros(c.plan.n_chunks, dtype=bool)
    damaged = sorted({i for i, _, _ in c.damage})
    if damaged:
        mark_damaged(store, damaged)
        done = done.copy()
        done[damaged] = False
    pending = [i for i in range(c.plan.n_chunks) if not done[i]]
    return c.plan, pending, int(done.sum()), c.damage


@functools.lru_cache(maxsize=4)
def _runner(config: Any):
    """The compiled chunk runner of a (hashable, typed) config, built once per process."""
    from .._jobs import enable_dtype
    from ._batch import ChunkRunner

    enable_dtype(config.simulation.dtype)
    return ChunkRunner(config)


def compile_cache_setting() -> tuple[str, float] | None:
    """This process's XLA persistent compilation cache (folder, minimum compile seconds), if any."""
    import jax

    where = jax.config.jax_compilation_cache_dir
    return (str(where), float(jax.config.jax_persistent_cache_min_compile_time_secs)) if where else None


def use_compile_cache(setting: tuple[str, float] | None) -> bool:
    """Use the client's compilation cache in a worker that has none, when the worker can reach the
    folder (the same machine or a shared file system): workers then compile a chunk program once
    between them, across runs and resumes. Returns whether it was set."""
    import jax

    from .._jobs import set_compile_cache

    if setting is None or jax.config.jax_compilation_cache_dir or not Path(setting[0]).is_dir():
        return False
    set_compile_cache(*setting)
    return True


def compute_chunk(config: Any, store: str, plan: EnsemblePlan, i: int,
                  compile_cache: tuple[str, float] | None = None) -> tuple[int, dict[str, int]]:
    """Simulate chunk ``i`` and write it into ``store``; returns ``i`` and the outputs' checksums
    (runs on a worker, which uses ``compile_cache``, the client's :func:`compile_cache_setting`,
    when it has none)."""
    use_compile_cache(compile_cache)
    start, stop = plan.chunk(i)
    runner = _runner(config)
    draws = read_draws(Path(store), start, stop)
    result = runner.run(start, draws, stop - start)
    return i, write_chunk(Path(store), plan, i, result)


def _computed_in_process(config: Any, store: Path, plan: EnsemblePlan, pending: list[int]) -> Iterator[tuple[int, dict[str, int]]]:
    """Compute and write the ``pending`` chunks in this process, yielding each one written with
    its checksums.

    Chunk ``i + 1`` is launched before chunk ``i`` is brought back and written, so the device
    computes while the host reads draws, compresses and writes (at most two chunks in flight:
    "auto" chunks take a quarter of the free memory). An interruption loses at most the chunk
    in flight, which is not marked done and is computed again on resume."""
    from ._batch import one_ahead

    runner = _runner(config)

    def launch(i: int) -> Any:
        start, stop = plan.chunk(i)
        return runner.launch(start, read_draws(store, start, stop), stop - start)

    for i, launched in one_ahead(pending, launch):
        yield i, write_chunk(store, plan, i, runner.collect(launched))


def run_ensemble(config: Any, store: Path, *, posterior: str | None = None, scheduler: str | None = None,
                 workers: int | None = None, progress: Progress | None = None) -> RunReport:
    """Run (or resume) the config's ensemble into ``store``.

    Everything that can fail on bad input (the draws, an existing store's identity and checksums,
    reaching the scheduler) is checked before the store is created, so a failed start writes
    nothing. The store's folder is locked for the run; finished chunks that fail their checksums
    are computed again (``RunReport.repaired``); a complete store's metadata is consolidated.
    """
    from .._lock import output_lock

    check_workers(config, workers, scheduler)
    with output_lock(Path(store).parent, f"ensemble into {store}"):
        return _run_locked(config, Path(store), posterior, scheduler, workers, progress)


def _run_locked(config: Any, store: Path, posterior: str | None, scheduler: str | None,
                workers: int | None, progress: Progress | None) -> RunReport:
    checked = _check(config, store, posterior)
    worker_config = _worker_config(config, checked.plan)
    progress = progress or (lambda done, total: None)
    workers = config.ensemble.workers if workers is None else workers
    computed: list[int] = []

    def record(i: int, sums: dict[str, int]) -> None:
        mark_done(store, i, sums)
        computed.append(i)
        progress(skipped + len(computed), plan.n_chunks)

    if workers == 0 and scheduler is None:
        plan, pending, skipped, repaired = _open_or_create(config, store, checked)
        progress(skipped, plan.n_chunks)
        for i, sums in _computed_in_process(worker_config, store, plan, pending):
            record(i, sums)
    else:
        from distributed import as_completed

        with _client(config, scheduler, workers) as client:
            plan, pending, skipped, repaired = _open_or_create(config, store, checked)
            progress(skipped, plan.n_chunks)
            cache = compile_cache_setting()
            futures = [client.submit(compute_chunk, worker_config, str(store.resolve()), plan, i, cache,
                                     key=f"spreadjax-chunk-{store.name}-{i}-{os.getpid()}", retries=3, pure=False)
                       for i in pending]
            for future in as_completed(futures):
                record(*future.result())
    if computed or not (store / ".zmetadata").exists():  # every chunk is done here (an interruption
        finish_store(store)  # raises before); a store left as it was is not rewritten
    return RunReport(store, plan, computed, skipped, repaired)


#: Memory of one local dask worker process with JAX loaded, before its chunk (bytes, measured
#: ~0.35 GB on CPU; rounded up).
WORKER_BYTES = 500 * 10**6


def check_workers(config: Any, workers: int | None, scheduler: str | None = None) -> None:
    """Refuse a local worker count below 0, or one whose processes and chunks cannot fit in memory."""
    from .._limits import require_memory
    from ._plan import plan_sizes

    n = config.ensemble.workers if workers is None else workers
    if n is None or scheduler is not None or config.ensemble.cluster.kind != "local":
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"--workers {n!r}: expected a whole number >= 1 (or 0: run in this process)")
    if n > 0:
        chunk = plan_sizes(config, plan_for(config))["chunk"]
        require_memory(n * (WORKER_BYTES + chunk), f"{n} local dask worker(s), each with a chunk in memory",
                       "use fewer --workers")


def default_workers() -> int:
    """One worker per GPU when JAX sees GPUs, else one per CPU core."""
    try:
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
    except RuntimeError:
        gpus = []
    return len(gpus) or (os.cpu_count() or 1)


class _client:
    """Context manager yielding a dask Client for the configured cluster, closed afterwards."""

    def __init__(self, config: Any, scheduler: str | None, workers: int | None):
        self.config, self.scheduler, self.workers = config, scheduler, workers
        self.cluster = None
        self.client = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler:
            from distributed.comm.addressing import parse_address, parse_host_port

            try:  # before the Client: one that fails half-built fails again when collected
                scheme, where = parse_address(self.scheduler)
                if scheme in ("tcp", "tls"):
                    parse_host_port(where)
                self.client = Client(self.scheduler, timeout="20s")
            except (OSError, ValueError, TypeError) as exc:  # ValueError: not an address
                raise InputError(f"cannot reach the dask scheduler at {self.scheduler!r}: {exc}") from None
            return self.client
        c = self.config.ensemble.cluster
        if c.kind == "local":
            n = self.workers or default_workers()
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                        env=WORKER_ENV, silence_logs=40)
        else:
            self.cluster = jobqueue_cluster(self.config)
            self.cluster.scale(jobs=c.jobs)
        self.client = Client(self.cluster)
        if c.kind == "local":
            from ._pin import pin_workers

            pin_workers(self.client, n)  # one GPU each, or a share of the cores: no contention
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def jobqueue_cluster(config: Any):
    """A dask-jobqueue SLURMCluster or PBSCluster from ``[ensemble.cluster]`` (not started)."""
    c = config.ensemble.cluster
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError("[ensemble.cluster] kind = \"%s\" needs dask-jobqueue: pip install 'spreadjax[hpc]'" % c.kind) from None
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[c.kind]
    options = dict(c.options)
    # names checked before the cluster is built: a cluster that fails half-built fails again when collected
    known = {name for k in (cls, *cls.job_cls.__mro__) if "__init__" in vars(k)
             for name in inspect.signature(vars(k)["__init__"]).parameters}
    check_keys(options, sorted(known - {"self", "kwargs", "job_kwargs", "base_class_kwargs", "scheduler"}),
               str(config.path), "[ensemble.cluster]")
    options.setdefault("job_script_prologue", [f"export {k}='{v}'" for k, v in WORKER_ENV.items()])
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:  # dask-jobqueue's message goes on to list every option: its first line
        raise InputError(f"{config.path}: [ensemble.cluster]: {str(exc).splitlines()[0].rstrip(':')}") from None
