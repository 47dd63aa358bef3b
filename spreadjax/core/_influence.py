"""Which parameters reach an output, read from a model's equations (no simulation).

Two questions the report's lever table asks of a :class:`~spreadjax.core.Model`:

* :func:`lever_influence` — does a lever act at all in the configured structure? A lever is
  *not in this model* when no chain of equations leads from it to the target stock (the
  adopted stock): either the structure has no path (e.g. ``implementation_support`` scales a
  pipeline that ``implementation_order = 0`` removes), or the parameters the config fixes cut
  every path (``pilot_evidence = adopter_evidence = initial_evidence = 0`` leave the evidence
  stock at zero for ever, so ``innovation_conditions`` multiplies zero; ``recognition_baseline
  = 1`` makes recognition 1 whatever the evidence and ``barriers``).
* :func:`product_groups` — parameters the model uses only through their product (``push_strength
  * p``): scaling either by the same factor gives the same model, so they are one lever.

The dependency graph has one node per name: a derived name (auxiliary, flow, ``<delay>_exit``)
reads the names in its equation; a stock reads its initial value and every flow in or out of it
(a tally stock: the flow it counts); a delay its flows, time and initial value; a smooth its
input, time and initial value. Fixed parameter values are folded in as constants (a product with
a zero factor is zero and reads nothing; ``max(1, 0)`` is 1, ...), and a stock, delay or smooth
is constant when, assuming it is, everything that changes it is zero (the largest such set, found
by iteration: the solution that stays constant then is *the* solution). Values are assumed
finite (``0 * x`` is folded to 0). Only a value equal at every site is folded; parameters that
vary (drawn, or different per site) stay free. The analysis is exact for what it folds and
conservative otherwise: a lever it calls inert has a derivative of exactly zero, and the report
checks that against autodiff.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from ._spec import Model

__all__ = ["LeverInfluence", "chain_owner", "equations", "lever_influence", "product_groups", "structural_from"]


def equations(model: Model) -> Iterator[tuple[str, str, ast.expr]]:
    """Every equation of ``model`` as ``(owner, field, parsed AST)``: stock inits, flow rates,
    auxiliaries, delay times and inits, smooth inputs, times and inits."""
    for kind, fields in (("stocks", ("init",)), ("flows", ("rate",)), ("auxiliaries", ("equation",)),
                         ("delays", ("time", "init")), ("smooths", ("input", "time", "init"))):
        for el in getattr(model, kind):
            for attr in fields:
                src = getattr(el, attr)
                if src is None:
                    continue
                text = src.strip() if isinstance(src, str) else repr(float(src))
                yield el.name, attr, ast.parse(text, mode="eval").body


# ------------------------------------------------------------------------- constant folding
@dataclass(frozen=True)
class _Val:
    """An equation's value: a known constant (``const``, from the fixed names in ``src``), an
    unknown constant (``const`` None, ``reads`` empty) or a quantity reading ``reads``."""

    const: float | None = None
    reads: frozenset[str] = frozenset()
    src: frozenset[str] = frozenset()

    @property
    def fixed(self) -> bool:
        return not self.reads


_FREE_OF_T = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "min": min, "max": max,
              "logistic": lambda x: (1 + math.tanh(x / 2)) / 2,
              "clip": lambda x, lo, hi: min(max(x, lo), hi),
              "where": lambda c, a, b: a if c else b,
              "safe_div": lambda a, b: 0.0 if b == 0 else a / b,
              "site_mean": lambda x: x}


def _num(fn, *args: float) -> float | None:
    try:
        v = float(fn(*args))
    except (ArithmeticError, ValueError, TypeError):
        return None
    return v if not math.isnan(v) else None


class _Folder:
    """Evaluates equations to :class:`_Val` given fixed values; records every cut (reads
    dropped because a constant operand decided the result, with the constant's sources)."""

    def __init__(self, resolve: Callable[[str], _Val], network: bool = True):
        self.resolve = resolve
        self.network = network
        self.cuts: list[tuple[frozenset[str], frozenset[str]]] = []

    def cut(self, dropped: _Val, by: _Val) -> None:
        if dropped.reads:
            self.cuts.append((dropped.reads, by.src))

    def const(self, value: float | None, *parts: _Val) -> _Val:
        src = frozenset().union(*(p.src for p in parts))
        return _Val(value, frozenset(), src)

    def free(self, *parts: _Val) -> _Val:
        return _Val(None, frozenset().union(*(p.reads for p in parts)))

    def __call__(self, node: ast.expr) -> _Val:
        if isinstance(node, ast.Constant):
            return _Val(float(node.value))
        if isinstance(node, ast.Name):
            return self.resolve(node.id)
        if isinstance(node, ast.UnaryOp):
            v = self(node.operand)
            if v.const is None:
                return v
            op = {ast.USub: lambda x: -x, ast.UAdd: lambda x: x, ast.Not: lambda x: float(not x)}[type(node.op)]
            return self.const(_num(op, v.const), v)
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self(node.left), self(node.right))
        if isinstance(node, ast.Compare):
            a, b = self(node.left), self(node.comparators[0])
            if a.const is not None and b.const is not None:
                ops = {ast.Lt: lambda x, y: x < y, ast.LtE: lambda x, y: x <= y, ast.Gt: lambda x, y: x > y,
                       ast.GtE: lambda x, y: x >= y, ast.Eq: lambda x, y: x == y, ast.NotEq: lambda x, y: x != y}
                return self.const(float(ops[type(node.ops[0])](a.const, b.const)), a, b)
            return self.free(a, b) if a.reads or b.reads else self.const(None, a, b)
        if isinstance(node, ast.BoolOp):
            vals = [self(v) for v in node.values]
            if all(v.const is not None for v in vals):
                fn = all if isinstance(node.op, ast.And) else any
                return self.const(float(fn(bool(v.const) for v in vals)), *vals)
            return self.free(*vals) if any(v.reads for v in vals) else self.const(None, *vals)
        if isinstance(node, ast.IfExp):
            return self.call("where", [node.test, node.body, node.orelse])
        if isinstance(node, ast.Call):
            return self.call(node.func.id if isinstance(node.func, ast.Name) else "", node.args)
        return _Val(None, frozenset({"?"}))  # not produced by a validated model

    def binop(self, op: ast.operator, a: _Val, b: _Val) -> _Val:
        if a.const is not None and b.const is not None:
            fns = {ast.Add: lambda x, y: x + y, ast.Sub: lambda x, y: x - y, ast.Mult: lambda x, y: x * y,
                   ast.Div: lambda x, y: x / y, ast.Pow: lambda x, y: x ** y}
            v = _num(fns[type(op)], a.const, b.const)
            if v == 0.0 and isinstance(op, ast.Mult):  # a zero factor alone decides it
                return self.const(v, a if a.const == 0.0 else b)
            if v == 0.0 and isinstance(op, (ast.Div, ast.Pow)) and a.const == 0.0:
                return self.const(v, a)
            if v is not None:
                return self.const(v, a, b)
            return self.free(a, b) if a.reads or b.reads else self.const(None, a, b)
        if isinstance(op, ast.Mult):
            for z, other in ((a, b), (b, a)):
                if z.const == 0.0:
                    self.cut(other, z)
                    return self.const(0.0, z)
        if isinstance(op, ast.Div) and a.const == 0.0:
            self.cut(b, a)
            return self.const(0.0, a)
        if isinstance(op, ast.Pow):
            if b.const == 0.0:
                self.cut(a, b)
                return self.const(1.0, b)
            if a.const == 0.0 and b.const is not None and b.const > 0:
                return self.const(0.0, a, b)
        if isinstance(op, (ast.Add, ast.Sub)) and b.const == 0.0:
            return a
        if isinstance(op, ast.Add) and a.const == 0.0:
            return b
        if isinstance(op, ast.Sub) and a.const == 0.0 and b.fixed:
            return self.const(None, a, b)
        if a.reads or b.reads:
            return self.free(a, b)
        return self.const(None, a, b)

    def call(self, fn: str, args: list[ast.expr]) -> _Val:
        vals = [self(x) for x in args]
        if fn in ("where",) and vals[0].const is not None:
            keep, drop = (vals[1], vals[2]) if vals[0].const else (vals[2], vals[1])
            self.cut(drop, vals[0])
            return _Val(keep.const, keep.reads, keep.src | vals[0].src)
        if fn in _FREE_OF_T and all(v.const is not None for v in vals):
            return self.const(_num(_FREE_OF_T[fn], *(v.const for v in vals)), *vals)
        if fn == "network" and not self.network:  # no network given: network(x) is 0
            self.cut(vals[0], _Val(0.0))
            return _Val(0.0)
        if fn in ("network", "site_sum") and vals[0].const == 0.0:
            return self.const(0.0, vals[0])
        if fn in ("step", "ramp") and vals[0].const == 0.0:  # zero height or slope
            for v in vals[1:]:
                self.cut(v, vals[0])
            return self.const(0.0, vals[0])
        if fn == "safe_div" and vals[0].const == 0.0:
            self.cut(vals[1], vals[0])
            return self.const(0.0, vals[0])
        if any(v.reads for v in vals) or fn in ("step", "pulse", "ramp"):
            return _Val(None, frozenset().union(*(v.reads for v in vals)) | ({"t"} if fn in ("step", "pulse", "ramp") else set()))
        return self.const(None, *vals)  # a constant we do not compute (a lookup, network(c), ...)


# ------------------------------------------------------------------------------ the graph
class _Graph:
    """The dependency graph of ``model`` with the ``fixed`` parameter values folded in.

    ``reads``: name -> the names it reads (constants read nothing); ``cuts``: ``(dropped reads,
    sources)`` for every read a constant decided away; ``const``: the names found constant."""

    def __init__(self, model: Model, fixed: Mapping[str, float], network: bool = True):
        self.model = model
        self.network = network
        eqs = {(o, f): node for o, f, node in equations(model)}
        self.derived = {a.name: eqs[(a.name, "equation")] for a in model.auxiliaries}
        self.derived.update({f.name: eqs[(f.name, "rate")] for f in model.flows})
        self.exits = {f"{d.name}_exit": d.name for d in model.delays}
        self.smooths = {s.name: s for s in model.smooths}
        self.delays = {d.name for d in model.delays}
        self.states = [s.name for s in model.stocks] + [d.name for d in model.delays] + list(self.smooths)
        self.state_eqs = {k: v for k, v in eqs.items() if k[0] in set(self.states)}
        self.touching: dict[str, list[str]] = {}
        for f in model.flows:
            for end in (f.source, f.sink):
                if end is not None:
                    self.touching.setdefault(end, []).append(f.name)
        for st in model.stocks:
            if st.tally is not None:
                self.touching.setdefault(st.name, []).append(st.tally)
        known = {p.name for p in model.parameters}
        self.params = {n: _Val(float(v), frozenset(), frozenset({n})) for n, v in fixed.items() if n in known}
        # constant states (coinductive): those with a constant start, less those something
        # changes, until the rest are consistent (each assumed constant keeps itself constant)
        assumed: dict[str, _Val] = {}
        for name in self.states:
            v = self._fold({}, self.state_eqs[(name, "init")])[0]
            if v.const is not None:
                assumed[name] = v
        while True:
            vals, cuts = self._evaluate(assumed)
            broken, changed = [], False
            for name, v in list(assumed.items()):
                if name in self.smooths:
                    feeds = [vals[(name, "input")]]
                    ok = feeds[0].const == v.const
                else:
                    feeds = [vals[f] for f in self.touching.get(name, [])]
                    ok = all(f.const == 0.0 for f in feeds)
                if not ok:
                    broken.append(name)
                    continue
                src = v.src.union(*(f.src for f in feeds))  # what keeps it constant, for reasons
                if src != v.src:
                    assumed[name], changed = _Val(v.const, frozenset(), src), True
            for name in broken:
                del assumed[name]
            if not broken and not changed:
                break
        self.cuts = cuts
        self.const = {n: v.const for n, v in vals.items() if isinstance(n, str) and v.const is not None}
        self.const.update({n: v.const for n, v in assumed.items()})
        reads: dict[str, frozenset[str]] = {}
        for name in list(self.derived) + list(self.exits):
            reads[name] = vals[name].reads
        for name in self.states:
            if name in assumed:
                reads[name] = frozenset()
                continue
            fields = ("init", "input", "time") if name in self.smooths else (
                ("init", "time") if name in self.delays else ("init",))
            r = frozenset().union(*(vals[(name, f)].reads for f in fields))
            reads[name] = r | frozenset(self.touching.get(name, []))
        self.reads = reads

    def _fold(self, env: dict, node: ast.expr) -> tuple[_Val, list]:
        folder = _Folder(lambda n: env.get(n) or self.params.get(n) or _Val(None, frozenset({n})), self.network)
        return folder(node), folder.cuts

    def _evaluate(self, assumed: Mapping[str, _Val]) -> tuple[dict, list]:
        """Fold every equation given the ``assumed`` constant states: ``{name or (state, field):
        value}`` (a derived name's value is that of its equation) and the cuts made."""
        vals: dict = {}
        refs: dict[str, _Val] = {}  # what an equation sees when it reads a name

        def resolve(name: str) -> _Val:
            if name in refs:
                return refs[name]
            if name in self.params:
                return self.params[name]
            if name in assumed:
                v = assumed[name]
                refs[name] = _Val(v.const, frozenset(), v.src)
            elif name in self.derived:
                refs[name] = _Val(None, frozenset({name}))  # a cycle guard; replaced below
                v = folder(self.derived[name])
                vals[name] = v
                refs[name] = v if v.fixed else _Val(None, frozenset({name}))
            elif name in self.exits:  # order * last stage / time: zero with an empty delay
                content = resolve(self.exits[name])
                zero = content.const == 0.0
                vals[name] = content if zero else _Val(None, frozenset({self.exits[name]}))
                refs[name] = content if zero else _Val(None, frozenset({name}))
            else:
                refs[name] = _Val(None, frozenset({name}))
            return refs[name]

        folder = _Folder(resolve, self.network)
        for name in list(self.derived) + list(self.exits):
            resolve(name)
        for key, node in self.state_eqs.items():
            vals[key] = folder(node)
        return vals, folder.cuts

    def reachable(self, target: str) -> set[str]:
        """Every name ``target`` depends on (through any chain of reads), ``target`` included."""
        seen = {target}
        stack = [target]
        while stack:
            for r in self.reads.get(stack.pop(), ()):
                if r not in seen:
                    seen.add(r)
                    stack.append(r)
        return seen


@dataclass(frozen=True)
class LeverInfluence:
    """Whether a lever acts on the target: ``active``; if not, ``reason`` (words) and
    ``switched_off_by`` (the fixed parameters whose values cut its paths; empty when the
    structure itself has no path)."""

    name: str
    active: bool
    reason: str = ""
    switched_off_by: tuple[str, ...] = ()


def lever_influence(model: Model, levers: Iterable[str], fixed: Mapping[str, float],
                    target: str = "adopted", network: bool = True) -> dict[str, LeverInfluence]:
    """For each lever, whether ``target`` (a stock) depends on it given the ``fixed`` parameter
    values (name -> one value for every site; parameters not given, drawn ones for example,
    stay free) and whether the sites are joined by a ``network`` (without one, ``network(x)``
    is 0). Each lever is asked about alone: it is freed and the others keep their fixed values.
    See the module docstring for the rules."""
    from .._errors import ModelError

    if target not in {s.name for s in model.stocks} | {d.name for d in model.delays}:
        raise ModelError(f"model {model.name!r}: {target!r} is not a stock or delay")
    structural = _structural(model, network).reachable(target)
    out: dict[str, LeverInfluence] = {}
    for lever in levers:
        model.parameter(lever)  # raises ModelError naming it when unknown
        if lever not in structural:
            read = any(lever in _names(node) for _, _, node in equations(model))
            why = (f"{lever} is read by no equation of this structure" if not read else
                   f"no chain of equations leads from {lever} to {target} in this structure"
                   + ("" if network else " without a network between sites"))
            out[lever] = LeverInfluence(lever, False, why)
            continue
        g = _Graph(model, {k: v for k, v in fixed.items() if k != lever}, network)
        if lever in g.reachable(target):
            out[lever] = LeverInfluence(lever, True)
            continue
        # the values that cut the lever off where it enters (else anywhere downstream of it)
        near = [src for dropped, src in g.cuts if lever in dropped]
        far = [src for dropped, src in g.cuts if any(lever in structural_from(model, d, network) for d in dropped)]
        by: set[str] = set().union(*(near or far))
        by.discard(lever)
        names = tuple(sorted(by))
        vals = ", ".join(f"{n} = {fixed[n]:g}" for n in names if n in fixed)
        out[lever] = LeverInfluence(lever, False, f"switched off by fixed parameter values ({vals})"
                                    if vals else "switched off by fixed parameter values", names)
    return out


def structural_from(model: Model, name: str, network: bool = True) -> set[str]:
    """Names ``name`` depends on in the structure alone (no values folded)."""
    return _structural(model, network).reachable(name)


@functools.lru_cache(maxsize=32)
def _structural(model: Model, network: bool = True) -> _Graph:
    return _Graph(model, {}, network)


def _names(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


# ------------------------------------------------------------------------- product groups
def _factor_occurrences(model: Model, name: str) -> list[tuple[str, str, tuple[int, int, bool], int]]:
    """Where ``name`` occurs: ``(owner, field, chain, sign)`` per occurrence, the chain named by
    its span in the equation (and whether it is the name alone).
    A chain is a maximal run of ``*`` and ``/``; sign is +1 in a numerator, -1 in a
    denominator; an occurrence outside any product is a chain of its own."""
    out = []
    for owner, field, root in equations(model):
        parents: dict[int, ast.AST] = {}
        for node in ast.walk(root):
            for child in ast.iter_child_nodes(node):
                parents[id(child)] = node
        for node in ast.walk(root):
            if not (isinstance(node, ast.Name) and node.id == name):
                continue
            top, sign = node, 1
            while id(top) in parents:
                parent = parents[id(top)]
                if not (isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Mult, ast.Div))):
                    break
                if isinstance(parent.op, ast.Div) and parent.right is top:
                    sign = -sign
                top = parent
            out.append((owner, field, (top.col_offset, top.end_col_offset, top is node), sign))
    return sorted(out)


def product_groups(model: Model, names: Iterable[str]) -> list[tuple[str, ...]]:
    """``names`` grouped where the model uses them only as their product: two parameters are
    one lever when every product of factors (a run of ``*`` and ``/``) that holds one holds the
    other, on the same side of the fraction, and neither occurs anywhere else. Scaling either
    by a factor then changes the model exactly as scaling the other does, so their elasticities
    are equal. Groups keep the order of ``names``; a name read nowhere is a group of its own."""
    names = list(dict.fromkeys(names))
    occ = {n: _factor_occurrences(model, n) for n in names}
    groups: list[list[str]] = []
    for n in names:
        for g in groups:
            first = g[0]
            if occ[n] and occ[n] == occ[first] and not any(k[2][2] for k in occ[n]):
                g.append(n)
                break
        else:
            groups.append([n])
    return [tuple(g) for g in groups]


def chain_owner(model: Model, group: tuple[str, ...]) -> str | None:
    """The auxiliary or flow whose whole equation is the product that holds ``group`` (``push``
    for ``push_strength * p * ...``), when there is exactly one such; else None."""
    if len(group) < 2:
        return None
    occ = _factor_occurrences(model, group[0])
    owners = {(o, f) for o, f, _, _ in occ}
    if len(owners) != 1:
        return None
    owner, field = next(iter(owners))
    if field not in ("equation", "rate"):
        return None
    root = next(node for o, f, node in equations(model) if (o, f) == (owner, field))
    chains = {c[:2] for _, _, c, _ in occ}
    return owner if chains == {(root.col_offset, root.end_col_offset)} else None
