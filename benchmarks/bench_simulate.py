"""Ensemble throughput of the flagship four-stage model: spreadjax vs numpy vs diffrax (CPU).

Workload: ``four_stage_model()`` (default structure, 1 site, no network), classic RK4 with
dt = 1/52 yr over 10 yr (520 steps), saving only ``adopted`` (organisations) at yearly output
times t = 0, 1, ..., 10 yr, float32. Each member draws p, q, decision_rate, implementation_time
and discontinuation_rate as ``base * exp(0.3 z)``, z ~ N(0, 1) (numpy ``default_rng(0)``, one
row of z per parameter in that order, so member i's draws do not depend on the ensemble size).

All three implementations evaluate the same vector field, the compiled model's ``cm.rhs``:

* ``spreadjax``: ``jax.jit(Simulation.batch)`` (members on the state's trailing axis);
* ``numpy``: a Python loop over the 520 RK4 steps, vectorised over members (the site axis);
* ``diffrax``: ``diffeqsolve`` with a classic RK4 tableau (diffrax ships no classic RK4 class),
  ``ConstantStepSize`` and ``SaveAt(ts=yearly)``, under ``jax.jit(jax.vmap(...))``.

Throughput is member-steps per second (members x 520 / wall seconds), best of 3 timed calls after
a warm-up call (compilation). Not a test: timing targets live here, never in ``tests/``.

    python benchmarks/bench_simulate.py [--quick] [--members N [N ...]]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from spreadjax.core import RK4, Simulation, compile_model
from spreadjax.models import four_stage_model

from _common import SLOW_CALL, write_json  # noqa: E402 (benchmarks/ is on sys.path as the script's folder)

DT = 1.0 / 52.0  # years per step
YEARS = 10  # horizon, years
STEPS = 52 * YEARS  # integration steps
TS = tuple(float(t) for t in range(YEARS + 1))  # yearly output times, years
DTYPE = np.float32
DRAWN = ("p", "q", "decision_rate", "implementation_time", "discontinuation_rate")
SIGMA = 0.3  # log-scale spread of the drawn parameters
SEED = 0
REPEATS = 3
CHECK_MEMBERS = 100
CHECK_TOL = 1e-3  # organisations; float32 round-off over 520 steps is ~1e-5 at values <= 100
FULL_SIZES = (1_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
RESULTS = Path(__file__).parent / "results" / "simulate_cpu.json"


# -- parameters ---------------------------------------------------------------------------------
def draw_parameters(cm: Any, members: int) -> dict[str, np.ndarray]:
    """Per-member values ``base * exp(0.3 z)`` of the drawn parameters, each ``(members,)``,
    in the parameters' own units (per year, or years for implementation_time)."""
    base = {p.name: p.default for p in cm.model.parameters}
    z = np.random.default_rng(SEED).standard_normal((len(DRAWN), members))
    return {name: (base[name] * np.exp(SIGMA * z[i])).astype(DTYPE) for i, name in enumerate(DRAWN)}


def ensemble_params(cm: Any, drawn: dict[str, np.ndarray]) -> dict[str, Any]:
    """spreadjax parameter PyTree for ``vmap`` over axis 0: every leaf gets a leading member axis
    (drawn parameters ``(members, 1)``, the rest broadcast from ``cm.params(1, float32)``)."""
    members = len(next(iter(drawn.values())))
    base = cm.params(1, jnp.float32)
    params = jax.tree.map(lambda a: jnp.broadcast_to(a, (members,) + a.shape), base)
    params.update({name: jnp.asarray(v)[:, None] for name, v in drawn.items()})
    return params


def numpy_params(cm: Any, drawn: dict[str, np.ndarray]) -> dict[str, Any]:
    """numpy parameters with members on the site axis: each ``(members,)``, the programme schedule
    ``{"times": (1,), "values": (1, members)}``."""
    members = len(next(iter(drawn.values())))
    return jax.tree.map(np.asarray, cm.params(members, jnp.float32, **drawn))


# -- implementations: each maps parameters -> adopted (organisations), (members, len(TS)) ---------
def make_spreadjax(cm: Any) -> Callable[[Any], Any]:
    """spreadjax ensemble runner: ``jit(Simulation.batch)`` (members on the state's trailing axis)."""
    sim = Simulation(cm, TS, DT, ("adopted",), RK4(), t0=0.0)
    run = jax.jit(lambda params: sim.batch(params)["adopted"][:, :, 0])
    return run


def make_numpy(cm: Any) -> Callable[[Any], np.ndarray]:
    """numpy ensemble runner: Python loop over RK4 steps, members on the site axis."""
    row = cm.state_names.index("adopted")
    per_output = round(1.0 / DT)

    def run(params: dict[str, Any]) -> np.ndarray:
        def f(t, y):
            return cm.rhs(t, y, params, None, xp=np)

        y = cm.init(params, 0.0, xp=np)
        dt = DTYPE(DT)
        saved = [y[row]]
        for i in range(STEPS):
            t = DTYPE(i) * dt
            k1 = f(t, y)
            k2 = f(t + dt / 2, y + (dt / 2) * k1)
            k3 = f(t + dt / 2, y + (dt / 2) * k2)
            k4 = f(t + dt, y + dt * k3)
            y = y + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
            if (i + 1) % per_output == 0:
                saved.append(y[row])
        return np.stack(saved, axis=1)

    return run


class ClassicRK4(diffrax.AbstractERK):
    """Classic fourth-order Runge-Kutta for diffrax (fixed steps only: no error estimate)."""

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls: ClassVar[Callable[..., Any]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms: Any) -> int:
        return 4


def make_diffrax(cm: Any) -> Callable[[Any], Any]:
    """diffrax ensemble runner on ``cm.rhs``: fixed RK4 steps of ``DT`` years, yearly saves.
    Returns ``(adopted, num_steps)``; the step count is checked once, then dropped for timing."""
    row = cm.state_names.index("adopted")
    term = diffrax.ODETerm(lambda t, y, args: cm.rhs(t, y, args, None))

    def one(params: dict[str, Any]) -> Any:
        sol = diffrax.diffeqsolve(
            term, ClassicRK4(), t0=0.0, t1=float(YEARS), dt0=DT, y0=cm.init(params, 0.0),
            args=params, saveat=diffrax.SaveAt(ts=jnp.asarray(TS, jnp.float32)),
            stepsize_controller=diffrax.ConstantStepSize(), max_steps=STEPS + 16,
        )
        return sol.ys[:, row, 0], sol.stats["num_steps"]

    return jax.jit(jax.vmap(one))


# -- measurement --------------------------------------------------------------------------------
def block(x: Any) -> Any:
    """Wait for asynchronous JAX results (no-op for numpy)."""
    return jax.block_until_ready(x)


def time_best(fn: Callable[[Any], Any], arg: Any, repeats: int = REPEATS) -> tuple[float, float]:
    """(first-call seconds including compilation, best of ``repeats`` timed calls in seconds; one
    timed call after a first call slower than ``SLOW_CALL``)."""
    start = time.perf_counter()
    block(fn(arg))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(1 if first > SLOW_CALL else repeats):
        start = time.perf_counter()
        block(fn(arg))
        best = min(best, time.perf_counter() - start)
    return first, best


def check_agreement(cm: Any, runners: dict[str, Callable]) -> dict[str, Any]:
    """Final adopted value (organisations at 10 yr) of the first ``CHECK_MEMBERS`` members from
    all three implementations; exits with a message if any pair differs by ``CHECK_TOL`` or more."""
    drawn = draw_parameters(cm, CHECK_MEMBERS)
    final = {
        "spreadjax": np.asarray(runners["spreadjax"](ensemble_params(cm, drawn)))[:, -1],
        "numpy": runners["numpy"](numpy_params(cm, drawn))[:, -1],
    }
    ys, num_steps = runners["diffrax"](ensemble_params(cm, drawn))
    final["diffrax"] = np.asarray(ys)[:, -1]
    pairs = [("spreadjax", "numpy"), ("spreadjax", "diffrax"), ("numpy", "diffrax")]
    diffs = {f"{a}-{b}": float(np.max(np.abs(final[a] - final[b]))) for a, b in pairs}
    steps = sorted({int(s) for s in np.asarray(num_steps)})
    passed = all(d < CHECK_TOL for d in diffs.values()) and all(np.isfinite(v).all() for v in final.values())
    check = {
        "members": CHECK_MEMBERS, "quantity": "adopted at t=10 yr (organisations)",
        "tolerance": CHECK_TOL, "max_abs_diff": diffs, "passed": passed,
        "final_adopted_range": [float(final["numpy"].min()), float(final["numpy"].max())],
        "diffrax_num_steps": steps,
    }
    if not passed:
        sys.exit(f"bench_simulate: implementations disagree on final adopted "
                 f"(max abs diff {diffs}, tolerance {CHECK_TOL}); not timing.")
    return check


def bench_size(cm: Any, runners: dict[str, Callable], members: int) -> list[dict[str, Any]]:
    """Timing rows for one ensemble size; seconds are wall seconds per full ensemble run."""
    drawn = draw_parameters(cm, members)
    jax_p, np_p = ensemble_params(cm, drawn), numpy_params(cm, drawn)
    args = {"spreadjax": jax_p, "numpy": np_p, "diffrax": jax_p}
    rows = []
    for name, fn in runners.items():
        first, best = time_best(fn, args[name])
        rows.append({"implementation": name, "members": members, "seconds": best,
                     "first_call_seconds": first, "member_steps_per_s": members * STEPS / best})
        print(f"  {name:<10} {members:>8,} members: {best:.4f} s", file=sys.stderr, flush=True)
    ref = rows[0]["member_steps_per_s"]
    for row in rows:
        row["spreadjax_over_this"] = ref / row["member_steps_per_s"]
    return rows


# -- report -------------------------------------------------------------------------------------
def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table: implementation, members, seconds, member-steps/s, spreadjax speed-up."""
    head = f"{'implementation':<15}{'members':>10}{'seconds':>11}{'member-steps/s':>17}{'spreadjax / this':>18}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['implementation']:<15}{r['members']:>10,}{r['seconds']:>11.4f}"
                     f"{r['member_steps_per_s']:>17.3e}{r['spreadjax_over_this']:>17.2f}x")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], check: dict[str, Any]) -> dict[str, Any]:
    """The JSON record: machine, versions, workload, agreement check, rows and ratios."""
    ratios = {}
    for r in rows:
        if r["implementation"] != "spreadjax":
            ratios.setdefault(str(r["members"]), {})[f"spreadjax/{r['implementation']}"] = r["spreadjax_over_this"]
    return {
        "benchmark": "bench_simulate",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "jax_backend": jax.default_backend(),
                    "python": platform.python_version()},
        "versions": {"jax": jax.__version__, "numpy": np.__version__, "diffrax": diffrax.__version__},
        "model": "four_stage_model() default structure, 1 site, no network",
        "dtype": np.dtype(DTYPE).name,
        "solver": "classic RK4 (spreadjax RK4; numpy loop; diffrax custom AbstractERK tableau + ConstantStepSize)",
        "dt_years": DT, "steps": STEPS, "output_times_years": list(TS), "outputs": ["adopted"],
        "drawn_parameters": list(DRAWN), "draw": f"base * exp({SIGMA} z), z ~ N(0,1), numpy default_rng({SEED})",
        "throughput_unit": "member-steps per second (members x steps / best-of-3 wall seconds)",
        "repeats": REPEATS, "check": check, "rows": rows, "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} (a few seconds)")
    parser.add_argument("--members", type=int, nargs="+", help=f"ensemble sizes (default {FULL_SIZES})")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    sizes = args.members or (QUICK_SIZES if args.quick else FULL_SIZES)

    cm = compile_model(four_stage_model())
    runners = {"spreadjax": make_spreadjax(cm), "numpy": make_numpy(cm), "diffrax": make_diffrax(cm)}
    check = check_agreement(cm, runners)
    print(f"agreement on {CHECK_MEMBERS} members: max abs diff {check['max_abs_diff']}", file=sys.stderr)
    diffrax_run = runners["diffrax"]
    runners["diffrax"] = lambda p: diffrax_run(p)[0]
    rows = [row for m in sizes for row in bench_size(cm, runners, m)]
    print(format_table(rows))
    write_json(args.output, summary(rows, check))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
