"""One chunk of an ensemble as a single jitted, vmapped JAX call (no dask here).

``ChunkRunner(config)`` builds the simulation once; ``runner(start, draw_values)`` returns
``{output: (draw, scenario, replicate, time, site)}`` for draws ``start .. start + len``. The
batch is always padded to ``chunk_size`` so it compiles once, whatever the last chunk's size.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._plan import scenario_table

BATCH = 1024  # draws vmapped together inside a chunk


class ChunkRunner:
    """The compiled computation of one chunk for a config (built once per process)."""

    def __init__(self, config: Any):
        from .._jobs import build_simulation
        from ..core import Simulation

        sim, base, network = build_simulation(config)
        s = config.ensemble
        self.sim = Simulation(sim.model, sim.ts, sim.dt, s.outputs, sim.solver, sim.t0, sim.stochastic)
        self.base = base
        self.network = network
        self.dtype = jnp.dtype(config.simulation.dtype)
        self.n_scenarios = len(config.scenarios)
        self.scenarios = jax.tree.map(lambda a: jnp.asarray(a, self.dtype), scenario_table(config, base))
        # Which scenarios set each parameter themselves: only those override a drawn value.
        self.explicit = {name: jnp.asarray([name in dict(sc.parameters) for sc in config.scenarios])
                         for name in self.scenarios if not isinstance(self.scenarios[name], dict)}
        self.chunk_size = s.chunk_size
        self.n_replicates = s.replicates
        self.seed = s.seed
        self._fn = jax.jit(self._chunk)

    def _member(self, draw_vals: dict, scen_vals: dict, key: Any, explicit: dict | None = None) -> dict:
        params = dict(self.base)
        for name, value in draw_vals.items():
            params[name] = value.astype(self.dtype)
        for name, value in scen_vals.items():  # a scenario's explicit choice wins over a drawn value;
            if name in draw_vals and explicit is not None and name in explicit:  # other scenarios keep the draw
                params[name] = jnp.where(explicit[name], value, params[name])
            else:
                params[name] = value
        return self.sim(params, self.network, key)

    def _chunk(self, draw_index: Any, draw_vals: dict) -> dict:
        root = jax.random.PRNGKey(self.seed)

        def per_draw(d, vals):
            keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(root, d), r))(
                jnp.arange(self.n_replicates))
            if self.scenarios:
                return jax.vmap(lambda scen, ex: jax.vmap(lambda k: self._member(vals, scen, k, ex))(keys))(
                    self.scenarios, self.explicit)
            same = jax.vmap(lambda k: self._member(vals, {}, k))(keys)  # no scenario changes anything
            return jax.tree.map(lambda a: jnp.broadcast_to(a[None], (self.n_scenarios, *a.shape)), same)

        # Batches of BATCH members keep each step's working set in cache: about 1.6x the throughput of
        # one vmap over a 65,536-draw chunk on CPU, with identical results.
        return jax.lax.map(lambda args: per_draw(*args), (draw_index, draw_vals), batch_size=min(BATCH, self.chunk_size))

    def __call__(self, start: int, draw_vals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(draw_vals.values())).shape[0] if draw_vals else None
        return self.run(start, draw_vals, n)

    def run(self, start: int, draw_vals: dict[str, np.ndarray], n: int | None) -> dict[str, np.ndarray]:
        """Simulate ``n`` draws from ``start``; ``draw_vals`` hold ``(n, site)`` arrays."""
        n = self.chunk_size if n is None else n
        pad = self.chunk_size - n
        index = np.arange(start, start + self.chunk_size, dtype=np.int64)
        vals = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) if pad else v for k, v in draw_vals.items()}
        out = self._fn(jnp.asarray(index), {k: jnp.asarray(v, self.dtype) for k, v in vals.items()})
        return {k: np.asarray(v)[:n] for k, v in jax.device_get(out).items()}
