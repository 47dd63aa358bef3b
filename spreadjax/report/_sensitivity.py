"""Which lever matters most: local elasticities (autodiff) and variance-based (Sobol) indices.

Two complementary views, for the whole system (all sites together):

* :func:`lever_elasticities` — local sensitivities ``d log(metric) / d log(lever)`` from JAX
  autodiff, evaluated at each draw's parameter values (the config's values, or draws from an
  ensemble store or a posterior). A lever enters as ``param * exp(m)`` and the derivative is
  taken at ``m = 0``, so an elasticity of 0.8 means "1% more of the lever gives 0.8% more of the
  metric". Metrics: *extent* (adopted fraction at the horizon) and *pace* (time to reach
  ``threshold`` adopted, linear between output times and differentiated through the
  interpolation; negative elasticities mean sooner).
* :func:`sobol_first_order` / :func:`sobol_from_ensemble` — global first-order indices
  ``S_i = Var(E[Y | X_i]) / Var(Y)`` from a given sample (ensemble members, prior or posterior
  draws), estimated by SALib's given-data RBD-FAST (``SALib.analyze.rbd_fast``), with a
  bootstrap 90% interval.

:func:`write_sensitivity` writes both as ``sensitivity.json`` for the report.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError

#: Members (draw, replicate) the given-data Sobol estimator needs at least.
SOBOL_MIN_ROWS = 10

__all__ = ["lever_elasticities", "sobol_first_order", "sobol_from_ensemble", "write_sensitivity",
           "sensitivity_json"]

METRICS = ("extent", "pace")
_BATCH = 50  # draws per vmapped batch (bounds memory; every batch has this size, so one compile)


# ------------------------------------------------------------------------------ elasticities
def _default_levers(model: Any, params: Mapping[str, Any]) -> list[str]:
    names = list(model.levers()) + ["p", "q", "push", "pull"]  # push/pull: as imported models name them
    return [n for n in dict.fromkeys(names) if n in params and not isinstance(params[n], Mapping)]


#: The status of a lever that does not act in the configured model.
ABSENT = "not in this model"


def _lever_rows(model: Any, levers: Sequence[str], base: Mapping[str, Any], varied: set[str],
                target: str, network: bool) -> list[dict[str, Any]]:
    """One row per lever: the parameters the model uses only as their product merged
    (:func:`~spreadjax.core._influence.product_groups`), and whether the lever reaches ``target``
    given the config's fixed values and whether it has a ``network``
    (:func:`~spreadjax.core._influence.lever_influence`; drawn parameters in ``varied`` and
    values that differ between sites stay free)."""
    from ..core._influence import chain_owner, lever_influence, product_groups

    fixed = {}
    for name, value in base.items():
        if name in varied or isinstance(value, Mapping):
            continue
        a = np.asarray(value, dtype=np.float64).reshape(-1)
        if a.size and np.all(a == a[0]):
            fixed[name] = float(a[0])
    rows = []
    for group in product_groups(model, levers):
        # the group acts when any member does (they act together: only their product is read)
        infl = lever_influence(model, group, fixed, target, network)
        active = [g for g in group if infl[g].active]
        first = infl[group[0]]
        rows.append({"name": group[0], "parameters": list(group), "acts_on": chain_owner(model, group) or "",
                     "active": bool(active), "reason": "" if active else first.reason,
                     "switched_off_by": [] if active else list(first.switched_off_by)})
    return rows


def _crossing_time(frac: Any, t: Any, c: float) -> tuple[Any, Any]:
    """First time ``frac`` (T,) reaches ``c``, linear between output times (differentiable in
    ``frac`` through the interpolation); returns ``(time, reached)``. The time is a finite
    placeholder (the horizon) where never reached, so gradients stay finite."""
    import jax.numpy as jnp

    reached = frac >= c
    ever = jnp.any(reached)
    k = jnp.argmax(reached)
    k0 = jnp.maximum(k - 1, 0)
    f0, f1 = frac[k0], frac[k]
    t0, t1 = t[k0], t[k]
    interior = ever & (k > 0) & (f1 > f0)
    denom = jnp.where(interior, f1 - f0, 1.0)
    inside = t0 + (c - f0) * (t1 - t0) / denom
    time = jnp.where(interior, inside, jnp.where(ever, t[0] + 0.0 * f1, t[-1] + 0.0 * frac[-1]))
    return time, ever


#: key of ``base`` holding the populations (site,) a share is of (not a model parameter)
_SHARE_OF = "__share_of__"


def _member_metrics(sim: Any, pop_name: str | None, levers: Sequence[str], threshold: float,
                    adopted: tuple[tuple[str, ...], str] = (("adopted",), "count")):
    """``fn(m, draw_params, base, network) -> ((extent, pace), (extent, pace, reached))``; the adopted
    count is the sum of the outputs ``adopted[0]``, times ``base[_SHARE_OF]`` for a share
    (``adopted[1] == "fraction"``), over the population ``pop_name`` (or those populations)."""
    import jax.numpy as jnp

    t = jnp.asarray(sim.ts)
    names, scale = adopted

    def fn(m, vals, base, network):
        params = dict(base)
        share_of = params.pop(_SHARE_OF, None)
        params.update(vals)
        for i, name in enumerate(levers):
            params[name] = params[name] * jnp.exp(m[i])
        out = sim(params, network)
        count = sum(out[n] for n in names[1:]) + out[names[0]]  # (time, site)
        pop = params[pop_name] if pop_name is not None else share_of
        count = count * share_of[None] if scale == "fraction" else count
        frac = jnp.sum(count, axis=1) / jnp.sum(pop)
        extent = frac[-1]
        pace, reached = _crossing_time(frac, t.astype(frac.dtype), threshold)
        metrics = jnp.stack([extent, pace])
        return metrics, (metrics, reached)

    return fn


@functools.lru_cache(maxsize=16)
def _compiled(sim: Any, pop_name: str | None, levers: tuple[str, ...], threshold: float,
              adopted: tuple[tuple[str, ...], str] = (("adopted",), "count")) -> Any:
    """``jit(vmap(draw -> (jacobian (metric, lever), metrics, reached)))``, built once per
    structure (a later call with the same config and levers reuses the compiled code)."""
    import jax
    import jax.numpy as jnp

    jac = jax.jacfwd(_member_metrics(sim, pop_name, levers, threshold, adopted), has_aux=True)

    def per_draw(v, b, net):
        zero = jnp.zeros(len(levers), b[levers[0]].dtype)
        grads, (metrics, reached) = jac(zero, v, b, net)
        return grads, metrics, reached

    return jax.jit(jax.vmap(per_draw, in_axes=(0, None, None)))


def _check_draws(draws: Mapping[str, Any] | None, params: Mapping[str, Any], n_sites: int,
                 max_draws: int) -> tuple[dict[str, np.ndarray], int, int]:
    """Validated draws ``{name: (n, site)}`` (thinned to ``max_draws``), n used, n given."""
    if not draws:
        return {}, 1, 1
    vals: dict[str, np.ndarray] = {}
    n = None
    for name, value in draws.items():
        if name not in params or isinstance(params[name], Mapping):
            known = sorted(k for k, v in params.items() if not isinstance(v, Mapping))
            raise InputError(f"draws: {name!r} is not a parameter of the model; known: {', '.join(known)}")
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 1:
            a = np.repeat(a[:, None], n_sites, axis=1)
        if a.ndim != 2 or a.shape[1] != n_sites:
            raise InputError(f"draws: {name!r} has shape {np.shape(value)}; expected (draw, {n_sites}) or (draw,)")
        if n is not None and a.shape[0] != n:
            raise InputError(f"draws: {name!r} has {a.shape[0]} draws but others have {n}")
        n = a.shape[0]
        vals[name] = a
    if not n:
        raise InputError("draws: no draws given (zero rows)")
    if max_draws < 1:
        raise InputError(f"max_draws must be at least 1, got {max_draws}")
    if n > max_draws:  # evenly spaced, deterministic thinning
        idx = np.unique(np.round(np.linspace(0, n - 1, max_draws)).astype(np.int64))
        vals = {k: v[idx] for k, v in vals.items()}
        return vals, len(idx), n
    return vals, n, n


def lever_elasticities(
    config: Any,
    draws: Mapping[str, np.ndarray] | None = None,
    levers: Sequence[str] | None = None,
    threshold: float = 0.5,
    max_draws: int = 200,
) -> xr.Dataset:
    """Elasticities ``d log(metric) / d log(lever)`` of extent and pace, for all sites together.

    ``draws`` maps parameter names to ``(draw, site)`` (or ``(draw,)``) values substituted into
    the config's parameters, one draw at a time (None: the config's values only); more than
    ``max_draws`` draws are thinned evenly. ``levers`` default to the model's levers plus ``p``
    and ``q``.

    One row per lever: parameters the model reads only as their product (``push_strength * p``,
    ``peer_influence * q``) are one lever, named after its first parameter (``parameters`` lists
    them; ``acts_on`` names the auxiliary that is their product, e.g. ``push``); scaling any of
    them scales the product, so one derivative serves them all. A lever whose paths to the
    adopted stock are missing from the structure or cut by the config's fixed values (read from
    the equations: :mod:`spreadjax.core._influence`) has ``status`` "not in this model", its
    ``reason``, and NaN summaries; its per-draw derivative is still taken, as a cross-check, and
    must be exactly zero in every draw (``zero_over_draws``): a structurally inert lever with a
    non-zero derivative is kept active (the derivative wins) and named in the attribute
    ``check_failed``.

    Each lever is scaled as ``param * exp(m)`` (all sites together) and the
    derivatives at ``m = 0`` come from forward-mode autodiff (``jax.jacfwd``, the same derivative
    as ``jax.grad``, cheaper in memory for a handful of levers over long scans), vmapped over
    draws and jitted once. Stochastic configs are differentiated in their deterministic
    (mean-field) form.

    Returns a Dataset with coords ``metric`` (extent, pace) and ``lever`` (with ``parameters``,
    " * "-joined, ``acts_on``, ``status``, ``reason``, ``zero_over_draws`` per lever): ``mean``, ``q05``,
    ``q95`` (metric, lever) over draws; ``n_used`` (metric, lever) the draws averaged (pace:
    only draws that reach ``threshold``; non-finite elasticities, e.g. from a zero extent, are
    left out); per draw ``elasticity`` (draw, metric, lever), ``extent``, ``pace`` (NaN if never
    reached) and ``reached``. Attributes: ``threshold``, ``n_draws`` (used), ``n_draws_given``,
    ``pace_never`` (draws that never reach the threshold), ``horizon`` (years).
    """
    import jax
    import jax.numpy as jnp

    from .._jobs import build_simulation
    from ..core import Simulation

    if not (0.0 < float(threshold) < 1.0):
        raise InputError(f"threshold must be a fraction in (0, 1), got {threshold}")
    from ..ensemble._adopted import AdoptedSource, store_population

    sim, base, network = build_simulation(config)
    model = sim.model.model
    source = getattr(config.ensemble, "adopted", None) or AdoptedSource(population=model.population)
    stocks = {st.name for st in model.stocks} | {d.name for d in model.delays}
    target = next((o for o in source.outputs if o in stocks), None)
    pop_name = source.population if source.populations is None else None
    if (pop_name is None and source.scale == "count") or target is None \
            or any(o not in sim.model.outputs for o in source.outputs):
        raise InputError(f"model {model.name!r}: elasticities need an 'adopted' stock and a population parameter, "
                         "or [observation] cumulative naming a stock")
    sim = Simulation(sim.model, sim.ts, sim.dt, source.outputs, sim.solver, sim.t0, False)
    if source.scale == "fraction":
        base = {**base, _SHARE_OF: store_population(source, base, config.n_sites)}
    levers = list(_default_levers(model, base) if levers is None else levers)
    if not levers:
        raise InputError(f"model {model.name!r}: no levers to differentiate")
    for name in levers:
        if name not in base or isinstance(base[name], Mapping):
            known = sorted(k for k, v in base.items() if not isinstance(v, Mapping))
            raise InputError(f"lever {name!r} is not a parameter of the model; known: {', '.join(known)}")
    if len(set(levers)) != len(levers):
        raise InputError(f"levers must be distinct; got {levers}")
    vals, n, n_given = _check_draws(draws, base, config.n_sites, max_draws)
    rows = _lever_rows(model, levers, {k: v for k, v in base.items() if k != _SHARE_OF}, set(vals), target,
                       network is not None)
    levers = [r["name"] for r in rows]  # one derivative per lever (group)
    if not vals:  # the config's values: one draw (a lever as is gives vmap its batch axis)
        vals = {levers[0]: np.broadcast_to(np.asarray(base[levers[0]], np.float64), (config.n_sites,))[None]}
    dtype = jnp.asarray(base[levers[0]]).dtype

    batch = min(n, _BATCH)
    run = _compiled(sim, pop_name, tuple(levers), float(threshold), (source.outputs, source.scale))
    grads_l, metrics_l, reached_l = [], [], []
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        chunk = {k: v[start:stop] for k, v in vals.items()}
        pad = batch - (stop - start)
        if pad:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in chunk.items()}
        chunk_j = {k: jnp.asarray(v, dtype) for k, v in chunk.items()}
        g, mtr, rch = jax.device_get(run(chunk_j, base, network))
        keep = stop - start
        grads_l.append(np.asarray(g, np.float64)[:keep])
        metrics_l.append(np.asarray(mtr, np.float64)[:keep])
        reached_l.append(np.asarray(rch, bool)[:keep])
    grads = np.concatenate(grads_l)  # (draw, metric, lever)
    metrics = np.concatenate(metrics_l)  # (draw, metric)
    reached = np.concatenate(reached_l)
    with np.errstate(divide="ignore", invalid="ignore"):
        elast = grads / metrics[:, :, None]
    elast[~reached, 1, :] = np.nan
    elast[~np.isfinite(elast)] = np.nan
    pace = np.where(reached, metrics[:, 1], np.nan)

    mean = np.full((2, len(levers)), np.nan)
    q05 = np.full_like(mean, np.nan)
    q95 = np.full_like(mean, np.nan)
    used = np.zeros((2, len(levers)), np.int64)
    for i in range(2):
        for j in range(len(levers)):
            x = elast[:, i, j]
            x = x[np.isfinite(x)]
            used[i, j] = x.size
            if x.size:
                mean[i, j] = x.mean()
                q05[i, j], q95[i, j] = np.quantile(x, [0.05, 0.95])
    zero = np.all(grads == 0.0, axis=(0, 1))  # exact zeros over draws and metrics, per lever
    failed = [r["name"] for r, z in zip(rows, zero, strict=True) if not r["active"] and not z]
    for r in rows:
        if r["name"] in failed:
            r["active"], r["reason"] = True, ""
    absent = np.array([not r["active"] for r in rows])
    for a in (mean, q05, q95):
        a[:, absent] = np.nan
    status = [("active" if r["active"] else ABSENT) for r in rows]
    pct = f"{100 * float(threshold):g}%"
    coords = {"metric": list(METRICS), "lever": list(levers), "draw": np.arange(n),
              "parameters": ("lever", [" * ".join(r["parameters"]) for r in rows]),
              "acts_on": ("lever", [r["acts_on"] for r in rows]),
              "status": ("lever", status),
              "reason": ("lever", [r["reason"] for r in rows]),
              "zero_over_draws": ("lever", zero)}
    ds = xr.Dataset(
        {
            "mean": (("metric", "lever"), mean, {"long_name": "mean elasticity over draws"}),
            "q05": (("metric", "lever"), q05, {"long_name": "5% quantile of the elasticity over draws"}),
            "q95": (("metric", "lever"), q95, {"long_name": "95% quantile of the elasticity over draws"}),
            "n_used": (("metric", "lever"), used, {"long_name": "draws averaged (finite elasticity; pace: reached)"}),
            "elasticity": (("draw", "metric", "lever"), elast,
                           {"units": "1", "long_name": "d log(metric) / d log(lever)"}),
            "extent": (("draw",), metrics[:, 0], {"units": "1", "long_name": "adopted fraction at the horizon, all sites"}),
            "pace": (("draw",), pace, {"units": "years", "long_name": f"time to {pct} adopted, all sites (NaN: never)"}),
            "reached": (("draw",), reached, {"long_name": f"the draw reaches {pct} adopted by the horizon"}),
        },
        coords=coords,
        attrs={"threshold": float(threshold), "n_draws": int(n), "n_draws_given": int(n_given),
               "pace_never": int(np.sum(~reached)), "horizon": float(sim.ts[-1]),
               "check_failed": ", ".join(failed)},
    )
    return ds


# ------------------------------------------------------------------------------------ Sobol
def _harmonics(n: int) -> int:
    """RBD-FAST's interference parameter M for ``n`` rows: SALib's default 10, fewer for small
    samples (the bias correction needs ``2M`` well below ``n``)."""
    return int(max(1, min(10, n // 20)))


def _rbd_fast(x: np.ndarray, y: np.ndarray, harmonics: int) -> np.ndarray:
    """SALib's RBD-FAST first-order indices of the columns of ``x`` (N, D) for ``y`` (N,),
    bias-corrected (Tissot & Prieur 2012): the steps of ``SALib.analyze.rbd_fast.analyze`` for
    its point estimate (reorder by the input, harmonics of the periodogram, unskew), without
    its bootstrap (see :func:`sobol_first_order`) and its global random state."""
    from SALib.analyze.rbd_fast import compute_first_order, permute_outputs, unskew_S1

    n = y.size
    return np.asarray([unskew_S1(compute_first_order(permute_outputs(x[:, i], y), harmonics), harmonics, n)
                       for i in range(x.shape[1])], dtype=np.float64)


def sobol_first_order(
    inputs: Mapping[str, np.ndarray],
    output: np.ndarray,
    harmonics: int | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """First-order Sobol indices ``S_i = Var(E[Y | X_i]) / Var(Y)`` from a given sample.

    ``inputs`` map names to ``(N,)`` values (any sample: posterior or prior draws, ensemble
    members, a Sobol design; dependent inputs give indices of the dependent sample), ``output``
    is ``(N,)``. Rows with a non-finite value are dropped. Returns ``{name: {"S1", "lo", "hi"}}``
    (NaN when ``Y`` is constant).

    The estimator is SALib's ``rbd_fast`` (RBD-FAST in Plischke's given-data form, EASI 2010:
    sort the rows by one input, read ``Var(E[Y | X_i])`` off the first ``harmonics`` Fourier
    harmonics of the reordered output, default :func:`_harmonics`; Tissot & Prieur's bias
    correction). It fits this design: the rows are given data (posterior draws with their
    replicates), not a sampling plan of SALib's, and ``rbd_fast`` needs only the rows. Of SALib's
    other given-data estimators, ``delta`` computes its S1 by equal-count binning *on a bootstrap
    resample* of the rows and without bias correction (on a linear test with 400 rows it was
    biased by -0.035, RBD-FAST by -0.002); ``pawn`` and ``hdmr`` give other measures (a
    CDF distance; a fitted ANOVA expansion). SALib's confidence interval (a normal interval from
    half-size resamples) is replaced by our bootstrap: ``lo``/``hi`` are the 5/95% percentiles of
    ``n_boot`` seeded full-size resamples of rows, each estimated by SALib's RBD-FAST too, shifted
    by the bootstrap's own bias (resampled rows repeat, which the bias correction does not
    expect): a 90% interval.
    """
    y = np.asarray(output, dtype=np.float64).reshape(-1)
    xs: dict[str, np.ndarray] = {}
    for name, v in inputs.items():
        a = np.asarray(v, dtype=np.float64).reshape(-1)
        if a.size != y.size:
            raise InputError(f"sobol: input {name!r} has {a.size} values but the output has {y.size}")
        xs[name] = a
    if not xs:
        raise InputError("sobol: no inputs")
    ok = np.isfinite(y)
    for a in xs.values():
        ok &= np.isfinite(a)
    y = y[ok]
    names = list(xs)
    x = np.stack([xs[k][ok] for k in names], axis=1)
    n = y.size
    if n < SOBOL_MIN_ROWS:
        raise InputError(f"sobol: need at least {SOBOL_MIN_ROWS} rows with finite values, got {n}")
    m = _harmonics(n) if harmonics is None else int(harmonics)
    if not 1 <= m < n / 4:
        raise InputError(f"sobol: harmonics must be from 1 to below a quarter of the rows ({n}), got {harmonics}")
    nan = {k: {"S1": math.nan, "lo": math.nan, "hi": math.nan} for k in names}
    if np.ptp(y) == 0.0:
        return nan
    s1 = _rbd_fast(x, y, m)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(max(int(n_boot), 0)):
        idx = rng.integers(0, n, n)
        if np.ptp(y[idx]) > 0.0:
            reps.append(_rbd_fast(x[idx], y[idx], m))
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        lo = hi = math.nan
        if reps:
            r = np.asarray(reps)[:, k]
            shift = float(r.mean()) - s1[k]
            lo, hi = (float(v - shift) for v in np.quantile(r, [0.05, 0.95]))
        out[name] = {"S1": float(s1[k]), "lo": lo, "hi": hi}
    return out


def sobol_from_ensemble(
    store_ds: xr.Dataset,
    scenario: str | None = None,
    threshold: float = 0.5,
    harmonics: int | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """First-order indices of the varied parameters for extent and pace, from an ensemble.

    ``store_ds``: the ensemble store (``open_results``): ``adopted`` (draw, scenario, replicate,
    time, site), ``population`` and the varied parameters ``draw_<name>`` (draw, site), averaged
    over sites to one input per parameter. Members are the (draw, replicate) pairs of one
    ``scenario`` (default: the first); only draws of completed chunks are used. Extent: adopted
    fraction at the horizon, all sites together. Pace: time to ``threshold`` (linear between
    output times); members that never reach it are set to the horizon and counted.

    Returns ``{"extent": {name: {S1, lo, hi}}, "pace": {...}, "scenario", "n_members",
    "pace_never", "threshold"}``.
    """
    from ..ensemble._summary import _crossing_kernel, adopted_fraction

    names = [str(v)[len("draw_"):] for v in store_ds.data_vars if str(v).startswith("draw_")]
    if not names:
        raise InputError("sobol: the ensemble has no varied parameters (draw_<name>); "
                         "use a 'design', 'prior' or 'posterior' ensemble source")
    scen = [str(s) for s in store_ds["scenario"].values]
    if scenario is None:
        scenario = scen[0]
    if str(scenario) not in scen:
        raise InputError(f"sobol: scenario {scenario!r} is not among the scenarios {scen}")
    ds = store_ds.isel(scenario=[scen.index(str(scenario))])
    n_draw = ds.sizes["draw"]
    keep = np.ones(n_draw, bool)
    if "chunk_done" in ds and "chunk_size" in ds.attrs:
        done = np.asarray(ds["chunk_done"].values, bool)
        keep = done[np.arange(n_draw) // int(ds.attrs["chunk_size"])]
        if not keep.any():
            raise InputError("sobol: no chunk of the ensemble is complete yet")
    frac = adopted_fraction(ds.drop_vars([v for v in ds.data_vars if v not in ("adopted", "population")]))
    total = np.asarray(frac.sel(site="all").isel(scenario=0).transpose("draw", "replicate", "time").values,
                       dtype=np.float64)[keep]  # (draw, replicate, time)
    t = np.asarray(ds["time"].values, dtype=np.float64)
    n_rep = total.shape[1]
    extent = total[:, :, -1].reshape(-1)
    cross = _crossing_kernel(total, t, np.asarray([float(threshold)]))[..., 0].reshape(-1)
    never = ~np.isfinite(cross)
    pace = np.where(never, t[-1], cross)
    inputs = {}
    for name in names:
        v = np.asarray(store_ds[f"draw_{name}"].values, dtype=np.float64)
        v = v.mean(axis=tuple(range(1, v.ndim))) if v.ndim > 1 else v
        inputs[name] = np.repeat(v[keep], n_rep)
    kw = {"harmonics": harmonics, "n_boot": n_boot, "seed": seed}
    return {
        "extent": sobol_first_order(inputs, extent, **kw),
        "pace": sobol_first_order(inputs, pace, **kw),
        "scenario": str(scenario),
        "n_members": int(extent.size),
        "pace_never": int(never.sum()),
        "threshold": float(threshold),
        "estimator": "SALib rbd_fast (given-data RBD-FAST / EASI), 90% bootstrap interval",
    }


# ------------------------------------------------------------------------------------- JSON
def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _coord(e: xr.Dataset, name: str, lever: str, default: Any) -> Any:
    return e[name].sel(lever=lever).item() if name in e.coords or name in e else default


def sensitivity_json(elasticities: xr.Dataset | None, sobol: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON-ready dict written by :func:`write_sensitivity` (NaN as ``None``).

    ``levers``: one entry per lever, ``{"name", "parameters" (the parameters it scales, merged
    when the model uses only their product), "acts_on", "status" ("active" or "not in this
    model"), "reason"}``. ``elasticities`` hold the active levers only; ``not_in_model`` maps the
    others to the reason. ``ranking`` lists every active (lever, metric) elasticity mean and
    every (parameter, metric) first-order index, most important first by absolute value (values
    keep their sign; missing values last). ``sobol_lever`` maps a Sobol input that is part of a
    merged lever (``p``) to that lever's name."""
    out: dict[str, Any] = {"threshold": None, "levers": [], "elasticities": {m: {} for m in METRICS},
                           "not_in_model": {}, "n_draws": 0, "pace_never": 0,
                           "sobol": {m: {} for m in METRICS}, "sobol_lever": {}}
    ranking: list[dict[str, Any]] = []
    member_of: dict[str, str] = {}
    if elasticities is not None:
        e = elasticities
        out["threshold"] = _num(e.attrs.get("threshold", 0.5))
        active = []
        for lv in (str(v) for v in e["lever"].values):
            params = str(_coord(e, "parameters", lv, lv)).split(" * ")
            status = str(_coord(e, "status", lv, "active"))
            reason = str(_coord(e, "reason", lv, ""))
            out["levers"].append({"name": lv, "parameters": params, "acts_on": str(_coord(e, "acts_on", lv, "")),
                                  "status": status, "reason": reason})
            member_of.update({p: lv for p in params if len(params) > 1})
            if status == "active":
                active.append(lv)
            else:
                out["not_in_model"][lv] = reason
        for m in METRICS:
            cell = e.sel(metric=m)
            out["elasticities"][m] = {
                lv: {k: _num(cell[k].sel(lever=lv)) for k in ("mean", "q05", "q95")} for lv in active}
            for lv in active:
                ranking.append({"name": lv, "kind": "lever", "metric": m,
                                "value": out["elasticities"][m][lv]["mean"]})
        out["n_draws"] = int(e.attrs.get("n_draws", e.sizes.get("draw", 0)))
        out["pace_never"] = int(e.attrs.get("pace_never", 0))
    if sobol is not None:
        if out["threshold"] is None and "threshold" in sobol:
            out["threshold"] = _num(sobol["threshold"])
        for m in METRICS:
            for name, v in (sobol.get(m) or {}).items():
                out["sobol"][m][str(name)] = {k: _num(v[k]) for k in ("S1", "lo", "hi")}
                ranking.append({"name": str(name), "kind": "parameter", "metric": m,
                                "value": out["sobol"][m][str(name)]["S1"]})
                if str(name) in member_of:
                    out["sobol_lever"][str(name)] = member_of[str(name)]
        for key in ("n_members", "pace_never"):
            if key in sobol:
                out[f"sobol_{key.replace('n_members', 'members')}"] = int(sobol[key])
        if "estimator" in sobol:
            out["sobol_estimator"] = str(sobol["estimator"])
    if out["threshold"] is None:
        out["threshold"] = 0.5
    ranking.sort(key=lambda r: (r["value"] is None, -abs(r["value"]) if r["value"] is not None else 0.0))
    out["ranking"] = ranking
    return out


def write_sensitivity(path: str | Path, elasticities: xr.Dataset | None,
                      sobol: Mapping[str, Any] | None) -> Path:
    """Write ``sensitivity.json`` atomically (see :func:`sensitivity_json` for the content)."""
    from .._io import write_atomic

    data = sensitivity_json(elasticities, sobol)
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))
