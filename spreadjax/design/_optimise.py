"""Solve a design problem two ways on the same exact objective and the same futures.

* :func:`gradient_search`: optax Adam on ``z`` with ``x = sin^2(pi z / 2)``, following the smooth
  surrogate's gradient through the compiled model (``jax.value_and_grad``); all iterations run in
  one ``lax.scan``, several starts are vmapped, and the whole search is jitted once per problem.
  The start with the best *exact* objective wins.
* :func:`differential_evolution`: scipy's derivative-free differential evolution over the unit
  box, on the exact objective, each generation's population evaluated in one vmapped call of a
  fixed size (one compile).

Both return a :class:`Search`: the decision, its exact score, wall time and evaluations.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._problem import DesignProblem, Futures, objective


@dataclass(frozen=True)
class Search:
    """A solved search: ``x`` ``(n_vars,)`` in the unit box, its exact ``score`` (higher is
    better), ``seconds`` of wall time (compilation included), ``evaluations`` of the objective over
    all futures (a gradient step counts as one), and the ``method``."""

    method: str
    x: np.ndarray
    score: float
    seconds: float
    evaluations: int


def to_box(z: Any) -> Any:
    """The unit box from the real line: ``sin^2(pi z / 2)``. It reaches the bounds at finite ``z``
    (a sigmoid only approaches them, and its gradient vanishes exponentially on the way, where
    optimal programmes often lie: full intensity, or none), and it is periodic, so no step leaves
    the search stuck outside the box."""
    import jax.numpy as jnp

    return jnp.sin(0.5 * jnp.pi * z) ** 2


def from_box(x: np.ndarray) -> np.ndarray:
    """A ``z`` with ``to_box(z) = x`` (in [0, 1])."""
    return 2.0 / np.pi * np.arcsin(np.sqrt(np.clip(x, 0.0, 1.0)))


@functools.lru_cache(maxsize=8)
def _search_fn(p: DesignProblem, steps: int, learning_rate: float) -> Callable:
    import jax
    import jax.numpy as jnp
    import optax

    # the step shrinks to 1% by the end (cosine): the exact budget map has a ridge along the budget
    # frontier, which a constant step zig-zags across
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01))

    def loss(z, budget, futures):
        return -objective(p, to_box(z), budget, futures, smooth=True)

    grad = jax.value_and_grad(loss)

    def one(z0, budget, futures):
        def step(carry, _):
            z, state = carry
            value, g = grad(z, budget, futures)
            updates, state = opt.update(g, state, z)
            return (optax.apply_updates(z, updates), state), value

        (z, _), trace = jax.lax.scan(step, (z0, opt.init(z0)), None, length=steps)
        x = to_box(z)
        return x, objective(p, x, budget, futures, smooth=False), trace

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def gradient_search(p: DesignProblem, futures: Futures, budget: float, starts: np.ndarray, steps: int,
                    learning_rate: float) -> tuple[Search, np.ndarray]:
    """Adam from each of ``starts`` ``(start, n_vars)`` (points in the unit box); returns the
    best start's :class:`Search` and the surrogate's trace ``(start, step)`` (higher is better)."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.asarray(futures.base[p.population]).dtype
    z0 = jnp.asarray(from_box(np.asarray(starts, float)), dtype)
    began = time.perf_counter()
    x, exact, trace = jax.device_get(_search_fn(p, int(steps), float(learning_rate))(
        z0, jnp.asarray(budget, dtype), futures))
    seconds = time.perf_counter() - began
    best = int(np.nanargmax(exact))
    return (Search("gradient (optax Adam)", np.asarray(x[best], float), float(exact[best]), seconds,
                   int(steps) * len(z0)), -np.asarray(trace, float))


#: Relative width over which the quasi-Newton surrogate rounds off the budget frontier's kink (a
#: kink stalls L-BFGS line searches); the exact objective at the end point is within ~1e-5 of it.
SOFT_BUDGET = 1e-4


#: Forward-mode gradients while variables x futures is at most this: on CPU they compile faster
#: and run as fast for the one-future Bass problems (2 and 13 variables), but on the bundled example
#: (17 variables x 50 futures) one call costs 74 ms against reverse mode's 22 ms (benchmarks/bench_design.py).
FORWARD_MAX_WORK = 64


@functools.lru_cache(maxsize=8)
def _value_grad_fn(p: DesignProblem, forward: bool) -> Callable:
    """``jit((x (n_vars,), budget, futures, soft) -> ((-surrogate, exact), -gradient))``, one compile
    per problem: the surrogate's value and gradient and the exact score from the same simulated
    futures (``soft = 0`` makes them the exact map's; see :func:`programme`). Only the forward pass
    and its derivative are compiled (no optimiser inside). ``forward``: the gradient in forward mode
    (one tangent per variable, vmapped through one pass: faster to compile and to run on CPU for a
    few variables), else reverse mode."""
    import jax

    from ._problem import adoption, programme, score

    def loss(x, budget, futures, soft):
        shares = adoption(p, programme(p, x, budget, soft), futures)
        value = -score(p, shares, smooth=True)
        return value, (value, score(p, shares, smooth=False))

    if forward:
        def fn(x, budget, futures, soft):
            grad, aux = jax.jacfwd(loss, has_aux=True)(x, budget, futures, soft)
            return aux, grad
    else:
        def fn(x, budget, futures, soft):
            (_, aux), grad = jax.value_and_grad(loss, has_aux=True)(x, budget, futures, soft)
            return aux, grad
    return jax.jit(fn)


def quasi_newton_search(p: DesignProblem, futures: Futures, budget: float, starts: np.ndarray, max_iter: int,
                        gtol: float = 1e-6, ftol: float = 1e-10, soft: float = SOFT_BUDGET,
                        forward: bool | None = None,
                        on_call: Callable[[float], None] | None = None) -> tuple[Search, np.ndarray]:
    """scipy's L-BFGS-B in the unit box (the bounds held directly, no change of variables) on the
    smooth surrogate, driven by its exact gradient through the compiled model, from each of
    ``starts`` ``(start, n_vars)``; stops when the projected gradient is below ``gtol`` or the
    relative gain per iteration below ``ftol`` (or after ``max_iter`` iterations). Returns the best
    start's :class:`Search` (by the *exact* objective; ``evaluations``: objective+gradient calls,
    line-search trials included) and the surrogate after each call ``(start, call)`` (NaN-padded,
    higher is better). ``forward``: forward-mode gradients (default: while variables x futures
    is at most ``FORWARD_MAX_WORK``); ``on_call(surrogate)`` after each call (the benchmark's time-to-target). The end
    points' exact scores come from the same compiled function (no second compile)."""
    began = time.perf_counter()
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    dtype = jnp.asarray(futures.base[p.population]).dtype
    if forward is None:  # tangents x futures: forward mode's work; reverse mode's is ~3 passes
        forward = p.n_vars * int(next(iter(futures.draws.values())).shape[0]) <= FORWARD_MAX_WORK
    fn = _value_grad_fn(p, bool(forward))
    b = jnp.asarray(budget, dtype)
    s_on, s_off = jnp.asarray(soft, dtype), jnp.asarray(0.0, dtype)
    runs, traces, calls = [], [], 0
    for x0 in np.atleast_2d(np.asarray(starts, float)):
        trace: list[float] = []

        def f(x: np.ndarray) -> tuple[float, np.ndarray]:
            (value, _), grad = jax.device_get(fn(jnp.asarray(x, dtype), b, futures, s_on))
            trace.append(-float(value))
            if on_call is not None:
                on_call(-float(value))
            return float(value), np.asarray(grad, float)

        res = minimize(f, np.clip(x0, 0.0, 1.0), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * p.n_vars,
                       options={"maxiter": int(max_iter), "gtol": gtol, "ftol": ftol})
        calls += len(trace)
        runs.append(np.clip(np.asarray(res.x, float), 0.0, 1.0))
        traces.append(trace)
    # the exact objective of every start's end point (soft = 0: the exact budget map)
    scores = np.asarray([float(fn(jnp.asarray(x, dtype), b, futures, s_off)[0][1]) for x in runs])
    seconds = time.perf_counter() - began
    best = int(np.nanargmax(scores))
    width = max(len(t) for t in traces)
    trace_arr = np.full((len(traces), width), np.nan)
    for i, t in enumerate(traces):
        trace_arr[i, : len(t)] = t
    return (Search("gradient (scipy L-BFGS-B)", runs[best], float(scores[best]), seconds, calls), trace_arr)


@functools.lru_cache(maxsize=8)
def _batch_fn(p: DesignProblem) -> Callable:
    import jax

    return jax.jit(jax.vmap(lambda x, budget, futures: objective(p, x, budget, futures), in_axes=(0, None, None)))


def evaluate(p: DesignProblem, futures: Futures, budget: float, xs: np.ndarray, chunk: int) -> np.ndarray:
    """Exact scores of decisions ``xs`` ``(n, n_vars)``, ``chunk`` at a time (the last padded, so one
    compile)."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.asarray(futures.base[p.population]).dtype
    fn = _batch_fn(p)
    xs = np.atleast_2d(np.asarray(xs, float))
    out = []
    for i in range(0, len(xs), chunk):
        part = xs[i:i + chunk]
        pad = chunk - len(part)
        if pad:
            part = np.concatenate([part, np.repeat(part[-1:], pad, 0)])
        out.append(np.asarray(jax.device_get(fn(jnp.asarray(part, dtype), jnp.asarray(budget, dtype), futures)),
                              float)[: chunk - pad])
    return np.concatenate(out)


def differential_evolution(p: DesignProblem, futures: Futures, budget: float, generations: int, popsize: int,
                           seed: int, progress: Callable[[int], None] | None = None,
                           callback: Callable[[float], bool] | None = None) -> Search:
    """scipy's differential evolution on the exact objective over the unit box (no polishing: it
    would take finite-difference gradients). ``callback(best score so far)`` after each generation
    may return True to stop (the benchmark's time-to-target)."""
    from scipy.optimize import differential_evolution as de

    n = p.n_vars
    chunk = popsize * n
    calls = [0]

    def f(xt: np.ndarray) -> np.ndarray:  # (n_vars, S) -> (S,)
        calls[0] += xt.shape[1]
        if progress is not None:
            progress(calls[0])
        return -evaluate(p, futures, budget, xt.T, chunk)

    began = time.perf_counter()
    def each(intermediate_result) -> bool:
        return bool(callback(-float(intermediate_result.fun))) if callback is not None else False

    res = de(f, [(0.0, 1.0)] * n, maxiter=generations, popsize=popsize, seed=seed, polish=False,
             vectorized=True, updating="deferred", tol=0.0, atol=0.0, callback=each)
    seconds = time.perf_counter() - began
    return Search("differential evolution (scipy)", np.asarray(res.x, float), float(-res.fun), seconds, calls[0])


def grid_points(p: DesignProblem, levels: int) -> np.ndarray:
    """The coarse grid: every site on the same schedule, each piece at ``levels`` evenly spaced
    intensities (and the withdrawal at ``levels`` dates when it may move): ``(points, n_vars)``."""
    import itertools

    axis = np.linspace(0.0, 1.0, levels)
    per_site = 1 if not p.allocate else p.n_sites
    rows = []
    w_axis = axis if p.moves_withdrawal else [None]
    for combo in itertools.product(axis, repeat=p.n_pieces):
        for w in w_axis:
            x = np.repeat(np.asarray(combo), per_site)
            rows.append(x if w is None else np.append(x, w))
    return np.asarray(rows)
