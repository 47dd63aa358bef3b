"""Agreement of the reference-workload baselines (B and S8) before anyone times them.

On the first 100 members (``draw_parameters(workload, 100, dtype)``), in float64 and float32:

* numba (both layouts), numba_simd, diffrax (vmapped and batched) and spreadjax against the numpy loop, same method
  (Euler vs Euler, RK4 vs RK4): the whole A trajectory, and the summaries (t_half, A at 10 y)
  that each computes without keeping the trajectory, against ``summarize(numpy trajectory)``;
* PySD (S8, Euler) against numpy Euler; scipy's RK45 (default tolerances) against numpy RK4;
* B: numpy RK4 against the closed form ``closed_form_bass``.

Prints one row per comparison (max abs difference, tolerance) and exits 1 if any fails.

    python benchmarks/check_reference.py [--members 100] [--dtypes float64 float32]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # float64 rows; float32 runners pass float32 explicitly

import _reference as R
import numpy as np

# Tolerances on A (a fraction of the population, <= 1), each with its reason.
TOL = {
    # float64: same method, same grid, only the order of operations differs: round-off of
    # ~1e-16 per step over 520 steps stays far below 1e-9 (the brief's bar).
    ("same", "float64"): 1e-9,
    # float32: round-off of eps32 = 6e-8 per step random-walks to ~eps32 sqrt(520) = 1.4e-6; the
    # linear worst case is eps32 * 520 = 3e-5. 1e-5 sits between (observed <= 1e-6; diffrax's
    # float32 clock adds 1/52 520 times, so its steps differ from dt by up to 1e-4 relative).
    ("same", "float32"): 1e-5,
    # PySD runs Euler in float64 with the same update y + dt f(y): the brief's bar is 1e-6.
    ("pysd", "float64"): 1e-6,
    ("pysd", "float32"): 1e-5,  # PySD stays float64; the float32 numpy Euler sets the error
    # RK45 with rtol 1e-3, atol 1e-6 on A <= 1: the local error per step is held near 1e-3 |A|.
    ("solve_ivp", "float64"): 1e-3,
    ("solve_ivp", "float32"): 1e-3,
    # B's RK4 global error is O(dt^4) with dt (p + q) < 0.04 for every drawn member (observed
    # ~1e-10); the brief's bar is 1e-7. float32 is round-off bound (see "same").
    ("closed", "float64"): 1e-7,
    ("closed", "float32"): 1e-5,
}
SUMMARY_IMPLS = ("numpy", "numba", "numba_simd", "diffrax", "diffrax_batched", "spreadjax")
PATH_IMPLS = ("numba", "numba_simd", "diffrax", "diffrax_batched", "spreadjax")


def _max_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _slope_at_crossing(path: np.ndarray) -> float:
    """Smallest dA/dt (per year) over the step where a member first reaches 0.5, or inf."""
    reached = path >= R.LEVEL
    ever = reached.any(axis=0)
    if not ever.any():
        return float("inf")
    idx = np.maximum(np.argmax(reached, axis=0)[ever], 1)
    cols = np.arange(path.shape[1])[ever]
    return float(np.min((path[idx, cols] - path[idx - 1, cols]) / R.DT))


def _summary_rows(head: dict[str, Any], got: Any, ref_path: np.ndarray, tol: float) -> list[dict]:
    """Rows comparing (t_half, a_end) with the summaries of ``ref_path``. A t_half tolerance in
    years is the A tolerance over the smallest slope at the crossing (dt_half = dA / A')."""
    t_half, a_end = (np.asarray(x) for x in got)
    ref_t, ref_a = R.summarize(ref_path)
    rows = [dict(head, quantity="A(10 y)", diff=_max_diff(a_end, ref_a), tol=tol)]
    same_nan = bool(np.array_equal(np.isnan(t_half), np.isnan(ref_t)))
    both = np.isfinite(t_half) & np.isfinite(ref_t)
    diff = _max_diff(t_half[both], ref_t[both]) if both.any() else 0.0
    slope = _slope_at_crossing(np.asarray(ref_path, np.float64))
    reached = f"{int(np.isfinite(ref_t).sum())}/{ref_t.size} reach 0.5"
    rows.append(dict(head, quantity=f"t_half ({reached})", diff=diff if same_nan else float("inf"),
                     tol=tol / slope if np.isfinite(slope) else tol))
    return rows


def _row(workload: str, method: str, impl: str, ref: str, quantity: str, diff: float,
         tol: float) -> dict[str, Any]:
    return {"workload": workload, "method": method, "impl": impl, "ref": ref, "quantity": quantity,
            "diff": diff, "tol": tol}


def check_agreement(dtype: Any = np.float64, members: int = 100) -> list[dict[str, Any]]:
    """All comparisons for one dtype, as rows with ``diff``, ``tol`` and ``ok``."""
    dtype = np.dtype(dtype)
    name = dtype.name
    rows: list[dict[str, Any]] = []
    for w in R.WORKLOADS:
        params = R.draw_parameters(w, members, dtype)
        ref = {m: R.numpy_run(w, m, params) for m in ("euler", "rk4")}
        for m in ("euler", "rk4"):
            tol = TOL[("same", name)]
            for impl in PATH_IMPLS:
                got = np.asarray(R._run(impl, w, m, params, False))
                rows.append(_row(w, m, impl, f"numpy {m}", "A path", _max_diff(got, ref[m]), tol))
            other = R.prepare_numba(w, m, dtype, layout="member")(params)
            rows.append(_row(w, m, "numba[member-major]", f"numpy {m}", "A path",
                             _max_diff(other, ref[m]), tol))
            for impl in SUMMARY_IMPLS:
                got = R._run(impl, w, m, params, True)
                head = _row(w, m, f"{impl} summaries", f"numpy {m} path", "", 0.0, tol)
                rows += _summary_rows(head, got, ref[m], tol)
        tol = TOL[("solve_ivp", name)]
        rows.append(_row(w, "rk45", "solve_ivp", "numpy rk4", "A path",
                         _max_diff(R.solve_ivp_run(w, params), ref["rk4"]), tol))
        head = _row(w, "rk45", "solve_ivp summaries", "numpy rk4 path", "", 0.0, tol)
        rows += _summary_rows(head, R.solve_ivp_run(w, params, summaries_only=True), ref["rk4"], tol)
        if w == "S8":
            rows.append(_row(w, "euler", "pysd", "numpy euler", "A path",
                             _max_diff(R.pysd_run(params), ref["euler"]), TOL[("pysd", name)]))
        else:
            exact = R.closed_form_bass(params["p"], params["q"], R.GRID)
            rows.append(_row(w, "rk4", "numpy", "closed form", "A path",
                             _max_diff(ref["rk4"], exact), TOL[("closed", name)]))
            rows.append(_row(w, "euler", "numpy", "closed form", "A path (Euler's own error)",
                             _max_diff(ref["euler"], exact), float("inf")))
    for row in rows:
        row["dtype"] = name
        row["ok"] = bool(row["diff"] <= row["tol"])
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = (f"{'dtype':<8}{'workload':<9}{'method':<7}{'implementation':<27}{'reference':<20}"
            f"{'quantity':<30}{'max |diff|':>11}{'tolerance':>11}  ok")
    lines = [head, "-" * len(head)]
    for r in rows:
        tol = "info" if not np.isfinite(r["tol"]) else f"{r['tol']:.1e}"
        lines.append(f"{r['dtype']:<8}{r['workload']:<9}{r['method']:<7}{r['impl']:<27}{r['ref']:<20}"
                     f"{r['quantity']:<30}{r['diff']:>11.2e}{tol:>11}  {'yes' if r['ok'] else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100, help="members compared (default 100)")
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [row for d in args.dtypes for row in check_agreement(np.dtype(d), args.members)]
    print(format_rows(rows))
    env = R.environment()
    print(f"\nnumba threads: {env['numba_threads']}; versions: {env['versions']}; "
          f"{time.perf_counter() - start:.0f} s")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        print(f"check_reference: {len(failed)} comparison(s) out of tolerance", file=sys.stderr)
        return 1
    print(f"all {len(rows)} comparisons within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
