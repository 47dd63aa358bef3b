"""Equations as small, safe expressions: parsed once, evaluated with jax.numpy or numpy.

An equation is a Python-syntax arithmetic expression over the model's names (parameters,
stocks, auxiliaries, flows, schedules and the time ``t`` in years), for example
``"unaware * recognition * (push * reach * p + q * exposure)"``. Only arithmetic,
comparisons, conditionals (``a if cond else b``, evaluated as ``where``), the functions in
:data:`FUNCTIONS` and the model's own lookups (graphical functions, called by name like
``effect_of_load(backlog / capacity)``) are allowed: no attribute access, subscripts, lambdas or
imports. Parsing is
static (done once when a model is built); evaluation happens while tracing, so it costs nothing
at run time.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ModelError

#: Functions an equation may call, with their meaning. Each is bound to the array module
#: (``jax.numpy`` or ``numpy``) at evaluation time.
FUNCTIONS: dict[str, str] = {
    "exp": "exponential",
    "log": "natural logarithm",
    "sqrt": "square root",
    "logistic": "logistic(x) = 1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2: no overflow, finite gradients",
    "abs": "absolute value",
    "min": "elementwise minimum of two values",
    "max": "elementwise maximum of two values",
    "clip": "clip(x, lower, upper)",
    "where": "where(condition, a, b)",
    "step": "step(height, start): height once t >= start (within rounding), else 0",
    "pulse": "pulse(start, width): 1 while start <= t < start + width (within rounding), else 0",
    "ramp": "ramp(slope, start, end): slope * (t - start) between start and end, flat after",
    "safe_div": "safe_div(a, b): a / b, and 0 where b == 0",
    "network": "network(x): sum over peers j of weight[i, j] * x[j], per site i (0 without a network)",
    "site_sum": "site_sum(x): sum of x over all sites, broadcast back to each site",
    "site_mean": "site_mean(x): mean of x over all sites, broadcast back to each site",
    "sin": "sine (radians)",
    "cos": "cosine (radians)",
    "tan": "tangent (radians)",
    "arcsin": "inverse sine (radians)",
    "arccos": "inverse cosine (radians)",
    "arctan": "inverse tangent (radians)",
    "sinh": "hyperbolic sine",
    "cosh": "hyperbolic cosine",
    "tanh": "hyperbolic tangent",
    "floor": "largest integer <= x (gradient 0)",
    "trunc": "x rounded toward zero, as Vensim's INTEGER and XMILE's INT (gradient 0)",
    "modulo": "modulo(a, b) = a - b * trunc(a / b): the remainder with the sign of a, as C's fmod (gradient 1 in a)",
}

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_CMPOPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Not, ast.Compare,
    ast.BoolOp, ast.And, ast.Or, ast.IfExp, ast.Call, ast.Name, ast.Load, ast.Constant,
    *_BINOPS, *_CMPOPS,
)


class _Rewrite(ast.NodeTransformer):
    """Turn Python's short-circuit constructs into elementwise array calls."""

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        return ast.Call(ast.Name("where", ast.Load()), [node.test, node.body, node.orelse], [])

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        fn = "_and" if isinstance(node.op, ast.And) else "_or"
        out = node.values[0]
        for value in node.values[1:]:
            out = ast.Call(ast.Name(fn, ast.Load()), [out, value], [])
        return out

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.Call(ast.Name("_not", ast.Load()), [node.operand], [])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        divisor = _literal(node.right)
        if isinstance(node.op, ast.Div) and divisor is not None and _literal(node.left) is None:
            if divisor != 0 and math.isfinite(divisor) and math.frexp(divisor)[0] not in (0.5, -0.5):
                return ast.Call(ast.Name("_div", ast.Load()), [node.left, node.right], [])
        return node


def _literal(node: ast.AST) -> float | None:
    """The value of a numeric literal (``10``, ``-2.5``), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


@dataclass(frozen=True)
class Expression:
    """A parsed equation. ``names`` are the model names it reads (functions excluded), ``calls``
    the functions it calls."""

    source: str
    names: frozenset[str]
    code: Any  # a compiled code object; compared by source only
    calls: frozenset[str] = frozenset()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __call__(self, env: Mapping[str, Any], functions: Mapping[str, Callable]) -> Any:
        return eval(self.code, {"__builtins__": {}, **functions}, env)  # noqa: S307 - validated AST


@functools.lru_cache(maxsize=4096)
def parse(source: str | float | int, where: str = "equation", lookups: frozenset[str] = frozenset()) -> Expression:
    """Parse and validate one equation; ``where`` names it in error messages. ``lookups`` are the
    model's lookup names, callable with one argument like a function."""
    if isinstance(source, bool) or not isinstance(source, (str, int, float)):
        raise ModelError(f"{where}: expected an expression string or a number, got {source!r}")
    text = repr(float(source)) if not isinstance(source, str) else source.strip()
    if not text:
        raise ModelError(f"{where}: the equation is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ModelError(f"{where}: cannot parse {text!r}: {exc.msg}") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ModelError(f"{where}: {type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ModelError(f"{where}: only numeric constants are allowed in {text!r}")
        if isinstance(node, ast.Compare) and len(node.ops) != 1:
            raise ModelError(f"{where}: chained comparisons are not allowed in {text!r}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS.keys() | lookups:
                fn = getattr(node.func, "id", ast.unparse(node.func))
                known = ", ".join([*FUNCTIONS, *sorted(lookups)])
                raise ModelError(
                    f"{where}: unknown function {fn!r} in {text!r} (neither a function nor a lookup of the "
                    f"model); known: {known}"
                )
            if node.keywords:
                raise ModelError(f"{where}: keyword arguments are not allowed in {text!r}")
            if node.func.id in lookups and len(node.args) != 1:
                raise ModelError(
                    f"{where}: lookup {node.func.id!r} takes one argument, got {len(node.args)} in {text!r}"
                )
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not (
            node.id in FUNCTIONS.keys() | lookups and _is_called(tree, node)
        ):
            names.add(node.id)
    tree = ast.fix_missing_locations(_Rewrite().visit(tree))
    code = compile(tree, f"<{where}>", "eval")
    calls = frozenset(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call))
    return Expression(text, frozenset(names), code, calls)


def _is_called(tree: ast.AST, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))


#: A time within this many machine epsilons (relative to ``max(|t|, 1)``) before an event counts as
#: having reached it: a few roundings of ``t0 + k dt + c dt`` (about 4 ulps) with room to spare, and
#: far below any step (float32 at t = 2000 years: 0.004 years, a fifth of dt = 1/48).
TIME_EPS = 16


def reached(xp: Any, t: Any, at: Any) -> Any:
    """``t >= at`` where a time within rounding of ``at`` counts as at it (years; any shapes that
    broadcast). Solver stage times such as ``t + dt`` land on breakpoints on the step grid, and
    whether the sum rounds just below or onto one depends on how the compiler orders and fuses
    the arithmetic (``jit`` or not, FMA or not); deciding the tie this way makes the schedule
    value, and the run, the same under every compilation."""
    t = xp.asarray(t)
    eps = xp.finfo(xp.result_type(t, at)).eps
    return t + TIME_EPS * eps * xp.maximum(xp.abs(t), 1.0) >= at


def functions(xp: Any, t: Any, network: Callable[[Any], Any] | None) -> dict[str, Callable]:
    """Bind :data:`FUNCTIONS` to an array module ``xp`` at time ``t`` (years)."""

    def coupling(x):
        return xp.zeros_like(x) if network is None else network(x)

    def safe_div(a, b):
        safe = xp.where(b == 0, 1, b)
        return xp.where(b == 0, 0 * a, a / safe)

    def literal_div(a, b):
        # ``a / 10``: XLA rewrites a division by a constant, or by a scalar broadcast over an
        # array, as a product with its reciprocal, one rounding off (t / 10 - 10 at t = 60 gave
        # -4 + 4e-16, and Vensim's INTEGER of it -3). Adding a zero the compiler cannot fold
        # (0 * a, with a's infinities masked) keeps it a correctly rounded division. Only
        # divisors whose reciprocal is inexact get here (see _Rewrite.visit_BinOp).
        if getattr(xp, "__name__", "") == "numpy":
            return a / b
        a = xp.asarray(a)
        return a / (b + 0 * xp.where(xp.isfinite(a), a, 0))

    return {
        "exp": xp.exp,
        "log": xp.log,
        "sqrt": xp.sqrt,
        "logistic": lambda x: 0.5 * (1.0 + xp.tanh(0.5 * x)),
        "abs": xp.abs,
        "min": xp.minimum,
        "max": xp.maximum,
        "clip": xp.clip,
        "where": xp.where,
        "step": lambda height, start: xp.where(reached(xp, t, start), height, 0 * height),
        "pulse": lambda start, width: xp.where(reached(xp, t, start) & ~reached(xp, t, start + width), 1.0, 0.0),
        "ramp": lambda slope, start, end: slope * (xp.clip(t, start, end) - start),
        "safe_div": safe_div,
        "_div": literal_div,
        "network": coupling,
        # Sites lead: (site,) for one member, (site, member) for a batch of members.
        "site_sum": lambda x: xp.sum(x, axis=0, keepdims=True) + 0 * x,
        "site_mean": lambda x: xp.mean(x, axis=0, keepdims=True) + 0 * x,
        "sin": xp.sin,
        "cos": xp.cos,
        "tan": xp.tan,
        "arcsin": xp.arcsin,
        "arccos": xp.arccos,
        "arctan": xp.arctan,
        "sinh": xp.sinh,
        "cosh": xp.cosh,
        "tanh": xp.tanh,
        "floor": xp.floor,
        "trunc": xp.trunc,
        "modulo": lambda a, b: a - b * xp.trunc(a / b),
        "_and": xp.logical_and,
        "_or": xp.logical_or,
        "_not": xp.logical_not,
    }


#: Tables with more points than this interpolate by binary search (``interp``); smaller ones as a sum
#: of clipped segments, which is elementwise arithmetic only (5x faster under vmap on CPU).
LOOKUP_SEGMENTS_MAX = 32


def lookup_function(x: tuple[float, ...], y: tuple[float, ...], extrapolation: str, xp: Any) -> Callable:
    """A graphical function through the points ``(x, y)`` (static tuples, ``x`` strictly increasing),
    evaluated elementwise on an array of any shape with the array module ``xp``.

    Piecewise linear between the points. Outside ``[x[0], x[-1]]``: ``"hold"`` keeps the end values,
    ``"linear"`` extends the end segments, ``"step"`` holds each ``y[i]`` from ``x[i]`` until the
    next point (and ``y[0]`` before ``x[0]``). Differentiable in the argument: the segment's slope,
    and at a breakpoint the mean of the slopes on either side."""
    k = len(x)
    x = tuple(float(v) for v in x)
    y = tuple(float(v) for v in y)
    if extrapolation == "step":
        if k > LOOKUP_SEGMENTS_MAX:
            xs, ys = xp.asarray(x), xp.asarray(y)
            return lambda v: ys[xp.clip(xp.searchsorted(xs, v, side="right") - 1, 0, k - 1)] + 0 * v

        def step(v):
            out = 0 * v + y[0]
            for xi, dy in zip(x[1:], (b - a for a, b in zip(y, y[1:]))):
                out = out + xp.where(v >= xi, dy, 0.0)
            return out
        return step
    if k == 1:
        return lambda v: 0 * v + y[0]
    slopes = tuple((y[i + 1] - y[i]) / (x[i + 1] - x[i]) for i in range(k - 1))
    if k > LOOKUP_SEGMENTS_MAX:
        xs, ys = xp.asarray(x), xp.asarray(y)

        def inside(v):
            return xp.interp(v, xs, ys)
    else:
        def inside(v):  # y[0] plus each segment's rise up to v: clamps outside [x[0], x[-1]]
            out = 0 * v + y[0]
            for a, b, slope in zip(x, x[1:], slopes):
                out = out + slope * (xp.clip(v, a, b) - a)
            return out
    if extrapolation == "linear":
        def linear(v):
            v = xp.asarray(v)
            return (inside(v) + slopes[0] * (xp.minimum(v, x[0]) - x[0])
                    + slopes[-1] * (xp.maximum(v, x[-1]) - x[-1]))
        return linear
    return lambda v: inside(xp.asarray(v))
