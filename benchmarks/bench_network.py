"""Large peer networks: the flagship model over 10^4 and 10^5 sites coupled by a sparse edge list (CPU).

Workload: ``four_stage_model()`` (default structure) over N sites, classic RK4 with dt = 1/52 yr,
``--steps`` steps (default 104 = 2 years), saving only ``adopted`` (organisations) at yearly
output times, float32. Sites: population ~ U(20, 200) organisations; 5% are pilot sites with
1 initial adopter and pilot_evidence 0.5 evidence/yr, the rest start with no adopters and no pilot
evidence (numpy ``default_rng(SEED + 1)``), so adoption reaches most sites only through the network.

Network (``peer_network``): every site i listens to K = 10 distinct peers j != i drawn uniformly
(numpy ``default_rng(SEED)``; a row that repeats a peer is redrawn) with weights
w_ij ~ U(0, 0.1), so each row sum is below 1 (mean 0.5). E = 10 N edges, listed by target
(site 0's 10 peers, then site 1's, ...).

Metric: **edge-steps per second** = E x (network applications per RK4 step) x steps / wall
seconds. Applications per step are counted from the model at trace time: ``network()`` is called
on ``evidence``, ``adopted`` and ``population`` in each right-hand side, and RK4 evaluates it 4
times, so 12. XLA computes ``network(population)`` (a loop invariant) once before the time loop,
so the compiled step executes 8; the script counts them in the optimised HLO and reports
``edge_steps_per_s_executed`` too. Site-steps per second = N x steps / wall seconds.

Rows (best of 3 timed calls after a warm-up call; the warm-up time, which includes compilation,
is ``first_call_seconds``; a row that reuses a function compiled for the row above, same shapes,
shows no compilation there):

* ``spreadjax``: ``jit(Simulation)`` with ``sparse_network(...)`` (edges stored by source);
* ``spreadjax[target order]``: the same with ``SparseNetwork`` built directly from the edges in
  generated (target) order, what ``sparse_network`` stored before it sorted by source;
* ``spreadjax[dense]`` (N <= 10^4: 400 MB of float32 weights): ``dense_network``, over
  ``--dense-steps`` steps (default 13; a dense matvec over 10^4 sites takes ~20 ms);
* ``segment_sum[...]``: only ``SparseNetwork.apply`` in a jitted ``lax.scan`` of
  12 x steps applications of ``x <- 0.5 * apply(x) + 1``, with the edges in sparse_network's
  order, in target order, target order with ``indices_are_sorted=True``, and in random order;
* ``scipy_csr``: the same iteration as a Python loop over ``scipy.sparse.csr_matrix @ x``;
* ``numba_csr[prange]``: the same iteration in one ``@njit(parallel=True)`` call, a ``prange``
  over the CSR rows (targets) of each application; ``numba_csr[serial]``: the same source
  compiled without ``parallel`` (one thread). The prange version ends every application in a
  barrier across threads, so it suffers most when other processes share the cores.

Baselines' edge-steps per second are edge-applications per second (E x 12 x steps / seconds).
The warm-up outputs are checked to agree (``CHECK_RTOL``): spreadjax's two edge orders on every
output, spreadjax sparse against dense over the dense horizon, and the final x of every
segment-sum baseline against scipy; the checks go in the JSON, and the script exits non-zero
after writing it if one fails. Not a test: timing targets live here, never in ``tests/``.

    python benchmarks/bench_network.py [--quick] [--sites N [N ...]] [--steps 104]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numba
import numpy as np
import scipy
import scipy.sparse
from _common import write_json  # benchmarks/ is on sys.path as the script's folder
from numba import njit, prange

from spreadjax.core import (
    RK4,
    Simulation,
    SparseNetwork,
    compile_model,
    dense_network,
    sparse_network,
)
from spreadjax.models import four_stage_model

DT = 1.0 / 52.0  # years per step
STEPS = 104  # integration steps (2 years)
DENSE_STEPS = 13  # steps of the dense-network run (a quarter year)
PEERS = 10  # in-edges per site: E = PEERS x N
W_MAX = 0.1  # weights ~ U(0, W_MAX): a row sum is below PEERS x W_MAX = 1
PILOT_SHARE = 0.05  # share of sites with a pilot (1 initial adopter, pilot evidence)
DTYPE = np.float32
SEED = 0
REPEATS = 3
DENSE_MAX_SITES = 10_000  # (site, site) float32 weights: 400 MB at 10^4 sites
# Agreement, relative to the largest value compared. float32 round-off (~1e-7 per operation)
# in sums of 10 terms taken in different orders; the sims also differ in the order XLA fuses
# the rhs, over 104 contracting steps: expected ~1e-6, allowed 1e-4.
CHECK_RTOL = 1e-4
FULL_SIZES = (10_000, 100_000)
QUICK_SIZES = (10_000,)
RESULTS = Path(__file__).parent / "results" / "network_cpu.json"


# -- workload -----------------------------------------------------------------------------------
def peer_network(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(source, target, weight)``, ``(PEERS n,)`` each, listed by target: site i listens to
    ``PEERS`` distinct peers j != i, weights ~ U(0, W_MAX) (float64)."""
    rng = np.random.default_rng(seed)

    def draw(rows: np.ndarray) -> np.ndarray:
        peers = rng.integers(0, n - 1, (rows.size, PEERS))
        return peers + (peers >= rows[:, None])  # skip the site itself

    peers = draw(np.arange(n))
    while True:
        s = np.sort(peers, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        if bad.size == 0:
            break
        peers[bad] = draw(bad)
    weight = rng.uniform(0.0, W_MAX, (n, PEERS))
    return peers.ravel(), np.repeat(np.arange(n), PEERS), weight.ravel()


def site_values(n: int) -> dict[str, np.ndarray]:
    """Per-site parameter values: population (organisations), pilots' initial adopters and
    pilot evidence (evidence/yr)."""
    rng = np.random.default_rng(SEED + 1)
    pilots = rng.uniform(size=n) < PILOT_SHARE
    return {"population": rng.uniform(20.0, 200.0, n), "initial_adopters": pilots * 1.0,
            "pilot_evidence": pilots * 0.5}


def output_times(steps: int) -> tuple[float, ...]:
    """Yearly output times up to ``steps`` x DT years, plus the end if it is not a whole year."""
    years = list(range(steps // 52 + 1))
    end = steps * DT
    return tuple(float(y) for y in years) + ((end,) if steps % 52 else ())


class TargetSortedNetwork(SparseNetwork):
    """``SparseNetwork`` whose edges are sorted by target, declared to XLA (a variant tried for
    ``_network.py`` and not kept: measured here as ``segment_sum[target order, sorted flag]``)."""

    def apply(self, x: Any) -> Any:
        weight = self.weight.reshape(self.weight.shape + (1,) * (x.ndim - 1))
        return jax.ops.segment_sum(weight * x[self.source], self.target, num_segments=x.shape[0],
                                   indices_are_sorted=True)


# -- counting network applications --------------------------------------------------------------
def traced_applications_per_step(cm: Any, params: Any, network: Any) -> int:
    """``network()`` calls while tracing one RK4 step of ``cm.rhs`` (the model's count)."""
    calls = [0]

    class Counting:
        def apply(self, x: Any) -> Any:
            calls[0] += 1
            return network.apply(x)

    y0 = cm.init(params, 0.0)
    def step(y: Any) -> Any:
        return RK4().step(lambda t, y: cm.rhs(t, y, params, Counting()), 0.0, y, DT)

    jax.make_jaxpr(step)(y0)
    return calls[0]


def executed_applications_per_step(hlo: str, op: str) -> int | None:
    """Instructions ``op`` (``scatter`` or ``dot``) one pass of the innermost while loop body runs,
    counted in optimised HLO text through fusions and calls; None if no loop holds one."""
    bodies, callees, direct, comp = [], {}, {}, None
    for line in hlo.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            comp = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
            callees[comp], direct[comp] = [], 0
            continue
        if comp is None or not line.strip():
            continue
        if re.search(rf"\s{op}\(", line):
            direct[comp] += 1
        callees[comp] += re.findall(r"(?:calls|body|condition|to_apply)=%([\w.\-]+)", line)
        bodies += re.findall(r"body=%([\w.\-]+)", line)

    def count(c: str, seen: tuple[str, ...] = ()) -> int:
        return direct.get(c, 0) + sum(count(k, seen + (c,)) for k in callees.get(c, ()) if k not in seen)

    counts = [n for n in (count(b) for b in bodies) if n > 0]
    return min(counts) if counts else None


# -- implementations ----------------------------------------------------------------------------
def make_sim(cm: Any, steps: int) -> Callable[[Any, Any], Any]:
    """``jit(Simulation)``: ``(params, network) -> adopted`` ``(time, site)``, organisations."""
    sim = Simulation(cm, output_times(steps), DT, ("adopted",), RK4(), t0=0.0)
    return jax.jit(lambda params, network: sim(params, network)["adopted"])


def make_segment_loop(apps: int) -> Callable[[Any, Any], Any]:
    """``(network, x) -> x`` after ``apps`` iterations of ``x <- 0.5 * apply(x) + 1`` in a jitted
    ``lax.scan`` (x stays in [1, 2): the row sums are below 1)."""

    def run(network: Any, x: Any) -> Any:
        return jax.lax.scan(lambda x, _: (0.5 * network.apply(x) + 1.0, None), x, None, length=apps)[0]

    return jax.jit(run)


def scipy_loop(matrix: Any, x: np.ndarray, apps: int) -> np.ndarray:
    """The same iteration with a scipy CSR matvec per application."""
    for _ in range(apps):
        x = 0.5 * (matrix @ x) + 1.0
    return x


def _csr_iterate(indptr, indices, data, x0, apps, c):  # pragma: no cover - compiled by numba
    """``apps`` iterations of ``x <- c[1] * (A x) + c[2]``, A in CSR (rows = targets), each a
    ``prange`` over rows; ``c = (0, 0.5, 1)`` in the dtype of ``x0`` keeps float32 in float32."""
    x = x0.copy()
    y = np.empty_like(x0)
    for _ in range(apps):
        for i in prange(x.size):
            s = c[0]
            for k in range(indptr[i], indptr[i + 1]):
                s += data[k] * x[indices[k]]
            y[i] = c[1] * s + c[2]
        x, y = y, x
    return x


# The same source twice: prange over rows (numba's default threading layer), and serial (prange
# is range without parallel=True). Each application ends in a barrier across threads.
_NUMBA = {"fastmath": True, "error_model": "numpy"}
_numba_csr = njit(parallel=True, **_NUMBA)(_csr_iterate)
_numba_csr_serial = njit(**_NUMBA)(_csr_iterate)


def numba_loop(matrix: Any, x: np.ndarray, apps: int, kernel: Callable = _numba_csr) -> np.ndarray:
    c = np.array([0.0, 0.5, 1.0], dtype=x.dtype)
    return kernel(matrix.indptr, matrix.indices, matrix.data, x, apps, c)


# -- measurement --------------------------------------------------------------------------------
def time_best(fn: Callable[..., Any], *args: Any, repeats: int = REPEATS) -> tuple[float, float, Any]:
    """(first-call seconds including compilation, best of ``repeats`` seconds, first output)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first, best, np.asarray(out)


def _threading_layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run
        return None


def max_rel_diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def bench_size(cm: Any, n: int, steps: int, dense_steps: int, counts: dict[str, Any],
               checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timing rows for one number of sites."""
    src, tgt, w = peer_network(n)
    edges = src.size
    params = cm.params(n, jnp.float32, **site_values(n))
    per_step = counts["traced_per_step"]
    apps = per_step * steps
    rows: list[dict[str, Any]] = []

    def add(name: str, kind: str, first: float, best: float, row_steps: int, network: str = "sparse") -> None:
        row = {"implementation": name, "kind": kind, "sites": n, "edges": edges, "steps": row_steps,
               "applications": per_step * row_steps, "seconds": best, "first_call_seconds": first,
               "edge_steps_per_s": edges * per_step * row_steps / best}
        if kind == "simulation":
            executed = counts["executed_per_step"][network]
            row["site_steps_per_s"] = n * row_steps / best
            row["edge_steps_per_s_executed"] = edges * executed * row_steps / best if executed else None
        rows.append(row)
        print(f"  {name:<42} {n:>8,} sites: {best:.4f} s (first call {first:.2f} s)", file=sys.stderr, flush=True)

    # full simulations
    run = make_sim(cm, steps)
    net = sparse_network(src, tgt, w, n, jnp.float32)
    target_net = SparseNetwork(jnp.asarray(src, jnp.int32), jnp.asarray(tgt, jnp.int32), jnp.asarray(w, jnp.float32))
    first, best, out = time_best(run, params, net)
    add("spreadjax", "simulation", first, best, steps)
    first, best, out_t = time_best(run, params, target_net)
    add("spreadjax[target order]", "simulation", first, best, steps)
    checks.append({"sites": n, "what": "adopted, sparse_network order vs target order, all outputs",
                   "max_rel_diff": max_rel_diff(out_t, out)})
    if n <= DENSE_MAX_SITES:
        weight = np.zeros((n, n), DTYPE)
        weight[tgt, src] = w
        dense = dense_network(weight, n, jnp.float32)
        del weight
        short = make_sim(cm, dense_steps)
        first, best, out_d = time_best(short, params, dense)
        add("spreadjax[dense]", "simulation", first, best, dense_steps, "dense")
        out_s = np.asarray(short(params, net))
        checks.append({"sites": n, "what": f"adopted, sparse vs dense over {dense_steps} steps",
                       "max_rel_diff": max_rel_diff(out_s, out_d)})
        del dense

    # segment-sum microbenchmarks and CSR baselines: the same number of applications
    x0 = np.random.default_rng(SEED + 2).uniform(1.0, 2.0, n).astype(DTYPE)
    matrix = scipy.sparse.csr_matrix((w.astype(DTYPE), (tgt, src)), shape=(n, n))
    first, best, ref = time_best(scipy_loop, matrix, x0, apps)
    scipy_row = (first, best)
    perm = np.random.default_rng(SEED + 3).permutation(edges)
    variants = {
        "segment_sum[sparse_network order]": net,
        "segment_sum[target order]": target_net,
        "segment_sum[target order, sorted flag]": TargetSortedNetwork(*target_net),
        "segment_sum[random order]": SparseNetwork(*(a[perm] for a in target_net)),
    }
    loop = make_segment_loop(apps)
    xj = jnp.asarray(x0)
    for name, network in variants.items():
        first, best, x = time_best(loop, network, xj)
        add(name, "apply", first, best, steps)
        checks.append({"sites": n, "what": f"x after {apps} applications, {name} vs scipy",
                       "max_rel_diff": max_rel_diff(x, ref)})
    add("scipy_csr", "apply", *scipy_row, steps)
    for name, kernel in (("numba_csr[prange]", _numba_csr), ("numba_csr[serial]", _numba_csr_serial)):
        first, best, x = time_best(numba_loop, matrix, x0, apps, kernel)
        add(name, "apply", first, best, steps)
        checks.append({"sites": n, "what": f"x after {apps} applications, {name} vs scipy",
                       "max_rel_diff": max_rel_diff(x, ref)})

    top = rows[0]["edge_steps_per_s"]
    for row in rows:
        row["spreadjax_over_this"] = top / row["edge_steps_per_s"]
    return rows


def count_applications(cm: Any) -> dict[str, Any]:
    """Network applications per RK4 step: traced from the model, and executed by the compiled
    simulation (scatter-adds for sparse, dots for dense, counted in optimised HLO on 100 sites)."""
    n = 100
    src, tgt, w = peer_network(n)
    params = cm.params(n, jnp.float32, **site_values(n))
    sparse = sparse_network(src, tgt, w, n, jnp.float32)
    weight = np.zeros((n, n))
    weight[tgt, src] = w
    dense = dense_network(weight, n, jnp.float32)
    run = make_sim(cm, STEPS)
    executed = {kind: executed_applications_per_step(run.lower(params, net).compile().as_text(), op)
                for kind, net, op in (("sparse", sparse, "scatter"), ("dense", dense, "dot"))}
    traced = traced_applications_per_step(cm, params, sparse)
    return {"traced_per_step": traced, "traced_per_rhs": traced / 4, "executed_per_step": executed}


# -- report -------------------------------------------------------------------------------------
def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table: one row per implementation and size."""
    head = (f"{'implementation':<40}{'sites':>9}{'edges':>11}{'steps':>6}{'seconds':>9}"
            f"{'edge-steps/s':>14}{'(executed)':>12}{'site-steps/s':>14}{'first call s':>14}{'spreadjax/this':>16}")
    lines = [head, "-" * len(head)]
    for r in rows:
        executed = r.get("edge_steps_per_s_executed")
        site = r.get("site_steps_per_s")
        lines.append(
            f"{r['implementation']:<40}{r['sites']:>9,}{r['edges']:>11,}{r['steps']:>6}{r['seconds']:>9.3f}"
            f"{r['edge_steps_per_s']:>14.3e}{(f'{executed:.3e}' if executed else '-'):>12}"
            f"{(f'{site:.3e}' if site else '-'):>14}{r['first_call_seconds']:>14.2f}{r['spreadjax_over_this']:>15.2f}x")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], counts: dict[str, Any], checks: list[dict[str, Any]],
            steps: int, dense_steps: int, load: dict[str, Any]) -> dict[str, Any]:
    """The JSON record: machine, versions, workload, counts, checks, rows and ratios."""
    ratios: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["implementation"] != "spreadjax":
            ratios.setdefault(str(r["sites"]), {})[f"spreadjax/{r['implementation']}"] = r["spreadjax_over_this"]
    return {
        "benchmark": "bench_network",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "jax_backend": jax.default_backend(),
                    "python": platform.python_version(), "numba_threads": numba.get_num_threads(),
                    "numba_threading_layer": _threading_layer(),
                    "load_average": load},
        "versions": {"jax": jax.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "numba": numba.__version__},
        "model": "four_stage_model() default structure",
        "sites": f"population ~ U(20, 200); {PILOT_SHARE:.0%} pilot sites (initial_adopters 1, "
                 f"pilot_evidence 0.5), others 0; numpy default_rng({SEED + 1})",
        "network": f"each site listens to {PEERS} distinct peers != itself, uniform; weights ~ U(0, {W_MAX}) "
                   f"(row sums < 1); numpy default_rng({SEED}); E = {PEERS} N",
        "dtype": np.dtype(DTYPE).name, "solver": "classic RK4", "dt_years": DT, "steps": steps,
        "dense_steps": dense_steps, "output_times_years": list(output_times(steps)), "outputs": ["adopted"],
        "network_applications": counts,
        "throughput_unit": ("edge-steps per second: E x traced applications per step x steps / best-of-3 "
                            "wall seconds (baselines: E x applications / seconds); *_executed uses the "
                            "applications per step the compiled loop runs"),
        "repeats": REPEATS, "check_rtol": CHECK_RTOL, "checks": checks, "rows": rows, "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--sites", type=int, nargs="+", help=f"numbers of sites (default {FULL_SIZES})")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"RK4 steps of 1/52 yr (default {STEPS})")
    parser.add_argument("--dense-steps", type=int, default=DENSE_STEPS,
                        help=f"steps of the dense-network run (default {DENSE_STEPS})")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    sizes = args.sites or (QUICK_SIZES if args.quick else FULL_SIZES)
    load = {"before": os.getloadavg()}

    cm = compile_model(four_stage_model())
    counts = count_applications(cm)
    print(f"network applications per RK4 step: {counts['traced_per_step']} traced "
          f"({counts['traced_per_rhs']} per rhs x 4), executed {counts['executed_per_step']}", file=sys.stderr)
    checks: list[dict[str, Any]] = []
    rows = [row for n in sizes for row in bench_size(cm, n, args.steps, args.dense_steps, counts, checks)]
    load["after"] = os.getloadavg()
    for c in checks:
        c["passed"] = c["max_rel_diff"] < CHECK_RTOL
    print(format_table(rows))
    print(f"load average before {load['before']}, after {load['after']}")
    write_json(args.output, summary(rows, counts, checks, args.steps, args.dense_steps, load))
    print(f"wrote {args.output}")
    failed = [c for c in checks if not c["passed"]]
    if failed:
        sys.exit(f"bench_network: results disagree beyond rtol {CHECK_RTOL}: {failed}")


if __name__ == "__main__":
    main()
