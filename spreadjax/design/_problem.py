"""The programme-design problem as pure functions: decision vector -> programme -> objective.

A decision vector ``x`` lies in the unit box ``[0, 1]^n`` (the derivative-free search works there;
the gradient search reaches it through ``x = sigmoid(z)``): one value per piece of the schedule
(per site too when the allocation is optimised) and, when the withdrawal date may move, its
position between the earliest and the latest date. :func:`programme` maps it, smoothly almost
everywhere, to the ``programme`` schedule on the simulation's step grid so that every constraint
holds exactly:

- bounds: intensity ``low + (high - low) x`` while the programme runs;
- withdrawal: the step that holds the withdrawal date ``w`` gets the share of it before ``w``
  (``clip((w - t_j) / dt, 0, 1)``), so the spend and the push move continuously with ``w`` and
  the date has a gradient; ``w >= start + min_duration`` by construction;
- budget: when a programme would spend more than the budget (programme-years, summed over sites),
  its intensity above the floor is scaled down until it spends exactly the budget.

The objective is evaluated over fixed posterior draws ("futures"), the same for every programme
compared (common random numbers), with the deterministic (mean-field) model: adoption is the
adopted share of all sites together at the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class DesignProblem:
    """Static structure of a design problem (hashable: one compile per problem).

    Times in years; ``piece`` maps each of the ``n_steps`` steps from ``t0`` to the horizon to its
    piece of the schedule; ``w_range`` is (earliest, latest) withdrawal date.
    """

    sim: Any  # core Simulation: deterministic, saves 'adopted' at the horizon only
    population: str
    n_sites: int
    t0: float
    dt: float
    n_steps: int
    piece: tuple[int, ...]
    n_pieces: int
    low: float
    high: float
    w_range: tuple[float, float]
    allocate: bool
    objective: str
    target: float
    alpha: float
    smoothing: float

    @property
    def n_intensity(self) -> int:
        return self.n_pieces * (self.n_sites if self.allocate else 1)

    @property
    def moves_withdrawal(self) -> bool:
        return self.w_range[1] - self.w_range[0] > 1e-12

    @property
    def n_vars(self) -> int:
        """Length of a decision vector."""
        return self.n_intensity + int(self.moves_withdrawal)

    @property
    def step_times(self) -> np.ndarray:
        """Start of each step, years: the ``programme`` schedule's breakpoints ``(n_steps,)``."""
        return self.t0 + self.dt * np.arange(self.n_steps)


class Futures(NamedTuple):
    """The futures every programme is scored on: ``draws`` ``{name: (draw, site)}`` (at least one
    entry), the remaining parameters ``base`` (the config's), and the ``network`` (or None)."""

    draws: dict
    base: dict
    network: Any


def make_problem(sim: Any, population: str, n_sites: int, settings: Any) -> DesignProblem:
    """A :class:`DesignProblem` from a core ``Simulation`` and validated ``DesignSettings``."""
    from ..core import Simulation

    d = settings
    t0, dt = float(sim.t0), float(sim.dt)
    n_steps = int(round((d.horizon - t0) / dt))
    starts = t0 + dt * np.arange(n_steps)
    piece = np.clip(np.searchsorted(np.asarray(d.knots), starts + 1e-9, side="right") - 1, 0, len(d.knots) - 1)
    at_horizon = Simulation(sim.model, (t0 + n_steps * dt,), dt, ("adopted",), sim.solver, t0, False)
    return DesignProblem(at_horizon, population, n_sites, t0, dt, n_steps, tuple(int(k) for k in piece),
                         len(d.knots), float(d.intensity[0]), float(d.intensity[1]),
                         (float(d.earliest_withdrawal), float(d.withdraw[1])), bool(d.allocate), d.objective,
                         float(d.target if d.target is not None else 1.0), float(d.alpha), float(d.smoothing))


# --------------------------------------------------------------------------- decision -> programme
def withdrawal(p: DesignProblem, x: Any) -> Any:
    """Withdrawal date (years) of decision ``x``."""
    if not p.moves_withdrawal:
        return x[0] * 0 + p.w_range[1]
    return p.w_range[0] + (p.w_range[1] - p.w_range[0]) * x[p.n_intensity]


def ramp(p: DesignProblem, w: Any) -> Any:
    """Share of each step before the withdrawal date ``w``: ``(n_steps,)`` in [0, 1]."""
    import jax.numpy as jnp

    return jnp.clip((w - jnp.asarray(p.step_times, jnp.result_type(w))) / p.dt, 0.0, 1.0)


def programme(p: DesignProblem, x: Any, budget: Any, soft: float = 0.0) -> Any:
    """The programme schedule's values ``(n_steps, site)`` for decision ``x`` ``(n_vars,)`` under
    ``budget`` (programme-years): bounds, withdrawal and budget hold exactly. ``soft > 0``: the
    quasi-Newton search's surrogate, whose budget scaling ``room / max(spend, room)`` has its kink
    at the budget frontier rounded off over a relative width ``soft`` (it never spends more than
    the budget; the exact map is what is scored)."""
    import jax
    import jax.numpy as jnp

    u = x[: p.n_intensity].reshape(p.n_pieces, -1)  # (piece, site or 1)
    u = jnp.broadcast_to(u, (p.n_pieces, p.n_sites))
    r = ramp(p, withdrawal(p, x))[:, None]  # (step, 1)
    above = (p.high - p.low) * u[jnp.asarray(p.piece)] * r  # intensity above the floor, (step, site)
    floor = p.low * r
    spend_floor = p.dt * p.n_sites * jnp.sum(floor)
    spend_above = p.dt * jnp.sum(above)
    room = jnp.maximum(budget - spend_floor, 0.0)
    scale = jnp.where(spend_above > room, room / jnp.where(spend_above > 0, spend_above, 1.0), 1.0)
    if not isinstance(soft, (int, float)) or soft > 0:  # room / softmax(spend, room), within ~soft of it
        width = jnp.maximum(soft, 1e-12) * jnp.maximum(room, 1e-12)
        rounded = room / (jnp.maximum(room, 1e-12) + width * jax.nn.softplus((spend_above - room) / width))
        scale = jnp.where(soft > 0, rounded, scale)  # soft may be traced: 0 gives the exact map
    return floor + above * scale


def spend(p: DesignProblem, values: Any) -> Any:
    """Programme-years a schedule ``(n_steps, site)`` spends, per site ``(site,)``."""
    import jax.numpy as jnp

    return p.dt * jnp.sum(values, axis=0)


def constant_programme(p: DesignProblem, intensity: float, withdraw: float, dtype: Any) -> Any:
    """A constant ``intensity`` at every site until ``withdraw`` (years): ``(n_steps, site)``."""
    import jax.numpy as jnp

    r = ramp(p, jnp.asarray(withdraw, dtype))
    return jnp.broadcast_to((intensity * r)[:, None], (p.n_steps, p.n_sites)).astype(dtype)


# --------------------------------------------------------------------------------- the objective
def adoption(p: DesignProblem, values: Any, futures: Futures, levers: dict | None = None) -> Any:
    """Adopted share of all sites at the horizon in each future ``(draw,)`` under the schedule
    ``values`` ``(n_steps, site)``; ``levers`` optionally scales parameters as ``param * exp(m)``."""
    import jax.numpy as jnp

    params = dict(futures.base)
    params.update(futures.draws)
    for name, m in (levers or {}).items():
        params[name] = params[name] * jnp.exp(m)
    params["programme"] = {"times": jnp.asarray(p.step_times, values.dtype), "values": values}
    axes = {name: (0 if name in futures.draws else None) for name in params}
    out = p.sim.batch(params, futures.network, axes=axes)["adopted"]  # (draw, 1, site)
    pop = jnp.broadcast_to(params[p.population], out.shape[::2])
    return jnp.sum(out[:, -1, :], axis=-1) / jnp.sum(pop, axis=-1)


def score(p: DesignProblem, share: Any, smooth: bool) -> Any:
    """The quantity maximised, from the adopted shares ``(draw,)``: the mean share, P(share >=
    target), or minus the CVaR of the shortfall below the target. ``smooth``: the surrogate the
    gradient search follows (a logistic step; a softplus shortfall), of scale ``smoothing``."""
    import jax
    import jax.numpy as jnp

    if p.objective == "expected_adoption":
        return jnp.mean(share)
    s = p.smoothing
    if p.objective == "probability_of_target":
        hit = jax.nn.sigmoid((share - p.target) / s) if smooth else (share >= p.target).astype(share.dtype)
        return jnp.mean(hit)
    short = s * jax.nn.softplus((p.target - share) / s) if smooth else jnp.maximum(p.target - share, 0.0)
    return -cvar(short, p.alpha)


def cvar(losses: Any, alpha: float) -> Any:
    """Mean of the worst ``ceil((1 - alpha) n)`` of ``losses`` ``(n,)`` (the tail above the alpha-quantile)."""
    import jax.numpy as jnp

    n = losses.shape[0]
    k = max(1, math.ceil((1 - alpha) * n - 1e-9))
    return jnp.mean(jnp.sort(losses)[n - k:])


def natural(p: DesignProblem, score_value: float) -> float:
    """The objective in its own units: mean share, probability, or CVaR (a shortfall, >= 0)."""
    return -float(score_value) if p.objective == "cvar_shortfall" else float(score_value)


def objective(p: DesignProblem, x: Any, budget: Any, futures: Futures, smooth: bool = False,
              soft: float = 0.0) -> Any:
    """Score of decision ``x`` (higher is better): exact, or the smooth surrogate (``soft``: see
    :func:`programme`)."""
    return score(p, adoption(p, programme(p, x, budget, soft), futures), smooth)
