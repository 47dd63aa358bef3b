"""Programme design: the gradient search (optax Adam through the compiled model) against scipy's
differential evolution, on the same exact objective and the same futures.

Two problems:

* ``bass``: one district of 900, Bass p = 0.6, q = 0.5 per year, horizon 3 years; a constant push
  u in [0, 1] until w in [0.25, 3], budget u w <= 1 programme-year. The optimum (u = 1, w = 1) and
  its objective come from a fine 101 x 221 grid (tests/design/test_bass_optimum.py checks the
  closed form). Target: within 1e-4 of the grid's best.
* ``bass_pieces``: the same with the push set every quarter (12 periods) and the withdrawal date, 13
  variables; its optimum is the same (target: the ``bass`` grid's best minus 1e-4).
* ``medical_innovation``: the bundled example's ``[design]`` (4 towns, 4 periods, withdrawal date:
  17 variables; 100 posterior draws), from ``--posterior FILE`` or a quick 1-chain fit made here.
  No closed form: the target is the gradient search's own objective minus 1e-4.

For each: the gradient search's wall time in a fresh process state (compilation included: "cold")
and again once compiled ("warm"); differential evolution's wall time until its best reaches the
target (its compile included; it stops there), or its best after ``--de-generations`` generations
when it never does, with its compile timed apart ("cold" adds it). Ratios: DE / gradient, cold and
warm. Not a test: timings live here.

    python benchmarks/bench_design.py [--posterior FILE] [--de-generations N] [--problems bass medical_innovation]
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


def run(cfg, posterior: str | None, de_generations: int, optimum: float | None) -> dict:
    import jax.numpy as jnp

    from spreadjax.design._optimise import _search_fn, differential_evolution, evaluate, gradient_search
    from spreadjax.design._problem import make_problem
    from spreadjax.design._run import _starts, baseline_x, futures_for

    d = cfg.design
    sim, fut = futures_for(cfg, posterior)
    p = make_problem(sim, sim.model.model.population, cfg.n_sites, d)
    starts = _starts(p, baseline_x(p, d), d.starts, d.seed)
    cold, _ = gradient_search(p, fut, d.budget, starts, d.steps, d.learning_rate)
    warm, _ = gradient_search(p, fut, d.budget, starts, d.steps, d.learning_rate)
    if optimum is None:
        if p.n_vars == 2:  # a fine grid for the 2-variable problem
            u, w = np.linspace(0, 1, 101), np.linspace(0, 1, 221)
            scores = evaluate(p, fut, d.budget, np.array([[a, b] for a in u for b in w]), 4096)
            optimum = float(scores.max())
    target = (optimum if optimum is not None else cold.score) - TOL
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
    _search_fn.cache_clear()
    return {
        "variables": p.n_vars, "futures": int(next(iter(fut.draws.values())).shape[0]),
        "reference_optimum": optimum, "target": target,
        "gradient": {"objective": cold.score, "gap": (optimum - cold.score) if optimum is not None else None,
                     "seconds_cold": cold.seconds, "seconds_warm": warm.seconds, "evaluations": cold.evaluations,
                     "steps": d.steps, "starts": d.starts},
        "evolution": {"objective": evo.score, "reached_target": bool(reached), "seconds_warm": evo.seconds,
                      "seconds_cold": evo.seconds + de_compile, "compile_seconds": de_compile,
                      "evaluations": evo.evaluations, "generations": len(history), "popsize": d.de_popsize,
                      "history": history},
        "ratio_cold": (evo.seconds + de_compile) / cold.seconds, "ratio_warm": evo.seconds / warm.seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--de-generations", type=int, default=300)
    ap.add_argument("--problems", nargs="+", default=["bass", "bass_pieces", "medical_innovation"])
    args = ap.parse_args()
    from spreadjax._jobs import enable_dtype

    enable_dtype("float64")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            optimum = None
            if name == "bass":
                cfg, post = _bass_config(), None
            elif name == "bass_pieces":
                cfg, post = _bass_pieces_config(), None
                optimum = (results.get("bass") or run(_bass_config(), None, 1, None))["reference_optimum"]
            else:
                cfg, post = _bundled_config(args.posterior, Path(tmp))
            results[name] = run(cfg, post, args.de_generations, optimum)
    print(f"{'problem':20s} {'vars':>4s} {'futures':>7s} {'Adam obj':>9s} {'cold s':>7s} {'warm s':>7s} "
          f"{'DE obj':>9s} {'cold s':>7s} {'warm s':>7s} {'DE evals':>8s} {'target?':>7s} {'ratio cold':>10s} "
          f"{'ratio warm':>10s}")
    for name, r in results.items():
        g, e = r["gradient"], r["evolution"]
        print(f"{name:20s} {r['variables']:4d} {r['futures']:7d} {g['objective']:9.5f} {g['seconds_cold']:7.1f} "
              f"{g['seconds_warm']:7.1f} {e['objective']:9.5f} {e['seconds_cold']:7.1f} {e['seconds_warm']:7.1f} "
              f"{e['evaluations']:8,d} {'yes' if e['reached_target'] else 'no':>7s} {r['ratio_cold']:10.2f} "
              f"{r['ratio_warm']:10.2f}")
    out = ROOT / "benchmarks" / "results" / "design_cpu.json"
    if out.exists():  # keep the problems not run this time
        import json

        results = {**json.loads(out.read_text()).get("problems", {}), **results}
    write_json(out, {"machine": machine_info(), "tolerance": TOL, "problems": results,
                     "note": "DE stops when its best reaches the target (or after --de-generations). cold: with "
                             "compilation (DE's compile timed apart and added); warm: compiled. ratio = DE / Adam."})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
