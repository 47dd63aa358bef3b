"""NUTS calibration speed: effective samples per second, spreadjax (numpyro) vs PyMC (CPU).

Two fits to the Medical Innovation monthly adoption counts (four towns, 17 months), both with
the four-stage model in its Bass structure (``configs/medical_innovation.toml``: no awareness
stage, no implementation pipeline, recognition fixed at 1, no evidence, no discontinuation):

* ``bass``: p and q LogNormal (the config's loc and scale), one value shared by the four towns;
* ``medical_innovation``: the config as it stands, p and q partially pooled across towns
  (non-centred: ``theta_s = exp(log theta + tau z_s)``, ``tau ~ HalfNormal(0.5)``).

The likelihood is ``spreadjax.calibrate._observe``'s binomial: new adopters in a month ~
Binomial(observed not yet adopted, the model's share of its own not yet adopted who adopt).
The ODE is integrated with classic RK4, dt = 1/48 yr, saved at each month.

* ``spreadjax``: ``build_problem`` + ``run_nuts`` (numpyro NUTS) as ``spreadjax calibrate`` runs them:
  one JAX CPU device per chain (chains in parallel over the cores), XLA's persistent compilation
  cache (empty in the cold process), gradients by forward-mode sensitivities;
* ``pymc``: the same priors and likelihood in PyMC, the Bass ODE ``A' = (N - A)(p + q A / N)``
  stepped by RK4 inside ``pytensor.scan`` (one scan step per month, 4 RK4 steps unrolled),
  ``pm.sample`` with PyMC's own NUTS (chains in ``min(4, cpu_count)`` processes).

Both use 4 chains, the config's seed, ``target_accept`` and ``max_tree_depth``, and the same
warm-up and draws. Metric: minimum bulk ESS over the free parameters / wall seconds of the fit.
Each tool runs in a fresh subprocess that fits twice: the first call ("cold") includes building
the model and all compilation, the second ("warm") is the same call again in the same process.
Each tool gets an empty compile cache (PyMC's pytensor compiledir, spreadjax's XLA compilation
cache), so its cold call compiles everything; a third process re-runs the cold call with that
cache populated (``cold_cached`` in the JSON: a second ``spreadjax calibrate`` on the same config).

Before timing, the log densities of the two implementations are compared at fixed points; after,
the posterior means of p and q must agree within 2 Monte Carlo standard errors + 2%. Not a test:
timing targets live here, never in ``tests/``.

    python benchmarks/bench_calibrate.py [--quick] [--warmup N] [--samples N] [--tools ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_json  # noqa: E402 (benchmarks/ is on sys.path as the script's folder)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "medical_innovation.toml"
RESULTS = Path(__file__).parent / "results" / "calibrate_cpu.json"
CHAINS = 4
FULL = (500, 500)  # warm-up, draws per chain
QUICK = (150, 150)
MODELS = {
    "bass": "Bass structure; p, q LogNormal shared by the four towns (non-hierarchical)",
    "medical_innovation": "configs/medical_innovation.toml; p, q partially pooled (non-centred)",
}
TOOLS = ("spreadjax", "pymc")
FREE = {"bass": ("p", "q"), "medical_innovation": ("p_pop", "p_tau", "p_z", "q_pop", "q_tau", "q_z")}
COMPARED = ("p", "q")
CHECK_SE, CHECK_REL = 2.0, 0.02  # posterior means agree within 2 MCSE (of the difference) + 2%
LOGP_RTOL = 1e-9  # relative tolerance of the log-density check (float64)
LOGP_POINTS = 5


# -- the problems -------------------------------------------------------------------------------
def load_config(model: str) -> Any:
    """The config of ``model``: the flagship config, without the hierarchy for ``bass``."""
    from spreadjax import parse_config

    raw = tomllib.loads(CONFIG.read_text())
    if model == "bass":
        raw["priors"] = {name: {k: v for k, v in table.items() if k not in ("hierarchical", "group_scale")}
                         for name, table in raw["priors"].items()}
    return parse_config(raw, str(CONFIG))


def problem_spec(config: Any, problem: Any) -> dict[str, Any]:
    """Plain data for the PyMC model, after checking the problem is the Bass structure it assumes."""
    from spreadjax.calibrate._observe import EPS

    options = dict(config.model_options)
    base = {k: np.asarray(v) for k, v in problem.base_params.items() if not isinstance(v, dict)}
    want = {"recognition_baseline": 1.0, "discontinuation_rate": 0.0, "push_strength": 1.0, "reach": 1.0,
            "peer_influence": 1.0, "commitment": 1.0, "capacity": np.inf}
    bad = [k for k, v in want.items() if not np.all(base[k] == v)]
    if (config.model != "four_stage" or options.get("awareness_stage") is not False
            or options.get("implementation_order") != 0 or bad or problem.network is not None
            or problem.observation.kind != "binomial" or config.simulation.solver != "rk4"
            or not np.all(np.asarray(problem.base_params["programme"]["values"]) == 1.0)
            or sorted(p.name for p in problem.priors) != ["p", "q"]
            or any(p.dist != "LogNormal" for p in problem.priors)):
        sys.exit(f"bench_calibrate: {CONFIG} is no longer the Bass structure with LogNormal p, q and a binomial "
                 f"likelihood (options {options}, parameters off {bad}); the PyMC model would not match.")
    steps = np.asarray(problem.sim.save_steps)
    gaps = np.diff(steps)
    if steps[0] != 0 or not np.all(gaps == gaps[0]):
        sys.exit(f"bench_calibrate: output steps {steps.tolist()} are not t0 followed by a uniform grid")
    d = problem.data
    return {
        "sites": list(d.sites), "times": [float(t) for t in d.times],
        "population": np.asarray(d.population).tolist(), "new": np.asarray(d.new).tolist(),
        "cumulative": np.asarray(d.cumulative).tolist(), "initial": np.asarray(d.initial).tolist(),
        "initial_adopters": np.asarray(base["initial_adopters"]).tolist(), "dt": float(problem.sim.dt),
        "steps_per_output": int(gaps[0]), "n_outputs": int(len(gaps)), "eps": float(EPS),
        "priors": [{"name": p.name, **dict(p.args), "hierarchical": p.hierarchical,
                    "group_scale": p.group_scale} for p in problem.priors],
    }


def pymc_model(spec: dict[str, Any]) -> Any:
    """The PyMC model: same priors (non-centred hierarchy), RK4 Bass ODE in ``pytensor.scan``,
    ``_observe``'s binomial likelihood."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    N = np.asarray(spec["population"], dtype=float)
    new = np.asarray(spec["new"], dtype=float)
    cum = np.asarray(spec["cumulative"], dtype=float)
    prev_obs = np.concatenate([np.asarray(spec["initial"], dtype=float)[None], cum[:-1]])
    at_risk = np.round(N - prev_obs).astype(np.int64)
    eps, dt, k = spec["eps"], spec["dt"], spec["steps_per_output"]
    with pm.Model(coords={"site": spec["sites"], "time": spec["times"]}) as model:
        rate = {}
        for pr in spec["priors"]:
            name = pr["name"]
            if pr["hierarchical"]:
                pop = pm.LogNormal(f"{name}_pop", mu=pr["loc"], sigma=pr["scale"])
                tau = pm.HalfNormal(f"{name}_tau", sigma=pr["group_scale"])
                z = pm.Normal(f"{name}_z", 0.0, 1.0, dims="site")
                rate[name] = pm.Deterministic(name, pt.exp(pt.log(pop) + tau * z), dims="site")
            else:
                rate[name] = pm.LogNormal(name, mu=pr["loc"], sigma=pr["scale"])

        def month(a, p, q):  # k classic RK4 steps of the Bass ODE
            def f(a):
                return (N - a) * (p + q * a / N)

            for _ in range(k):
                k1 = f(a)
                k2 = f(a + (dt / 2) * k1)
                k3 = f(a + (dt / 2) * k2)
                k4 = f(a + dt * k3)
                a = a + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
            return a

        a0 = pt.as_tensor_variable(np.asarray(spec["initial_adopters"], dtype=float))
        path = pytensor.scan(month, outputs_info=[a0], non_sequences=[rate["p"], rate["q"]],
                             n_steps=spec["n_outputs"], return_updates=False)
        expected = pt.concatenate([a0[None], path], axis=0)
        pm.Deterministic("expected_adopters", expected[1:], dims=("time", "site"))
        prev, cur = expected[:-1], expected[1:]
        hazard = pt.clip((cur - prev) / pt.maximum(N - prev, eps), eps, 1 - eps)
        pm.Binomial("new_adopters", n=at_risk, p=hazard, observed=new, dims=("time", "site"))
    return model


def check_logp(problem: Any, spec: dict[str, Any], model: str) -> dict[str, Any]:
    """Log joint density (no Jacobian) of both implementations at fixed points; exits on mismatch."""
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    pm_model = pymc_model(spec)
    logp = pm_model.compile_logp(jacobian=False)
    import pytensor

    graph = pm_model.replace_rvs_by_values([pm_model["expected_adopters"]])[0]
    expected_fn = pytensor.function(pm_model.value_vars, graph, on_unused_input="ignore")
    rng = np.random.default_rng(0)
    n_sites = len(spec["sites"])
    rows = []
    for _ in range(LOGP_POINTS):
        values, point = {}, {}
        for name in ("p", "q"):
            if model == "bass":
                values[name] = float(np.exp(rng.normal(-0.3, 0.5)))
                point[f"{name}_log__"] = np.log(values[name])
            else:
                pop, tau, z = float(np.exp(rng.normal(-0.3, 0.5))), float(np.exp(rng.normal(-1.5, 0.5))), rng.normal(size=n_sites)
                values.update({f"{name}_pop": pop, f"{name}_tau": tau, f"{name}_z": z})
                point.update({f"{name}_pop_log__": np.log(pop), f"{name}_tau_log__": np.log(tau), f"{name}_z": z})
        lp_sj, trace = log_density(problem.model, (), {}, {k: jnp.asarray(v) for k, v in values.items()})
        lp_pm = float(logp(point))
        traj_pm = np.asarray(expected_fn(*[point[v.name] for v in pm_model.value_vars]))
        traj_sj = np.asarray(trace["expected_adopters"]["value"])
        rows.append({"logp_spreadjax": float(lp_sj), "logp_pymc": lp_pm,
                     "max_abs_diff_expected_adopters": float(np.max(np.abs(traj_pm - traj_sj)))})
    diff = max(abs(r["logp_spreadjax"] - r["logp_pymc"]) / max(1.0, abs(r["logp_spreadjax"])) for r in rows)
    traj = max(r["max_abs_diff_expected_adopters"] for r in rows)
    check = {"points": rows, "max_rel_diff_logp": diff, "max_abs_diff_expected_adopters": traj,
             "tolerance_rel": LOGP_RTOL, "passed": bool(diff < LOGP_RTOL and traj < 1e-8)}
    if not check["passed"]:
        sys.exit(f"bench_calibrate: {model}: spreadjax and PyMC log densities differ (max rel {diff:.3g}, "
                 f"trajectories {traj:.3g}); not timing.")
    return check


# -- workers (fresh subprocesses) -----------------------------------------------------------------
def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children (PyMC's samplers)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def worker_spreadjax(model: str, warmup: int, samples: int, calls: int) -> tuple[dict, dict]:
    started = time.perf_counter()
    import jax
    import jax.monitoring

    from spreadjax._jobs import cpu_devices_for_chains
    from spreadjax.calibrate._infer import run_nuts
    from spreadjax.calibrate._run import build_problem

    # As `spreadjax calibrate` runs: one CPU device per chain (chains in parallel over the cores)
    # and XLA's persistent compilation cache (empty for the cold process; see run_worker).
    split = cpu_devices_for_chains(CHAINS)
    cache = os.environ.get("SPREADJAX_BENCH_CACHE")
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    imported = time.perf_counter() - started
    events: dict[str, float] = {}

    def listen(event: str, duration: float, **_: Any) -> None:
        if event.startswith("/jax/core/compile/"):
            events[event] = events.get(event, 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    out, draws = [], {}
    start, cpu = time.perf_counter(), cpu_seconds()
    config = load_config(model)
    problem = build_problem(config)
    s = config.calibration.settings
    for i in range(calls):
        before = dict(events)
        fit = run_nuts(problem, chains=CHAINS, warmup=warmup, samples=samples, seed=s.seed,
                       target_accept=s.target_accept, max_tree_depth=s.max_tree_depth)
        wall = time.perf_counter() - start
        out.append({"wall_s": wall, "cpu_s": cpu_seconds() - cpu,
                    "compile_events_s": {k: v - before.get(k, 0.0) for k, v in events.items()},
                    "divergences": int(np.sum(fit.stats["diverging"])),
                    "leapfrog_steps_sampling": int(np.sum(fit.stats["num_steps"]))})
        draws.update({f"{i}/{k}": np.asarray(fit.samples[k]) for k in FREE[model] + COMPARED})
        print(f"  spreadjax {model} call {i + 1}: {wall:.1f} s", file=sys.stderr, flush=True)
        start, cpu = time.perf_counter(), cpu_seconds()
    meta = {"calls": out, "import_s": imported, "chain_method": fit.settings["chain_method"],
            "local_device_count": jax.local_device_count(), "cpu_devices_for_chains": split,
            "compilation_cache": bool(cache), "settings": fit.settings}
    return meta, draws


def worker_pymc(model: str, warmup: int, samples: int, calls: int, spec: dict) -> tuple[dict, dict]:
    started = time.perf_counter()
    import pymc as pm
    import pytensor

    imported = time.perf_counter() - started
    settings = spec["settings"]
    cores = min(CHAINS, os.cpu_count() or 1)
    out, draws = [], {}
    start, cpu = time.perf_counter(), cpu_seconds()
    m = pymc_model(spec)
    for i in range(calls):
        idata = pm.sample(draws=samples, tune=warmup, chains=CHAINS, cores=cores, random_seed=settings["seed"],
                          nuts={"target_accept": settings["target_accept"],
                                "max_treedepth": settings["max_tree_depth"]},
                          progressbar=False, compute_convergence_checks=False, model=m)
        wall = time.perf_counter() - start
        st = idata.sample_stats
        out.append({"wall_s": wall, "cpu_s": cpu_seconds() - cpu, "divergences": int(st["diverging"].values.sum()),
                    "leapfrog_steps_sampling": int(st["n_steps"].values.sum())})
        draws.update({f"{i}/{k}": np.asarray(idata.posterior[k].values) for k in FREE[model] + COMPARED})
        print(f"  pymc {model} call {i + 1}: {wall:.1f} s", file=sys.stderr, flush=True)
        start, cpu = time.perf_counter(), cpu_seconds()
    meta = {"calls": out, "import_s": imported, "cores": cores, "compiledir": str(pytensor.config.compiledir),
            "sampler": "pm.sample(nuts_sampler='pymc'), init='jitter+adapt_diag' (default)",
            "settings": {**settings, "cores": cores}}
    return meta, draws


def worker_main(args: argparse.Namespace) -> None:
    tool, model = args.worker
    if tool == "spreadjax":
        meta, draws = worker_spreadjax(model, args.warmup, args.samples, args.calls)
    else:
        spec = json.loads(Path(args.spec).read_text())
        meta, draws = worker_pymc(model, args.warmup, args.samples, args.calls, spec)
    np.savez(args.result + ".npz", **draws)
    Path(args.result + ".json").write_text(json.dumps(meta))


def run_worker(tool: str, model: str, warmup: int, samples: int, calls: int, tmp: Path, tag: str,
               spec_path: Path | None = None, env: dict | None = None) -> dict[str, Any]:
    """Run a worker subprocess; returns its meta with ``draws`` or ``{"error": ...}``."""
    result = tmp / f"{tool}_{model}_{tag}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, model, "--warmup", str(warmup),
           "--samples", str(samples), "--calls", str(calls), "--result", str(result)]
    if spec_path is not None:
        cmd += ["--spec", str(spec_path)]
    load_before = os.getloadavg()
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    sys.stderr.write("".join(line + "\n" for line in proc.stderr.splitlines() if line.startswith(f"  {tool} ")))
    if proc.returncode != 0:
        return {"error": f"{tool} worker exited with {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    meta = json.loads(Path(str(result) + ".json").read_text())
    with np.load(str(result) + ".npz") as z:
        meta["draws"] = {k: z[k] for k in z.files}
    meta["loadavg_1min_before_after"] = [load_before[0], os.getloadavg()[0]]
    return meta


# -- summaries ----------------------------------------------------------------------------------
def posterior_stats(draws: dict[str, np.ndarray], call: int, names: tuple[str, ...]) -> dict[str, Any]:
    """Per-element mean, sd, bulk ESS and MCSE (sd / sqrt(bulk ESS)) of ``names`` in ``call``."""
    from spreadjax.calibrate._diagnostics import ess_bulk, rhat

    out = {}
    for name in names:
        x = draws[f"{call}/{name}"]
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        ess = np.atleast_1d(ess_bulk(x))
        sd = flat.std(axis=0, ddof=1)
        out[name] = {"mean": flat.mean(axis=0).tolist(), "sd": sd.tolist(), "ess_bulk": ess.tolist(),
                     "mcse_mean": (sd / np.sqrt(ess)).tolist(), "rhat": np.atleast_1d(rhat(x)).tolist()}
    return out


def tool_row(model: str, tool: str, meta: dict[str, Any], cached: dict[str, Any] | None) -> dict[str, Any]:
    names = FREE[model] + tuple(c for c in COMPARED if c not in FREE[model])
    per_call = [posterior_stats(meta["draws"], i, names) for i in range(len(meta["calls"]))]
    min_ess = [min(min(per_call[i][n]["ess_bulk"]) for n in FREE[model]) for i in range(len(per_call))]
    cold, warm = meta["calls"][0]["wall_s"], meta["calls"][-1]["wall_s"]
    row = {"model": model, "tool": tool, "wall_s_cold": cold, "wall_s_warm": warm,
           "min_bulk_ess": min_ess[0], "min_bulk_ess_warm": min_ess[-1],
           "ess_per_s_cold": min_ess[0] / cold, "ess_per_s_warm": min_ess[-1] / warm,
           "ess_per_cpu_s_cold": min_ess[0] / meta["calls"][0]["cpu_s"],
           "ess_per_cpu_s_warm": min_ess[-1] / meta["calls"][-1]["cpu_s"],
           "max_rhat": max(max(per_call[0][n]["rhat"]) for n in FREE[model]),
           "draws_identical_across_calls": all(
               np.array_equal(meta["draws"][f"0/{n}"], meta["draws"][f"{len(per_call) - 1}/{n}"]) for n in names),
           "calls": meta["calls"], "posterior": per_call[0],
           **{k: meta[k] for k in meta if k not in ("calls", "draws")}}
    if tool == "spreadjax":
        xla = [c["compile_events_s"].get("/jax/core/compile/backend_compile_duration", 0.0) for c in meta["calls"]]
        row.update(xla_compile_s=xla, wall_s_warm_minus_xla_compile=warm - xla[-1],
                   ess_per_s_warm_minus_xla_compile=min_ess[-1] / (warm - xla[-1]))
    if cached is not None:
        if "error" in cached:
            row["cold_cached_error"] = cached["error"]
        else:
            c = cached["calls"][0]["wall_s"]
            ess = min(min(posterior_stats(cached["draws"], 0, FREE[model])[n]["ess_bulk"]) for n in FREE[model])
            row.update(wall_s_cold_cached=c, ess_per_s_cold_cached=ess / c,
                       cold_cached_loadavg=cached["loadavg_1min_before_after"])
    return row


def posterior_check(sj: dict[str, Any], pm_: dict[str, Any]) -> dict[str, Any]:
    """|mean_sj - mean_pm| <= 2 sqrt(mcse_sj^2 + mcse_pm^2) + 2% max(|means|), each element of p, q."""
    items, passed = [], True
    for name in COMPARED:
        a, b = sj["posterior"][name], pm_["posterior"][name]
        for i in range(len(a["mean"])):
            diff = abs(a["mean"][i] - b["mean"][i])
            tol = CHECK_SE * np.hypot(a["mcse_mean"][i], b["mcse_mean"][i]) + CHECK_REL * max(
                abs(a["mean"][i]), abs(b["mean"][i]))
            ok = bool(diff <= tol)
            passed &= ok
            label = name if len(a["mean"]) == 1 else f"{name}[{i}]"
            items.append({"parameter": label, "mean_spreadjax": a["mean"][i], "mean_pymc": b["mean"][i],
                          "abs_diff": diff, "tolerance": float(tol), "passed": ok})
    return {"rule": f"|mean_sj - mean_pymc| <= {CHECK_SE:g} * sqrt(mcse_sj^2 + mcse_pymc^2) + "
                    f"{CHECK_REL:g} * max(|means|); mcse = sd / sqrt(bulk ESS); cold-call draws",
            "items": items, "passed": passed}


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model':<20}{'tool':<11}{'cold s':>9}{'warm s':>9}{'min ESS':>9}{'ESS/s cold':>12}"
            f"{'ESS/s warm':>12}{'sj/this cold':>14}{'sj/this warm':>14}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = lambda k: f"{r[k]:>13.2f}x" if k in r else f"{'-':>14}"  # noqa: E731
        lines.append(f"{r['model']:<20}{r['tool']:<11}{r['wall_s_cold']:>9.1f}{r['wall_s_warm']:>9.1f}"
                     f"{r['min_bulk_ess']:>9.0f}{r['ess_per_s_cold']:>12.2f}{r['ess_per_s_warm']:>12.2f}"
                     f"{ratio('spreadjax_over_this_cold')}{ratio('spreadjax_over_this_warm')}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("spreadjax", "jax", "jaxlib", "numpyro", "numpy", "pymc", "pytensor", "arviz"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"warm-up/draws {QUICK} per chain instead of {FULL}")
    parser.add_argument("--warmup", type=int, help="warm-up iterations per chain")
    parser.add_argument("--samples", type=int, help="draws per chain")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    default = QUICK if args.quick else FULL
    args.warmup = args.warmup or default[0]
    args.samples = args.samples or default[1]
    if args.worker:
        return worker_main(args)

    from spreadjax.calibrate._run import build_problem

    pymc_error = None
    if "pymc" in args.tools:
        try:
            import pymc  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON
            pymc_error = f"import pymc failed: {type(exc).__name__}: {exc}"
            print(f"bench_calibrate: {pymc_error}; timing spreadjax only", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="bench_calibrate_"))
    rows, checks, settings = [], {}, {}
    for model in args.models:
        config = load_config(model)
        problem = build_problem(config)
        s = config.calibration.settings
        settings[model] = {"chains": CHAINS, "warmup": args.warmup, "samples": args.samples, "seed": s.seed,
                           "target_accept": s.target_accept, "max_tree_depth": s.max_tree_depth,
                           "dtype": s.dtype, "dt_years": problem.sim.dt, "solver": "classic RK4",
                           "priors": [{"name": p.name, "dist": p.dist, **dict(p.args), "hierarchical": p.hierarchical,
                                       **({"group_scale": p.group_scale} if p.hierarchical else {})}
                                      for p in problem.priors],
                           "free_parameters": list(FREE[model])}
        spec = problem_spec(config, problem)
        spec["settings"] = {k: settings[model][k] for k in ("seed", "target_accept", "max_tree_depth")}
        spec_path = tmp / f"{model}_spec.json"
        spec_path.write_text(json.dumps(spec))
        checks[model] = {}
        run_pymc = "pymc" in args.tools and pymc_error is None
        if run_pymc:
            checks[model]["logp"] = check_logp(problem, spec, model)
            print(f"{model}: log densities agree (max rel diff {checks[model]['logp']['max_rel_diff_logp']:.1e})",
                  file=sys.stderr)
        got = {}
        if "spreadjax" in args.tools:
            env = {"SPREADJAX_BENCH_CACHE": str(tmp / f"jax_{model}")}
            meta = run_worker("spreadjax", model, args.warmup, args.samples, 2, tmp, "main", env=env)
            if "error" in meta:
                sys.exit(f"bench_calibrate: {meta['error']}")
            cached = run_worker("spreadjax", model, args.warmup, args.samples, 1, tmp, "cached", env=env)
            got["spreadjax"] = tool_row(model, "spreadjax", meta, cached)
        if run_pymc:
            env = {"PYTENSOR_FLAGS": f"compiledir={tmp / f'pytensor_{model}'}"}
            meta = run_worker("pymc", model, args.warmup, args.samples, 2, tmp, "main", spec_path, env)
            if "error" in meta:
                pymc_error = meta["error"]
                print(f"bench_calibrate: {pymc_error}", file=sys.stderr)
            else:
                cached = run_worker("pymc", model, args.warmup, args.samples, 1, tmp, "cached", spec_path, env)
                got["pymc"] = tool_row(model, "pymc", meta, cached)
        if "spreadjax" in got:
            for row in got.values():
                for kind in ("cold", "warm"):
                    row[f"spreadjax_over_this_{kind}"] = got["spreadjax"][f"ess_per_s_{kind}"] / row[f"ess_per_s_{kind}"]
        if len(got) == 2:
            checks[model]["posterior"] = posterior_check(got["spreadjax"], got["pymc"])
        rows += got.values()

    table = format_table(rows)
    print(table)
    for model, c in checks.items():
        if "posterior" in c:
            worst = max(c["posterior"]["items"], key=lambda i: i["abs_diff"] / i["tolerance"])
            print(f"{model}: posterior means of p, q agree: {'PASS' if c['posterior']['passed'] else 'FAIL'} "
                  f"(worst {worst['parameter']}: |diff| {worst['abs_diff']:.4f} vs tolerance {worst['tolerance']:.4f})")
    for r in rows:
        print(f"{r['model']}: {r['tool']} ESS per CPU-second {r['ess_per_cpu_s_cold']:.2f} cold, "
              f"{r['ess_per_cpu_s_warm']:.2f} warm (CPU/wall {r['calls'][0]['cpu_s'] / r['wall_s_cold']:.2f}, "
              f"{r['calls'][-1]['cpu_s'] / r['wall_s_warm']:.2f})")
        if "xla_compile_s" in r:
            print(f"{r['model']}: spreadjax XLA compile {r['xla_compile_s'][0]:.1f} s (cold call), "
                  f"{r['xla_compile_s'][-1]:.1f} s (warm call); warm wall minus XLA compile "
                  f"{r['wall_s_warm_minus_xla_compile']:.1f} s ({r['ess_per_s_warm_minus_xla_compile']:.2f} ESS/s)")
        if "wall_s_cold_cached" in r:
            print(f"{r['model']}: {r['tool']} cold with a populated compile cache: {r['wall_s_cold_cached']:.1f} s "
                  f"({r['ess_per_s_cold_cached']:.2f} ESS/s)")
    if pymc_error:
        print(f"PyMC: {pymc_error}")
    write_json(args.output, {
        "benchmark": "bench_calibrate",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_at_end": list(os.getloadavg())},
        "versions": versions(),
        "data": "Medical Innovation monthly new adopters, 4 towns x 17 months (bundled)",
        "models": {m: MODELS[m] for m in args.models},
        "likelihood": "new adopters ~ Binomial(round(N - observed cumulative before the month), "
                      "clip((E_t - E_{t-1}) / max(N - E_{t-1}, eps), eps, 1 - eps)), eps = 1e-6",
        "ode": "Bass via four_stage(awareness_stage=False, implementation_order=0), classic RK4, "
               "dt = 1/48 yr, saved monthly; PyMC: pytensor.scan over months, 4 RK4 steps unrolled per month",
        "metric": "min bulk ESS over the free parameters / wall seconds of the fit (warm-up included)",
        "cold": "fresh process: model/problem build + first fit, all compilation included (PyMC with an "
                "empty pytensor compiledir, spreadjax with an empty XLA compilation cache; wall_s_cold_cached: "
                "new process, compile caches populated)",
        "spreadjax_setup": "as `spreadjax calibrate` runs it: one JAX CPU device per chain (chains in "
                           "parallel, numpyro chain_method='parallel'), XLA's persistent compilation cache, "
                           "gradients by forward-mode sensitivities",
        "warm": "second identical fit call in the same process (whatever compiled code the tool reuses); "
                "spreadjax rows also give the warm wall minus the XLA backend-compile time JAX reports "
                "(jax.monitoring /jax/core/compile/backend_compile_duration)",
        "cpu_s": "per call: user + system CPU seconds of the worker and its waited-for children; "
                 "cpu_s / wall_s well below the cores used means other load on the machine",
        "quick": args.quick, "settings": settings, "checks": checks, "rows": rows,
        "pymc_error": pymc_error,
    })
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
