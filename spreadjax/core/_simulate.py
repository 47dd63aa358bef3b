"""The scan driver: integrate a compiled model and keep only the requested outputs.

A :class:`Simulation` is static structure (model, output times, step, solver, outputs, mode) and a
pure function of dynamic arrays ``(params, network, key)``. It works under ``jit``, ``vmap`` and
``grad``; :func:`simulate` jits it once per structure. Fixed-step solvers run a nested
``lax.scan``: the outer scan over output times, the inner one over the steps between two outputs,
so memory grows with the number of outputs, not of steps.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ModelError
from ._compile import CompiledModel, Params
from ._solvers import RK4, Adaptive, Euler
from ._stochastic import binomial_step


#: fixed-step runs carry the state as a tuple of rows from this many values per state on
ROWS_MIN_SIZE = 256


@dataclass(frozen=True)
class Simulation:
    """What to simulate, and which outputs to keep.

    ts: output times in years (the first may equal ``t0``); dt: step in years (fixed-step
    solvers integrate on the grid ``t0 + k dt``, which must contain every output time);
    outputs: names to save (stocks, delays, smooths, auxiliaries, flows, schedules);
    stochastic: integer counts with binomial transitions (Euler-type steps of ``dt``).
    Calling it returns ``{name: (time, site) array}``.
    """

    model: CompiledModel
    ts: tuple[float, ...]
    dt: float
    outputs: tuple[str, ...]
    solver: Euler | RK4 | Adaptive = RK4()
    t0: float | None = None
    stochastic: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", tuple(float(t) for t in self.ts))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.t0 is None:
            object.__setattr__(self, "t0", self.ts[0] if self.ts else 0.0)
        if not self.ts:
            raise ModelError("simulation: no output times")
        if not np.all(np.diff(self.ts) > 0) or self.ts[0] < self.t0:
            raise ModelError(f"simulation: output times must increase from t0={self.t0}")
        if not (self.dt > 0 and np.isfinite(self.dt)):
            raise ModelError(f"simulation: dt must be a positive number of years, got {self.dt}")
        unknown = [o for o in self.outputs if o not in self.model.outputs]
        if unknown:
            raise ModelError(
                f"simulation: unknown output(s) {', '.join(unknown)}; known: {', '.join(self.model.outputs)}"
            )
        if self.stochastic and isinstance(self.solver, Adaptive):
            raise ModelError("simulation: stochastic mode steps with a fixed dt; choose 'euler', not 'adaptive'")
        if not isinstance(self.solver, Adaptive):
            self.save_steps  # validates the grid

    @functools.cached_property
    def save_steps(self) -> np.ndarray:
        """Step index (from ``t0``) of each output time; raises if one is off the dt grid."""
        k = np.round((np.asarray(self.ts) - self.t0) / self.dt)
        off = np.abs(k * self.dt - (np.asarray(self.ts) - self.t0)) > 1e-6 * max(1.0, abs(self.ts[-1]))
        if np.any(off):
            bad = np.asarray(self.ts)[off][0]
            raise ModelError(
                f"simulation: output time {bad:g} is not on the step grid t0 + k*dt "
                f"(t0={self.t0:g}, dt={self.dt:g}); choose output times that are multiples of dt"
            )
        return k.astype(np.int64)

    @property
    def n_steps(self) -> int:
        """Number of integration steps (fixed-step solvers)."""
        return int(self.save_steps[-1])

    def __call__(self, params: Params, network: Any = None, key: Any = None) -> dict[str, Any]:
        """Run once: ``{output: (time, site)}`` arrays in the dtype of ``params``."""
        if self.stochastic and key is None:
            raise ModelError("simulation: stochastic mode needs a PRNG key")
        return self._run(params, network, key)

    def _run(self, params: Params, network: Any, key: Any, rows: bool | None = None) -> dict[str, Any]:
        y0 = self.model.init(params, self.t0)
        if isinstance(self.solver, Adaptive):
            return self._adaptive(y0, params, network)
        return self._fixed(y0, params, network, key, rows)

    def batch(self, params: Params, network: Any = None, keys: Any = None, axes: Any = 0,
              member_axis: int = 0) -> dict[str, Any]:
        """Run many members at once: the same as ``jax.vmap(self, (axes, None, 0))``.

        ``params`` leaves carry a leading member axis where ``axes`` says 0 (``axes`` is 0, None,
        or a mapping from parameter or schedule name to 0 or None; a schedule may also map to
        ``{"times": 0 | None, "values": 0 | None}``); ``keys`` is ``(member,)`` keys or None.
        Returns ``{output: (member, time, site)}``, or ``(time, site, member)`` with
        ``member_axis=-1``, which saves a transposed copy of the outputs.

        Deterministic fixed-step runs put the members on a trailing axis of the state,
        ``(state, site, member)``, instead of vmapping: each step is then a few fused loops over
        contiguous members (about 2.5x the throughput of vmap on CPU for the S8 workload), and
        network coupling becomes one ``(site, site) @ (site, member)`` product or segment sum.
        Stochastic and adaptive runs vmap, so each member keeps its own random stream and steps.
        """
        axes = _expand_axes(params, axes)
        if self.stochastic or isinstance(self.solver, Adaptive):
            key_axis = None if keys is None else 0
            return jax.vmap(self, in_axes=(axes, None, key_axis), out_axes=member_axis)(params, network, keys)
        leaves = [(name, kind, value if kind == "param" else value[kind], a if kind == "param" else a[kind])
                  for name, value, a in ((n, params[n], axes[n]) for n in params)
                  for kind in (("times", "values") if isinstance(value, dict) else ("param",))]
        sizes = {jnp.shape(x)[0] for _, _, x, a in leaves if a == 0}
        if len(sizes) != 1:
            raise ModelError(f"simulation.batch: batched parameters need one member count, got {sorted(sizes)}")
        (n,) = sizes
        folded: dict[str, Any] = {}
        for name, kind, x, a in leaves:
            x = _members_last(x, a, kind, n)
            if kind == "param":
                folded[name] = x
            else:
                folded.setdefault(name, {})[kind] = x
        # always rows here, so that a member's result does not depend on how many share its batch
        out = self._run(folded, network, None, rows=True)
        return {name: jnp.moveaxis(value, -1, member_axis) for name, value in out.items()}

    # -- fixed steps ----------------------------------------------------------------------
    def _fixed(self, y0: Any, params: Params, network: Any, key: Any, rows: bool | None = None) -> dict[str, Any]:
        dtype = y0.dtype
        dt = jnp.asarray(self.dt, dtype)
        t0 = jnp.asarray(self.t0, dtype)
        model = self.model

        # Deterministic runs over many sites or members carry the state as a tuple of rows (one
        # per state): each RK4 stage then needs no stacking and slicing, and XLA fuses more of a
        # step (~1.3x on CPU). Small single runs (a calibration's few sites) stay one array:
        # fewer, larger fused loops per step, which is what counts when each loop is short (~2x).
        # Batches always carry rows (``batch`` passes ``rows=True``).
        shape = y0.shape[1:]
        if rows is None:
            rows = math.prod(shape) >= ROWS_MIN_SIZE
        rows = rows and not self.stochastic

        def f(t, y):
            return model.rhs_rows(t, y, params, network) if rows else model.rhs(t, y, params, network)

        def step(y, i):
            t = t0 + i.astype(dtype) * dt
            if self.stochastic:
                return binomial_step(model, jax.random.fold_in(key, i), t, y, params, network, self.dt)
            return self.solver.step(f, t, y, dt)

        def save(t, y):
            env = model.evaluate(t, y, params, network)
            return {name: jnp.broadcast_to(env[name], shape).astype(dtype) for name in self.outputs}

        if rows:
            y0 = tuple(y0)

        steps = self.save_steps
        gaps = np.diff(np.concatenate([[0], steps]))
        first_at_t0 = gaps[0] == 0
        gaps = gaps[1:] if first_at_t0 else gaps
        starts = steps[1:] - gaps if first_at_t0 else steps - gaps
        width = int(gaps.max()) if gaps.size else 0
        uniform = bool(gaps.size) and bool(np.all(gaps == width))

        def interval(y, start_gap):
            start, gap = start_gap

            def inner(y, j):
                y_next = step(y, start + j)
                return (y_next if uniform else jax.tree.map(lambda a, b: jnp.where(j < gap, a, b), y_next, y)), None

            y, _ = jax.lax.scan(inner, y, jnp.arange(width))
            t = t0 + (start + gap).astype(dtype) * dt
            return y, save(t, y)

        if not first_at_t0:
            return jax.lax.scan(interval, y0, (jnp.asarray(starts), jnp.asarray(gaps)))[1]
        # The output at t0 and those of the scan go into one buffer, written in place (a
        # concatenation afterwards would copy every output once more).
        first = save(t0, y0)
        buffers = {k: jnp.zeros((len(steps), *v.shape), v.dtype).at[0].set(v) for k, v in first.items()}
        if not gaps.size:
            return buffers

        def interval_into(carry, args):
            y, bufs = carry
            k = args[0]
            y, saved = interval(y, args[1:])
            bufs = {n: jax.lax.dynamic_update_index_in_dim(bufs[n], saved[n], k, 0) for n in bufs}
            return (y, bufs), None

        index = jnp.arange(1, len(steps))
        (_, buffers), _ = jax.lax.scan(interval_into, (y0, buffers), (index, jnp.asarray(starts), jnp.asarray(gaps)))
        return buffers

    # -- adaptive steps -------------------------------------------------------------------
    def _adaptive(self, y0: Any, params: Params, network: Any) -> dict[str, Any]:
        import diffrax

        model = self.model
        term = diffrax.ODETerm(lambda t, y, args: model.rhs(t, y, params, network))
        ts = jnp.asarray(self.ts, y0.dtype)
        sol = diffrax.diffeqsolve(
            term,
            self.solver.diffrax_solver(),
            t0=self.t0,
            t1=self.ts[-1],
            dt0=self.dt,
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=self.solver.rtol, atol=self.solver.atol),
            max_steps=self.solver.max_steps,
        )
        def save(t, y):
            env = model.evaluate(t, y, params, network)
            return {n: jnp.broadcast_to(env[n], y.shape[1:]).astype(y.dtype) for n in self.outputs}

        env = jax.vmap(save)
        return env(ts, sol.ys)


def _expand_axes(params: Params, axes: Any) -> Params:
    """``axes`` as a tree with the structure of ``params`` (0 or None at every leaf)."""
    if axes is None or isinstance(axes, int):
        return jax.tree.map(lambda _: axes, params)
    out: dict[str, Any] = {}
    for name, value in params.items():
        a = axes.get(name, 0)
        if isinstance(value, dict) and not isinstance(a, dict):
            a = {k: a for k in value}
        out[name] = a
    return out


def _members_last(leaf: Any, axis: int | None, kind: str, n: int) -> Any:
    """Move a ``kind`` leaf's ('param' ``(site,)``, 'times' ``(k,)``, 'values' ``(k, site)``) member axis to the end (``(site, member)``, ``(k, site, member)``, ``(k, member)``);
    shared leaves are broadcast, except schedule times, which stay ``(k,)``."""
    leaf = jnp.asarray(leaf)
    if axis is None:
        return leaf if kind == "times" else jnp.broadcast_to(leaf[..., None], (*leaf.shape, n))
    if leaf.shape[0] != n:
        raise ModelError(f"simulation.batch: a batched {kind} leaf has {leaf.shape[0]} members, expected {n}")
    return jnp.moveaxis(leaf, 0, -1)


@functools.partial(jax.jit, static_argnums=0)
def _run(sim: Simulation, params: Params, network: Any, key: Any) -> dict[str, Any]:
    return sim(params, network, key)


def simulate(sim: Simulation, params: Params, network: Any = None, key: Any = None) -> dict[str, Any]:
    """Run ``sim`` compiled once per :class:`Simulation`; new parameter values never recompile."""
    return _run(sim, params, network, key)
