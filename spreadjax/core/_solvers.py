"""ODE step kernels: fixed-step Euler and RK4, and an adaptive diffrax option.

A fixed-step solver is a pure ``step(f, t, y, dt) -> y_next`` with ``f(t, y) -> dy/dt``; the state
is an array or a tuple of rows (what the scan driver in ``_simulate`` carries). ``t`` and ``dt`` are in years.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

VectorField = Callable[[Any, Any], Any]


def _tree(fn: Callable, *ys: Any) -> Any:
    """``fn`` row by row when the state is a tuple of rows, else on the arrays themselves."""
    if isinstance(ys[0], tuple):
        return tuple(fn(*rows) for rows in zip(*ys))
    return fn(*ys)


def _axpy(y: Any, a: Any, k: Any) -> Any:
    """``y + a * k`` for an array state or a tuple of rows."""
    return _tree(lambda yi, ki: yi + a * ki, y, k)


@dataclass(frozen=True)
class Euler:
    """Forward Euler, the system-dynamics convention: ``y + dt * f(t, y)`` (first order)."""

    name = "euler"
    order = 1

    def step(self, f: VectorField, t: Any, y: Any, dt: Any) -> Any:
        return _axpy(y, dt, f(t, y))


@dataclass(frozen=True)
class RK4:
    """Classic fourth-order Runge-Kutta."""

    name = "rk4"
    order = 4

    def step(self, f: VectorField, t: Any, y: Any, dt: Any) -> Any:
        half = 0.5 * dt
        k1 = f(t, y)
        k2 = f(t + half, _axpy(y, half, k1))
        k3 = f(t + half, _axpy(y, half, k2))
        k4 = f(t + dt, _axpy(y, dt, k3))
        slope = _tree(lambda a, b, c, d: a + 2.0 * b + 2.0 * c + d, k1, k2, k3, k4)
        return _axpy(y, dt / 6.0, slope)


@dataclass(frozen=True)
class Adaptive:
    """Adaptive steps with diffrax (Tsit5 by default) under a PID step-size controller.

    ``dt`` of the simulation is the first step tried; ``max_steps`` bounds the work.
    Gradients go through diffrax's checkpointed adjoint.
    """

    rtol: float = 1e-6
    atol: float = 1e-8
    max_steps: int = 100_000
    method: str = "tsit5"
    name = "adaptive"
    order = 5

    def diffrax_solver(self) -> Any:
        import diffrax

        methods = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8,
                   "heun": diffrax.Heun, "bosh3": diffrax.Bosh3}
        if self.method not in methods:
            from .._errors import ModelError

            raise ModelError(f"adaptive solver: unknown method {self.method!r}; known: {', '.join(methods)}")
        return methods[self.method]()


SOLVERS = {"euler": Euler, "rk4": RK4, "adaptive": Adaptive}


def make_solver(name: str, **options: Any) -> Euler | RK4 | Adaptive:
    """A solver by name: ``"euler"``, ``"rk4"`` or ``"adaptive"`` (with rtol, atol, max_steps)."""
    from .._errors import ModelError

    if name not in SOLVERS:
        raise ModelError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    if name != "adaptive" and options:
        raise ModelError(f"solver {name!r} takes no options, got {', '.join(options)}")
    return SOLVERS[name](**options)
