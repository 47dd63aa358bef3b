"""The whole benchmark suite in one command: each benchmark in its own process, then one table of
where spreadjax stands against issue 7's targets (ratios measured in the same run).

    .venv/bin/python benchmarks/run_all.py            # full (about 1-2 hours on 2 busy cores)
    .venv/bin/python benchmarks/run_all.py --quick    # small sizes (about 15 minutes)
    .venv/bin/python benchmarks/run_all.py --skip calibrate ensemble

Every benchmark writes ``benchmarks/results/<name>_<tag>.json`` (tag: ``cpu``, or ``gpu`` when
JAX's default backend is a GPU; ``--tag`` overrides; ``--quick`` adds ``_quick``) and the suite
writes ``suite_<tag>.json`` with the targets table. A target whose benchmark was skipped, failed or cannot run here (the GPU
targets on a CPU machine) is reported as "not measured", never estimated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine_info, write_json

RESULTS = HERE / "results"

# name -> (script, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "reference": ("bench_reference_baselines.py", ["--members", "1000", "100000", "1000000", "--summaries"],
                  ["--members", "1000", "100000", "--summaries", "--methods", "rk4"]),
    "simulate": ("bench_simulate.py", ["--members", "1000", "100000", "1000000"], ["--quick"]),
    "memory": ("bench_memory.py", [], ["--quick"]),
    "network": ("bench_network.py", [], ["--quick"]),
    "ensemble": ("bench_ensemble.py", [], ["--quick"]),
    "calibrate": ("bench_calibrate.py", [], ["--quick"]),
}


def run_benchmark(name: str, quick: bool, tag: str) -> dict[str, Any]:
    script, full, short = BENCHMARKS[name]
    out = RESULTS / f"{name}_{tag}.json"
    cmd = [sys.executable, str(HERE / script), *(short if quick else full), "--output", str(out)]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=HERE)
    return {"name": name, "command": cmd[1:], "returncode": proc.returncode,
            "seconds": time.perf_counter() - start, "output": str(out.relative_to(HERE.parent))}


def compile_check() -> dict[str, Any]:
    """First compile of the flagship simulation (s) and compilations after changing values."""
    code = r"""
import json, time
import jax, jax.monitoring, jax.numpy as jnp, numpy as np
n = [0]
jax.monitoring.register_event_duration_secs_listener(
    lambda e, d, **k: n.__setitem__(0, n[0] + (e == "/jax/core/compile/backend_compile_duration")))
from spreadjax.core import RK4, Simulation, compile_model, simulate
from spreadjax.models import four_stage_model
cm = compile_model(four_stage_model())
sim = Simulation(cm, tuple(np.arange(0, 10.01, 0.25)), 1 / 52, ("adopted", "aware"), RK4())
params = cm.params(6, jnp.float32)
start = time.perf_counter()
jax.block_until_ready(simulate(sim, params))
first = time.perf_counter() - start
variants = [{**params, "q": jnp.asarray(np.full(6, v, np.float32)),
             "programme": {"times": params["programme"]["times"], "values": jnp.asarray(np.full((1, 6), v, np.float32))}}
            for v in (0.3, 0.9, 1.7)]
before = n[0]
for p in variants:
    jax.block_until_ready(simulate(sim, p))
print(json.dumps({"first_compile_and_run_s": first, "recompilations_after_value_changes": n[0] - before}))
"""
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr[-1000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load(name: str, tag: str) -> dict | None:
    path = RESULTS / f"{name}_{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _rate(rows: list[dict], **match: Any) -> float | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r.get("member_steps_per_s")
    return None


def targets(tag: str, ran: set[str], compile_info: dict) -> list[dict[str, Any]]:
    """The issue's targets with what this run measured (``None``: not measured)."""
    out: list[dict[str, Any]] = []

    def add(target: str, value: float | None, goal: float, unit: str, note: str = "", at_most: bool = False) -> None:
        met = None if value is None else bool(value <= goal if at_most else value >= goal)
        out.append({"target": target, "measured": value, "goal": goal, "at_most": at_most, "unit": unit,
                    "met": met, "note": note})

    ref = _load("reference", tag) if "reference" in ran else None
    rows = ref["rows"] if ref else []
    sj = _rate(rows, workload="S8", method="rk4", implementation="spreadjax", members=100000, output="path")
    for impl, goal in (("numba", 0.5), ("numba_simd", 0.5), ("numpy", 10.0), ("diffrax", 10.0), ("solve_ivp", 1000.0)):
        method = "rk45" if impl == "solve_ivp" else "rk4"  # solve_ivp: its default RK45, per member
        other = _rate(rows, workload="S8", method=method, implementation=impl, members=100000, output="path")
        add(f"S8 RK4 float32 1e5 members: spreadjax / {impl}", sj / other if sj and other else None, goal, "x")
    mem = _load("memory", tag) if "memory" in ran else None
    if mem:
        summ = [r for r in mem["rows"] if r["mode"] == "summaries"]
        traj = [r for r in mem["rows"] if r["mode"] == "trajectories"]
        add("summaries only: peak RSS largest / smallest ensemble", mem["summaries_peak_ratio"], 1.2, "x",
            f"{summ[0]['members']:,} to {summ[-1]['members']:,} members", at_most=True)
        add("summaries only: peak RSS of the largest ensemble", summ[-1]["peak_rss_mb"], 4096, "MB",
            f"{summ[-1]['members']:,} members", at_most=True)
        add("trajectories: peak growth / output size", max(r["growth_over_output"] for r in traj), 2.0, "x", at_most=True)
    else:
        add("summaries only: peak RSS of 1e7 members", None, 4096, "MB", at_most=True)
    add("flagship first simulation compile + run", compile_info.get("first_compile_and_run_s"), 10.0, "s", at_most=True)
    add("recompilations after value changes", compile_info.get("recompilations_after_value_changes"), 0, "",
        at_most=True)
    cal = _load("calibrate", tag) if "calibrate" in ran else None
    for r in (cal or {}).get("rows", []):
        if r["tool"] == "pymc":
            add(f"calibration {r['model']}: spreadjax / PyMC ESS/s (warm)", r.get("spreadjax_over_this_warm"), 10.0, "x")
    ens = _load("ensemble", tag) if "ensemble" in ran else None
    if ens:
        o = ens.get("overheads", {})
        for key, label in (("dask_1_worker", "dask, 1 worker: added wall time"),
                           ("dask_2_workers_vs_in_process", "dask, 2 workers: added wall time"),
                           ("dask_2_workers_vs_half_in_process", "dask, 2 workers: vs half the in-process time"),
                           ("zarr_writing", "zarr writing: added wall time"),
                           ("cpu_zarr_writing", "zarr writing: added CPU time")):
            if key in o:
                add(label, o[key], 0.10, "fraction", f"{ens['settings'].get('members', '')} members",
                    at_most=True)
    net = _load("network", tag) if "network" in ran else None
    if net:
        best = [r for r in net.get("rows", []) if r.get("implementation") == "spreadjax" and r.get("sites") == 100000]
        add("network 1e5 sites / 1e6 edges: edge-steps/s", best[0].get("edge_steps_per_s") if best else None, 5e7, "1/s",
            "" if best else "no 1e5-site row (--quick runs 1e4 only)")
    gpu = tag.startswith("gpu")
    s8_sum = _rate(rows, workload="S8", method="rk4", implementation="spreadjax", members=1000000, output="summaries")
    add("GPU: S8 member-steps/s with summaries on device", s8_sum if gpu else None, 1e10, "1/s",
        "" if gpu else "no GPU in this run: not measured")
    add("GPU: network edge-steps/s", None, 5e9, "1/s", "" if gpu else "no GPU in this run: not measured")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=list(BENCHMARKS))
    ap.add_argument("--only", nargs="*", choices=list(BENCHMARKS))
    ap.add_argument("--tag", help="results suffix (default: cpu, or gpu on a GPU backend)")
    ap.add_argument("--table", action="store_true", help="no runs: tabulate the results on disk for this tag")
    args = ap.parse_args(argv)
    import jax

    tag = args.tag or ("gpu" if jax.default_backend() == "gpu" else "cpu")
    tag += "_quick" if args.quick else ""  # quick runs never overwrite full results
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    started = time.perf_counter()
    if args.table:  # the results already on disk for this tag
        runs = [{"name": n, "returncode": 0, "from_disk": True} for n in names if (RESULTS / f"{n}_{tag}.json").exists()]
    else:
        runs = [run_benchmark(n, args.quick, tag) for n in names]
    ran = {r["name"] for r in runs if r["returncode"] == 0}
    info = compile_check()
    table = targets(tag, ran, info)
    print(f"\n{'target':62s} {'measured':>12s} {'goal':>10s}  met")
    for t in table:
        value = "not measured" if t["measured"] is None else f"{t['measured']:.3g}"
        goal = f"{'<=' if t['at_most'] else '>='}{t['goal']:g}"
        met = "-" if t["met"] is None else ("yes" if t["met"] else "NO")
        print(f"{t['target']:62s} {value:>12s} {goal:>10s}  {met}  {t['note']}")
    failed = [r["name"] for r in runs if r["returncode"]]
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}")
    write_json(RESULTS / f"suite_{tag}.json", {
        "benchmark": "suite", "quick": args.quick, "machine": machine_info(), "runs": runs,
        "compile": info, "targets": table, "wall_seconds": time.perf_counter() - started,
    })


if __name__ == "__main__":
    main()
