"""One chunk of an ensemble as jitted JAX calls of one compiled shape (no dask here).

``ChunkRunner(config)`` builds the simulation once; ``runner(start, draw_values)`` returns
``{output: (draw, scenario, replicate, time, site)}`` for draws ``start .. start + len``. A chunk
runs as one call per batch of ``batch x devices`` draws (on an accelerator the whole chunk; on CPU
about ``CPU_MEMBER_SITES_PER_BATCH`` members x sites, which keeps the state in cache), the last
padded, so it compiles once whatever the chunk's size. Calls from the host, not a ``lax.map``
inside one program: on CPU the loop cost 10-30% of the throughput.

What is compiled depends only on the static :class:`ChunkLayout` (model, outputs, times, solver,
sizes, which names draws and scenarios set); base values, scenario values, network weights and
the seed are array arguments, so a config that changes only those reuses the compiled chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._adopted import ADOPTED, store_population
from ._plan import chunk_size_for, scenario_table

#: on CPU, members x sites simulated together in one call (a member is one draw x scenario x
#: replicate). Flagship model, 1 site, 2 cores, one after another: 3.2e7 member-steps/s at 2^14,
#: 3.4e7 at 2^15, 4.1-4.4e7 at 2^16, 3.1e7 at 2^17 (the state leaves the caches); timed A/B
#: against the earlier ``lax.map`` over 2^14-member batches: 1.17-1.21x (benchmarks/README.md).
#: Accelerators take each device's whole share of a chunk at once ("auto" chunks fit its memory).
CPU_MEMBER_SITES_PER_BATCH = 65536


@dataclass(frozen=True)
class ChunkLayout:
    """The static structure of a chunk: what to compile (hashable)."""

    sim: Any  # core.Simulation
    chunk_size: int
    batch: int  # draws per device simulated in one call (a chunk is one call or several)
    n_scenarios: int
    n_replicates: int
    shared_times: tuple[tuple[str, bool], ...]  # per changed schedule: do all scenarios share its times?
    devices: int = 1  # local devices the draws are sharded over (chunk_size is a multiple of it)
    adopted: tuple[tuple[str, ...], str] | None = None  # (outputs, scale) the 'adopted' count is computed from


class ChunkRunner:
    """The compiled computation of one chunk for a config (built once per process)."""

    def __init__(self, config: Any):
        from .._jobs import build_simulation
        from ..core import Simulation

        sim, base, network = build_simulation(config)
        s = config.ensemble
        chunk_size = chunk_size_for(config)
        self.dtype = jnp.dtype(config.simulation.dtype)
        table = scenario_table(config, base)
        n_scenarios = len(config.scenarios)
        per_draw = max(1, (n_scenarios if table else 1) * s.replicates)
        devices = jax.local_device_count()
        devices = devices if chunk_size % devices == 0 else 1
        per_device = chunk_size // devices
        if jax.default_backend() == "cpu":
            per_batch = max(1, CPU_MEMBER_SITES_PER_BATCH // (per_draw * config.n_sites))
            batch = -(-per_device // -(-per_device // per_batch))  # equal batches, the least padding
        else:
            batch = per_device
        self.layout = ChunkLayout(
            sim=Simulation(sim.model, sim.ts, sim.dt, s.outputs, sim.solver, sim.t0, sim.stochastic),
            chunk_size=chunk_size,
            batch=batch,
            n_scenarios=n_scenarios,
            n_replicates=s.replicates,
            # Breakpoint times that every scenario shares stay unbatched (a cheaper schedule lookup).
            shared_times=tuple((name, bool(np.all(v["times"] == v["times"][:1])))
                               for name, v in table.items() if isinstance(v, dict)),
            devices=devices,
            adopted=s.adopted.static if s.adopted is not None else None,
        )
        cast = functools.partial(jax.tree.map, lambda a: jnp.asarray(a, self.dtype))
        self.data = {
            "base": cast(base),
            "scenarios": cast(table),
            # Which scenarios set each parameter themselves: only those override a drawn value.
            "explicit": {name: jnp.asarray([name in dict(sc.parameters) for sc in config.scenarios])
                         for name, v in table.items() if not isinstance(v, dict)},
            "network": network,
            "seed": jnp.asarray(s.seed),
        }
        if self.layout.adopted is not None:  # the populations (site,) a share is of
            self.data["population"] = jnp.asarray(store_population(s.adopted, base, config.n_sites), self.dtype)

    @property
    def chunk_size(self) -> int:
        return self.layout.chunk_size

    @property
    def sim(self) -> Any:
        return self.layout.sim

    def __call__(self, start: int, draw_vals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(draw_vals.values())).shape[0] if draw_vals else None
        return self.run(start, draw_vals, n)

    def run(self, start: int, draw_vals: dict[str, np.ndarray], n: int | None) -> dict[str, np.ndarray]:
        """Simulate ``n`` draws from ``start``; ``draw_vals`` hold ``(n, site)`` arrays."""
        return self.collect(self.launch(start, draw_vals, n))

    def launch(self, start: int, draw_vals: dict[str, np.ndarray], n: int | None) -> tuple[list[dict], int]:
        """Start simulating ``n`` draws from ``start`` and return at once (JAX dispatches
        asynchronously): ``(device outputs, n)`` for :meth:`collect`, so that the host can write
        one chunk while the device computes the next. The chunk runs as calls of
        ``batch x devices`` draws each (one compiled program, padded at the end)."""
        n = self.chunk_size if n is None else n
        group = self.layout.batch * self.layout.devices
        total = -(-self.chunk_size // group) * group
        pad = total - n
        index = np.arange(start, start + total, dtype=np.int64)
        vals = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) if pad else v for k, v in draw_vals.items()}
        outs = [_run_chunk(self.layout, self.data, jnp.asarray(index[g:g + group]),
                           {k: jnp.asarray(v[g:g + group], self.dtype) for k, v in vals.items()})
                for g in range(0, total, group)]
        return outs, n

    @staticmethod
    def collect(launched: tuple[list[dict], int]) -> dict[str, np.ndarray]:
        """Wait for a :meth:`launch` and bring its ``n`` draws to the host as numpy arrays."""
        outs, n = launched
        got = jax.device_get(outs)
        return {k: np.concatenate([np.asarray(o[k]) for o in got])[:n] for k in got[0]}


def one_ahead(items: Iterable[Any], launch: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
    """``(item, launch(item))`` for each item, each handed out only once the next item has been
    launched: with :meth:`ChunkRunner.launch` the device computes chunk i + 1 while the caller
    collects and writes chunk i (at most two in flight)."""
    in_flight = None
    for item in items:
        launched = (item, launch(item))
        if in_flight is not None:
            yield in_flight
        in_flight = launched
    if in_flight is not None:
        yield in_flight


def _members(layout: ChunkLayout, data: dict, draw_vals: dict,
             n_draws: int = 1) -> tuple[dict, dict, tuple[int, int, int]]:
    """Parameters of every member of a batch of ``n_draws`` draws, flattened draw-major to
    ``(member, ...)`` over (draw, scenario, replicate), with the ``axes`` that say which leaves are
    per member."""
    base, scenarios, explicit = data["base"], data["scenarios"], data["explicit"]
    n_draws = next(iter(draw_vals.values())).shape[0] if draw_vals else n_draws
    lead = (n_draws, layout.n_scenarios if scenarios else 1, layout.n_replicates)
    n = int(np.prod(lead))
    shared_times = dict(layout.shared_times)

    def members(x: Any, draw: bool, scenario: bool) -> Any:  # (draw?, scenario?, *rest) -> (member, *rest)
        x = x[:, None] if draw and not scenario else x
        x = x[None] if scenario else x
        x = x[:, :, None] if draw or scenario else x
        return jnp.broadcast_to(x, (*lead, *x.shape[3:])).reshape(n, *x.shape[3:])

    params: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    for name, value in base.items():
        scen = scenarios.get(name)
        drawn = draw_vals.get(name)
        if isinstance(value, dict) and scen is not None:
            shared = shared_times[name]
            params[name] = {"times": scen["times"][0] if shared else members(scen["times"], False, True),
                            "values": members(scen["values"], False, True)}
            axes[name] = {"times": None if shared else 0, "values": 0}
        elif isinstance(value, dict) or (drawn is None and scen is None):
            params[name], axes[name] = value, None
        elif drawn is not None and scen is not None:  # a scenario's explicit choice wins over a draw
            x = jnp.where(explicit[name][None, :, None], scen[None], drawn[:, None])
            params[name], axes[name] = members(x[:, :, None], False, False), 0
        else:
            params[name] = members(drawn, True, False) if scen is None else members(scen, False, True)
            axes[name] = 0
    if all(a is None for a in axes.values()):  # nothing varies ("fixed"): one parameter per member
        name = next(k for k, v in params.items() if not isinstance(v, dict))
        params[name], axes[name] = members(jnp.asarray(params[name])[None, None, None], False, False), 0
    return params, axes, lead


def _batch(layout: ChunkLayout, data: dict, draw_index: Any, draw_vals: dict) -> dict:
    params, axes, lead = _members(layout, data, draw_vals, draw_index.shape[0])
    keys = None
    if layout.sim.stochastic:
        root = jax.random.PRNGKey(data["seed"])
        per = jax.vmap(lambda d: jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(root, d), r))(
            jnp.arange(layout.n_replicates)))(draw_index)  # (draw, replicate, 2): common across scenarios
        keys = jnp.broadcast_to(per[:, None], (*lead, *per.shape[2:])).reshape(-1, *per.shape[2:])
    out = layout.sim.batch(params, data["network"], keys, axes)
    if layout.adopted is not None:
        out[ADOPTED] = adopted_count(layout.adopted, out, data["population"])
    out = {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}
    if lead[1] != layout.n_scenarios:  # no scenario changes anything: one run serves them all
        out = {k: jnp.broadcast_to(v, (lead[0], layout.n_scenarios, *v.shape[2:])) for k, v in out.items()}
    return out


def adopted_count(adopted: tuple[tuple[str, ...], str], out: dict, population: Any) -> Any:
    """Adopted organisations ``(member, time, site)``: the sum of the outputs ``adopted[0]``, times
    ``population`` (site,) when it is a share (``adopted[1] == "fraction"``)."""
    names, scale = adopted
    total = out[names[0]]
    for name in names[1:]:
        total = total + out[name]
    return total * population.reshape((1,) * (total.ndim - 1) + (-1,)) if scale == "fraction" else total


def _local_chunk(layout: ChunkLayout, data: dict, draw_index: Any, draw_vals: dict) -> dict:
    """One device's batch of draws."""
    return _batch(layout, data, draw_index, draw_vals)


@functools.partial(jax.jit, static_argnums=0)
def _run_chunk(layout: ChunkLayout, data: dict, draw_index: Any, draw_vals: dict) -> dict:
    if layout.devices == 1:
        return _local_chunk(layout, data, draw_index, draw_vals)
    # Draws sharded over the local devices (a 1-D mesh over the member axis); the config's data
    # (base values, scenarios, network, seed) is replicated. Members never interact, so the
    # devices run independently and the result is the single-device one, bit for bit.
    from jax.sharding import Mesh, PartitionSpec

    mesh = Mesh(np.asarray(jax.local_devices()[: layout.devices]), ("members",))
    run = jax.shard_map(functools.partial(_local_chunk, layout), mesh=mesh,
                        in_specs=(PartitionSpec(), PartitionSpec("members"), PartitionSpec("members")),
                        out_specs=PartitionSpec("members"), check_vma=False)
    return run(data, draw_index, draw_vals)
