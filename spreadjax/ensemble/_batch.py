"""One chunk of an ensemble as a single jitted JAX call (no dask here).

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

MEMBERS_PER_BATCH = 16384  # members (draws x scenarios x replicates) simulated together inside a chunk


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
        table = scenario_table(config, base)
        # Breakpoint times that every scenario shares stay unbatched (a cheaper schedule lookup).
        self.shared_times = {name: bool(np.all(v["times"] == v["times"][:1])) for name, v in table.items()
                             if isinstance(v, dict)}
        self.scenarios = jax.tree.map(lambda a: jnp.asarray(a, self.dtype), table)
        # Which scenarios set each parameter themselves: only those override a drawn value.
        self.explicit = {name: jnp.asarray([name in dict(sc.parameters) for sc in config.scenarios])
                         for name in self.scenarios if not isinstance(self.scenarios[name], dict)}
        self.chunk_size = s.chunk_size
        self.n_replicates = s.replicates
        self.seed = s.seed
        per_draw = max(1, (self.n_scenarios if self.scenarios else 1) * self.n_replicates)
        self.batch = max(1, min(self.chunk_size, MEMBERS_PER_BATCH // per_draw))
        self._fn = jax.jit(self._chunk)

    def _members(self, draw_vals: dict) -> tuple[dict, dict, tuple[int, int, int]]:
        """Parameters of every member of a batch of draws, flattened draw-major to ``(member, ...)``
        over (draw, scenario, replicate), with the ``axes`` that say which leaves are per member."""
        n_draws = next(iter(draw_vals.values())).shape[0] if draw_vals else 1
        lead = (n_draws, self.n_scenarios if self.scenarios else 1, self.n_replicates)
        n = int(np.prod(lead))

        def members(x: Any, draw: bool, scenario: bool) -> Any:  # (draw?, scenario?, *rest) -> (member, *rest)
            x = x[:, None] if draw and not scenario else x
            x = x[None] if scenario else x
            x = x[:, :, None] if draw or scenario else x
            return jnp.broadcast_to(x, (*lead, *x.shape[3:])).reshape(n, *x.shape[3:])

        params: dict[str, Any] = {}
        axes: dict[str, Any] = {}
        for name, value in self.base.items():
            scen = self.scenarios.get(name)
            if isinstance(value, dict):
                if scen is None:
                    params[name], axes[name] = value, None
                    continue
                shared = self.shared_times[name]
                params[name] = {"times": scen["times"][0] if shared else members(scen["times"], False, True),
                                "values": members(scen["values"], False, True)}
                axes[name] = {"times": None if shared else 0, "values": 0}
                continue
            drawn = draw_vals.get(name)
            if drawn is None and scen is None:
                params[name], axes[name] = value, None
                continue
            if drawn is not None and scen is not None:  # a scenario's explicit choice wins over a draw
                drawn = drawn.astype(self.dtype)
                x = jnp.where(self.explicit[name][None, :, None], scen[None], drawn[:, None])
                params[name] = members(x[:, :, None], False, False)
            else:
                params[name] = (members(drawn.astype(self.dtype), True, False) if scen is None
                                else members(scen, False, True))
            axes[name] = 0
        return params, axes, lead

    def _batch(self, draw_index: Any, draw_vals: dict) -> dict:
        params, axes, lead = self._members(draw_vals)
        keys = None
        if self.sim.stochastic:
            root = jax.random.PRNGKey(self.seed)
            per = jax.vmap(lambda d: jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(root, d), r))(
                jnp.arange(self.n_replicates)))(draw_index)  # (draw, replicate, 2): common across scenarios
            keys = jnp.broadcast_to(per[:, None], (*lead, *per.shape[2:])).reshape(-1, *per.shape[2:])
        out = self.sim.batch(params, self.network, keys, axes)
        out = {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}
        if lead[1] != self.n_scenarios:  # no scenario changes anything: one run serves them all
            out = {k: jnp.broadcast_to(v, (lead[0], self.n_scenarios, *v.shape[2:])) for k, v in out.items()}
        return out

    def _chunk(self, draw_index: Any, draw_vals: dict) -> dict:
        # Batches of about MEMBERS_PER_BATCH members bound the working set whatever the chunk size.
        b = self.batch
        n_batches = -(-self.chunk_size // b)
        pad = n_batches * b - self.chunk_size

        def split(a: Any) -> Any:
            a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, 0)]) if pad else a
            return a.reshape(n_batches, b, *a.shape[1:])

        out = jax.lax.map(lambda args: self._batch(*args), (split(draw_index), jax.tree.map(split, draw_vals)))
        return jax.tree.map(lambda a: a.reshape(n_batches * b, *a.shape[2:])[: self.chunk_size], out)

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
