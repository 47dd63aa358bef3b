"""Neutral expression trees and variables, parsed from Vensim .mdl or XMILE files.

Both importers (``_vensim``, ``_xmile``) produce a :class:`Project`; ``_lower`` turns it into a
:class:`spreadjax.core.Model`. Names are canonical (see :func:`canonical_name`); function names
are upper case with ``_`` for spaces (``"IF_THEN_ELSE"``).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Num:
    """A numeric literal."""

    value: float


@dataclass(frozen=True)
class Ref:
    """A reference to a variable by canonical name; ``subscripts`` are element or dimension
    names (canonical), a dimension followed by ``!`` meaning "summed over" inside ``SUM``."""

    name: str
    subscripts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """A builtin call. ``fn`` is upper case with ``_`` for spaces: ``"IF_THEN_ELSE"``, ``"MIN"``,
    ``"MAX"``, ``"ABS"``, ``"EXP"``, ``"LN"``, ``"SQRT"``, ``"INTEGER"``, ``"MODULO"``,
    ``"DELAY1"``, ``"DELAY3"``, ``"DELAYN"``, ``"SMOOTH"``, ``"SMOOTH3"``, ``"SMOOTHN"``,
    ``"SMOOTHI"``, ``"SMOOTH3I"``, ``"DELAY1I"``, ``"DELAY3I"``, ``"PULSE"``, ``"PULSE_TRAIN"``,
    ``"STEP"``, ``"RAMP"``, ``"INITIAL"``, ``"WITH_LOOKUP"``, ``"LOOKUP_CALL"`` (a call of a
    lookup variable: ``args[0]`` is ``Ref(lookup)``, ``args[1]`` the input), ``"SUM"``, ...
    """

    fn: str
    args: tuple["Node", ...]


@dataclass(frozen=True)
class BinOp:
    """A binary operation: ``+ - * / ^ < > <= >= = <> and or``."""

    op: str
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Unary:
    """A unary operation: ``-``, ``+`` or ``not``."""

    op: str
    operand: "Node"


Node = Num | Ref | Call | BinOp | Unary


@dataclass(frozen=True)
class Variable:
    """One model variable as the source file defines it."""

    name: str  # canonical name (canonical_name(source_name))
    source_name: str  # as written in the file
    kind: str  # "stock" | "aux" | "constant" | "lookup"
    equation: Node | None  # aux/constant: the value; stock: the net rate, or None when flows are listed
    init: Node | None = None  # stock: initial value
    inflows: tuple[str, ...] = ()  # XMILE lists them explicitly
    outflows: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()  # subscript dimensions, e.g. ("site",) or ("site", "age")
    # per-element equations when they differ: ((("a", "x"), node), ...); stocks: the net rate
    elements: tuple[tuple[tuple[str, ...], Node], ...] = ()
    lookup: tuple[tuple[float, ...], tuple[float, ...], str] | None = None  # (x, y, "hold"|"linear"|"step")
    units: str = ""
    doc: str = ""
    line: int = 0  # 1-based line in the source file, for error messages
    non_negative: bool = False  # XMILE <non_negative/> stocks/flows
    # stocks with per-element initial values: ((("a",), node), ...)
    element_inits: tuple[tuple[tuple[str, ...], Node], ...] = ()


@dataclass(frozen=True)
class Project:
    """A parsed model file: its variables, subscript dimensions and simulation settings."""

    path: str
    variables: tuple[Variable, ...]
    dimensions: tuple[tuple[str, tuple[str, ...]], ...]  # ((dimension, (element, ...)), ...)
    start: float
    stop: float
    dt: float
    saveper: float  # model time units
    method: str = "euler"  # "euler" | "rk4"
    time_units: str = ""


def _reserved() -> frozenset[str]:
    from ..core._spec import RESERVED

    return RESERVED | frozenset(keyword.kwlist) | frozenset({"True", "False", "None"})


def canonical_name(source: str) -> str:
    """Canonical identifier of a source name: lower case, runs of spaces, underscores and other
    non-identifier characters become one ``_``, stripped; ``v_`` is prefixed when the result
    starts with a digit or clashes with a reserved word or a :mod:`spreadjax.core` function.

    >>> canonical_name("Contact  Rate"), canonical_name('"1st stage"'), canonical_name("exp")
    ('contact_rate', 'v_1st_stage', 'v_exp')
    """
    name = re.sub(r"[^0-9a-z]+", "_", source.strip().lower()).strip("_")
    if not name or name[0].isdigit() or name in _reserved():
        name = "v_" + name
    return name


def walk(node: Node):
    """Every node of an expression tree, the root first."""
    yield node
    if isinstance(node, Call):
        for a in node.args:
            yield from walk(a)
    elif isinstance(node, BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Unary):
        yield from walk(node.operand)


def map_refs(node: Node, fn) -> Node:
    """The tree with every :class:`Ref` replaced by ``fn(ref)``."""
    if isinstance(node, Ref):
        return fn(node)
    if isinstance(node, Call):
        return Call(node.fn, tuple(map_refs(a, fn) for a in node.args))
    if isinstance(node, BinOp):
        return BinOp(node.op, map_refs(node.left, fn), map_refs(node.right, fn))
    if isinstance(node, Unary):
        return Unary(node.op, map_refs(node.operand, fn))
    return node


def parent_dims(dims: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each dimension's full (largest enclosing) dimension; subranges map to their parent."""
    parent = {}
    for d, els in dims.items():
        best = d
        for other, oels in dims.items():
            if other != d and set(els) < set(oels) and len(oels) > len(dims[best]):
                best = other
        parent[d] = best
    return parent
