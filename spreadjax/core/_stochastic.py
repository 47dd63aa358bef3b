"""Stochastic transitions: integer counts moved by binomial draws with explicit PRNG keys.

Over a step of ``dt`` years each flow out of a counted state is read as a per-capita hazard
``h = rate / count``. The number leaving is ``Binomial(count, 1 - exp(-H dt))`` for the total
hazard ``H`` of that state, split among its flows by conditional binomials in proportion to their
hazards (an exact multinomial). Flows into a counted state from outside arrive as
``Poisson(rate dt)``. Continuous states (evidence, recognition) take a deterministic Euler step.
The mean of many runs tends to the deterministic path as ``dt -> 0``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._compile import CompiledModel


def binomial_step(
    model: CompiledModel, key: Any, t: Any, y: Any, params: Any, network: Any, dt: float
) -> Any:
    """One stochastic step of ``dt`` years from state ``y`` ``(state, site)``; returns the new state."""
    rates = model.flow_rates(t, y, params, network)
    delta = [jnp.zeros_like(y[0]) for _ in model.states]
    counted = [s.counted for s in model.states]
    by_source: dict[int, list[int]] = {}
    for i, f in enumerate(model.flows):
        if f.source is not None and counted[f.source]:
            by_source.setdefault(f.source, []).append(i)
    total_key, split_key, inflow_key = jax.random.split(key, 3)
    total_keys = jax.random.split(total_key, len(model.states))
    split_keys = jax.random.split(split_key, len(model.flows))
    inflow_keys = jax.random.split(inflow_key, len(model.flows))
    moved_by_name: dict[str, object] = {}
    for src, idxs in by_source.items():
        n = jnp.round(y[src])
        safe_n = jnp.where(n > 0, n, 1.0)
        hazards = [jnp.where(n > 0, jnp.maximum(rates[i], 0.0) / safe_n, 0.0) for i in idxs]
        total_h = sum(hazards[1:], hazards[0])
        leaving = jax.random.binomial(total_keys[src], n, -jnp.expm1(-total_h * dt), dtype=y.dtype)
        remaining_n, remaining_h = leaving, total_h
        for j, i in enumerate(idxs):
            if j == len(idxs) - 1:
                moved = remaining_n
            else:
                share = jnp.where(remaining_h > 0, hazards[j] / jnp.where(remaining_h > 0, remaining_h, 1.0), 0.0)
                moved = jax.random.binomial(split_keys[i], remaining_n, jnp.clip(share, 0.0, 1.0), dtype=y.dtype)
                remaining_n = remaining_n - moved
                remaining_h = remaining_h - hazards[j]
            _move(delta, model.flows[i], moved)
            moved_by_name[model.flows[i].name] = moved
    for i, f in enumerate(model.flows):
        if (f.source is not None and counted[f.source]) or f.tally:
            continue
        if f.sink is not None and counted[f.sink]:
            moved = jax.random.poisson(inflow_keys[i], jnp.maximum(rates[i], 0.0) * dt).astype(y.dtype)
        else:
            moved = rates[i] * dt
        _move(delta, f, moved)
        moved_by_name[f.name] = moved
    for f in model.flows:
        if f.tally:
            _move(delta, f, moved_by_name[f.name])
    return y + jnp.stack(delta)


def _move(delta: list, flow: Any, amount: Any) -> None:
    if flow.source is not None:
        delta[flow.source] = delta[flow.source] - amount
    if flow.sink is not None:
        delta[flow.sink] = delta[flow.sink] + amount
