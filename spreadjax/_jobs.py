"""Jobs that turn a validated config into results: the glue between configs and the core."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only typed settings are passed in: no import of the config parser
    from ._config import Config


def enable_dtype(dtype: str) -> None:
    """Switch JAX to 64-bit when a config asks for float64 (must precede any array creation)."""
    import jax

    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


#: Bytes the compilation cache may hold before the least recently used programs are dropped.
COMPILE_CACHE_BYTES = 2 * 2**30


def set_compile_cache(folder: str, min_compile_seconds: float = 0.5) -> None:
    """Keep XLA programs that took at least ``min_compile_seconds`` to compile in ``folder``, at
    most :data:`COMPILE_CACHE_BYTES` of them (least recently used dropped first). The bound also
    makes JAX take a file lock around every read and write of the folder, so the client and its
    dask workers, which share it, never read a program another process is half way through
    writing."""
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_BYTES)


def cpu_devices_for_chains(chains: int) -> bool:
    """Split the CPU into ``chains`` JAX devices so that NUTS chains run in parallel, one per
    device, over all cores (1.5x on 2 cores for the bundled calibration; docs/performance.md).

    Only possible before JAX runs its first operation, and left alone when ``XLA_FLAGS`` or
    ``jax_num_cpu_devices`` already say how many CPU devices to make; returns whether it acted.
    Ensembles run afterwards in the same process are sharded over these devices too."""
    import os

    import jax

    if chains < 2 or (os.cpu_count() or 1) < 2 or jax.config.jax_num_cpu_devices != -1:
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", chains)
    except RuntimeError:  # JAX has already started: keep its devices
        return False
    return True


def build_network(config: Config, dtype: Any) -> Any:
    """The config's peer network as a core network PyTree, or None."""
    from .core import dense_network, sparse_network

    net = config.network
    if net is None:
        return None
    if net.kind == "dense":
        return dense_network(net.weight, config.n_sites, dtype)
    return sparse_network(np.asarray(net.source, dtype=np.int64), np.asarray(net.target, dtype=np.int64),
                          net.edge_weight, config.n_sites, dtype)


def build_simulation(config: Config):
    """``(simulation, params, network)`` for a config."""
    import jax.numpy as jnp

    from .core import Simulation, compile_model, make_solver

    enable_dtype(config.simulation.dtype)
    s = config.simulation
    dtype = jnp.dtype(s.dtype)
    cm = compile_model(config.build_model())
    params = cm.params(config.n_sites, dtype, **config.param_values())
    options = {"rtol": s.rtol, "atol": s.atol} if s.solver == "adaptive" else {}
    solver = make_solver(s.solver, **options)
    sim = Simulation(cm, tuple(s.times), s.dt, s.outputs, solver, t0=s.start,
                     stochastic=config.stochastic.enabled)
    return sim, params, build_network(config, dtype)


def config_hash(config: Config) -> str:
    """SHA-256 of the config file's bytes (or of its parsed form when it has no file), and of the
    model file's SHA-256 for a ``[model] file`` config (so an edited model file is a new config)."""
    path = Path(config.path)
    data = path.read_bytes() if path.exists() else repr(config.raw).encode()
    if getattr(config, "model_file", None):
        data += b"\0model " + dict(config.model_options)["sha256"].encode()
    return hashlib.sha256(data).hexdigest()


def simulate_config(config: Config):
    """Run a config's simulation; returns a labelled xarray Dataset.

    Stochastic configs run ``replicates`` members in one vmapped batch; member ``r`` uses the key
    ``fold_in(PRNGKey(seed), r)``, so results do not depend on batch layout.
    """
    import jax

    from ._limits import require_memory

    members = config.stochastic.replicates if config.stochastic.enabled else 1
    s = config.simulation
    per_member = config.n_sites * np.dtype(s.dtype).itemsize * (3 * len(s.times) * len(s.outputs) + 64)
    require_memory(members * per_member, f"{config.path}: simulating {members:,} replicate(s) x {len(s.times):,} "
                   f"times x {config.n_sites} site(s) x {len(s.outputs)} output(s)",
                   "lower [stochastic] replicates or save fewer outputs")
    sim, params, network = build_simulation(config)
    batch_dims: tuple[str, ...] = ()
    if config.stochastic.enabled:
        root = jax.random.PRNGKey(config.stochastic.seed)
        keys = jax.vmap(lambda r: jax.random.fold_in(root, r))(np.arange(config.stochastic.replicates))
        run = jax.jit(jax.vmap(sim, in_axes=(None, None, 0)))
        result = run(params, network, keys)
        batch_dims = ("replicate",)
    else:
        from .core import simulate

        result = simulate(sim, params, network)
    from .core._dataset import to_dataset

    attrs = {"title": config.title, "config": str(config.path), "config_sha256": config_hash(config),
             "seed": config.stochastic.seed if config.stochastic.enabled else -1,
             "dtype": config.simulation.dtype}
    ds = to_dataset(sim, jax.device_get(result), jax.device_get(params), config.sites, batch_dims,
                    config.simulation.start_date, attrs)
    if config.stochastic.enabled:
        ds = ds.assign_coords(replicate=np.arange(config.stochastic.replicates))
    return ds
