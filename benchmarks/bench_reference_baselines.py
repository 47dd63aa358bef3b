"""Throughput of the peer baselines on the shared reference workloads B and S8 (CPU).

Workloads and implementations are those of ``_reference.py``: 10 years in steps of 1/52 year
(520 steps), the A trajectory kept at every step (``--summaries`` also times the runs that keep
only t_half and A at 10 years), members drawn as ``base * exp(0.3 z)``, seed 0, float32 unless
``--dtype float64``.

* numpy, numba (time-major output; ``numba[member]``: member-major), numba_simd, diffrax (vmapped
  and batched) and spreadjax run the whole ensemble: the best of at least ``--repeats`` timed
  calls (more for calls under 0.5 s, see ``_timed``) after a warm-up call (compilation for jax;
  numba compiles in ``prepare``, whose time is recorded too).
* solve_ivp (RK45, default tolerances) and PySD (S8, Euler) loop over members in Python: they run
  on the first ``--sample`` members and their rate is scaled to the ensemble (``sampled`` rows).

Every warm-up output is compared with the numpy baseline on the same members before timing
(``check_reference.py`` is the full agreement check). Throughput is member-steps per second,
members x 520 / best wall seconds.

    python benchmarks/bench_reference_baselines.py [--quick] [--members 1000 100000] [--summaries]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _reference as R
import numpy as np
from _common import SLOW_CALL, write_json

FULL_SIZES = (1_000, 100_000)
QUICK_SIZES = (1_000,)
REPEATS = 3  # timed calls at least
MIN_SECONDS = 0.5  # ... and more, up to MAX_CALLS, until this much time was timed
MAX_CALLS = 100
SAMPLE = 20
RESULTS = Path(__file__).parent / "results" / "reference_baselines_cpu.json"
ENSEMBLE_IMPLS = ("numpy", "numba", "numba[member]", "numba_simd", "diffrax", "diffrax_batched",
                  "spreadjax")
SAMPLED_IMPLS = ("solve_ivp", "pysd")
TOL = {"float32": 1e-5, "float64": 1e-9}  # same-method agreement on A; see check_reference.py
TOL_SAMPLED = {"solve_ivp": 1e-3, "pysd": 1e-5}  # RK45 rtol 1e-3; PySD is float64 Euler


def _block(x: Any) -> Any:
    import jax

    return jax.block_until_ready(x)


def _prepare(impl: str, workload: str, method: str, dtype: np.dtype, summaries: bool) -> Callable:
    if impl == "numba[member]":
        return R.prepare_numba(workload, method, dtype, summaries_only=summaries, layout="member")
    return R.prepare(impl, workload, method, dtype, summaries_only=summaries)


def _timed(fn: Callable, params: R.Params, repeats: int) -> tuple[Any, float, float, float]:
    """(first output, first-call seconds, best later call in wall seconds, and the process CPU
    seconds of that call: all threads, spin-waits of idle workers included).

    At least ``repeats`` calls and, for fast calls, up to ``MAX_CALLS`` until ``MIN_SECONDS`` have
    passed: on a busy machine a parallel call can wait a scheduler tick (4 ms here) for a core,
    which swamps a 1 ms call, so a few more tries find the undisturbed time. After a warm-up
    slower than ``SLOW_CALL`` seconds, one timed call."""
    start = time.perf_counter()
    first = _block(fn(params))
    first_s = time.perf_counter() - start
    best, cpu, calls, spent = float("inf"), float("nan"), 0, 0.0
    repeats = 1 if first_s > SLOW_CALL else repeats
    while calls < repeats or (spent < MIN_SECONDS and calls < MAX_CALLS):
        start, cpu_start = time.perf_counter(), time.process_time()
        _block(fn(params))
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - cpu_start
        calls, spent = calls + 1, spent + wall
    return first, first_s, best, cpu


def _diff(out: Any, ref: Any) -> float:
    """Max abs difference of trajectories, or of (t_half, a_end) with NaNs matched."""
    if isinstance(ref, tuple):
        diffs = []
        for a, b in zip(out, ref):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                return float("inf")
            both = np.isfinite(a)
            diffs.append(float(np.max(np.abs(a[both] - b[both]), initial=0.0)))
        return diffs[1]  # A(10 y); t_half has its own, slope-scaled tolerance in check_reference
    return float(np.max(np.abs(np.asarray(out, np.float64) - np.asarray(ref, np.float64))))


def _record(workload: str, method: str, kind: str, impl: str, members: int, seconds: float,
            cpu: float, first_s: float, prepare_s: float, member_steps: int, diff: float,
            sampled: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON row; a sampled row's seconds are scaled from ``sampled`` members."""
    return {"workload": workload, "method": method, "output": kind, "implementation": impl,
            "members": members, "seconds": seconds, "cpu_seconds": cpu,
            "first_call_seconds": first_s, "prepare_seconds": prepare_s,
            "member_steps_per_s": member_steps / seconds,
            "member_steps_per_cpu_s": member_steps / cpu if cpu > 0 else float("nan"),
            "max_abs_diff_vs_numpy": diff, "sampled": sampled}


def bench(workload: str, method: str, sizes: tuple[int, ...], dtype: np.dtype, summaries: bool,
          repeats: int, sample: int) -> list[dict[str, Any]]:
    """Rows for one workload and method (ensemble runners, then the sampled ones)."""
    kind = "summaries" if summaries else "path"
    rows: list[dict[str, Any]] = []
    runners: dict[str, tuple[Callable, float]] = {}
    for impl in ENSEMBLE_IMPLS:
        base = impl.split("[")[0]
        if method in R.METHODS[base]:
            start = time.perf_counter()
            runners[impl] = (_prepare(impl, workload, method, dtype, summaries), time.perf_counter() - start)
    for members in sizes:
        params = R.draw_parameters(workload, members, dtype)
        ref = None
        for impl, (fn, prepare_s) in runners.items():
            out, first_s, best, cpu = _timed(fn, params, repeats)
            if impl == "numpy":
                ref = out
            diff = _diff(out, ref)
            if not diff <= TOL[dtype.name]:
                sys.exit(f"bench_reference_baselines: {impl} {workload} {method} disagrees with numpy "
                         f"by {diff:.2e} (> {TOL[dtype.name]:.0e}) on {members} members; not timing")
            rows.append(_record(workload, method, kind, impl, members, best, cpu, first_s, prepare_s,
                                members * R.STEPS, diff))
            print(f"  {workload:<3}{method:<6}{kind:<10}{impl:<16}{members:>8,}: {best:.4f} s",
                  file=sys.stderr, flush=True)
            del out
    rows += bench_sampled(workload, method, sizes, dtype, summaries, repeats, sample)
    return rows


def bench_sampled(workload: str, method: str, sizes: tuple[int, ...], dtype: np.dtype,
                  summaries: bool, repeats: int, sample: int) -> list[dict[str, Any]]:
    """solve_ivp (timed under rk4: it is compared with RK4) and PySD (under euler, S8 only)."""
    kind = "summaries" if summaries else "path"
    wanted = {"rk4": "solve_ivp", "euler": "pysd"}[method]
    if wanted == "pysd" and workload != "S8":
        return []  # no Vensim model for B
    own = "rk45" if wanted == "solve_ivp" else "euler"
    params = R.draw_parameters(workload, sample, dtype)
    start = time.perf_counter()
    fn = R.prepare(wanted, workload, own, dtype, summaries_only=summaries)
    prepare_s = time.perf_counter() - start
    out, first_s, best, cpu = _timed(fn, params, repeats)
    ref = R.prepare("numpy", workload, method, dtype, summaries_only=summaries)(params)
    diff = _diff(out, ref)
    if not diff <= TOL_SAMPLED[wanted]:
        sys.exit(f"bench_reference_baselines: {wanted} {workload} disagrees with numpy {method} by "
                 f"{diff:.2e} (> {TOL_SAMPLED[wanted]:.0e}); not timing")
    print(f"  {workload:<3}{own:<6}{kind:<10}{wanted:<16}{sample:>8,}: {best:.4f} s (sample)",
          file=sys.stderr, flush=True)
    scale = {"members": sample, "seconds": best, "cpu_seconds": cpu}
    return [_record(workload, own, kind, wanted, m, best * m / sample, cpu * m / sample, first_s,
                    prepare_s, m * R.STEPS, diff, scale) for m in sizes]


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'workload':<9}{'method':<7}{'output':<10}{'implementation':<16}{'members':>9}"
            f"{'seconds':>10}{'member-steps/s':>16}{'per CPU-s':>11}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        note = f"scaled from {r['sampled']['members']} members" if r["sampled"] else ""
        lines.append(f"{r['workload']:<9}{r['method']:<7}{r['output']:<10}{r['implementation']:<16}"
                     f"{r['members']:>9,}{r['seconds']:>10.4f}{r['member_steps_per_s']:>16.3e}"
                     f"{r['member_steps_per_cpu_s']:>11.2e}  {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, sample 5")
    parser.add_argument("--members", type=int, nargs="+", help=f"ensemble sizes (default {FULL_SIZES})")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--workloads", nargs="+", default=list(R.WORKLOADS), choices=R.WORKLOADS)
    parser.add_argument("--methods", nargs="+", default=["euler", "rk4"], choices=["euler", "rk4"])
    parser.add_argument("--summaries", action="store_true", help="also time summaries-only runs")
    parser.add_argument("--sample", type=int, help=f"members for solve_ivp and PySD (default {SAMPLE})")
    parser.add_argument("--repeats", type=int, help=f"timed calls after warm-up (default {REPEATS})")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    sizes = tuple(args.members or (QUICK_SIZES if args.quick else FULL_SIZES))
    sample = args.sample or (5 if args.quick else SAMPLE)
    repeats = args.repeats or REPEATS
    dtype = np.dtype(args.dtype)
    if dtype == np.float64:
        import jax

        jax.config.update("jax_enable_x64", True)

    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = []
    for workload in args.workloads:
        for method in args.methods:
            for summaries in ((False, True) if args.summaries else (False,)):
                rows += bench(workload, method, sizes, dtype, summaries, repeats, sample)
    print(format_table(rows))
    env = R.environment()
    print(f"numba threads: {env['numba_threads']}; cpu_count {env['cpu_count']}; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    import jax

    write_json(args.output, {
        "benchmark": "bench_reference_baselines",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "jax_backend": jax.default_backend(),
                    "python": platform.python_version(), "numba_threads": env["numba_threads"],
                    "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
        "versions": env["versions"],
        "workloads": "/work/shared/benchmarks/REFERENCE_MODEL.md (B, S8)",
        "dtype": dtype.name, "dt_years": R.DT, "steps": R.STEPS, "years": R.YEARS,
        "draw": f"base * exp({R.SIGMA} z), z = default_rng({R.SEED}).standard_normal((n_params, members))",
        "b_base": R.BASE["B"], "s8_base": R.BASE["S8"],
        "throughput_unit": "member-steps per second (members x 520 / best wall seconds)",
        "cpu_seconds": "process CPU seconds of the best call (all threads; OpenMP spin-waits count)",
        "repeats": repeats, "min_timed_seconds": MIN_SECONDS, "max_calls": MAX_CALLS,
        "sample_members": sample, "numba_default_layout": R.NUMBA_LAYOUT,
        "wall_seconds": time.perf_counter() - start, "rows": rows,
    })
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
