"""Import-and-run speed of SDXorg models: spreadjax's importer vs PySD, measured in one run (CPU).

For each model (vendored under ``tests/sdimport/sdxorg``, each matching its published output in
``scripts/sdxorg_conformance.py``), float64 on both sides, the model's own start, stop, dt and
saving interval:

* spreadjax: ``import_model`` (parse + lower, seconds), the first run (build, ``jax.jit``
  compile and run), and a warm run (best of ``REPEATS`` calls of the jitted simulation);
* PySD: ``read_vensim``/``read_xmile`` (translate to Python and load; the model is copied to a
  temporary folder because PySD writes the translation beside it), and ``model.run`` (best of
  ``REPEATS``), returning the same columns.

Ratios are PySD over spreadjax: ``load/(import+first run)`` for a single run from the file, and
``run/warm run`` for repeated runs. The batch comparison varies one constant over ``MEMBERS``
parameter sets (log-normal, spread 0.3): spreadjax runs all of them in one ``Simulation.batch``
call; PySD runs ``SAMPLE`` of them in a loop (``model.run(params=...)``) and the time is scaled to
``MEMBERS``. Both sides' results are checked to agree (relative 1e-6 on every compared column of
the sampled members) before any time is reported. Not a test: timings live here, not in ``tests/``.

    python benchmarks/bench_import.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from _common import machine_info, write_json  # noqa: E402 (benchmarks/ is on sys.path as the script's folder)

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "sdimport" / "sdxorg"
RESULTS = Path(__file__).parent / "results" / "import_cpu.json"
REPEATS = 5
MEMBERS = 1000
SAMPLE = 20  # PySD runs of the batch actually timed (scaled to MEMBERS)
QUICK_SAMPLE = 5
SIGMA = 0.3
SEED = 0
AGREE_RTOL = 1e-6  # both sides integrate the same equations in float64 with the same Euler/RK4 steps

#: (model file, constant varied in the batch, columns compared and returned by PySD)
MODELS = [
    ("samples/teacup/teacup.mdl", "characteristic_time", ["teacup_temperature"]),
    ("samples/teacup/teacup.xmile", "characteristic_time", ["teacup_temperature"]),
    ("samples/SIR/SIR.mdl", "contact_infectivity", ["susceptible", "infectious", "recovered"]),
    ("samples/SIR/SIR.xmile", "contact_infectivity", ["susceptible", "infectious", "recovered"]),
    ("tests/smooth_and_stock/test_smooth_and_stock.mdl", None, ["accumulation", "first_order_smooth", "third_order_smooth"]),
    ("tests/lookups/test_lookups.mdl", None, ["accumulation", "lookup_function_call"]),
    ("tests/subscript_2d_arrays/test_subscript_2d_arrays.mdl", None, ["stock_a"]),
]
QUICK_MODELS = 2


def best_of(fn, repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


def spreadjax_side(path: Path) -> dict[str, Any]:
    from spreadjax.core import RK4, Euler, Simulation, compile_model
    from spreadjax.sdimport import import_model

    tic = time.perf_counter()
    imported = import_model(path)
    import_s = time.perf_counter() - tic
    tic = time.perf_counter()
    cm = compile_model(imported.model)
    n_out = int(round((imported.end - imported.start) / imported.output_every))
    ts = tuple(imported.start + k * imported.output_every for k in range(n_out + 1))
    solver = RK4() if imported.solver == "rk4" else Euler()
    sim = Simulation(cm, ts, imported.dt, tuple(cm.outputs), solver=solver, t0=imported.start)
    params = cm.params(n_sites=max(1, len(imported.sites)), **{k: np.asarray(v) for k, v in imported.site_values})
    run = jax.jit(sim.__call__)
    out = jax.block_until_ready(run(params))
    first_s = time.perf_counter() - tic
    warm_s = best_of(lambda: jax.block_until_ready(run(params)))
    return {"imported": imported, "cm": cm, "sim": sim, "params": params, "out": out, "ts": np.asarray(ts),
            "import_s": import_s, "first_run_s": first_s, "warm_run_s": warm_s}


def pysd_side(path: Path, columns: list[str], tmp: Path) -> dict[str, Any]:
    import pysd

    copy = tmp / path.name
    shutil.copy(path, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tic = time.perf_counter()
        model = pysd.read_vensim(str(copy)) if path.suffix == ".mdl" else pysd.read_xmile(str(copy))
        load_s = time.perf_counter() - tic
        names = _pysd_columns(model, columns)
        frame = model.run(return_columns=names)
        run_s = best_of(lambda: model.run(return_columns=names))
    return {"model": model, "names": names, "frame": frame, "load_s": load_s, "run_s": run_s}


def _pysd_columns(model, columns: list[str]) -> list[str]:
    """PySD's own column names (its source names, arrays as one column) of the compared variables."""
    doc = model.doc
    by_py = dict(zip(doc["Py Name"], doc["Real Name"]))
    return [by_py[c] for c in columns]


def agree(sj: dict, ps: dict, columns: list[str]) -> float:
    """Largest relative difference between the two sides over the compared columns (PySD writes
    an array's elements as columns ``Name[a,b]``; spreadjax expands them to ``name__a__b``)."""
    from spreadjax.sdimport._ir import canonical_name

    frame = ps["frame"]
    times = np.asarray(frame.index, float)
    rows = np.searchsorted(np.round(sj["ts"], 9), np.round(times, 9))
    worst = 0.0
    for col, name in zip(columns, ps["names"]):
        for c in frame.columns:
            if c == name:
                ours_name = col
            elif c.startswith(name + "["):
                ours_name = col + "".join("__" + canonical_name(e) for e in c[len(name) + 1:-1].split(","))
            else:
                continue
            ours = np.asarray(sj["out"][ours_name])
            ours = (ours if ours.ndim == 1 else ours[:, 0])[rows]
            worst = max(worst, _rel(ours, np.asarray(frame[c], float)))
    return worst


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the larger magnitude, with a floor of 1e-9 (round-off of
    values that should be 0 is ~1e-15 on both sides)."""
    return float(np.max(np.abs(a - b) / np.maximum(1e-9, np.maximum(np.abs(a), np.abs(b)))))


def batch(sj: dict, ps: dict, param: str, columns: list[str], sample: int) -> dict[str, Any]:
    """spreadjax ``Simulation.batch`` over MEMBERS values of ``param`` vs a PySD loop over
    ``sample`` of them (timed, scaled)."""
    rng = np.random.default_rng(SEED)
    base = float(np.asarray(sj["params"][param])[0])
    values = base * np.exp(SIGMA * rng.standard_normal(MEMBERS))
    params = {k: np.broadcast_to(np.asarray(v), (MEMBERS,) + np.shape(v)).copy() for k, v in sj["params"].items()}
    params[param] = values[:, None]
    sim = sj["sim"]
    run = jax.jit(lambda p: sim.batch(p))
    tic = time.perf_counter()
    out = jax.block_until_ready(run(params))
    first_s = time.perf_counter() - tic
    warm_s = best_of(lambda: jax.block_until_ready(run(params)), repeats=3)

    model = ps["model"]
    pysd_name = param
    frames = []
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in values[:sample]:
            frames.append(model.run(params={pysd_name: float(v)}, return_columns=ps["names"]))
    loop_s = time.perf_counter() - tic
    worst = 0.0
    for m, frame in enumerate(frames):
        for col, name in zip(columns, ps["names"]):
            ours = np.asarray(out[col])[m]
            ours = ours if ours.ndim == 1 else ours[:, 0]
            theirs = np.asarray(frame[name], float)
            worst = max(worst, _rel(ours, theirs))
    scaled = loop_s * MEMBERS / sample
    return {"parameter": param, "members": MEMBERS, "pysd_sample": sample, "spreadjax_first_s": first_s,
            "spreadjax_warm_s": warm_s, "pysd_loop_s_scaled": scaled, "ratio_pysd_over_spreadjax_warm": scaled / warm_s,
            "ratio_pysd_over_spreadjax_first": scaled / first_s, "max_rel_diff": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_MODELS} models, {QUICK_SAMPLE} PySD batch runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    import pysd

    models = MODELS[:QUICK_MODELS] if args.quick else MODELS
    sample = QUICK_SAMPLE if args.quick else SAMPLE
    rows, batches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up (untimed): both sides' one-time imports (jax, PySD's grammars) go here, not into
        # the first model's numbers
        (Path(tmp) / "warmup").mkdir()
        spreadjax_side(SUITE / MODELS[0][0])
        pysd_side(SUITE / MODELS[0][0], MODELS[0][2], Path(tmp) / "warmup")
        for k, (rel, param, columns) in enumerate(models):
            path = SUITE / rel
            sub = Path(tmp) / str(k)
            sub.mkdir()
            sj = spreadjax_side(path)
            ps = pysd_side(path, columns, sub)
            diff = agree(sj, ps, columns)
            if diff > AGREE_RTOL:
                print(f"{rel}: spreadjax and PySD differ by {diff:.2g} (relative); not timing a different answer")
                return 1
            row = {"model": rel, "steps": int(round((sj["imported"].end - sj["imported"].start) / sj["imported"].dt)),
                   "solver": sj["imported"].solver, "spreadjax_import_s": sj["import_s"],
                   "spreadjax_first_run_s": sj["first_run_s"], "spreadjax_warm_run_s": sj["warm_run_s"],
                   "pysd_load_s": ps["load_s"], "pysd_run_s": ps["run_s"],
                   "ratio_load": ps["load_s"] / (sj["import_s"] + sj["first_run_s"]),
                   "ratio_run": ps["run_s"] / sj["warm_run_s"],
                   "ratio_load_and_run": (ps["load_s"] + ps["run_s"]) / (sj["import_s"] + sj["first_run_s"]),
                   "max_rel_diff": diff}
            rows.append(row)
            if param is not None:
                b = batch(sj, ps, param, columns, sample)
                b["model"] = rel
                if b["max_rel_diff"] > AGREE_RTOL:
                    print(f"{rel}: batch results differ by {b['max_rel_diff']:.2g}; not timing a different answer")
                    return 1
                batches.append(b)

    print(f"{'model':52s} {'steps':>6s} | {'sj import':>9s} {'1st run':>8s} {'warm':>9s} | "
          f"{'pysd load':>9s} {'run':>8s} | {'load+run x':>10s} {'run x':>7s}")
    for r in rows:
        print(f"{r['model']:52s} {r['steps']:6d} | {r['spreadjax_import_s']:9.3f} {r['spreadjax_first_run_s']:8.3f} "
              f"{r['spreadjax_warm_run_s']:9.6f} | {r['pysd_load_s']:9.3f} {r['pysd_run_s']:8.4f} | "
              f"{r['ratio_load_and_run']:10.2f} {r['ratio_run']:7.0f}")
    print()
    print(f"batch of {MEMBERS} parameter sets (PySD: {sample} timed, scaled)")
    print(f"{'model':52s} {'param':20s} | {'sj 1st':>8s} {'sj warm':>8s} | {'pysd loop':>9s} | {'x warm':>7s} {'x 1st':>6s}")
    for b in batches:
        print(f"{b['model']:52s} {b['parameter']:20s} | {b['spreadjax_first_s']:8.3f} {b['spreadjax_warm_s']:8.4f} | "
              f"{b['pysd_loop_s_scaled']:9.1f} | {b['ratio_pysd_over_spreadjax_warm']:7.0f} "
              f"{b['ratio_pysd_over_spreadjax_first']:6.0f}")
    write_json(args.out, {
        "benchmark": "import", "quick": args.quick, "machine": machine_info(), "pysd": pysd.__version__,
        "dtype": "float64", "repeats": REPEATS, "models": rows, "batch": batches,
        "notes": "ratios are PySD seconds over spreadjax seconds; load ratio compares PySD's translate+load "
                 "with spreadjax's import + first (compiling) run",
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
