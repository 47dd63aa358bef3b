"""JAX runners for the reference workloads B and S8: diffrax, and spreadjax's ``Simulation``.

diffrax is ``jax.jit(jax.vmap(one_member))`` over the drawn parameters (and, batched, one solve
on the whole ensemble's state); spreadjax is ``jax.jit(Simulation.batch)``. The jitted function is
built once in ``prepare_*``; its first call per ensemble size compiles, so time later calls.
float64 needs ``jax_enable_x64`` (checked here, before tracing).

diffrax (``prepare_diffrax``): ``diffeqsolve`` with ``Euler()`` or the classic RK4 tableau of ``bench_simulate``
(diffrax ships no classic RK4), ``ConstantStepSize``, dt0 = 1/52, ``max_steps`` = 520 exactly,
and ``SaveAt(t0=True, steps=True, fn=A)`` so only A is stored. The vector field is written here
in jax, not taken from spreadjax. diffrax cannot carry a running reduction through a solve, so
with ``summaries_only`` the A trajectory is still stored inside the jitted call and reduced
there (only ``(t_half, a_end)`` leave it). ``prepare_diffrax_batched`` is the same solve without
``vmap``, on the ensemble's state as one array (see its docstring).

spreadjax: ``Simulation(compile_model(s8_model()), GRID, 1/52, ("A",), RK4() | Euler()).batch``
with the members on the state's trailing axis; B is a one-stock spreadjax model with the single
flow (p + q A)(1 - A) into A.
"""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from _reference import (
    A_ROW,
    DRAWN,
    DT,
    GRID,
    LEVEL,
    S8_FIXED,
    S8_INIT,
    STEPS,
    YEARS,
    Params,
    Runner,
    _check,
)
from bench_simulate import ClassicRK4


def _require_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError("float64 with jax needs x64: set JAX_ENABLE_X64=1, or call "
                         "jax.config.update('jax_enable_x64', True) before preparing a runner")
    return dtype


def summarize_jax(path: Any) -> tuple[Any, Any]:
    """``(t_half, a_end)`` of one member's A ``(steps + 1,)``, as ``_reference.summarize``."""
    dtype = path.dtype
    grid = jnp.asarray(GRID, dtype)
    reached = path >= LEVEL
    idx = jnp.argmax(reached)
    prev = jnp.maximum(idx - 1, 0)
    f0, f1 = path[prev], path[idx]
    t_half = jnp.where(idx == 0, grid[0], grid[prev] + (LEVEL - f0) * jnp.asarray(DT, dtype) / (f1 - f0))
    return jnp.where(reached.any(), t_half, jnp.nan).astype(dtype), path[-1]


def _bass_field(t: Any, y: Any, args: Any) -> Any:
    p, q = args
    return (p + q * y) * (1 - y)


def _s8_field(t: Any, y: Any, args: Any) -> Any:
    p, q, rd, tau, delta = args
    r0, K, tau_r = S8_FIXED["r0"], S8_FIXED["K"], S8_FIXED["tau_r"]
    U, W, I1, I2, I3, A, _D, R = (y[k] for k in range(8))
    aware = U * (p + q * A) * R
    decide = W * rd * R
    impl_1, impl_2, impl_3 = 3 * I1 / tau, 3 * I2 / tau, 3 * I3 / tau
    disc = delta * A
    R_tgt = r0 + (1 - r0) * A / (A + K)
    return jnp.stack([-aware, aware - decide, decide - impl_1, impl_1 - impl_2, impl_2 - impl_3,
                      impl_3 - disc, disc, (R_tgt - R) / tau_r])


def _y0(workload: str, dtype: np.dtype) -> Any:
    if workload == "B":
        return jnp.zeros((), dtype)
    y = [S8_INIT["U"], 0.0, 0.0, 0.0, 0.0, S8_INIT["A"], 0.0, S8_FIXED["r0"]]
    return jnp.asarray(y, dtype)


def _solve_a(workload: str, method: str, y0: Any, args: Any) -> Any:
    """A on the grid ``(steps + 1, ...)``: fixed steps of 1/52 year, Euler or classic RK4."""
    term = diffrax.ODETerm(_bass_field if workload == "B" else _s8_field)
    solver = diffrax.Euler() if method == "euler" else ClassicRK4()
    row = A_ROW[workload]
    # times in the state's dtype: python floats would be float64 under x64 and promote y
    t0, t1, dt0 = (jnp.asarray(v, y0.dtype) for v in (0.0, float(YEARS), DT))
    sol = diffrax.diffeqsolve(
        term, solver, t0=t0, t1=t1, dt0=dt0, y0=y0, args=args,
        saveat=diffrax.SaveAt(t0=True, steps=True, fn=lambda t, y, args: y if workload == "B" else y[row]),
        stepsize_controller=diffrax.ConstantStepSize(), max_steps=STEPS,
    )
    return sol.ys


def _ensemble(one: Any, workload: str, dtype: np.dtype, summaries_only: bool) -> Runner:
    """``jit(vmap(one))`` over the drawn parameters; trajectories come out ``(steps + 1, members)``."""
    run = jax.jit(jax.vmap(one, out_axes=0 if summaries_only else 1))

    def call(params: Params) -> Any:
        return run(tuple(jnp.asarray(params[n], dtype) for n in DRAWN[workload]))

    return call


def prepare_diffrax(workload: str, method: str, dtype: Any = np.float32, *,
                    summaries_only: bool = False) -> Runner:
    """diffrax runner; see the module docstring."""
    _check(workload, "diffrax", method)
    dtype = _require_dtype(dtype)

    def one(args: Any) -> Any:
        ys = _solve_a(workload, method, _y0(workload, dtype), args)
        return summarize_jax(ys) if summaries_only else ys

    return _ensemble(one, workload, dtype, summaries_only)


def prepare_diffrax_batched(workload: str, method: str, dtype: Any = np.float32, *,
                            summaries_only: bool = False) -> Runner:
    """diffrax runner without ``vmap``: one ``diffeqsolve`` on the whole ensemble's state,
    ``(8, members)`` for S8 or ``(members,)`` for B, the same field, solver, steps and saves.
    With constant steps every member shares the time grid, so this is the same arithmetic; under
    ``vmap`` each member instead carries its own step counter and save index (batched
    ``while_loop`` and scatter), which costs diffrax dearly at large ensembles."""
    _check(workload, "diffrax", method)
    dtype = _require_dtype(dtype)

    @jax.jit
    def run(args: Any) -> Any:
        y0 = _y0(workload, dtype)
        ys = _solve_a(workload, method, jnp.broadcast_to(y0[..., None], y0.shape + args[0].shape), args)
        return jax.vmap(summarize_jax, in_axes=1)(ys) if summaries_only else ys

    def call(params: Params) -> Any:
        return run(tuple(jnp.asarray(params[n], dtype) for n in DRAWN[workload]))

    return call


def _bass_spreadjax_model() -> Any:
    from spreadjax.core import Flow, Model, Parameter, Stock

    return Model(
        "reference_bass",
        parameters=(Parameter("p", 0.03, "1/yr", "push"), Parameter("q", 0.38, "1/yr", "imitation")),
        stocks=(Stock("A", 0.0),),
        flows=(Flow("adopt", "(p + q * A) * (1 - A)", None, "A"),),
    )


def prepare_spreadjax(workload: str, method: str, dtype: Any = np.float32, *,
                      summaries_only: bool = False) -> Runner:
    """spreadjax runner: ``Simulation.batch`` saving A on every grid time, the members on the
    state's trailing axis (``member_axis=-1``: A comes out ``(steps + 1, site, member)``)."""
    from spreadjax.core import RK4, Euler, Simulation, compile_model
    from spreadjax.models import s8_model

    _check(workload, "spreadjax", method)
    dtype = _require_dtype(dtype)
    cm = compile_model(s8_model() if workload == "S8" else _bass_spreadjax_model())
    sim = Simulation(cm, tuple(GRID), DT, ("A",), Euler() if method == "euler" else RK4(), t0=0.0)
    base = cm.params(1, dtype)  # every parameter (1,): one site
    names = DRAWN[workload]
    axes = {n: (0 if n in names else None) for n in base}

    @jax.jit
    def run(drawn: Any) -> Any:
        params = {**base, **{n: v[:, None] for n, v in zip(names, drawn)}}
        path = sim.batch(params, axes=axes, member_axis=-1)["A"][:, 0]  # (steps + 1, member)
        return jax.vmap(summarize_jax, in_axes=1)(path) if summaries_only else path

    def call(params: Params) -> Any:
        return run(tuple(jnp.asarray(params[n], dtype) for n in names))

    return call
