"""Peak memory of ensembles of the S8 reference workload: summaries only vs trajectories.

Each measurement runs in a fresh subprocess, so runs do not share allocator state. Peak resident
set size is Linux's ``VmHWM``, reset to the current RSS (``/proc/self/clear_refs``) after
compilation and just before the measured run; ``rss_before_mb`` is the RSS at that moment.

* ``summaries``: ``spreadjax.ensemble._stream.stream_summaries`` over N members (a scrambled Sobol
  design over p, q, rd, tau, delta in [0.55, 1.8] x base), RK4, dt = 1/52, 10 years, float32,
  outputs every quarter, chunks of 65,536 draws. Everything ``summarize_ensemble`` reports is
  reduced on the device chunk by chunk. Target: peak memory flat in N (10^7 members < 4 GB).
  A first run of one chunk compiles; the timed run and ``rss_before_mb`` come after it.
* ``trajectories``: ``Simulation.batch(..., member_axis=-1)`` keeping A at every step
  (521 x N float32) in memory, members last (as the state holds them: no transposed copy).
  Target: peak growth (peak RSS minus the RSS before the run, compiled ahead of time) at most
  2x the output size.

    .venv/bin/python benchmarks/bench_memory.py                 # 2^17, 2^20 and 2^23 members (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench_memory.py --quick         # 2^16 and 2^18
    .venv/bin/python benchmarks/bench_memory.py --members 1e7   # the issue's 10^7
Writes ``benchmarks/results/memory_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine_info, write_json

BASE = dict(p=0.01, q=0.6, rd=2.0, tau=1.0, delta=0.05)
CHUNK = 65536

WORKER = r"""
import json, sys, time
mode, n = sys.argv[1], int(float(sys.argv[2]))
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
def reset_peak():  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
def rss_mb():
    return status_mb("VmHWM")
if mode == "summaries":
    from spreadjax import parse_config
    from spreadjax.ensemble._stream import stream_summaries
    base = json.loads(sys.argv[3])
    chunk = min(n, int(sys.argv[4]))
    config = lambda draws: parse_config({
        "title": "S8 reference", "model": {"name": "s8"}, "sites": {"names": ["population"]},
        "simulation": {"end": 10.0, "steps_per_year": 52, "outputs_per_year": 4, "dtype": "float32",
                       "solver": "rk4", "outputs": ["A"]},
        "scenarios": {"baseline": {}},
        "ensemble": {"source": "design", "design": {k: [v * 0.55, v * 1.8] for k, v in base.items()},
                     "draws": draws, "chunk_size": chunk, "outputs": ["A"]},
    }, "s8.toml")
    stream_summaries(config(chunk))  # compiles (the same chunk shape as the timed run)
    reset_peak()
    before = status_mb("VmRSS")
    start = time.perf_counter()
    summary, _ = stream_summaries(config(n))
    wall = time.perf_counter() - start
    out = {"median_final_A": float(summary["final_fraction_quantile"].sel(quantile=0.5, site="all", scenario="baseline"))}
else:
    import jax, jax.numpy as jnp, numpy as np
    from spreadjax.core import RK4, Simulation, compile_model
    from spreadjax.models import s8_model
    cm = compile_model(s8_model())
    sim = Simulation(cm, tuple(np.arange(521) / 52), 1 / 52, ("A",), RK4())
    z = np.random.default_rng(0).standard_normal((5, n))
    base = json.loads(sys.argv[3])
    params = {k: jnp.broadcast_to(v, (n, 1)) for k, v in cm.params(1, jnp.float32).items()}
    for i, (k, b) in enumerate(base.items()):
        params[k] = jnp.asarray((b * np.exp(0.3 * z[i]))[:, None], jnp.float32)
    run = jax.jit(lambda p: sim.batch(p, member_axis=-1)).lower(params).compile()  # ahead of time: compilation is not counted
    reset_peak()
    before = status_mb("VmRSS")
    start = time.perf_counter()
    a = np.asarray(run(params)["A"])
    wall = time.perf_counter() - start
    out = {"output_mb": a.nbytes / 2**20}
print(json.dumps({"mode": mode, "members": n, "wall_s": wall, "rss_before_mb": before, "peak_rss_mb": rss_mb(), **out}))
"""


def measure(mode: str, n: int, chunk: int) -> dict:
    run = subprocess.run([sys.executable, "-c", WORKER, mode, str(n), json.dumps(BASE), str(chunk)],
                         check=False, capture_output=True, text=True, timeout=3600)
    if run.returncode:
        raise SystemExit(f"{mode} {n}: failed\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=float, nargs="+", default=None)
    ap.add_argument("--trajectories", type=float, nargs="+", default=None, help="member counts kept whole")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "memory_cpu.json")
    args = ap.parse_args()
    members = [int(m) for m in (args.members or ([2**16, 2**18] if args.quick else [2**17, 2**20, 2**23]))]
    kept = [int(m) for m in (args.trajectories or ([2**14, 2**16] if args.quick else [2**16, 2**18]))]
    rows = []
    started = time.perf_counter()
    for n in members:
        rows.append(measure("summaries", n, CHUNK))
    for n in kept:
        rows.append(measure("trajectories", n, CHUNK))
    print(f"{'mode':13s} {'members':>10s} {'wall s':>8s} {'member-steps/s':>15s} {'peak RSS MB':>12s} {'output MB':>10s} {'growth/output':>14s}")
    for r in rows:
        growth = ""
        if r["mode"] == "trajectories":
            r["growth_over_output"] = (r["peak_rss_mb"] - r["rss_before_mb"]) / r["output_mb"]
            growth = f"{r['growth_over_output']:.2f}x"
        r["member_steps_per_s"] = r["members"] * 520 / r["wall_s"]
        print(f"{r['mode']:13s} {r['members']:>10,d} {r['wall_s']:>8.1f} {r['member_steps_per_s']:>15.3e} "
              f"{r['peak_rss_mb']:>12.0f} {r.get('output_mb', float('nan')):>10.1f} {growth:>14s}")
    summ = [r for r in rows if r["mode"] == "summaries"]
    flat = max(r["peak_rss_mb"] for r in summ) / min(r["peak_rss_mb"] for r in summ)
    print(f"summaries: peak RSS ratio largest/smallest ensemble = {flat:.2f} over a {summ[-1]['members'] / summ[0]['members']:.0f}x range of members")
    write_json(args.output, {
        "benchmark": "memory", "machine": machine_info(), "workload": "S8 reference, RK4, dt=1/52, 10 years, float32",
        "summaries_outputs_per_year": 4, "chunk_size": CHUNK, "rows": rows,
        "summaries_peak_ratio": flat, "wall_seconds": time.perf_counter() - started,
        "targets": {"summaries": "peak flat in members; 1e7 members < 4096 MB",
                    "trajectories": "peak growth <= 2x the output size"},
    })


if __name__ == "__main__":
    main()
