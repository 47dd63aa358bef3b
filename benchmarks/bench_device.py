"""Throughput of the S8 reference workload on JAX's default device (a GPU when one is there).

Rows, all RK4, dt = 1/52 year, 10 years (520 steps), members drawn as in ``_reference.py``:

* ``spreadjax trajectories``: ``Simulation.batch(..., member_axis=-1)``, A kept at every step on the
  device (521 x members values);
* ``spreadjax summaries``: the same run in blocks of ``--block`` members under ``lax.map``; each
  block's A trajectory is reduced on the device to (t_half, A at 10 years) per member, and only
  the quantiles (5/50/95%) of A at 10 years and the share reaching 0.5 leave the device;
* ``diffrax batched``: one ``diffeqsolve`` on the ensemble state (``_reference_jax``), trajectories.

Member-steps per second = members x 520 / best of ``--repeats`` timed calls after a compiled warm-up
call (compilation reported apart). The GPU target is 1e10 member-steps/s with summaries on the
device. float32 unless ``--dtype float64`` (which needs and sets ``jax_enable_x64``).

    python benchmarks/bench_device.py                       # 1e6 and 1e7 members
    python benchmarks/bench_device.py --members 100000      # a CPU-sized check
Writes ``benchmarks/results/device_<backend>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--block", type=int, default=2**20, help="members per block in the summaries run")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-diffrax", action="store_true")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from _common import machine_info, write_json
    from _reference import DRAWN, draw_parameters
    from _reference_jax import prepare_diffrax_batched, summarize_jax

    from spreadjax.core import RK4, Simulation, compile_model
    from spreadjax.models import s8_model

    dtype = np.dtype(args.dtype)
    cm = compile_model(s8_model())
    sim = Simulation(cm, tuple(np.arange(521) / 52), 1 / 52, ("A",), RK4(), t0=0.0)
    base = cm.params(1, dtype)
    names = DRAWN["S8"]
    axes = {n: (0 if n in names else None) for n in base}

    def trajectories(drawn):  # (steps + 1, member)
        params = {**base, **{n: v[:, None] for n, v in zip(names, drawn)}}
        return sim.batch(params, axes=axes, member_axis=-1)["A"][:, 0]

    def summaries(drawn, block):
        blocks = tuple(v.reshape(-1, block) for v in drawn)
        t_half, a_end = jax.lax.map(lambda b: jax.vmap(summarize_jax, in_axes=1)(trajectories(b)), blocks)
        a_end = a_end.ravel()
        return jnp.quantile(a_end, jnp.asarray([0.05, 0.5, 0.95], a_end.dtype)), jnp.mean(~jnp.isnan(t_half))

    def timed(fn, *a):
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(*a).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(compiled(*a))
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = jax.block_until_ready(compiled(*a))
            best = min(best, time.perf_counter() - start)
        return compile_s, best, out

    rows = []
    for m in (int(x) for x in args.members):
        drawn_np = draw_parameters("S8", m, dtype)
        drawn = tuple(jnp.asarray(drawn_np[n], dtype) for n in names)
        runs = [("spreadjax trajectories", trajectories, (drawn,))]
        block = min(args.block, m)
        if m % block == 0:
            runs.append(("spreadjax summaries", lambda d, b=block: summaries(d, b), (drawn,)))
        for name, fn, a in runs:
            try:
                compile_s, best, out = timed(fn, *a)
            except Exception as exc:  # e.g. out of device memory at 1e7 trajectories
                rows.append({"run": name, "members": m, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                continue
            row = {"run": name, "members": m, "seconds": best, "compile_seconds": compile_s,
                   "member_steps_per_s": m * 520 / best}
            if name == "spreadjax summaries":
                row["a_end_quantiles"] = [float(x) for x in out[0]]
                row["share_reaching_half"] = float(out[1])
            rows.append(row)
            del out
        if not args.no_diffrax:
            run = prepare_diffrax_batched("S8", "rk4", dtype)
            try:
                jax.block_until_ready(run(drawn_np))
                best = np.inf
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    jax.block_until_ready(run(drawn_np))
                    best = min(best, time.perf_counter() - start)
                rows.append({"run": "diffrax batched trajectories", "members": m, "seconds": best,
                             "member_steps_per_s": m * 520 / best})
            except Exception as exc:
                rows.append({"run": "diffrax batched trajectories", "members": m, "error": str(exc)[:300]})
    print(f"{'run':30s} {'members':>12s} {'seconds':>9s} {'compile s':>10s} {'member-steps/s':>15s}")
    for r in rows:
        if "error" in r:
            print(f"{r['run']:30s} {r['members']:>12,d}  failed: {r['error'][:80]}")
            continue
        print(f"{r['run']:30s} {r['members']:>12,d} {r['seconds']:>9.3f} {r.get('compile_seconds', float('nan')):>10.2f} "
              f"{r['member_steps_per_s']:>15.3e}")
    backend = jax.default_backend()
    out = args.output or HERE / "results" / f"device_{backend}.json"
    write_json(out, {"benchmark": "device", "machine": machine_info(), "dtype": args.dtype,
                     "workload": "S8 reference, RK4, dt=1/52, 10 years", "block": args.block, "rows": rows,
                     "target": "GPU: >= 1e10 member-steps/s with summaries on the device"})


if __name__ == "__main__":
    main()
