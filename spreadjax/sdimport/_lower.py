"""Lower the neutral IR (:class:`~._ir.Project`) onto a :class:`spreadjax.core.Model`.

* Constants become :class:`Parameter` s (users put priors on them); per-site constants give
  per-site values (:attr:`ImportedModel.site_values`).
* A stock whose net rate is a sum/difference of named variables gets real :class:`Flow` s (a
  variable entering one stock and leaving another is one flow between them; entering only: from
  a cloud; leaving only: to a cloud), so conservation and the stochastic mode keep working. Any
  other net rate becomes one flow ``<stock>_net`` from a cloud, and the stock is not counted.
* ``DELAY1/DELAY3/DELAYN`` (and the ``I`` forms) become material :class:`Delay` s fed by a flow
  from a cloud; the call's value is the delay's outflow ``<delay>_exit``. Vensim's ``DELAY N``
  follows Vensim: its order is cut at the start until ``order * TIME STEP <= delay time``, and
  with Euler steps and a delay time that changes during the run, stage ``k`` (from 0) empties at
  ``order / delay time`` as it was ``k`` steps earlier (explicit stage stocks and flows, the
  value is the last stage's outflow). ``SMOOTH/SMOOTH3/
  SMOOTHN`` (and ``I`` forms) become :class:`Smooth` s. ``INITIAL(x)`` is the parameter
  expression of ``x`` at the start (exact: it never changes).
* The subscript dimension chosen as ``sites`` maps onto spreadjax sites; every other dimension is
  expanded into one variable per element, ``name__element``. ``SUM(x[d!])`` is an explicit sum
  over a non-site dimension and ``site_sum(x)`` over the site dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._errors import ModelError
from ._ir import BinOp, Call, Node, Num, Project, Ref, Unary, Variable, map_refs, parent_dims, walk

#: IR functions with a direct spreadjax equivalent: name -> spreadjax function
_DIRECT = {"MIN": "min", "MAX": "max", "ABS": "abs", "EXP": "exp", "LN": "log", "SQRT": "sqrt",
           "STEP": "step", "RAMP": "ramp", "ZIDZ": "safe_div", "SIN": "sin", "COS": "cos", "TAN": "tan",
           "ARCSIN": "arcsin", "ARCCOS": "arccos", "ARCTAN": "arctan", "SINH": "sinh", "COSH": "cosh",
           "TANH": "tanh", "INTEGER": "trunc", "MODULO": "modulo"}
#: array reductions over a subscript dimension: IR name -> how two terms combine
_REDUCE = {"SUM": "+", "PROD": "*", "VMIN": "MIN", "VMAX": "MAX"}
_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**", "<": "<", ">": ">", "<=": "<=",
        ">=": ">=", "=": "==", "<>": "!=", "and": "and", "or": "or"}
_SMOOTHS = {"SMOOTH": (1, False), "SMOOTHI": (1, True), "SMOOTH3": (3, False), "SMOOTH3I": (3, True),
            "SMOOTHN": (None, True)}
_DELAYS = {"DELAY1": (1, False), "DELAY1I": (1, True), "DELAY3": (3, False), "DELAY3I": (3, True),
           "DELAYN": (None, True)}
#: IR functions whose value changes only when their arguments do (not STEP, RAMP, delays, ...)
_STATIC_FUNCTIONS = (frozenset(_DIRECT) - {"STEP", "RAMP"}) | {
    "IF_THEN_ELSE", "XIDZ", "LOOKUP_CALL"}


@dataclass(frozen=True)
class ImportedModel:
    """An imported model with its simulation settings (model time units, usually years)."""

    model: Any  # spreadjax.core.Model
    start: float
    end: float
    dt: float
    output_every: float
    solver: str  # "euler" | "rk4"
    sites: tuple[str, ...] = ()  # elements of the site dimension; () when there is none
    site_dimension: str | None = None
    #: parameters whose value differs between sites: ((name, (value per site, ...)), ...)
    site_values: tuple[tuple[str, tuple[float, ...]], ...] = ()
    #: spreadjax name -> the source variable (with its subscript elements)
    names: tuple[tuple[str, str], ...] = ()
    source: str = ""


@dataclass
class _Entry:
    """One expanded variable: a source variable at one combination of non-site elements."""

    name: str
    var: Variable
    combo: dict[str, str]  # dimension -> element (non-site dimensions), binding the right-hand side
    label: str
    key: tuple[str, ...] = ()  # the non-site elements by position (a dimension may repeat: x[d, d])
    eqs: dict[str | None, Node] = field(default_factory=dict)  # site element (or None) -> resolved
    inits: dict[str | None, Node] = field(default_factory=dict)


class _Lowering:
    def __init__(self, project: Project, sites: str | None):
        self.p = project
        self.path = project.path
        self.dims = {d: tuple(els) for d, els in project.dimensions}
        self.parent = parent_dims(self.dims)
        if sites is not None and sites not in self.dims:
            from ._ir import canonical_name

            if canonical_name(sites) in self.dims:
                sites = canonical_name(sites)
            else:
                known = ", ".join(d for d in self.dims if self.parent[d] == d) or "none"
                raise ModelError(f"{self.path}: no subscript dimension {sites!r} to map onto sites; dimensions: {known}")
        if sites is not None and self.parent[sites] != sites:
            raise ModelError(f"{self.path}: {sites!r} is a subrange of {self.parent[sites]!r}; choose the full dimension")
        self.site = sites
        self.site_elements = self.dims[sites] if sites else ()
        self.vars = {v.name: v for v in project.variables}
        self.entries: dict[str, _Entry] = {}
        self.by_var: dict[str, list[_Entry]] = {}
        self.generated: dict[str, list] = {}  # entry name -> generated delays/smooths/flows
        self._init_stack: list[str] = []
        self._site: str | None = None  # the site element being lowered

    # -- expansion --------------------------------------------------------------------------
    def fail(self, var: Variable | None, message: str) -> ModelError:
        where = f"{self.path}:{var.line}" if var is not None and var.line else self.path
        return ModelError(f"{where}: {message}")

    def expand(self) -> None:
        for v in self.p.variables:
            for d in v.dims:
                if d not in self.dims:
                    raise self.fail(v, f"{v.source_name!r}: unknown subscript dimension {d!r}")
            free = [d for d in v.dims if d != self.site]
            keys: list[tuple[str, ...]] = [()]
            for d in free:
                keys = [k + (e,) for k in keys for e in self.dims[d]]
            if v.elements and self.site not in v.dims:  # only the elements with an equation
                defined = {tuple(k) for k, _ in v.elements}
                keys = [k for k in keys if k in defined]
            for key in keys:
                combo = dict(zip(free, key))
                name = v.name + "".join(f"__{el}" for el in key)
                label = v.source_name + (f"[{', '.join(key)}]" if free else "")
                if name in self.entries:
                    raise self.fail(v, f"{label!r} expands to {name!r}, which another variable already uses")
                entry = _Entry(name, v, combo, label, key)
                self.entries[name] = entry
                self.by_var.setdefault(v.name, []).append(entry)

    def site_list(self, v: Variable) -> tuple[str | None, ...]:
        return self.site_elements if self.site in v.dims else (None,)

    def element_node(self, v: Variable, free_key: tuple[str, ...], site: str | None, init: bool = False) -> Node:
        """The variable's equation (or init) at one element combination (non-site elements by
        position, and the site element)."""
        it = iter(free_key)
        key = tuple(site if d == self.site else next(it) for d in v.dims)
        table = v.element_inits if init else v.elements
        if table:
            for k, node in table:
                if tuple(k) == key:
                    return node
            if init and v.init is not None:
                return v.init
            raise self.fail(v, f"{v.source_name!r}: no equation for element(s) {list(key)}")
        node = v.init if init else v.equation
        if node is None:
            what = "initial value" if init else "equation"
            raise self.fail(v, f"{v.source_name!r} has no {what}")
        return node

    # -- resolving references ------------------------------------------------------------------
    def resolve(self, node: Node, v: Variable, binding: dict[str, str], site: str | None) -> Node:
        """Replace references by expanded entry names; expand SUM; mark site sums."""
        if isinstance(node, Num):
            return node
        if isinstance(node, Ref):
            return self.resolve_ref(node, v, binding, site)
        if isinstance(node, BinOp):
            return BinOp(node.op, self.resolve(node.left, v, binding, site), self.resolve(node.right, v, binding, site))
        if isinstance(node, Unary):
            return Unary(node.op, self.resolve(node.operand, v, binding, site))
        if isinstance(node, Call):
            if node.fn in _REDUCE:
                return self.resolve_sum(node.args[0], v, binding, site, node.fn)
            if node.fn == "LOOKUP_CALL":
                lk = node.args[0]
                target = self.vars.get(lk.name)
                if target is None or target.kind != "lookup":
                    raise self.fail(v, f"unsupported function {lk.name.upper().replace('_', ' ')!r} in {v.source_name!r}")
                if target.dims:
                    raise self.fail(v, f"unsupported construct: subscripted lookup {target.source_name!r}")
                return Call("LOOKUP_CALL", (Ref(lk.name), self.resolve(node.args[1], v, binding, site)))
            return Call(node.fn, tuple(self.resolve(a, v, binding, site) for a in node.args))
        raise self.fail(v, f"cannot lower {node!r}")  # pragma: no cover

    def resolve_ref(self, ref: Ref, v: Variable, binding: dict[str, str], site: str | None) -> Node:
        if ref.name == "time" and ref.name not in self.vars:
            return Ref("t")
        target = self.vars.get(ref.name)
        if target is None:
            raise self.fail(v, f"{v.source_name!r} reads {ref.name!r}, which the model does not define")
        if target.kind == "lookup":
            raise self.fail(v, f"{v.source_name!r} reads the lookup {target.source_name!r} without calling it")
        subs = ref.subscripts
        if subs and len(subs) != len(target.dims):
            raise self.fail(v, f"{v.source_name!r} reads {target.source_name}{list(subs)}, but it has "
                               f"{len(target.dims)} subscript(s)")
        if not subs and target.dims:
            # XMILE-style: an unsubscripted reference to an array reads the same elements
            subs = target.dims
        elements: list[str] = []  # the non-site elements, by position
        site_here = False
        for d, s in zip(target.dims, subs):
            if s.endswith("!"):
                raise self.fail(v, f"{v.source_name!r}: {s} outside SUM")
            if s == "*":  # inside a site sum: the per-site array itself
                site_here = True
                continue
            if s in self.dims:  # a dimension: bound by the left-hand side
                el = binding.get(self.parent[s])
                if el is None:
                    raise self.fail(v, f"{v.source_name!r} reads {target.source_name}[{s}], but {s!r} is "
                                       f"not a subscript of {v.source_name!r}")
                if self.parent[s] == self.site and el == "*":
                    site_here = True
                    continue
            else:
                el = s
            if el not in self.dims[self.parent[d]]:
                raise self.fail(v, f"{v.source_name!r} reads {target.source_name}[{el}], not an element of {d!r}")
            if d == self.site:
                if el != site:
                    raise self.fail(v, f"unsupported construct: {v.source_name!r} reads the value of "
                                       f"{target.source_name!r} at the single site {el!r}; equations may read "
                                       f"only their own site (or SUM over sites)")
                site_here = True
                continue
            elements.append(el)
        name = target.name + "".join(f"__{el}" for el in elements)
        if name not in self.entries:
            picked = ", ".join(elements)
            raise self.fail(v, f"{v.source_name!r} reads {target.source_name}[{picked}], which has no equation")
        return Ref(name)

    def resolve_sum(self, arg: Node, v: Variable, binding: dict[str, str], site: str | None,
                    fn: str = "SUM") -> Node:
        """``SUM``/``VMIN``/``VMAX`` of ``x[dim!]``: the terms written out, combined."""
        bang = []
        for n in walk(arg):
            if isinstance(n, Ref):
                for s in n.subscripts:
                    if s.endswith("!") and s[:-1] not in bang:
                        bang.append(s[:-1])
        if not bang:
            raise self.fail(v, f"{v.source_name!r}: {fn} needs a summed dimension, as in {fn}(x[dim!])")
        for d in bang:
            if d not in self.dims:
                raise self.fail(v, f"{v.source_name!r}: SUM over the unknown dimension {d!r}")
        combos: list[dict[str, str]] = [{}]
        over_sites = False
        for d in bang:
            if self.parent[d] == self.site:
                if d != self.site:
                    raise self.fail(v, f"unsupported construct: SUM over the subrange {d!r} of the site dimension")
                if fn != "SUM":
                    raise self.fail(v, f"unsupported construct: {fn} over the site dimension {d!r}")
                over_sites = True
                combos = [{**c, d: "*"} for c in combos]
            else:
                combos = [{**c, d: e} for c in combos for e in self.dims[d]]
        terms = []
        for c in combos:
            bound = map_refs(arg, lambda r: Ref(r.name, tuple(
                c[s[:-1]] if s.endswith("!") and s[:-1] in c else s for s in r.subscripts)))
            extra = {self.parent[d]: c[d] for d in c}
            terms.append(self.resolve(bound, v, {**binding, **extra}, site))
        total = terms[0]
        for t in terms[1:]:
            op = _REDUCE[fn]
            total = BinOp(op, total, t) if op in ("+", "*") else Call(op, (total, t))
        return Call("_SITE_SUM", (total,)) if over_sites else total

    # -- lowering ------------------------------------------------------------------------------
    def run(self):
        from ..core import Auxiliary, Flow, Model, Parameter, Stock

        self.expand()
        for e in self.entries.values():
            v = e.var
            if v.kind == "lookup":
                continue
            for s in self.site_list(v):
                binding = {**e.combo, **({self.site: s} if s is not None else {})}
                e.eqs[s] = self.resolve(self.element_node(v, e.key, s), v, binding, s)
                if v.non_negative and v.kind == "aux":  # an XMILE non-negative flow: max(0, rate)
                    e.eqs[s] = Call("MAX", (Num(0.0), e.eqs[s]))
                if v.kind == "stock":
                    e.inits[s] = self.resolve(self.element_node(v, e.key, s, init=True), v, binding, s)
        parameters, auxes, stocks, flows, lookups = [], [], [], [], []
        smooths, delays = [], []
        site_values = []
        names = []
        constant = {n for n, e in self.entries.items() if e.var.kind == "constant" or (
            e.var.kind == "aux" and all(_is_number(x) for x in e.eqs.values()))}
        # aux entries whose whole equation is a SMOOTH become that smooth, named after them
        whole_smooth = {n for n, e in self.entries.items() if e.var.kind == "aux" and n not in constant
                        and all(isinstance(x, Call) and x.fn in _SMOOTHS for x in e.eqs.values())}
        self.whole_smooth = whole_smooth
        self.constant = constant
        lowered: dict[str, str] = {}
        for n, e in self.entries.items():
            v = e.var
            names.append((n, e.label))
            if v.kind == "lookup":
                xs, ys, ext = v.lookup
                lookups.append(self.make_lookup(n, xs, ys, ext, v))
                continue
            if n in constant:
                values = [_number(x) for x in e.eqs.values()]
                parameters.append(Parameter(n, values[0], v.units or "1", v.doc))
                if len(set(values)) > 1:
                    site_values.append((n, tuple(values)))
                continue
            if v.kind == "stock":
                continue
            lowered[n] = self.per_site(e, lambda s: self.expr(e.eqs[s], e, top=n in whole_smooth))
        # stocks: decompose net rates into flows
        flow_of: dict[str, dict[str, str]] = {}
        stock_terms: dict[str, list[tuple[int, str]] | None] = {}
        for n, e in self.entries.items():
            if e.var.kind != "stock":
                continue
            per_site = [_terms(x) for x in e.eqs.values()]
            terms = per_site[0] if all(t == per_site[0] for t in per_site) else None
            if e.var.non_negative:  # limited below by the stock itself: one net flow (below)
                if self.p.method != "euler":
                    raise self.fail(e.var, f"unsupported construct: the non-negative stock {e.label!r} "
                                           f"with {self.p.method.upper()} (XMILE defines it for Euler steps)")
                terms = None
            ok = terms is not None and all(
                name in self.entries and self.entries[name].var.kind == "aux" and name not in constant
                and name not in whole_smooth for _, name in terms)
            if ok and len({name for _, name in terms}) != len(terms):
                ok = False
            stock_terms[n] = terms if ok else None
        changed = True
        while changed:
            changed = False
            uses: dict[str, list[tuple[int, str]]] = {}
            for st, terms in stock_terms.items():
                for sign, name in terms or ():
                    uses.setdefault(name, []).append((sign, st))
            bad = {name for name, u in uses.items()
                   if sum(1 for s, _ in u if s > 0) > 1 or sum(1 for s, _ in u if s < 0) > 1}
            for st, terms in stock_terms.items():
                if terms is not None and any(name in bad for _, name in terms):
                    stock_terms[st] = None
                    changed = True
        for name, u in uses.items():
            if name in bad:
                continue
            flow_of[name] = {"sink": next((st for s, st in u if s > 0), None),
                             "source": next((st for s, st in u if s < 0), None)}
        for n, e in self.entries.items():
            v = e.var
            if v.kind != "stock":
                continue
            init = self.per_site(e, lambda s: self.init_expr(e.inits[s], e, s), what="initial value")
            if stock_terms[n] is not None:
                stocks.append(Stock(n, init, v.units or "1", v.doc, counted=True))
            else:
                stocks.append(Stock(n, init, v.units or "1", v.doc, counted=False))
                rate = self.per_site(e, lambda s: self.expr(e.eqs[s], e))
                if v.non_negative:  # Euler: stock + dt * max(net, -stock / dt) = max(stock + dt * net, 0)
                    rate = f"max({rate}, -{n} / {float(self.p.dt)!r})"
                flows.append(Flow(f"{n}_net", rate, None, n, doc=f"net rate of {e.label}"))
        for n, e in self.entries.items():
            if n not in lowered:
                continue
            v = e.var
            if n in flow_of:
                flows.append(Flow(n, lowered[n], flow_of[n]["source"], flow_of[n]["sink"], v.units or "1/yr", v.doc))
            elif n in whole_smooth:
                pass  # the smooth generated below carries this name
            else:
                auxes.append(Auxiliary(n, lowered[n], v.units or "1", v.doc))
        for gen in self.generated.values():
            for kind, el in gen:
                {"smooth": smooths, "delay": delays, "flow": flows, "stock": stocks}[kind].append(el)
        try:
            model = Model(
                _model_name(self.path), parameters=tuple(parameters), stocks=tuple(stocks),
                flows=tuple(flows), auxiliaries=tuple(auxes), delays=tuple(delays), smooths=tuple(smooths),
                doc=f"imported from {self.path}", **({"lookups": tuple(lookups)} if lookups else {}))
        except ModelError as exc:
            raise ModelError(f"{self.path}: the imported model is inconsistent: {exc}") from None
        from ..core import compile_model

        try:
            compile_model(model)
        except ModelError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        dt = _snap(self.p.dt, self.p.stop - self.p.start)
        every = _snap(self.p.saveper, self.p.stop - self.p.start) if self.p.saveper > 0 else dt
        return ImportedModel(
            model=model, start=self.p.start, end=self.p.stop, dt=dt, output_every=every,
            solver=self.p.method, sites=tuple(self.site_elements), site_dimension=self.site,
            site_values=tuple(site_values), names=tuple(names), source=self.path)

    def make_lookup(self, name, xs, ys, ext, v):
        try:
            from ..core._spec import Lookup
        except ImportError:  # pragma: no cover - until lookups exist in core
            raise self.fail(v, f"unsupported construct: lookup {v.source_name!r} (this spreadjax has no lookups)") from None
        return Lookup(name, tuple(xs), tuple(ys), ext, v.units or "1", v.doc)

    def per_site(self, e: _Entry, fn, what: str = "equation") -> str:
        """Lower per site; the sites must agree (only constants may differ between sites)."""
        out = None
        gen0 = None
        for s in self.site_list(e.var):
            self.generated[e.name] = []
            self._site = s
            text = fn(s)
            gen = self.generated[e.name]
            if out is None:
                out, gen0 = text, gen
            elif text != out or gen != gen0:
                raise self.fail(e.var, f"unsupported construct: the {what} of {e.label!r} differs between "
                                       f"sites ({self.site!r} elements); only constants may differ")
        self.generated[e.name] = gen0 or []
        return out

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, node: Node, e: _Entry, top: bool = False) -> str:
        """A spreadjax expression string for a resolved node."""
        r = lambda x: self.expr(x, e)  # noqa: E731
        if isinstance(node, Num):
            return _num(node.value, e, self)
        if isinstance(node, Ref):
            return node.name
        if isinstance(node, BinOp):
            return f"({r(node.left)} {_OPS[node.op]} {r(node.right)})"
        if isinstance(node, Unary):
            return f"(not {r(node.operand)})" if node.op == "not" else f"({node.op}{r(node.operand)})"
        fn, args = node.fn, node.args
        if fn in _DIRECT:
            return f"{_DIRECT[fn]}({', '.join(r(a) for a in args)})"
        if fn == "IF_THEN_ELSE":
            return f"where({r(args[0])}, {r(args[1])}, {r(args[2])})"
        if fn == "XIDZ":
            return f"where({r(args[1])} == 0, {r(args[2])}, safe_div({r(args[0])}, {r(args[1])}))"
        if fn == "PULSE":
            width = args[1]
            dt = repr(float(self.p.dt))
            w = dt if _is_number(width) and _number(width) == 0 else (
                f"where({r(width)} == 0, {dt}, {r(width)})" if not _is_number(width) else r(width))
            return f"pulse({r(args[0])}, {w})"
        if fn == "PULSE_TRAIN":  # (start, width, interval, end): 1 for `width` every `interval`
            start, width, interval, end = (r(a) for a in args)
            dt = repr(float(self.p.dt))
            w = dt if _is_number(args[1]) and _number(args[1]) == 0 else f"where({width} == 0, {dt}, {width})"
            return (f"where((t >= {start}) and (t < {end}) and (modulo(t - {start}, {interval}) < {w}), "
                    f"1.0, 0.0)")
        if fn == "RAMP" and len(args) == 2:
            return f"ramp({r(args[0])}, {r(args[1])}, 1e300)"
        if fn == "INITIAL":
            return f"({self.init_expr(args[0], e, None)})"
        if fn == "LOOKUP_CALL":
            return f"{args[0].name}({r(args[1])})"
        if fn == "_SITE_SUM":
            return f"site_sum({r(args[0])})"
        if fn in _SMOOTHS:
            return self.smooth(node, e, top)
        if fn in _DELAYS:
            return self.delay(node, e)
        if fn == "ACTIVE_INITIAL":  # (value during the run, value at initialisation)
            return r(args[0])
        if fn == "_PREVIOUS":
            return self.previous(r(args[0]), self.init_expr(args[0], e, None), e, "previous")
        if fn == "DELAY_FIXED":
            return self.delay_fixed(node, e)
        raise self.fail(e.var, f"unsupported function {fn.replace('_', ' ')} in {e.label!r}")

    def _new_name(self, e: _Entry, kind: str) -> str:
        taken = {el.name for _, el in self.generated[e.name]}
        base = f"{e.name}_{kind}"
        name, k = base, 2
        while name in taken or name in self.entries:
            name, k = f"{base}{k}", k + 1
        return name

    def _order(self, node: Node, e: _Entry) -> int:
        """The order of a DELAYN/SMOOTHN: its value at the start time (Vensim fixes it then)."""
        value = _fold(self.at_start(node, e, None), self)
        if value is None or value != int(value) or value < 1:
            raise self.fail(e.var, f"{e.label!r}: the order of a DELAYN/SMOOTHN must be an integer >= 1 "
                                   "known before the run")
        return int(value)

    def smooth(self, node: Call, e: _Entry, top: bool) -> str:
        from ..core import Smooth

        order, given = _SMOOTHS[node.fn]
        args = node.args
        if order is None:
            order = self._order(args[3], e)
        init = self.init_expr(args[2] if given else args[0], e, None)
        name = e.name if top else self._new_name(e, "smooth")
        self.generated[e.name].append(("smooth", Smooth(
            name, self.expr(args[0], e), self.expr(args[1], e), order, init, e.var.units or "1",
            f"{node.fn} in {e.label}")))
        return name

    def delay(self, node: Call, e: _Entry) -> str:
        from ..core import Delay, Flow

        order, given = _DELAYS[node.fn]
        args = node.args
        # initial content: the initial outflow times the delay time (Vensim)
        out0 = args[2] if given else args[0]
        content = self.init_expr(BinOp("*", out0, args[1]), e, None)
        if order is None:
            order = self._order(args[3], e)
            if self.p.path.lower().endswith(".mdl"):
                order = self._fit_order(order, args[1], e)
                if order > 1 and self.p.method == "euler" and self._varies(args[1]):
                    return self.delay_n(node, e, order, content)
        name = self._new_name(e, "delay")
        self.generated[e.name].append(("delay", Delay(
            name, self.expr(args[1], e), order, content, e.var.units or "1", f"{node.fn} in {e.label}",
            counted=False)))
        self.generated[e.name].append(("flow", Flow(
            f"{name}_in", self.expr(args[0], e), None, name, doc=f"input of {node.fn} in {e.label}")))
        self.generated[e.name].append(("flow", Flow(
            f"{name}_out", f"{name}_exit", name, None, doc=f"output of {node.fn} in {e.label}")))
        return f"{name}_exit"

    def _fit_order(self, order: int, time: Node, e: _Entry) -> int:
        """Vensim's DELAY N order: cut at the start until ``order * dt <= delay time`` (at least 1),
        so no stage empties faster than one step (SDXorg tests/delay_pipeline: order 3 of a 1.25
        delay at dt 0.5 runs as order 2). A delay time unknown before the run keeps ``order``."""
        value = _fold(self.at_start(time, e, None), self)
        while value is not None and order > 1 and order * self.p.dt > value * (1 + 1e-9):
            order -= 1
        return order

    def _varies(self, node: Node, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a resolved expression may change during the run (reads time, a state or a
        function of them); False only for constants and auxiliaries of constants."""
        for n in walk(node):
            if isinstance(n, Call) and n.fn not in _STATIC_FUNCTIONS:
                return True
            if not isinstance(n, Ref) or n.name in self.constant:
                continue
            target = self.entries.get(n.name)
            if target is None or n.name in seen or target.var.kind not in ("aux", "lookup"):
                return True  # time, a stock, or a loop
            if target.var.kind == "aux" and any(self._varies(x, seen | {n.name}) for x in target.eqs.values()):
                return True
        return False

    def delay_n(self, node: Call, e: _Entry, order: int, content: str) -> str:
        """Vensim's ``DELAY N`` with a delay time that changes: ``order`` stage stocks, each
        starting at ``content / order``; stage ``k`` (from 0) empties at ``order / T_k`` with
        ``T_k`` the delay time ``k`` steps earlier (one-step shifts, Euler; Vensim's published
        output, SDXorg tests/delays). The value is the last stage's outflow."""
        from ..core import Flow, Stock

        x, time = node.args[0], node.args[1]
        name = self._new_name(e, "delay")
        units = e.var.units or "1"
        times = [self.expr(time, e)]
        start = self.init_expr(time, e, None)
        for _ in range(order - 1):
            times.append(self.previous(times[-1], start, e, "delay_time"))
        stages = [f"{name}_stage{k + 1}" for k in range(order)]
        for stage in stages:
            self.generated[e.name].append(("stock", Stock(
                stage, f"({content}) / {order}", units, f"stage of {node.fn} in {e.label}", counted=False)))
        self.generated[e.name].append(("flow", Flow(
            f"{name}_in", self.expr(x, e), None, stages[0], doc=f"input of {node.fn} in {e.label}")))
        for k, stage in enumerate(stages):
            last = k == order - 1
            self.generated[e.name].append(("flow", Flow(
                f"{name}_out" if last else f"{name}_stage{k + 1}_out", f"{stage} * {order} / {times[k]}",
                stage, None if last else stages[k + 1], doc=f"stage {k + 1} outflow of {node.fn} in {e.label}")))
        return f"{name}_out"

    def previous(self, value: str, init: str, e: _Entry, kind: str) -> str:
        """A state holding ``value`` one step earlier (``init`` at the start): the stock ``L`` with
        rate ``(value - L) / dt``, exact for Euler steps (``L + dt * (value - L) / dt = value``)."""
        from ..core import Flow, Stock

        if self.p.method != "euler":
            raise self.fail(e.var, f"unsupported construct: {e.label!r} needs a value one step back "
                                   f"(DELAY FIXED, Vensim's DELAY N), which is exact only with Euler steps")
        name = self._new_name(e, kind)
        dt = repr(float(self.p.dt))
        self.generated[e.name].append(("stock", Stock(name, init, e.var.units or "1",
                                                      f"one step back, in {e.label}", counted=False)))
        self.generated[e.name].append(("flow", Flow(f"{name}_shift", f"({value} - {name}) / {dt}", None, name,
                                                    doc=f"one step shift in {e.label}")))
        return name

    def delay_fixed(self, node: Call, e: _Entry) -> str:
        """``DELAY FIXED(x, T, init)``: ``x(t - T)`` once ``t >= start + T``, ``init`` before. ``T``
        is read at the start and rounded half up to ``k >= 1`` whole steps: a chain of ``k``
        one-step shifts."""
        x, time, init = node.args
        value = _fold(self.at_start(time, e, None), self)
        if value is None or value < 0:
            raise self.fail(e.var, f"{e.label!r}: the delay time of DELAY FIXED must be a number >= 0 "
                                   "known before the run")
        # Vensim: rounded half up to whole steps, at least one (SDXorg tests/delay_fixed)
        steps = max(1, int(math.floor(value / self.p.dt + 0.5 + 1e-9)))
        if steps > 1000:
            raise self.fail(e.var, f"unsupported construct: DELAY FIXED of {steps} steps in {e.label!r} "
                                   "(at most 1000: one state per step)")
        out = self.expr(x, e)
        start = self.init_expr(init, e, None)
        for _ in range(steps):
            out = self.previous(out, start, e, "fixed")
        return out

    # -- initial values ------------------------------------------------------------------------
    def init_expr(self, node: Node, e: _Entry, site: str | None) -> str:
        """A parameter-only expression for the value of ``node`` at the start time."""
        return self.expr(self.at_start(node, e, site), e)

    def at_start(self, node: Node, e: _Entry, site: str | None) -> Node:
        f = lambda x: self.at_start(x, e, site)  # noqa: E731
        if isinstance(node, Num):
            return node
        if isinstance(node, Ref):
            if node.name == "t":
                return Num(self.p.start)
            if node.name in self.constant:
                return node
            target = self.entries.get(node.name)
            if target is None:  # pragma: no cover - resolve() checked every name
                raise self.fail(e.var, f"{node.name!r} is not defined")
            if node.name in self._init_stack:
                loop = " -> ".join(self._init_stack + [node.name])
                raise self.fail(e.var, f"the initial values form a loop: {loop}")
            site = self._site if site is None else site
            s = site if site in target.eqs else next(iter(target.eqs))
            self._init_stack.append(node.name)
            try:
                source = target.inits[s] if target.var.kind == "stock" else target.eqs[s]
                return f(source)
            finally:
                self._init_stack.pop()
        if isinstance(node, BinOp):
            return BinOp(node.op, f(node.left), f(node.right))
        if isinstance(node, Unary):
            return Unary(node.op, f(node.operand))
        fn, args = node.fn, node.args
        if fn in _SMOOTHS:
            return f(args[2] if _SMOOTHS[fn][1] else args[0])
        if fn in _DELAYS:
            return f(args[2] if _DELAYS[fn][1] else args[0])
        if fn == "DELAY_FIXED":
            return f(args[2])
        if fn == "ACTIVE_INITIAL":
            return f(args[1])
        if fn == "_PREVIOUS":
            return f(args[0])
        if fn == "INITIAL":
            return f(args[0])
        # the input functions read the clock implicitly: their value at the start time
        t0 = Num(self.p.start)
        if fn == "STEP":
            return Call("IF_THEN_ELSE", (BinOp(">=", t0, f(args[1])), f(args[0]), Num(0.0)))
        if fn == "RAMP":
            slope, start = f(args[0]), f(args[1])
            at = Call("MAX", (t0, start))
            if len(args) == 3:
                at = Call("MIN", (at, f(args[2])))
            return BinOp("*", slope, BinOp("-", at, start))
        if fn in ("PULSE", "PULSE_TRAIN"):
            start, width = f(args[0]), f(args[1])
            width = Call("IF_THEN_ELSE", (BinOp("=", width, Num(0.0)), Num(self.p.dt), width))
            on = BinOp("and", BinOp(">=", t0, start), BinOp("<", t0, BinOp("+", start, width)))
            if fn == "PULSE_TRAIN":  # (start, width, interval, end)
                since = BinOp("-", t0, start)
                on = BinOp("and", BinOp("and", BinOp(">=", t0, start), BinOp("<", t0, f(args[3]))),
                           BinOp("<", Call("MODULO", (since, f(args[2]))), width))
            return Call("IF_THEN_ELSE", (on, Num(1.0), Num(0.0)))
        if fn == "_SITE_SUM" or fn == "LOOKUP_CALL":
            return Call(fn, (args[0], f(args[1])) if fn == "LOOKUP_CALL" else (f(args[0]),))
        return Call(fn, tuple(f(a) for a in args))


def _num(value: float, e: _Entry, low: _Lowering) -> str:
    if math.isnan(value):
        raise low.fail(e.var, f"{e.label!r}: NaN (:NA:) is not supported in equations")
    if math.isinf(value):
        return "1e999" if value > 0 else "(-1e999)"
    return repr(float(value)) if value >= 0 else f"({float(value)!r})"


def _fold(node: Node, low: _Lowering) -> float | None:
    """The value of a start-time expression of constants and numbers, or None."""
    import operator

    if _is_number(node):
        return _number(node)
    if isinstance(node, Ref) and node.name in low.constant:  # its value at the site being lowered
        eqs = low.entries[node.name].eqs
        return _number(eqs.get(low._site, next(iter(eqs.values()))))
    if isinstance(node, Unary) and node.op in ("+", "-"):
        v = _fold(node.operand, low)
        return None if v is None else (-v if node.op == "-" else v)
    if isinstance(node, BinOp):
        a, b = _fold(node.left, low), _fold(node.right, low)
        ops = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
               "^": operator.pow, "<": operator.lt, ">": operator.gt, "<=": operator.le,
               ">=": operator.ge, "=": operator.eq, "<>": operator.ne}
        if a is None or b is None or node.op not in ops or (node.op == "/" and b == 0):
            return None
        return float(ops[node.op](a, b))
    unary = {"SIN": math.sin, "COS": math.cos, "TAN": math.tan, "EXP": math.exp, "LN": math.log,
             "SQRT": math.sqrt, "ABS": abs, "ARCTAN": math.atan}
    if isinstance(node, Call) and node.fn in unary:
        v = _fold(node.args[0], low)
        try:
            return None if v is None else float(unary[node.fn](v))
        except ValueError:
            return None
    if isinstance(node, Call) and node.fn in ("IF_THEN_ELSE", "MIN", "MAX", "INTEGER"):
        vals = [_fold(a, low) for a in node.args]
        if any(v is None for v in vals):
            return None
        if node.fn == "IF_THEN_ELSE":
            return vals[1] if vals[0] else vals[2]
        return float(min(vals) if node.fn == "MIN" else max(vals) if node.fn == "MAX" else math.trunc(vals[0]))
    return None





def _is_number(node: Node) -> bool:
    if isinstance(node, Num):
        return True
    if isinstance(node, Unary) and node.op in ("+", "-"):
        return _is_number(node.operand)
    if isinstance(node, BinOp) and node.op in ("+", "-", "*", "/", "^"):
        return _is_number(node.left) and _is_number(node.right)
    return False


def _number(node: Node) -> float:
    if isinstance(node, Num):
        return float(node.value)
    if isinstance(node, Unary):
        v = _number(node.operand)
        return -v if node.op == "-" else v
    a, b = _number(node.left), _number(node.right)
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "*":
        return a * b
    if node.op == "/":
        return a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan
    return a ** b


def _terms(node: Node, sign: int = 1) -> list[tuple[int, str]] | None:
    """A net rate as signed named terms, or None when it is not a sum/difference of names."""
    if isinstance(node, Ref) and node.name != "t":
        return [(sign, node.name)]
    if isinstance(node, Num) and node.value == 0:
        return []
    if isinstance(node, Unary) and node.op in ("+", "-"):
        return _terms(node.operand, -sign if node.op == "-" else sign)
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        left = _terms(node.left, sign)
        right = _terms(node.right, -sign if node.op == "-" else sign)
        return None if left is None or right is None else left + right
    return None


def _model_name(path: str) -> str:
    import re
    from pathlib import Path

    # "<stem>_<suffix>" (s8.mdl -> "s8_mdl"): never the name of a bundled model
    p = Path(path)
    stem = re.sub(r"\W+", "_", p.stem).strip("_") or "imported"
    return f"{stem}_{p.suffix.lstrip('.').lower() or 'model'}"


def lower(project: Project, *, sites: str | None = None) -> ImportedModel:
    """Lower ``project`` onto a spreadjax model; ``sites`` names the dimension mapped onto sites."""
    return _Lowering(project, sites).run()


__all__ = ["ImportedModel", "lower"]


def _snap(step: float, span: float, rel: float = 1e-4) -> float:
    """A step written rounded (``TIME STEP = 0.0208333`` for 1/48) as ``span / n`` when ``span / step``
    is within ``rel`` of a whole number ``n``; otherwise unchanged (years, or the model's time unit)."""
    n = round(span / step) if step > 0 else 0
    return span / n if n >= 1 and abs(span / step - n) <= rel * n else step

