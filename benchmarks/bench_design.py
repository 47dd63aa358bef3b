"""Programme design: the gradient search (scipy L-BFGS-B on the compiled model's gradient, the
default; optax Adam, the former default, alongside) against scipy's differential evolution, on the
same exact objective and the same futures, in the same process.

Problems (the first two are issue 16's synthetic known-optimum case, the headline):

* ``bass``: one district of 900, Bass p = 0.6, q = 0.5 per year, horizon 3 years; a constant push
  u in [0, 1] until w in [0.25, 3], budget u w <= 1 programme-year (2 variables). The optimum
  (u = 1, w = 1) and its objective come from a fine 101 x 221 grid (tests/design/test_bass_optimum.py
  checks the closed form). Target: within 1e-4 of the grid's best.
* ``bass_pieces``: the same with the push set every quarter (12 periods) and the withdrawal date, 13
  variables; its optimum is the same front-loaded bang-bang programme (target: the ``bass`` grid's
  best minus 1e-4; the test checks the schedule).
* ``allocation``: a fixed budget (20 programme-years) across 30 districts of 7 to 900
  organisations, each with its own push rate, no imitation (q = 0), horizon 3 years, Euler steps;
  one constant intensity per district (30 variables). Its optimum is closed-form water-filling
  (tests/design/test_allocation_optimum.py derives and checks it). Target: within 1e-4 of it.
  DE may run up to the config's 3,000 generations (``--de-generations`` overrides).
* ``medical_innovation``: the bundled example's ``[design]`` (4 towns, 4 periods, withdrawal date:
  17 variables; 100 posterior draws), from ``--posterior FILE`` or a quick 1-chain fit made here.
  No closed form: the target is L-BFGS-B's own objective minus 1e-4.

For each: every method's objective, evaluations (objective+gradient calls for L-BFGS-B, line-search
trials included; steps x starts for Adam; population scores for DE), wall time with compilation
("cold": L-BFGS-B's one value+gradient compile inside its run; DE's compile timed apart and added)
and once compiled ("warm"), and the time each needs to get within 1e-4 of the target (DE stops
there, or after ``--de-generations`` generations). Ratios DE / L-BFGS-B. Not a test: timings live here.

    python benchmarks/bench_design.py [--posterior FILE] [--de-generations N] [--problems bass bass_pieces allocation] [--no-adam]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine_info, write_json  # noqa: E402

TOL = 1e-4


def _bass_config():
    from spreadjax._config import parse_config
    from tests.design.test_bass_optimum import BASS

    return parse_config(tomllib.loads(BASS), "bass_design.toml")


def _bass_pieces_config():
    """The Bass problem with the push set every quarter (12 periods) and the withdrawal date: 13 variables.
    Its optimum is the 2-variable one (full push from the start until the budget is spent)."""
    from spreadjax._config import parse_config
    from tests.design.test_bass_optimum import BASS

    knots = ", ".join(f"{0.25 * k:g}" for k in range(12))
    text = BASS.replace("knots = [0.0]", f"knots = [{knots}]").replace("grid = 5", "grid = 2")
    return parse_config(tomllib.loads(text), "bass_pieces.toml")


def _allocation_config():
    """30 districts, push only, a budget to allocate; returns the config and its closed-form optimum."""
    from tests.design.test_allocation_optimum import (BUDGET, POPULATION, PUSH, STEPS_PER_YEAR, T, allocation_config,
                                                      water_filling)

    return allocation_config(), water_filling(POPULATION, PUSH, T, 1 / STEPS_PER_YEAR, BUDGET)[1]


def _bundled_config(posterior: str | None, folder: Path):
    from typer.testing import CliRunner

    from spreadjax._cli import app
    from spreadjax._config import load_config
    from tests.test_run_pipeline import BUNDLED, to_toml

    raw = tomllib.loads(BUNDLED.read_text())
    raw.pop("compare")
    if posterior is None:
        raw["calibration"].update(chains=1, warmup=300, samples=200)
    path = folder / "medical_innovation.toml"
    path.write_text(to_toml(raw))
    if posterior is None:
        res = CliRunner().invoke(app, ["calibrate", str(path), "--out", str(folder / "fit"), "--no-plots"])
        assert res.exit_code == 0, res.output
        posterior = str(folder / "fit" / "posterior.nc")
    return load_config(path), posterior


def _gradient(p, fut, d, starts, method: str, target: float | None, forward: bool | None = None) -> dict:
    """One cold and one warm run of a gradient search; for L-BFGS-B also the time (from the call's
    start, compilation included when cold) until its surrogate first reaches ``target``."""
    from spreadjax.design._optimise import _search_fn, _value_grad_fn, gradient_search, quasi_newton_search

    out = {}
    _search_fn.cache_clear()
    _value_grad_fn.cache_clear()
    for kind in ("cold", "warm"):
        if method == "adam":
            s, _ = gradient_search(p, fut, d.budget, starts, d.steps, d.learning_rate)
            out[kind] = {"seconds": s.seconds, "to_target": None}
            continue
        began, hit = time.perf_counter(), []

        def on_call(value: float) -> None:
            if not hit and target is not None and value >= target:
                hit.append(time.perf_counter() - began)

        s, _ = quasi_newton_search(p, fut, d.budget, starts, d.steps, forward=forward, on_call=on_call)
        out[kind] = {"seconds": s.seconds, "to_target": hit[0] if hit else None}
    return {"objective": s.score, "evaluations": s.evaluations, "seconds_cold": out["cold"]["seconds"],
            "seconds_warm": out["warm"]["seconds"], "to_target_cold": out["cold"]["to_target"],
            "to_target_warm": out["warm"]["to_target"], "x": [round(float(v), 4) for v in s.x]}


def run(cfg, posterior: str | None, de_generations: int, optimum: float | None, adam: bool) -> dict:
    from spreadjax.design._optimise import differential_evolution, evaluate
    from spreadjax.design._problem import make_problem
    from spreadjax.design._run import _starts, baseline_x, futures_for

    d = cfg.design
    sim, fut = futures_for(cfg, posterior)
    p = make_problem(sim, sim.model.model.population, cfg.n_sites, d)
    starts = _starts(p, baseline_x(p, d), d.starts, d.seed)
    if optimum is None and p.n_vars == 2:  # a fine grid for the 2-variable problem
        u, w = np.linspace(0, 1, 101), np.linspace(0, 1, 221)
        scores = evaluate(p, fut, d.budget, np.array([[a, b] for a in u for b in w]), 4096)
        optimum = float(scores.max())
    target = None if optimum is None else optimum - TOL
    lbfgs = _gradient(p, fut, d, starts, "lbfgs", target)
    if target is None:  # no reference: the gradient search's own objective
        target = lbfgs["objective"] - TOL
    results = {"variables": p.n_vars, "futures": int(next(iter(fut.draws.values())).shape[0]),
               "reference_optimum": optimum, "target": target, "starts": len(starts), "lbfgs": lbfgs}
    for g in (lbfgs,):
        g["gap"] = (optimum - g["objective"]) if optimum is not None else None
        g["reached_target"] = bool(g["objective"] >= target)
    if adam:
        results["adam"] = _gradient(p, fut, d, starts, "adam", None)
        results["adam"].update(steps=d.steps, evaluations=d.steps * len(starts),
                               gap=(optimum - results["adam"]["objective"]) if optimum is not None else None)
    compiling = time.perf_counter()  # DE's one compiled function (a population's scores), compiled apart
    evaluate(p, fut, d.budget, np.full((1, p.n_vars), 0.5), d.de_popsize * p.n_vars)
    de_compile = time.perf_counter() - compiling
    history: list[tuple[float, float]] = []
    began = time.perf_counter()

    def callback(best: float) -> bool:
        history.append((time.perf_counter() - began, best))
        return best >= target

    evo = differential_evolution(p, fut, d.budget, de_generations, d.de_popsize, d.seed, callback=callback)
    reached = evo.score >= target
    hit = next((t for t, b in history if b >= target), None)
    results["evolution"] = {
        "objective": evo.score, "reached_target": bool(reached), "seconds_warm": evo.seconds,
        "seconds_cold": evo.seconds + de_compile, "compile_seconds": de_compile, "evaluations": evo.evaluations,
        "generations": len(history), "popsize": d.de_popsize,
        "to_target_warm": hit, "to_target_cold": None if hit is None else hit + de_compile,
        "gap": (optimum - evo.score) if optimum is not None else None,
        "history": history[:: max(1, len(history) // 50)] + history[-1:]}  # (seconds, best): ~50 generations
    e = results["evolution"]

    def ratio(a, b):
        return None if a is None or b is None else a / b

    results["ratio"] = {  # DE / L-BFGS-B; > 1: the gradient search is faster
        "cold": ratio(e["seconds_cold"], lbfgs["seconds_cold"]), "warm": ratio(e["seconds_warm"], lbfgs["seconds_warm"]),
        "to_target_cold": ratio(e["to_target_cold"], lbfgs["to_target_cold"]),
        "to_target_warm": ratio(e["to_target_warm"], lbfgs["to_target_warm"]),
        "evaluations": ratio(e["evaluations"], lbfgs["evaluations"])}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--de-generations", type=int, default=None,
                    help="DE's generation cap (default 300; allocation: its config's 3,000)")
    ap.add_argument("--problems", nargs="+", default=["bass", "bass_pieces", "allocation", "medical_innovation"],
                    choices=["bass", "bass_pieces", "allocation", "medical_innovation"])
    ap.add_argument("--no-adam", action="store_true", help="skip the optax Adam search (the old default)")
    args = ap.parse_args()
    from spreadjax._jobs import enable_dtype

    enable_dtype("float64")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            optimum, generations = None, args.de_generations or 300
            if name == "bass":
                cfg, post = _bass_config(), None
            elif name == "bass_pieces":
                cfg, post = _bass_pieces_config(), None
                optimum = (results.get("bass") or run(_bass_config(), None, 1, None, False))["reference_optimum"]
            elif name == "allocation":
                (cfg, optimum), post = _allocation_config(), None
                generations = args.de_generations or cfg.design.de_generations
            else:
                cfg, post = _bundled_config(args.posterior, Path(tmp))
            results[name] = run(cfg, post, generations, optimum, not args.no_adam)
            results[name]["load_average"] = machine_info().get("load_average")  # rows kept from other runs keep theirs
    def sec(v):
        return "-" if v is None else f"{v:.2f}"

    print(f"{'problem':12s} {'vars':>4s} {'method':8s} {'objective':>9s} {'gap':>9s} {'evals':>6s} {'cold s':>7s} "
          f"{'warm s':>7s} {'to 1e-4 cold':>12s} {'to 1e-4 warm':>12s}")
    for name, r in results.items():
        for key, label in (("lbfgs", "L-BFGS-B"), ("adam", "Adam"), ("evolution", "DE")):
            if key not in r:
                continue
            g = r[key]
            gap = "-" if g.get("gap") is None else f"{g['gap']:.1e}"
            print(f"{name:12s} {r['variables']:4d} {label:8s} {g['objective']:9.6f} {gap:>9s} {g['evaluations']:6d} "
                  f"{g['seconds_cold']:7.2f} {g['seconds_warm']:7.2f} {sec(g.get('to_target_cold')):>12s} "
                  f"{sec(g.get('to_target_warm')):>12s}")
        q = r["ratio"]
        print(f"{name:12s} ratio DE / L-BFGS-B: cold {sec(q['cold'])}, warm {sec(q['warm'])}, to 1e-4 cold "
              f"{sec(q['to_target_cold'])}, warm {sec(q['to_target_warm'])}, evaluations {sec(q['evaluations'])}")
    out = ROOT / "benchmarks" / "results" / "design_cpu.json"
    if out.exists():  # keep the problems not run this time
        import json

        before = json.loads(out.read_text())
        kept = before.get("problems", {})
        for row in kept.values():  # the load they were measured under (the machine block is this run's)
            row.setdefault("load_average", before.get("machine", {}).get("load_average"))
        results = {**kept, **results}
    write_json(out, {"machine": machine_info(), "tolerance": TOL, "problems": results,
                     "note": "Same process, same exact objective and futures. target = reference optimum - tolerance "
                             "(no reference: L-BFGS-B's own objective - tolerance). DE stops when its best reaches the "
                             "target (or after --de-generations). cold: with compilation (DE's compile timed apart and "
                             "added; L-BFGS-B's one value+gradient compile inside its run); warm: compiled. to_target: "
                             "seconds until the best (DE) or the surrogate at a call (L-BFGS-B) is within the tolerance. "
                             "ratio = DE / L-BFGS-B (> 1: the gradient search is faster). adam: the former default."})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
