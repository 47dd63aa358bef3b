"""Peer baselines for the shared reference workloads B and S8 (issue 7).

The workloads are fixed in ``/work/shared/benchmarks/REFERENCE_MODEL.md``:

* **B**: Bass diffusion F' = (p + q F)(1 - F), F(0) = 0, one stock (here called A).
* **S8**: the 8-stock four-stage model (U, W, I1, I2, I3, A, D, R), fractions of a population of 1.

Both run 10 years in steps of dt = 1/52 year (520 steps) with Euler or classic RK4, keeping
A at every step: a trajectory ``(steps + 1, members)`` on the grid t = 0, dt, ..., 10 years.
With ``summaries_only=True`` an implementation returns ``(t_half, a_end)``, each ``(members,)``:
the first time (years) A reaches 0.5, linear between grid times as in
``spreadjax.ensemble._summary._crossing_kernel`` (``nan`` if never), and A at 10 years.

Implementations (each ``prepare_*`` does all set-up and compilation and returns a runner
``params -> result``; time the runner, not ``prepare``):

=============== ========== =====================================================================
name            methods    what
=============== ========== =====================================================================
numpy           euler, rk4 Python loop over the 520 steps, vectorised over members (state (8, m))
numba           euler, rk4 ``prange`` over members, steps inner, scalar locals (per-member kernel)
numba_simd      euler, rk4 ``prange`` over blocks of 64 members, steps outer, members inner (SIMD)
diffrax         euler, rk4 ``diffeqsolve`` under ``jit(vmap)``, ``ConstantStepSize``, max_steps 520
diffrax_batched euler, rk4 one ``diffeqsolve`` on the ensemble state (8, m), no ``vmap``
spreadjax       euler, rk4 ``spreadjax.core.Simulation`` of ``s8_model()`` (or a 1-stock Bass model)
solve_ivp       rk45       scipy ``solve_ivp`` per member, default RK45 and tolerances, ``t_eval``
pysd            euler      PySD on ``s8.mdl`` per member (S8 only: there is no .mdl for B)
=============== ========== =====================================================================

``numpy_run``, ``numba_run``, ... run one call through a cached runner (the first call per
workload, method, dtype and output compiles). solve_ivp and PySD loop over members in Python
and are meant for a sample of members, their rate scaled to the ensemble.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# -- the workloads ------------------------------------------------------------------------------
DT = 1.0 / 52.0  # years per step
YEARS = 10  # horizon, years
STEPS = 52 * YEARS  # integration steps
GRID = np.arange(STEPS + 1, dtype=np.float64) / 52.0  # output times, years (float64)
SIGMA = 0.3  # log-scale spread of the drawn parameters
SEED = 0
LEVEL = 0.5  # adopted fraction whose first crossing time is summarised
WORKLOADS = ("B", "S8")
DRAWN = {"B": ("p", "q"), "S8": ("p", "q", "rd", "tau", "delta")}
BASE = {
    "B": {"p": 0.03, "q": 0.38},  # per year
    "S8": {"p": 0.01, "q": 0.6, "rd": 2.0, "tau": 1.0, "delta": 0.05},  # per year; tau in years
}
S8_FIXED = {"tau_r": 0.5, "r0": 0.2, "K": 0.1}  # years, 1, fraction
S8_INIT = {"U": 0.99, "A": 0.01}  # every other stock 0, R = r0
S8_STOCKS = ("U", "W", "I1", "I2", "I3", "A", "D", "R")
A_ROW = {"B": 0, "S8": S8_STOCKS.index("A")}
MDL = Path("/work/shared/benchmarks/s8.mdl")
METHODS = {
    "numpy": ("euler", "rk4"), "numba": ("euler", "rk4"), "numba_simd": ("euler", "rk4"),
    "diffrax": ("euler", "rk4"), "diffrax_batched": ("euler", "rk4"),
    "spreadjax": ("euler", "rk4"), "solve_ivp": ("rk45",), "pysd": ("euler",),
}
NUMBA_LAYOUT = "time"  # measured no slower; see prepare_numba

Params = dict[str, np.ndarray]
Runner = Callable[[Params], Any]


def draw_parameters(workload: str, members: int, dtype: Any = np.float32) -> Params:
    """Per-member parameters ``base * exp(0.3 z)``, each ``(members,)`` in ``dtype``.

    ``z = default_rng(0).standard_normal((n_params, members))``, one row per drawn parameter in
    the order of ``DRAWN[workload]`` (S8: p, q, rd, tau, delta; B: p, q). B is not specified with
    an ensemble in the reference text; we draw its p and q around the base p = 0.03, q = 0.38
    with the same 0.3 log-sd. Units: per year (tau in years).

    Member i's values depend on ``members`` (only p, the first row, is a prefix-stable stream):
    rows are filled in turn from one stream, so compare ensembles of the same size.
    """
    _check_workload(workload)
    names = DRAWN[workload]
    z = np.random.default_rng(SEED).standard_normal((len(names), members))
    return {n: (BASE[workload][n] * np.exp(SIGMA * z[i])).astype(dtype) for i, n in enumerate(names)}


def closed_form_bass(p: Any, q: Any, t: Any) -> np.ndarray:
    """Exact Bass curve F(t) = (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t}), float64.

    p, q: ``(members,)`` per year; t: ``(T,)`` years. Returns ``(T, members)``.
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    e = np.exp(-(p + q) * t)
    return (1.0 - e) / (1.0 + (q / p) * e)


def summarize(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t_half, a_end)`` from a trajectory ``(steps + 1, members)`` on ``GRID``, in its dtype:
    the first grid crossing of ``LEVEL`` interpolated linearly (``nan`` if never), and A at 10 y."""
    path = np.asarray(path)
    dtype = path.dtype
    grid, dt, level = GRID.astype(dtype), dtype.type(DT), dtype.type(LEVEL)
    reached = path >= level
    idx = np.argmax(reached, axis=0)
    prev = np.maximum(idx - 1, 0)
    cols = np.arange(path.shape[1])
    f0, f1 = path[prev, cols], path[idx, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        t_half = grid[prev] + (level - f0) * dt / (f1 - f0)
    t_half = np.where(idx == 0, grid[0], t_half)
    return np.where(reached.any(axis=0), t_half, dtype.type(np.nan)), path[-1].copy()


# -- numpy --------------------------------------------------------------------------------------
def _numpy_system(workload: str, params: Params, dtype: Any) -> tuple[Any, Callable, Callable]:
    """``(y0, f(y) -> dy/dt, a(y) -> A)``; S8 state ``(8, members)``, B state ``(members,)``."""
    if workload == "B":
        p, q = (np.asarray(params[n], dtype) for n in DRAWN["B"])
        return np.zeros_like(p), lambda f: (p + q * f) * (1.0 - f), lambda f: f

    p, q, rd, tau, delta = (np.asarray(params[n], dtype) for n in DRAWN["S8"])
    tau_r, r0, K = (dtype.type(S8_FIXED[n]) for n in ("tau_r", "r0", "K"))
    y0 = np.zeros((8, p.size), dtype)
    y0[0], y0[5], y0[7] = S8_INIT["U"], S8_INIT["A"], r0

    def f(y: np.ndarray) -> np.ndarray:
        U, W, I1, I2, I3, A, _D, R = y
        aware = U * (p + q * A) * R
        decide = W * rd * R
        impl_1, impl_2, impl_3 = 3 * I1 / tau, 3 * I2 / tau, 3 * I3 / tau
        disc = delta * A
        R_tgt = r0 + (1 - r0) * A / (A + K)
        out = np.empty_like(y)
        out[0], out[1] = -aware, aware - decide
        out[2], out[3], out[4] = decide - impl_1, impl_1 - impl_2, impl_2 - impl_3
        out[5], out[6], out[7] = impl_3 - disc, disc, (R_tgt - R) / tau_r
        return out

    return y0, f, lambda y: y[5]


def prepare_numpy(workload: str, method: str, dtype: Any = np.float32, *,
                  summaries_only: bool = False) -> Runner:
    """numpy runner: a Python loop over the steps, members vectorised. Python float literals
    are weak under NEP 50, so float32 inputs stay float32."""
    dtype = np.dtype(dtype)
    dt = dtype.type(DT)
    half, sixth = dt / 2, dt / 6
    grid, level = GRID.astype(dtype), dtype.type(LEVEL)

    def run(params: Params) -> Any:
        y, f, get_a = _numpy_system(workload, params, dtype)

        def step(y: Any) -> Any:
            if method == "euler":
                return y + dt * f(y)
            k1 = f(y)
            k2 = f(y + half * k1)
            k3 = f(y + half * k2)
            k4 = f(y + dt * k3)
            return y + sixth * (k1 + 2 * k2 + 2 * k3 + k4)

        a = get_a(y)
        if not summaries_only:
            path = np.empty((STEPS + 1, a.size), dtype)
            path[0] = a
            for n in range(STEPS):
                y = step(y)
                path[n + 1] = get_a(y)
            return path
        reached = a >= level
        t_half = np.where(reached, grid[0], dtype.type(np.nan))
        for n in range(STEPS):
            y = step(y)
            g = get_a(y)
            new = (g >= level) & ~reached
            if new.any():
                t_half[new] = grid[n] + (level - a[new]) * dt / (g[new] - a[new])
                reached |= new
            a = g
        return t_half, a.copy()

    _check(workload, "numpy", method)
    return run


# -- numba --------------------------------------------------------------------------------------
def prepare_numba(workload: str, method: str, dtype: Any = np.float32, *,
                  summaries_only: bool = False, layout: str = NUMBA_LAYOUT) -> Runner:
    """numba runner (compiled here, on 2 members; ``cache=True`` keeps it across processes).

    ``layout="time"`` (default) writes a C-ordered ``(steps + 1, members)`` array in place;
    ``"member"`` writes a C-ordered ``(members, steps + 1)`` array and returns its transposed
    view. Measured at 100,000 members, float32, 2 threads (median member-steps per CPU-second over
    5 calls, time-major vs member-major): B Euler 2.45e8 vs 2.40e8, B RK4 6.2e7 vs 5.0e7, S8 Euler
    1.67e8 vs 1.67e8, S8 RK4 3.3e7 vs 3.0e7. Time-major was never slower: a thread's consecutive
    members write neighbouring columns, so each cache line of a row is filled by 16 members in
    turn while the 521 lines in flight (33 KiB) stay in L2. It also returns the requested
    ``(steps + 1, members)`` array as it is. ``bench_reference_baselines.py`` times both.
    """
    from _reference_numba import KERNELS, constants

    _check(workload, "numba", method)
    if layout not in ("member", "time"):
        raise ValueError(f"numba layout {layout!r}: choose 'member' or 'time'")
    dtype = np.dtype(dtype)
    kernel = KERNELS[(workload, method, "summary" if summaries_only else "path")]
    a0 = 0.0 if workload == "B" else S8_INIT["A"]
    c = constants(dtype, dt=DT, level=LEVEL, r0=S8_FIXED["r0"], K=S8_FIXED["K"],
                  tau_r=S8_FIXED["tau_r"], U0=S8_INIT["U"], A0=a0)
    grid = GRID.astype(dtype)

    def run(params: Params) -> Any:
        args = [np.ascontiguousarray(params[n], dtype) for n in DRAWN[workload]]
        m = args[0].size
        if summaries_only:
            t_half, a_end = np.empty(m, dtype), np.empty(m, dtype)
            kernel(*args, c, grid, t_half, a_end)
            return t_half, a_end
        if layout == "time":
            out = np.empty((STEPS + 1, m), dtype)
            kernel(*args, c, out.T)
            return out
        out = np.empty((m, STEPS + 1), dtype)
        kernel(*args, c, out)
        return out.T

    run(draw_parameters(workload, 2, dtype))  # compile (or load from the numba cache)
    return run


def prepare_numba_simd(workload: str, method: str, dtype: Any = np.float32, *,
                       summaries_only: bool = False) -> Runner:
    """numba runner with the blocked SIMD kernels (compiled here, on 2 members): same
    arithmetic per member as ``prepare_numba``, loops ordered so LLVM vectorises over members.
    Trajectories are written time-major, C-ordered ``(steps + 1, members)``."""
    from _reference_numba import BLOCK_KERNELS, constants

    _check(workload, "numba_simd", method)
    dtype = np.dtype(dtype)
    kernel = BLOCK_KERNELS[(workload, "summary" if summaries_only else "path")]
    rk4 = method == "rk4"
    a0 = 0.0 if workload == "B" else S8_INIT["A"]
    c = constants(dtype, dt=DT, level=LEVEL, r0=S8_FIXED["r0"], K=S8_FIXED["K"],
                  tau_r=S8_FIXED["tau_r"], U0=S8_INIT["U"], A0=a0)
    grid = GRID.astype(dtype)

    def run(params: Params) -> Any:
        args = [np.ascontiguousarray(params[n], dtype) for n in DRAWN[workload]]
        m = args[0].size
        if summaries_only:
            t_half, a_end = np.empty(m, dtype), np.empty(m, dtype)
            kernel(*args, c, rk4, grid, t_half, a_end)
            return t_half, a_end
        out = np.empty((STEPS + 1, m), dtype)
        kernel(*args, c, rk4, out)
        return out

    run(draw_parameters(workload, 2, dtype))  # compile (or load from the numba cache)
    return run


def numba_threads() -> int:
    """Threads numba's parallel loops use (``NUMBA_NUM_THREADS``, default: all cores)."""
    import numba

    return numba.get_num_threads()


# -- scipy solve_ivp ----------------------------------------------------------------------------
def _scipy_bass(t: float, y: np.ndarray, p: float, q: float) -> list[float]:
    return [(p + q * y[0]) * (1 - y[0])]


def _scipy_s8(t: float, y: np.ndarray, p: float, q: float, rd: float, tau: float,
              delta: float) -> list[float]:
    U, W, I1, I2, I3, A, _D, R = y
    r0, K, tau_r = S8_FIXED["r0"], S8_FIXED["K"], S8_FIXED["tau_r"]
    aware = U * (p + q * A) * R
    decide = W * rd * R
    impl_1, impl_2, impl_3 = 3 * I1 / tau, 3 * I2 / tau, 3 * I3 / tau
    disc = delta * A
    R_tgt = r0 + (1 - r0) * A / (A + K)
    return [-aware, aware - decide, decide - impl_1, impl_1 - impl_2, impl_2 - impl_3,
            impl_3 - disc, disc, (R_tgt - R) / tau_r]


def prepare_solve_ivp(workload: str, method: str = "rk45", dtype: Any = np.float32, *,
                      summaries_only: bool = False, **options: Any) -> Runner:
    """scipy runner: ``solve_ivp`` once per member, default RK45 (rtol 1e-3, atol 1e-6) unless
    ``options`` say otherwise. It computes in float64; the result is cast to ``dtype``.

    Trajectories use ``t_eval=GRID`` (RK45's dense output on the weekly grid). Summaries use
    ``t_eval=[10]`` and an event for A = 0.5, so t_half is RK45's own root of its interpolant,
    not the linear interpolation between weekly values the other runners use.
    """
    from scipy.integrate import solve_ivp

    _check(workload, "solve_ivp", method)
    dtype = np.dtype(dtype)
    field = _scipy_bass if workload == "B" else _scipy_s8
    y0 = [0.0] if workload == "B" else [S8_INIT["U"], 0, 0, 0, 0, S8_INIT["A"], 0, S8_FIXED["r0"]]
    row = A_ROW[workload]

    def hit(t: float, y: np.ndarray, *args: float) -> float:
        return y[row] - LEVEL

    hit.direction = 1

    def run(params: Params) -> Any:
        names = DRAWN[workload]
        m = len(params[names[0]])
        if summaries_only:
            t_half, a_end = np.empty(m, dtype), np.empty(m, dtype)
        else:
            path = np.empty((STEPS + 1, m), dtype)
        for i in range(m):
            args = tuple(float(params[n][i]) for n in names)
            if summaries_only:
                sol = solve_ivp(field, (0.0, float(YEARS)), y0, t_eval=[float(YEARS)], args=args,
                                events=hit, **options)
                t_half[i] = sol.t_events[0][0] if sol.t_events[0].size else np.nan
                a_end[i] = sol.y[row, -1]
            else:
                sol = solve_ivp(field, (0.0, float(YEARS)), y0, t_eval=GRID, args=args, **options)
                path[:, i] = sol.y[row]
            if sol.status != 0:
                raise RuntimeError(f"solve_ivp failed for member {i}: {sol.message}")
        return (t_half, a_end) if summaries_only else path

    return run


# -- PySD ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _pysd_model() -> Any:
    """The translated ``s8.mdl``. PySD writes the translation beside the .mdl, so a copy is
    translated in a temporary folder (the shared folder stays untouched)."""
    import pysd

    folder = Path(tempfile.mkdtemp(prefix="s8_pysd_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    shutil.copy(MDL, folder / MDL.name)
    model = pysd.read_vensim(str(folder / MDL.name))
    control = {k: float(model[k]) for k in ("initial_time", "final_time", "time_step", "saveper")}
    want = {"initial_time": 0.0, "final_time": float(YEARS), "time_step": DT, "saveper": DT}
    if any(abs(control[k] - v) > 1e-12 for k, v in want.items()):
        raise RuntimeError(f"{MDL}: control {control} differs from the reference {want}")
    return model


def prepare_pysd(workload: str = "S8", method: str = "euler", dtype: Any = np.float32, *,
                 summaries_only: bool = False) -> Runner:
    """PySD runner on ``s8.mdl`` (Euler, TIME STEP = SAVEPER = 1/52, 0 to 10 years): one
    ``model.run(params=...)`` per member. PySD computes in float64 and keeps the whole output
    (it cannot reduce while running), so summaries come from the trajectory."""
    _check(workload, "pysd", method)
    dtype = np.dtype(dtype)
    model = _pysd_model()

    def run(params: Params) -> Any:
        names = DRAWN[workload]
        m = len(params[names[0]])
        path = np.empty((STEPS + 1, m), dtype)
        for i in range(m):
            out = model.run(params={n: float(params[n][i]) for n in names}, return_columns=["A"])
            path[:, i] = out["A"].to_numpy()
        return summarize(path) if summaries_only else path

    return run


# -- one door -----------------------------------------------------------------------------------
def _check_workload(workload: str) -> None:
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")


def _check(workload: str, impl: str, method: str) -> None:
    _check_workload(workload)
    if method not in METHODS[impl]:
        raise ValueError(f"{impl}: method {method!r} not available; choose {', '.join(METHODS[impl])}")
    if impl == "pysd" and workload != "S8":
        raise ValueError("pysd: only S8 has a Vensim model (s8.mdl); there is none for B")


def prepare(impl: str, workload: str, method: str, dtype: Any = np.float32, *,
            summaries_only: bool = False, **options: Any) -> Runner:
    """Runner for one implementation (see the module table); set-up and compilation happen
    here for numba, and on the runner's first call per ensemble size for diffrax/spreadjax."""
    if impl in ("diffrax", "diffrax_batched", "spreadjax"):
        import _reference_jax

        make = {"diffrax": _reference_jax.prepare_diffrax, "spreadjax": _reference_jax.prepare_spreadjax,
                "diffrax_batched": _reference_jax.prepare_diffrax_batched}
        return make[impl](workload, method, dtype, summaries_only=summaries_only, **options)
    makers = {"numpy": prepare_numpy, "numba": prepare_numba, "numba_simd": prepare_numba_simd,
              "solve_ivp": prepare_solve_ivp, "pysd": prepare_pysd}
    if impl not in makers:
        raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(METHODS)}")
    return makers[impl](workload, method, dtype, summaries_only=summaries_only, **options)


@functools.cache
def _cached(impl: str, workload: str, method: str, dtype: str, summaries_only: bool) -> Runner:
    return prepare(impl, workload, method, np.dtype(dtype), summaries_only=summaries_only)


def _run(impl: str, workload: str, method: str, params: Params, summaries_only: bool) -> Any:
    dtype = np.asarray(next(iter(params.values()))).dtype
    return _cached(impl, workload, method, dtype.name, summaries_only)(params)


def numpy_run(workload: str, method: str, params: Params, *, summaries_only: bool = False) -> Any:
    """Trajectory ``(steps + 1, members)`` or ``(t_half, a_end)``, in the dtype of ``params``."""
    return _run("numpy", workload, method, params, summaries_only)


def numba_run(workload: str, method: str, params: Params, *, summaries_only: bool = False) -> Any:
    """As ``numpy_run``; the first call per workload/method/dtype/output compiles."""
    return _run("numba", workload, method, params, summaries_only)


def numba_simd_run(workload: str, method: str, params: Params, *, summaries_only: bool = False) -> Any:
    """As ``numba_run``, with the blocked SIMD kernels."""
    return _run("numba_simd", workload, method, params, summaries_only)


def diffrax_run(workload: str, method: str, params: Params, *, summaries_only: bool = False) -> Any:
    """As ``numpy_run`` (a jax array); the first call per ensemble size compiles."""
    return _run("diffrax", workload, method, params, summaries_only)


def diffrax_batched_run(workload: str, method: str, params: Params, *,
                        summaries_only: bool = False) -> Any:
    """As ``diffrax_run``, one solve on the whole ensemble's state (no ``vmap``)."""
    return _run("diffrax_batched", workload, method, params, summaries_only)


def spreadjax_run(workload: str, method: str, params: Params, *, summaries_only: bool = False) -> Any:
    """As ``diffrax_run``, through ``spreadjax.core.Simulation``."""
    return _run("spreadjax", workload, method, params, summaries_only)


def solve_ivp_run(workload: str, params: Params, *, summaries_only: bool = False) -> Any:
    """As ``numpy_run`` with scipy's default RK45; slow: use a sample of members."""
    return _run("solve_ivp", workload, "rk45", params, summaries_only)


def pysd_run(params: Params, *, summaries_only: bool = False) -> Any:
    """S8 by PySD (Euler); slow: use a sample of members."""
    return _run("pysd", "S8", "euler", params, summaries_only)


def environment() -> dict[str, Any]:
    """Versions and thread settings that the baselines' speed depends on."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "numba", "scipy", "jax", "diffrax", "pysd"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"versions": versions, "cpu_count": os.cpu_count(), "numba_threads": numba_threads()}
