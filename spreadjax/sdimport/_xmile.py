"""XMILE (.xmile, .stmx) -> the neutral IR (:class:`~._ir.Project`).

Reads the OASIS XMILE 1.0 format as Stella, sdCloud and xmutil write it: ``<sim_specs>``
(start, stop, dt, ``reciprocal`` dt, method), ``<dimensions>``, stocks with their in- and
outflows, flows, auxiliaries, graphical functions (``<gf>``, standalone or inside a variable),
apply-to-all and per-element (``<element subscript=...>``) arrays and ``<non_negative/>``
(per variable or as the model's ``<behavior>`` default). Equations are parsed by a small
precedence parser into IR nodes; XMILE builtins are translated to the IR's (Vensim-named)
functions so both importers lower through one path:

=====================  ==================================================
XMILE                  IR
=====================  ==================================================
``IF c THEN a ELSE b``  ``IF_THEN_ELSE(c, a, b)``
``SMTH1(x, T[, i])``    ``SMOOTH(x, T)`` / ``SMOOTHI(x, T, i)``
``SMTH3(x, T[, i])``    ``SMOOTH3(x, T)`` / ``SMOOTH3I(x, T, i)``
``SMTHN(x, T, n[, i])`` ``SMOOTHN(x, T, i or x, n)``
``DELAY1/3(x, T[, i])`` ``DELAY1/3(x, T)`` / ``DELAY1I/3I(x, T, i)``
``DELAYN(x, T, n[, i])`` ``DELAYN(x, T, i or x, n)``
``DELAY(x, T[, i])``    ``DELAY_FIXED(x, T, i or x)`` (a pipeline delay)
``PULSE(m, t0[, r])``   ``m / DT * PULSE(t0, DT)`` or ``PULSE_TRAIN(t0, DT, r, inf)``
``RAMP(s, t0[, t1])``   ``RAMP(s, t0, t1 or inf)``
``SAFEDIV(a, b[, x])``  ``ZIDZ(a, b)`` / ``XIDZ(a, b, x)``
``INIT(x)``             ``INITIAL(x)``
``INT``, ``a MOD b``    ``INTEGER``, ``MODULO(a, b)``
``gf(x)``, ``LOOKUP(gf, x)``  ``LOOKUP_CALL(Ref(gf), x)``
``MIN(a[*])``, ``SUM(a[*])``  ``VMIN(Ref(a, ("dim!",)))``, ``SUM(...)``
``TIME``, ``DT``, ``STARTTIME``, ``STOPTIME``  ``Ref("time")``, ``Ref("time_step")``, ``Ref("initial_time")``, ``Ref("final_time")``
=====================  ==================================================

A variable with both an equation and a ``<gf>`` becomes a lookup variable ``<name>_lookup``
and an auxiliary ``LOOKUP_CALL(<name>_lookup, equation)``. Modules, macros, conveyors, queues,
ovens, per-element graphical functions and builtins not in the table raise one
:class:`~spreadjax._errors.ModelError` naming the construct, the file and the line.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ModelError
from ._ir import BinOp, Call, Node, Num, Project, Ref, Unary, Variable, canonical_name

# --------------------------------------------------------------------------------------------
# XML with line numbers (expat without namespace processing: Stella files often use the isee:
# prefix without declaring it, which a namespace-aware parser refuses)


@dataclass
class _El:
    tag: str  # as written, namespace prefix kept ("isee:prefs")
    attrib: dict[str, str]
    line: int
    children: list["_El"] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> "_El | None":
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def findall(self, tag: str) -> list["_El"]:
        return [c for c in self.children if c.tag == tag]

    def findtext(self, tag: str, default: str | None = None) -> str | None:
        el = self.find(tag)
        return default if el is None else el.text


def _read_xml(path: Path) -> _El:
    import xml.parsers.expat

    data = path.read_bytes()
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_El] = []
    root: list[_El] = []
    texts: list[list[str]] = []

    def start(tag, attrs):
        el = _El(tag, dict(attrs), parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)
        texts.append([])

    def end(tag):
        el = stack.pop()
        el.text = "".join(texts.pop())

    def chars(data):
        if texts:
            texts[-1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        raise ModelError(f"{path}:{e.lineno}: not well-formed XML: {xml.parsers.expat.errors.messages[e.code]}") from None
    if not root or root[0].tag.split(":")[-1] != "xmile":
        tag = root[0].tag if root else "nothing"
        raise ModelError(f"{path}:1: not an XMILE file: the root element is <{tag}>, expected <xmile>")
    return root[0]


# --------------------------------------------------------------------------------------------
# equations

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\{[^}]*\})
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<name>[^\W\d][\w.$]*)
  | (?P<op><=|>=|<>|!=|==|&&|\|\||[-+*/^()\[\],<>=!])
    """,
    re.VERBOSE,
)

#: XMILE word operators (case-insensitive)
_WORDS = {"and", "or", "not", "mod", "if", "then", "else"}

#: builtins whose name and arity carry over unchanged (XMILE name -> (IR name, arities))
_SIMPLE = {
    "ABS": ("ABS", (1,)), "EXP": ("EXP", (1,)), "LN": ("LN", (1,)), "SQRT": ("SQRT", (1,)),
    "SIN": ("SIN", (1,)), "COS": ("COS", (1,)), "TAN": ("TAN", (1,)),
    "ARCSIN": ("ARCSIN", (1,)), "ARCCOS": ("ARCCOS", (1,)), "ARCTAN": ("ARCTAN", (1,)),
    "SINH": ("SINH", (1,)), "COSH": ("COSH", (1,)), "TANH": ("TANH", (1,)),
    "INT": ("INTEGER", (1,)), "STEP": ("STEP", (2,)), "INIT": ("INITIAL", (1,)),
}

#: names that read the simulation clock
_CLOCK = {"time": "time", "dt": "time_step", "starttime": "initial_time", "stoptime": "final_time"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "name" | "quoted" | "op" | "word" | "end"
    text: str
    pos: int


class _Parser:
    """Precedence climbing over XMILE 1.0's operator table (loosest first): ``or``; ``and``;
    ``= <>``; ``< <= > >=``; ``+ -``; ``* / mod``; unary ``- + not``; ``^`` (right-associative,
    binding tighter than unary minus: ``-2^2 = -4``); calls and subscripts."""

    def __init__(self, text: str, ctx: "_Context", where: str):
        self.text = text
        self.ctx = ctx
        self.where = where
        self.toks = self._tokenize(text)
        self.i = 0

    def error(self, msg: str) -> ModelError:
        return ModelError(f"{self.where}: {msg} in equation {self.text.strip()!r}")

    def _tokenize(self, text: str) -> list[_Tok]:
        toks, pos = [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self.error(f"unexpected character {text[pos]!r} at position {pos + 1}")
            kind = m.lastgroup
            if kind != "ws":
                tok = m.group()
                if kind == "name" and tok.lower() in _WORDS:
                    kind = "word"
                    tok = tok.lower()
                toks.append(_Tok(kind, tok, pos))
            pos = m.end()
        toks.append(_Tok("end", "", len(text)))
        return toks

    # helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, text: str) -> bool:
        if self.tok.kind == kind and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> None:
        if not self.accept(kind, text):
            got = self.tok.text or "the end"
            raise self.error(f"expected {text!r} but found {got!r} at position {self.tok.pos + 1}")

    # grammar
    def parse(self) -> Node:
        if not self.text.strip():
            raise self.error("empty equation")
        node = self.expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} at position {self.tok.pos + 1}")
        return node

    def parse_list(self) -> list[Node]:
        """A comma-separated list at top level (XMILE's array-constant shorthand ``1, 2, 3``)."""
        items = [self.expr()]
        while self.accept("op", ","):
            items.append(self.expr())
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} at position {self.tok.pos + 1}")
        return items

    def expr(self) -> Node:
        if self.accept("word", "if"):
            cond = self.expr()
            self.expect("word", "then")
            a = self.expr()
            self.expect("word", "else")
            b = self.expr()
            return Call("IF_THEN_ELSE", (cond, a, b))
        return self.or_()

    def or_(self) -> Node:
        node = self.and_()
        while self.tok.text in ("or", "||") and self.tok.kind in ("word", "op"):
            self.take()
            node = BinOp("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.equality()
        while self.tok.text in ("and", "&&") and self.tok.kind in ("word", "op"):
            self.take()
            node = BinOp("and", node, self.equality())
        return node

    def equality(self) -> Node:
        node = self.relation()
        while self.tok.kind == "op" and self.tok.text in ("=", "==", "<>", "!="):
            op = "=" if self.take().text in ("=", "==") else "<>"
            node = BinOp(op, node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.additive()
        while self.tok.kind == "op" and self.tok.text in ("<", ">", "<=", ">="):
            op = self.take().text
            node = BinOp(op, node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take().text
            node = BinOp(op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while (self.tok.kind == "op" and self.tok.text in ("*", "/")) or (
            self.tok.kind == "word" and self.tok.text == "mod"
        ):
            op = self.take().text
            rhs = self.unary()
            node = Call("MODULO", (node, rhs)) if op == "mod" else BinOp(op, node, rhs)
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            op = self.take().text
            return Unary(op, self.unary())
        if (self.tok.kind == "word" and self.tok.text == "not") or (self.tok.kind == "op" and self.tok.text == "!"):
            self.take()
            return Unary("not", self.unary())
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.accept("op", "^"):
            # right-associative; the exponent may carry its own sign: 2^-1
            return BinOp("^", base, self.unary())
        return base

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            return Num(float(t.text))
        if self.accept("op", "("):
            node = self.expr()
            self.expect("op", ")")
            return node
        if t.kind == "word" and t.text == "if":
            return self.expr()
        if t.kind in ("name", "quoted"):
            self.take()
            raw = _unquote(t.text) if t.kind == "quoted" else t.text
            if t.kind == "name" and self.tok.kind == "op" and self.tok.text == "(":
                self.take()
                args: list[Node] = []
                if not self.accept("op", ")"):
                    args.append(self.expr())
                    while self.accept("op", ","):
                        args.append(self.expr())
                    self.expect("op", ")")
                return self.call(raw, args)
            if t.kind == "quoted" and self.tok.kind == "op" and self.tok.text == "(":
                self.take()
                args = [self.expr()]
                self.expect("op", ")")
                return self.call(raw, args)
            subs: tuple[str, ...] = ()
            if self.accept("op", "["):
                subs = self.subscripts()
            return self.reference(raw, subs)
        raise self.error(f"unexpected {t.text or 'end'!r} at position {t.pos + 1}")

    def subscripts(self) -> tuple[str, ...]:
        subs = []
        while True:
            t = self.take()
            if t.kind == "op" and t.text == "*":
                subs.append("*")
            elif t.kind in ("name", "quoted"):
                subs.append(_unquote(t.text) if t.kind == "quoted" else t.text)
            elif t.kind == "num" and float(t.text).is_integer():
                subs.append("#" + str(int(float(t.text))))
            else:
                raise self.error(f"unsupported subscript {t.text!r} (only element or dimension names, * and integer positions)")
            if self.accept("op", "]"):
                return tuple(subs)
            self.expect("op", ",")

    def reference(self, raw: str, subs: tuple[str, ...]) -> Node:
        low = raw.lower()
        if not subs and low in _CLOCK and canonical_name(raw) not in self.ctx.names:
            return self.clock(low)
        if not subs and low in ("pi", "inf") and canonical_name(raw) not in self.ctx.names:
            return Num(math.pi if low == "pi" else math.inf)
        if "." in raw and canonical_name(raw) not in self.ctx.names:
            raise self.error(f"module reference {raw!r}: XMILE modules are not supported")
        name = canonical_name(raw)
        if name not in self.ctx.names:
            if self.tok.kind == "name":  # "EXPRESSION MACRO(x)": a macro call Stella wrote with spaces
                raise self.error(f"unknown name {raw + ' ' + self.tok.text!r} (a macro call? XMILE macros "
                                 "are not supported)")
            raise self.error(f"unknown variable {raw!r}")
        return Ref(name, self.ctx.resolve_subscripts(name, subs, self))

    def call(self, raw: str, args: list[Node]) -> Node:
        fn = raw.upper()
        name = canonical_name(raw)
        n = len(args)

        def arity(*allowed: int) -> None:
            if n not in allowed:
                want = " or ".join(str(a) for a in allowed)
                raise self.error(f"{fn} takes {want} argument(s), got {n}")

        if name in self.ctx.lookups:  # a graphical function applied to an input
            arity(1)
            return Call("LOOKUP_CALL", (Ref(self.ctx.lookups[name]), args[0]))
        if fn in _SIMPLE:
            ir, arities = _SIMPLE[fn]
            arity(*arities)
            return Call(ir, tuple(args))
        if fn == "LOG10":
            arity(1)
            return BinOp("/", Call("LN", (args[0],)), Num(math.log(10.0)))
        if fn in ("MIN", "MAX"):
            arity(1, 2)
            if n == 2:
                return Call(fn, tuple(args))
            return Call("V" + fn, (self._summed(args[0], fn),))
        if fn == "SUM":
            arity(1)
            return Call("SUM", (self._summed(args[0], fn),))
        if fn in ("PI", "INF") and n == 0:
            return Num(math.pi if fn == "PI" else math.inf)
        if fn in ("TIME", "DT", "STARTTIME", "STOPTIME") and n == 0:
            return self.clock(fn.lower())
        if fn == "LOOKUP":
            arity(2)
            table = args[0]
            if not isinstance(table, Ref) or table.name not in self.ctx.lookup_of:
                raise self.error("LOOKUP's first argument must name a graphical function")
            return Call("LOOKUP_CALL", (Ref(self.ctx.lookup_of[table.name]), args[1]))
        if fn == "SAFEDIV":
            arity(2, 3)
            return Call("ZIDZ" if n == 2 else "XIDZ", tuple(args))
        if fn in ("SMTH1", "SMTH3"):
            arity(2, 3)
            base = "SMOOTH" if fn == "SMTH1" else "SMOOTH3"
            return Call(base if n == 2 else base + "I", tuple(args))
        if fn in ("DELAY1", "DELAY3"):
            arity(2, 3)
            return Call(fn if n == 2 else fn + "I", tuple(args))
        if fn in ("SMTHN", "DELAYN"):
            arity(3, 4)
            x, time, order = args[:3]
            init = args[3] if n == 4 else x
            return Call("SMOOTHN" if fn == "SMTHN" else "DELAYN", (x, time, init, order))
        if fn == "DELAY":
            arity(2, 3)
            return Call("DELAY_FIXED", (args[0], args[1], args[2] if n == 3 else args[0]))
        if fn == "RAMP":
            arity(2, 3)
            return Call("RAMP", (args[0], args[1], args[2] if n == 3 else Num(math.inf)))
        if fn == "PULSE":
            arity(2, 3)
            dt = self.clock("dt")
            height = BinOp("/", args[0], dt)
            if n == 2 or (isinstance(args[2], Num) and args[2].value == 0):
                return BinOp("*", height, Call("PULSE", (args[1], dt)))
            return BinOp("*", height, Call("PULSE_TRAIN", (args[1], dt, args[2], Num(math.inf))))
        raise self.error(f"unsupported XMILE function {raw}()")

    def clock(self, word: str) -> Ref:
        """TIME, DT, STARTTIME or STOPTIME, as Vensim's control variables (noted, so that the
        project defines the ones a model reads)."""
        self.ctx.clock_used.add(_CLOCK[word])
        return Ref(_CLOCK[word])

    def _summed(self, arg: Node, fn: str) -> Node:
        """``a[*]`` or ``a[dim]`` inside an array reduction -> ``Ref(a, ("dim!",))``."""
        if not isinstance(arg, Ref) or not arg.subscripts:
            raise self.error(f"{fn} of one argument needs an array reference such as a[*]")
        dims = self.ctx.dims_of.get(arg.name, ())
        subs = tuple(s + "!" if s in dims else s for s in arg.subscripts)
        return Ref(arg.name, subs)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class _Context:
    path: Path
    names: set[str]  # canonical names of every variable
    dims_of: dict[str, tuple[str, ...]]  # canonical variable -> canonical dimensions
    dimensions: dict[str, tuple[str, ...]]  # canonical dimension -> canonical elements
    lookups: dict[str, str]  # name callable as f(x) -> its lookup variable
    lookup_of: dict[str, str]  # the same, for LOOKUP(name, x)
    clock_used: set[str] = field(default_factory=set)  # "time", "time_step", ... read by equations

    def resolve_subscripts(self, name: str, subs: tuple[str, ...], parser: _Parser) -> tuple[str, ...]:
        if not subs:
            return ()
        dims = self.dims_of.get(name, ())
        if len(subs) != len(dims):
            raise parser.error(f"{name!r} has {len(dims)} dimension(s) but is subscripted by {len(subs)}")
        out = []
        for s, dim in zip(subs, dims):
            if s == "*":
                out.append(dim)
            elif s.startswith("#"):
                k = int(s[1:])
                elements = self.dimensions[dim]
                if not 1 <= k <= len(elements):
                    raise parser.error(f"position {k} is outside dimension {dim!r} (1..{len(elements)})")
                out.append(elements[k - 1])
            else:
                c = canonical_name(s)
                if "." in s:  # Dim.element
                    d, _, e = s.partition(".")
                    c = canonical_name(e)
                if c not in self.dimensions and not any(c in els for els in self.dimensions.values()):
                    raise parser.error(f"unknown subscript {s!r}")
                out.append(c)
        return tuple(out)


def _number(text: str | None, path: Path, line: int, what: str) -> float:
    try:
        return float((text or "").strip())
    except ValueError:
        raise ModelError(f"{path}:{line}: {what} must be a number, got {text!r}") from None


def _points(el: _El, path: Path) -> tuple[float, ...]:
    sep = el.attrib.get("sep", ",")
    parts = [p for p in re.split("|".join(re.escape(s) for s in {sep, ","} if s) + r"|\s+", el.text) if p.strip()]
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ModelError(f"{path}:{el.line}: <{el.tag}> must list numbers, got {el.text.strip()!r}") from None


def _graphical(gf: _El, path: Path, name: str) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """A ``<gf>`` -> (x, y, extrapolation): continuous holds the end values, extrapolate
    continues the end segments' slopes, discrete steps (each y holds until the next x)."""
    kind = gf.attrib.get("type", "continuous").lower()
    if gf.attrib.get("discrete", "false").lower() == "true":
        kind = "discrete"
    mode = {"continuous": "hold", "extrapolate": "linear", "discrete": "step"}.get(kind)
    if mode is None:
        raise ModelError(f"{path}:{gf.line}: {name}: graphical function type {kind!r} is not supported "
                         "(continuous, extrapolate or discrete)")
    ypts = gf.find("ypts")
    if ypts is None:
        raise ModelError(f"{path}:{gf.line}: {name}: graphical function without <ypts>")
    y = _points(ypts, path)
    xpts = gf.find("xpts")
    if xpts is not None:
        x = _points(xpts, path)
    else:
        xscale = gf.find("xscale")
        if xscale is None:
            raise ModelError(f"{path}:{gf.line}: {name}: graphical function needs <xpts> or <xscale>")
        lo = _number(xscale.attrib.get("min"), path, xscale.line, "xscale min")
        hi = _number(xscale.attrib.get("max"), path, xscale.line, "xscale max")
        if len(y) == 1:
            x = (lo,)
        else:
            x = tuple(lo + (hi - lo) * k / (len(y) - 1) for k in range(len(y)))
    if len(x) != len(y) or not y:
        raise ModelError(f"{path}:{gf.line}: {name}: graphical function has {len(x)} x points and {len(y)} y points")
    if any(b < a for a, b in zip(x, x[1:])):
        raise ModelError(f"{path}:{gf.line}: {name}: graphical function x points must not decrease")
    return x, y, mode


def _element_key(text: str) -> tuple[str, ...]:
    return tuple(canonical_name(s) for s in text.split(","))


def parse(path: str | Path) -> Project:
    """Parse an XMILE file into a :class:`Project` (times in the model's own time units)."""
    path = Path(path)
    root = _read_xml(path)

    for tag, what in (("macro", "XMILE macros (<macro>)"),):
        el = root.find(tag)
        if el is not None:
            raise ModelError(f"{path}:{el.line}: {what} are not supported")
    models = root.findall("model")
    if not models:
        raise ModelError(f"{path}:{root.line}: the file has no <model>")
    if len(models) > 1:
        raise ModelError(f"{path}:{models[1].line}: XMILE modules (more than one <model>) are not supported")
    model = models[0]

    # simulation settings
    specs = root.find("sim_specs")
    if specs is None:
        raise ModelError(f"{path}:{root.line}: no <sim_specs> (start, stop, dt)")
    start = _number(specs.findtext("start", "0"), path, specs.line, "<sim_specs><start>")
    stop = _number(specs.findtext("stop"), path, specs.line, "<sim_specs><stop>")
    dt_el = specs.find("dt")
    dt = 1.0 if dt_el is None else _number(dt_el.text, path, dt_el.line, "<sim_specs><dt>")
    if dt_el is not None and dt_el.attrib.get("reciprocal", "false").lower() == "true":
        dt = 1.0 / dt
    if not (math.isfinite(dt) and dt > 0) or not stop > start:
        raise ModelError(f"{path}:{specs.line}: <sim_specs> needs start < stop and dt > 0, got "
                         f"start={start}, stop={stop}, dt={dt}")
    method = specs.attrib.get("method", "euler").strip().lower()
    if method not in ("euler", "rk4"):
        raise ModelError(f"{path}:{specs.line}: integration method {specs.attrib['method']!r} is not supported "
                         "(Euler or RK4)")
    saveper = dt
    for key in ("save_interval", "isee:save_interval", "saveper"):
        if key in specs.attrib:
            saveper = _number(specs.attrib[key], path, specs.line, key)

    # dimensions
    dimensions: dict[str, tuple[str, ...]] = {}
    dims_el = root.find("dimensions")
    for d in dims_el.findall("dim") if dims_el is not None else ():
        name = canonical_name(d.attrib.get("name", ""))
        elems = d.findall("elem")
        if elems:
            elements = tuple(canonical_name(e.attrib.get("name", "")) for e in elems)
        elif "size" in d.attrib:
            size = int(_number(d.attrib["size"], path, d.line, f"dimension {d.attrib.get('name')!r} size"))
            elements = tuple(canonical_name(str(k)) for k in range(1, size + 1))
        else:
            raise ModelError(f"{path}:{d.line}: dimension {d.attrib.get('name')!r} has neither <elem> nor size")
        if name in dimensions:
            raise ModelError(f"{path}:{d.line}: dimension {d.attrib.get('name')!r} is defined twice")
        dimensions[name] = elements

    # <behavior> defaults for non_negative
    default_nn = {"stock": False, "flow": False}
    behavior = root.find("behavior")
    if behavior is not None:
        for kind in ("stock", "flow"):
            el = behavior.find(kind)
            if el is not None and el.find("non_negative") is not None:
                default_nn[kind] = el.find("non_negative").text.strip().lower() != "false"
        if behavior.find("non_negative") is not None:
            default_nn = {"stock": True, "flow": True}

    # Stella 10's files put the variables straight under <model>
    variables_el = model.find("variables") or model
    raw_vars: list[_El] = []
    for el in variables_el.children:
        if el.tag in ("stock", "flow", "aux", "gf"):
            raw_vars.append(el)
        elif el.tag == "module":
            raise ModelError(f"{path}:{el.line}: XMILE modules (<module name={el.attrib.get('name', '')!r}>) "
                             "are not supported")
        elif el.tag in ("group",) or ":" in el.tag or variables_el is model:
            continue  # display groups, vendor extensions, views beside the variables
        else:
            raise ModelError(f"{path}:{el.line}: XMILE <{el.tag}> variables are not supported")

    # first pass: names, dimensions and graphical functions
    names: set[str] = set()
    dims_of: dict[str, tuple[str, ...]] = {}
    lookups: dict[str, str] = {}
    for el in raw_vars:
        src = el.attrib.get("name")
        if not src:
            raise ModelError(f"{path}:{el.line}: <{el.tag}> without a name")
        name = canonical_name(src)
        if name in names:
            raise ModelError(f"{path}:{el.line}: variable {src!r} is defined twice (names compare "
                             "case-insensitively, spaces as underscores)")
        names.add(name)
        vdims = el.find("dimensions")
        dims = ()
        if vdims is not None:
            dims = tuple(canonical_name(d.attrib.get("name", "")) for d in vdims.findall("dim"))
            for d, src_d in zip(dims, vdims.findall("dim")):
                if d not in dimensions:
                    raise ModelError(f"{path}:{src_d.line}: {src}: unknown dimension {src_d.attrib.get('name')!r}")
        dims_of[name] = dims
        if el.tag == "gf":
            lookups[name] = name
        elif el.find("gf") is not None:
            lookups[name] = name + "_lookup"
    for name, lk in lookups.items():
        if lk != name:
            if lk in names:
                raise ModelError(f"{path}: the graphical function of {name!r} would be named {lk!r}, "
                                 "which another variable already uses")
            names.add(lk)
    ctx = _Context(path, names, dims_of, dimensions, lookups, dict(lookups))

    # second pass: equations
    out: list[Variable] = []
    for el in raw_vars:
        src = el.attrib["name"]
        name = canonical_name(src)
        where = f"{path}:{el.line}: {el.tag} {src!r}"
        dims = dims_of[name]
        units = (el.findtext("units") or "").strip()
        doc = (el.findtext("doc") or "").strip()
        for tag in ("conveyor", "queue", "oven"):
            if el.find(tag) is not None:
                raise ModelError(f"{where}: XMILE {tag} stocks (<{tag}>) are not supported")
        nn_el = el.find("non_negative")
        if nn_el is not None:
            non_negative = nn_el.text.strip().lower() != "false"
        else:
            non_negative = default_nn.get(el.tag, False)

        def equation(text: str | None, line: int, what: str = "equation") -> Node:
            if text is None or not text.strip():
                raise ModelError(f"{path}:{line}: {el.tag} {src!r}: no {what} (<eqn>)")
            return _Parser(text, ctx, f"{path}:{line}: {el.tag} {src!r}").parse()

        def elements_of(eqn_el: _El | None) -> tuple[Node | None, tuple]:
            """(apply-to-all node or None, per-element ((key, node), ...))."""
            per = []
            for e in el.findall("element"):
                key = _element_key(e.attrib.get("subscript", ""))
                if len(key) != len(dims):
                    raise ModelError(f"{path}:{e.line}: {src}: element subscript {e.attrib.get('subscript')!r} "
                                     f"does not match the {len(dims)} dimension(s)")
                for k, d in zip(key, dims):
                    if k not in dimensions[d]:
                        raise ModelError(f"{path}:{e.line}: {src}: {k!r} is not an element of {d!r}")
                if e.find("gf") is not None:
                    raise ModelError(f"{path}:{e.line}: {src}: per-element graphical functions are not supported")
                eq = e.find("eqn")
                per.append((key, equation(eq.text if eq is not None else None, e.line)))
            if per:
                return None, tuple(per)
            eqns = el.findall("eqn")
            if len(eqns) > 1:
                # one <eqn> per element, in element order (as some tools write arrays)
                keys = list(itertools.product(*(dimensions[d] for d in dims)))
                if len(eqns) != len(keys):
                    raise ModelError(f"{path}:{eqns[1].line}: {src}: {len(eqns)} <eqn> elements for "
                                     f"{len(keys)} array element(s)")
                return None, tuple((tuple(k), equation(e.text, e.line)) for k, e in zip(keys, eqns))
            if eqn_el is None:
                raise ModelError(f"{where}: no equation (<eqn>)")
            if dims and ("," in eqn_el.text or ";" in eqn_el.text):
                # the array-constant shorthand: "1, 2, 3" in element order (rows may end in ";")
                text = eqn_el.text.replace(";", ",").strip().rstrip(",")
                items = _Parser(text, ctx, f"{path}:{eqn_el.line}: {el.tag} {src!r}").parse_list()
                if len(items) > 1:
                    keys = list(itertools.product(*(dimensions[d] for d in dims)))
                    if len(items) != len(keys):
                        raise ModelError(f"{path}:{eqn_el.line}: {src}: {len(items)} values for "
                                         f"{len(keys)} elements")
                    return None, tuple(zip((tuple(k) for k in keys), items))
            return equation(eqn_el.text, eqn_el.line), ()

        eqn_el = el.find("eqn")
        if el.tag == "gf" or (el.tag != "stock" and el.find("gf") is not None):
            gf = el if el.tag == "gf" else el.find("gf")
            if dims:
                raise ModelError(f"{where}: arrayed graphical functions are not supported")
            table = _graphical(gf, path, src)
            out.append(Variable(name=lookups[name], source_name=src, kind="lookup", equation=None,
                                lookup=table, units=units, doc=doc, line=el.line))
            if el.tag == "gf":
                continue
            node, per = elements_of(eqn_el)
            out.append(Variable(name=name, source_name=src, kind="aux",
                                equation=Call("LOOKUP_CALL", (Ref(lookups[name]), node)),
                                units=units, doc=doc, line=el.line, non_negative=non_negative))
            continue
        if el.tag == "stock":
            inflows = tuple(canonical_name(f.text) for f in el.findall("inflow"))
            outflows = tuple(canonical_name(f.text) for f in el.findall("outflow"))
            for f, fel in zip(inflows + outflows, el.findall("inflow") + el.findall("outflow")):
                if f not in names:
                    raise ModelError(f"{path}:{fel.line}: stock {src!r}: unknown flow {fel.text.strip()!r}")
            node, per = elements_of(eqn_el)
            # the net rate as well as the flow lists: inflows minus outflows, each at the stock's
            # own subscripts when it has the same dimensions (XMILE's implied apply-to-all)
            net: Node = Num(0.0)
            for k, f in enumerate(inflows + outflows):
                ref = Ref(f, dims if dims and dims_of.get(f) == dims else ())
                if k == 0:
                    net = ref if k < len(inflows) else Unary("-", ref)
                else:
                    net = BinOp("+" if k < len(inflows) else "-", net, ref)
            out.append(Variable(name=name, source_name=src, kind="stock", equation=net, init=node,
                                inflows=inflows, outflows=outflows, dims=dims, element_inits=per,
                                units=units, doc=doc, line=el.line, non_negative=non_negative))
            continue
        node, per = elements_of(eqn_el)
        constant = (node is not None and _is_constant(node)) or (node is None and all(_is_constant(n) for _, n in per))
        kind = "constant" if constant and el.tag == "aux" else "aux"
        out.append(Variable(name=name, source_name=src, kind=kind, equation=node, dims=dims, elements=per,
                            units=units, doc=doc, line=el.line,
                            non_negative=non_negative if el.tag == "flow" else False))

    # DT, STARTTIME and STOPTIME become the constants a Vensim file would define
    for name, value, src in (("time_step", dt, "DT"), ("initial_time", start, "STARTTIME"),
                             ("final_time", stop, "STOPTIME")):
        if name in ctx.clock_used and name not in names:
            out.append(Variable(name=name, source_name=src, kind="constant", equation=Num(value),
                                units=specs.attrib.get("time_units", ""), line=specs.line))
    return Project(
        path=str(path),
        variables=tuple(out),
        dimensions=tuple(dimensions.items()),
        start=start,
        stop=stop,
        dt=dt,
        saveper=saveper,
        method=method,
        time_units=specs.attrib.get("time_units", ""),
    )


def _is_constant(node: Node) -> bool:
    """A literal number, possibly signed (``-3``): a constant rather than an auxiliary."""
    if isinstance(node, Num):
        return True
    return isinstance(node, Unary) and node.op in ("-", "+") and isinstance(node.operand, Num)
