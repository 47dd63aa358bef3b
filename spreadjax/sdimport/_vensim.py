"""Parse a Vensim ``.mdl`` text file into the neutral IR (:class:`~._ir.Project`).

A ``.mdl`` file is a list of equations ``lhs = rhs ~ units ~ comment |``, followed by a sketch
section (ignored). Expressions are parsed with a lark grammar (names may hold spaces, as in
Vensim: ``impl 1``, ``IF THEN ELSE``). Supported: stocks (``INTEG``), auxiliaries, constants
(also per-element lists ``1, 2; 3, 4;``), lookups (``name( [(..)-(..)], (x, y), ... )``,
``WITH LOOKUP``), subscript ranges (``dim: a, b`` and ``dim: (a1-a5)``, subranges), and the
builtins listed in ``_ir.Call``. Anything else raises one :class:`ModelError` naming the
construct, the file and the line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

from .._errors import ModelError
from ._ir import BinOp, Call, Node, Num, Project, Ref, Unary, Variable, canonical_name, map_refs, parent_dims, walk

#: builtins the lowering understands, by canonical (upper case, ``_``) name, with their arity
BUILTINS: dict[str, tuple[int, ...]] = {
    "IF_THEN_ELSE": (3,), "MIN": (2,), "MAX": (2,), "ABS": (1,), "EXP": (1,), "LN": (1,),
    "SQRT": (1,), "DELAY1": (2,), "DELAY1I": (3,), "DELAY3": (2,), "DELAY3I": (3,),
    "DELAYN": (4,), "SMOOTH": (2,), "SMOOTHI": (3,), "SMOOTH3": (2,), "SMOOTH3I": (3,),
    "SMOOTHN": (4,), "PULSE": (2,), "STEP": (2,), "RAMP": (3,), "INITIAL": (1,),
    "WITH_LOOKUP": (2,), "SUM": (1,), "INTEG": (2,), "ZIDZ": (2,), "XIDZ": (3,),
    "SIN": (1,), "COS": (1,), "TAN": (1,), "ARCSIN": (1,), "ARCCOS": (1,), "ARCTAN": (1,),
    "SINH": (1,), "COSH": (1,), "TANH": (1,), "INTEGER": (1,), "MODULO": (2,),
    "PULSE_TRAIN": (4,), "DELAY_FIXED": (3,), "VMIN": (1,), "VMAX": (1,), "PROD": (1,), "ELMCOUNT": (1,),
    "ACTIVE_INITIAL": (2,),
}

#: Vensim spellings of the same builtin: source name -> IR name
ALIASES = {"DELAY_N": "DELAYN", "SMOOTH_N": "SMOOTHN"}

#: Vensim's simulation-control variables, by canonical name
CONTROL = {"initial_time": "start", "final_time": "stop", "time_step": "dt", "saveper": "saveper"}

_GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr | or_expr OR and_expr -> logic
?and_expr: not_expr | and_expr AND not_expr -> logic
?not_expr: comp_expr | NOT not_expr -> not_
?comp_expr: add_expr | add_expr COMP add_expr -> binop
?add_expr: mul_expr | add_expr ADDOP mul_expr -> binop
?mul_expr: unary | mul_expr MULOP unary -> binop
?unary: pow_expr | ADDOP unary -> neg
?pow_expr: atom | atom POW exponent -> binop
?exponent: pow_expr | ADDOP exponent -> neg
?atom: NUMBER -> num
     | name subs? -> ref
     | name "(" [arg ("," arg)*] ")" -> call
     | name subs "(" expr ")" -> subcall
     | "(" expr ")"
?arg: expr | table
subs: "[" sub ("," sub)* "]"
sub: name BANG?
name: NAME | QNAME
table: "(" trange? point ("," point)* ")"
trange: "[" point ADDOP point ("," point)* "]" ","
point: "(" snum "," snum ")"
snum: ADDOP? NUMBER
OR.2: /:OR:/i
AND.2: /:AND:/i
NOT.2: /:NOT:/i
COMP: "<=" | ">=" | "<>" | "<" | ">" | "="
ADDOP: "+" | "-"
MULOP: "*" | "/"
POW: "^"
BANG: "!"
NUMBER: /(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/
NAME: /[A-Za-z_\u00c0-\uffff][\w$'&%\u00c0-\uffff]*([ \t]+[\w$'&%\u00c0-\uffff]+)*/
QNAME: /"(?:[^"\\]|\\.)*"/
%ignore /\s+/
"""


@functools.lru_cache(maxsize=1)
def _parser():
    import lark

    return lark.Lark(_GRAMMAR, parser="earley", lexer="basic", ambiguity="resolve")


class _Where:
    """Where an equation came from, for error messages."""

    def __init__(self, path: str, line: int):
        self.path, self.line = path, line
        self.exclude: tuple[tuple[str, ...], ...] = ()  # :EXCEPT: lists of the equation

    def fail(self, message: str) -> ModelError:
        return ModelError(f"{self.path}:{self.line}: {message}")


def _fn_name(source: str) -> str:
    return re.sub(r"[\s_]+", "_", source.strip()).upper()


def _to_ir(tree, where: _Where) -> Node:
    """Turn a lark tree into IR nodes (names canonical, calls upper case)."""
    import lark

    def name_of(node) -> str:
        token = node.children[0]
        text = str(token)
        return text[1:-1] if token.type == "QNAME" else text

    def table(node) -> Call:
        points = [p for p in node.children if p.data == "point"]
        xs, ys = [], []
        for p in points:
            a, b = (_snum(s) for s in p.children)
            xs.append(a)
            ys.append(b)
        return Call("_TABLE", (Call("_X", tuple(Num(x) for x in xs)), Call("_Y", tuple(Num(y) for y in ys))))

    def walk(node) -> Node:
        if isinstance(node, lark.Token):  # pragma: no cover - every token sits under a rule
            raise where.fail(f"cannot read {str(node)!r}")
        kind = node.data
        ch = node.children
        if kind == "num":
            return Num(float(ch[0]))
        if kind == "ref":
            source = name_of(ch[0])
            subs: tuple[str, ...] = ()
            if len(ch) > 1 and ch[1] is not None:
                subs = tuple(
                    canonical_name(name_of(s.children[0])) + ("!" if len(s.children) > 1 else "")
                    for s in ch[1].children
                )
            if canonical_name(source) == "time" and not subs:
                return Ref("time")
            return Ref(canonical_name(source), subs)
        if kind == "call":
            fn_source = name_of(ch[0])
            args = tuple(walk(a) for a in ch[1:] if a is not None)
            fn = _fn_name(fn_source)
            fn = ALIASES.get(fn, fn)
            if fn in ("TREND", "FORECAST") and len(args) == 3:
                # Vensim: average = SMOOTHI(x, T, x / (1 + trend0 * T)), TREND = ZIDZ(x - average,
                # T * ABS(average)); FORECAST(x, T, horizon) = x * (1 + TREND(x, T, 0) * horizon)
                x, t_avg, third = args
                trend0 = third if fn == "TREND" else Num(0.0)
                init = BinOp("/", x, BinOp("+", Num(1.0), BinOp("*", trend0, t_avg)))
                average = Call("SMOOTHI", (x, t_avg, init))
                trend = Call("ZIDZ", (BinOp("-", x, average), BinOp("*", t_avg, Call("ABS", (average,)))))
                if fn == "TREND":
                    return trend
                return BinOp("*", x, BinOp("+", Num(1.0), BinOp("*", trend, third)))
            if fn == "QUANTUM" and len(args) == 2:  # B * INTEGER(A / B); A itself when B <= 0
                a, b = args
                return Call("IF_THEN_ELSE", (BinOp("<=", b, Num(0.0)), a,
                                             BinOp("*", b, Call("INTEGER", (BinOp("/", a, b),)))))
            if fn == "POWER" and len(args) == 2:
                return BinOp("^", *args)
            if fn == "LOG" and len(args) == 2:  # LOG(x, base)
                return BinOp("/", Call("LN", (args[0],)), Call("LN", (args[1],)))
            if fn in BUILTINS:
                if len(args) not in BUILTINS[fn]:
                    raise where.fail(
                        f"{fn_source} takes {' or '.join(map(str, BUILTINS[fn]))} arguments, got {len(args)}"
                    )
                return Call(fn, args)
            # a call of a lookup variable (checked once all variables are known)
            if len(args) != 1:
                raise where.fail(f"unsupported Vensim function {fn_source.strip()!r}")
            return Call("LOOKUP_CALL", (Ref(canonical_name(fn_source)), args[0]), )
        if kind == "subcall":  # a subscripted lookup called: lookup[dim](x)
            subs = tuple(canonical_name(name_of(s.children[0])) for s in ch[1].children)
            return Call("LOOKUP_CALL", (Ref(canonical_name(name_of(ch[0])), subs), walk(ch[2])))
        if kind == "table":
            return table(node)
        if kind == "binop":
            left, op, right = ch
            op = str(op)
            return BinOp(op, walk(left), walk(right))
        if kind == "logic":
            left, op, right = ch
            return BinOp("and" if str(op).upper() == ":AND:" else "or", walk(left), walk(right))
        if kind == "not_":
            return Unary("not", walk(ch[1]))
        if kind == "neg":
            return Unary(str(ch[0]), walk(ch[1]))
        raise where.fail(f"cannot read the expression part {kind!r}")  # pragma: no cover

    return walk(tree)


def _snum(node) -> float:
    sign = -1.0 if len(node.children) == 2 and str(node.children[0]) == "-" else 1.0
    return sign * float(node.children[-1])


def parse_expression(text: str, where: _Where) -> Node:
    """Parse one Vensim expression into IR."""
    import lark

    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise where.fail(f"cannot parse {text.strip()!r} (at column {getattr(exc, 'column', '?')})") from None
    except lark.exceptions.LarkError as exc:  # pragma: no cover - defensive
        raise where.fail(f"cannot parse {text.strip()!r}: {exc}") from None
    return _to_ir(tree, where)


# -- the file -------------------------------------------------------------------------------------

_LHS = re.compile(
    r"""^\s*(?P<name>"(?:[^"\\]|\\.)*"|[^=\[\](:~|"<>]+?)\s*(?P<subs>\[[^\]]*\])?\s*(?P<op>:=|==|<->|:EXCEPT:|:IS:|=|:|\()""",
    re.IGNORECASE | re.DOTALL,
)
_UNSUPPORTED_RHS = re.compile(r"^\s*(A FUNCTION OF|GET [A-Za-z0-9 ]+?(?=\s*\()|:NA:)", re.IGNORECASE)


def _scan_equations(text: str) -> list[list[str]]:
    """Split a model text into equations ``[equation, units, comment]`` at ``~`` and ``|``; in the
    equation part a quoted name (``"a | b ~ c"``, with ``\\"`` escapes) is kept whole, while units
    and comments are free text (an odd number of quotes there is fine)."""
    out: list[list[str]] = []
    parts: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' and not parts:  # a quoted name in the equation
            m = re.compile(r'"(?:[^"\\]|\\.)*"').match(text, i)
            if m is not None:
                buf.append(m.group(0))
                i = m.end()
                continue
        if c == "~":
            parts.append("".join(buf))
            buf = []
        elif c == "|":
            out.append(parts + ["".join(buf)])
            parts, buf = [], []
        else:
            buf.append(c)
        i += 1
    out.append(parts + ["".join(buf)])
    return out


def _split_chunks(text: str) -> list[tuple[str, str, str, int]]:
    """Equations as ``(equation, units, comment, line)``, up to the sketch section."""
    sketch = re.search(r"\\\\\\?---///", text)  # "\\\---///" (Vensim writes 2 or 3 backslashes)
    if sketch is not None:
        text = text[:sketch.start()]
    chunks = []
    line = 1
    for parts in _scan_equations(text):
        raw = "~".join(parts)
        stripped = raw.lstrip()
        lead = raw[: len(raw) - len(stripped)]
        start = line + lead.count("\n") + lead.count("\x01")
        line += raw.count("\n") + raw.count("\x01")
        if not stripped.strip():
            continue
        eq = parts[0]
        units = parts[1].strip() if len(parts) > 1 else ""
        doc = " ".join(parts[2].split()) if len(parts) > 2 else ""
        chunks.append((eq, units, doc, start))
    return chunks


def parse(path: str | Path, text: str | None = None) -> Project:
    """Read a Vensim ``.mdl`` file into a :class:`Project` (simulation settings resolved)."""
    path = Path(path)
    if text is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the model file: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    text = text.lstrip("\ufeff")
    if text.startswith("{UTF-8}"):
        text = text[len("{UTF-8}"):]
    if ":MACRO:" in text.upper():
        line = text[: text.upper().index(":MACRO:")].count("\n") + 1
        raise ModelError(f"{path}:{line}: unsupported Vensim construct :MACRO:")
    # line continuations: a backslash at the end of a line joins the next
    # (each becomes "\x01", counted as a line by _split_chunks and dropped from the equation)
    joined = re.sub(r"\\[ \t]*\r?\n[ \t]*", "\x01", text)
    dims: dict[str, tuple[str, ...]] = {}
    dim_lines: dict[str, int] = {}
    defs: dict[str, dict] = {}  # canonical name -> accumulated definition
    order: list[str] = []
    equivalents: list[tuple[str, str, str, _Where]] = []
    maps: list[tuple[str, str, _Where]] = []  # (dimension, mapped dimension) from "->"
    for eq, units, doc, line in _split_chunks(joined):
        eq_text = eq.replace("\x01", "")
        units, doc = units.replace("\x01", " "), doc.replace("\x01", " ")  # a continued comment is one line of text
        where = _Where(str(path), line)
        body = eq_text.strip()
        if not body or body.startswith("*"):
            continue  # a group (view) marker
        if body.startswith(":"):
            raise where.fail(f"unsupported Vensim construct {body.split()[0]!r}")
        m = _LHS.match(body)
        if m is None:
            raise where.fail(f"cannot read the equation {_short(body)!r}")
        source = m.group("name").strip().strip('"')
        name = canonical_name(source)
        op = m.group("op").upper()
        rest = body[m.end():]
        subs = _subscripts(m.group("subs"))
        if op == ":" and not subs:
            _dimension(name, rest, dims, where, maps)
            dim_lines[name] = where.line
            continue
        if op == "<->" and not subs:  # an equivalent dimension: the same elements (resolved below)
            equivalents.append((name, source, rest.strip(), where))
            continue
        if op == "==":  # an unchangeable constant: a constant as far as a run goes
            op = "="
        if op == ":EXCEPT:" and subs:  # x[d1, d2] :EXCEPT: [a, b], [c, d] = ...
            ex = re.match(r"\s*((?:\[[^\]]*\]\s*,?\s*)+)(==|=)", rest)
            if ex is None:
                raise where.fail(f"cannot read the :EXCEPT: lists of {source!r}")
            where.exclude = tuple(_subscripts(b) for b in re.findall(r"\[[^\]]*\]", ex.group(1)))
            if any(len(x) != len(subs) for x in where.exclude):
                raise where.fail(f"{source!r}: each :EXCEPT: list needs {len(subs)} subscripts")
            rest, op = rest[ex.end():], "="
        if op in (":=", "<->", ":EXCEPT:", ":IS:", ":"):
            what = {":=": "data equation (:=)", "==": "unchangeable constant (==)",
                    "<->": "subscript equivalence (<->)", ":": "subscript mapping"}.get(op, op)
            raise where.fail(f"unsupported Vensim construct: {what} in {source!r}")
        entry = defs.get(name)
        if entry is None:
            entry = defs[name] = {"source": source, "line": where.line, "units": units, "doc": doc,
                                  "parts": []}
            order.append(name)
        if op == "(":
            entry["parts"].append(("lookup", subs, _lookup_table("(" + rest, where), where))
            continue
        if _UNSUPPORTED_RHS.match(rest):
            raise where.fail(f"unsupported Vensim construct {_UNSUPPORTED_RHS.match(rest).group(1).strip()!r} in {source!r}")
        tabbed = re.fullmatch(r"\s*TABBED\s+ARRAY\s*\(([\s\d.eE+\-]*)\)\s*", rest, flags=re.IGNORECASE)
        if subs and tabbed:  # numbers separated by tabs and line breaks, row by row
            entry["parts"].append(("list", subs, _number_list(",".join(tabbed.group(1).split()), where), where))
            continue
        if subs and re.fullmatch(r"[\s\d.eE+\-,;]+", rest) and re.search(r"[,;]", rest):
            entry["parts"].append(("list", subs, _number_list(rest, where), where))
            continue
        node = parse_expression(rest, where)
        entry["parts"].append(("expr", subs, node, where))
    _expand_subranges(dims, dim_lines, path)
    for name, source, other, where in equivalents:
        if canonical_name(other.strip('"')) not in dims:
            raise where.fail(f"{source!r} <-> {other!r}: {other!r} is not a subscript range")
        dims[name] = dims[canonical_name(other.strip('"'))]
    links: dict[str, list[str]] = {}
    for a, b, where in maps:
        if b not in dims or len(dims[a]) != len(dims[b]):
            raise where.fail(f"subscript mapping {a!r} -> {b!r}: {b!r} must be a range of as many elements")
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)
    return _assemble(path, defs, order, dims, links)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) < 60 else text[:57] + "..."


def _subscripts(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(canonical_name(s.strip().strip('"')) for s in text.strip()[1:-1].split(",") if s.strip())


def _dimension(name: str, rest: str, dims: dict, where: _Where, maps: list | None = None) -> None:
    if "->" in rest:  # "dimc: c1, c2 -> dimb": positional correspondence with dimb's elements
        rest, target = rest.split("->", 1)
        targets = [t.strip() for t in target.split(",") if t.strip()]
        if maps is None or not targets or any(not re.fullmatch(r'"?[\w\s$\'&%]+"?', t) for t in targets):
            raise where.fail(f"unsupported Vensim construct: subscript mapping (->) {target.strip()!r} in {name!r}")
        maps += [(name, canonical_name(t.strip('"')), where) for t in targets]
    elements: list[str] = []
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"\(\s*([^\d\s-]*?)\s*(\d+)\s*-\s*([^\d\s-]*?)\s*(\d+)\s*\)", item)
        if m:
            prefix, a, prefix2, b = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            if prefix != prefix2 or b < a:
                raise where.fail(f"cannot read the subscript range {item!r}")
            elements += [canonical_name(f"{prefix}{k}") for k in range(a, b + 1)]
            continue
        el = canonical_name(item.strip('"'))
        if el in dims:  # a subrange named inside another dimension
            elements += list(dims[el])
        else:
            elements.append(el)
    if not elements:
        raise where.fail(f"the subscript range {name!r} has no elements")
    if len(set(elements)) != len(elements):
        raise where.fail(f"the subscript range {name!r} repeats an element")
    dims[name] = tuple(elements)


def _expand_subranges(dims: dict, lines: dict, path: Path) -> None:
    """A range may list a subrange defined later (``dim: A, subdim1, B`` before ``subdim1: ...``):
    replace such names by their elements, in place."""

    def flat(d: str, seen: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for el in dims[d]:
            if el in dims and el != d:
                if el in seen:
                    raise ModelError(f"{path}:{lines.get(d, 0)}: the subscript ranges {d!r} and {el!r} contain each other")
                out += flat(el, seen + (el,))
            else:
                out.append(el)
        return out

    flattened = {d: flat(d, (d,)) for d in dims}
    for d, els in flattened.items():
        if len(set(els)) != len(els):
            raise ModelError(f"{path}:{lines.get(d, 0)}: the subscript range {d!r} repeats an element")
        dims[d] = tuple(els)


def _number_list(text: str, where: _Where) -> tuple[float, ...]:
    values = []
    for item in re.split(r"[,;]", text):
        if item.strip():
            try:
                values.append(float(item))
            except ValueError:
                raise where.fail(f"cannot read the number {item.strip()!r}") from None
    return tuple(values)


def _lookup_table(text: str, where: _Where) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``( [(xmin,ymin)-(xmax,ymax)], (x1,y1), ... )`` or ``(x1, x2, ..., y1, y2, ...)``."""
    body = text.strip()
    body = re.sub(r"\[[^\]]*\]\s*,?", "", body, count=1)  # the optional range box
    num = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    pairs = re.findall(rf"\(\s*({num})\s*,\s*({num})\s*\)", body)
    if pairs:  # Vensim reads the points in the order of x
        pts = sorted(((float(a), float(b)) for a, b in pairs), key=lambda p: p[0])
        return tuple(a for a, _ in pts), tuple(b for _, b in pts)
    flat = re.findall(num, body)
    if flat and len(flat) % 2 == 0:
        n = len(flat) // 2
        return tuple(map(float, flat[:n])), tuple(map(float, flat[n:]))
    raise where.fail(f"cannot read the lookup table {_short(text)!r}")



def _assemble(path: Path, defs: dict, order: list[str], dims: dict, links: dict | None = None) -> Project:
    parent = parent_dims(dims)
    full = {d: els for d, els in dims.items() if parent[d] == d}
    element_dim = {}
    position: dict[str, int] = {}
    for d, els in full.items():
        for i, e in enumerate(els):
            element_dim.setdefault(e, d)
            position.setdefault(e, i + 1)
    control: dict[str, Node] = {}
    control_lines: dict[str, int] = {}
    variables: list[Variable] = []
    lookups = {n for n in order if any(k == "lookup" for k, *_ in defs[n]["parts"])}
    sub_tables: set[str] = set()  # the element lookups of subscripted lookups: name__el
    tables: list[Variable] = []  # lookups written inline (WITH LOOKUP)
    for name in order:
        entry = defs[name]
        parts = entry["parts"]
        where = parts[0][3]
        if name in CONTROL:
            if parts[0][1] or len(parts) > 1 or parts[0][0] != "expr":
                raise where.fail(f"{entry['source']} must be one number")
            control[name] = parts[0][2]
            control_lines[name] = entry["line"]
            continue
        common = dict(name=name, source_name=entry["source"], units=entry["units"], doc=entry["doc"],
                      line=entry["line"])
        if parts[0][0] == "lookup" and parts[0][1]:  # subscripted: one lookup per element
            if any(k != "lookup" for k, *_ in parts):
                raise where.fail(f"{entry['source']!r} is both a lookup and a variable")
            for _, subs, (xs, ys), pw in parts:
                for combo in _combos(subs, dims):
                    el_name = name + "".join(f"__{e}" for e in combo)
                    if el_name in sub_tables:
                        raise pw.fail(f"lookup {entry['source']}{list(combo)} is defined twice")
                    sub_tables.add(el_name)
                    variables.append(Variable(
                        kind="lookup", equation=None, lookup=(xs, ys, "hold"), **{
                            **common, "name": el_name, "source_name": f"{entry['source']}[{', '.join(combo)}]",
                            "line": pw.line}))
            continue
        if parts[0][0] == "lookup":
            if len(parts) > 1:
                raise where.fail(f"lookup {entry['source']!r} is defined twice")
            xs, ys = parts[0][2]
            variables.append(Variable(kind="lookup", equation=None, lookup=(xs, ys, "hold"), **common))
            continue
        if any(k == "lookup" for k, *_ in parts):
            raise where.fail(f"{entry['source']!r} is both a lookup and a variable")
        var_dims: tuple[str, ...] | None = None
        element_eqs: list[tuple[tuple[str, ...], Node]] = []
        element_inits: list[tuple[tuple[str, ...], Node]] = []
        kinds = set()
        for kind, subs, value, pw in parts:
            these = []
            for s in subs:
                if s in dims:
                    these.append(parent[s])
                elif s in element_dim:
                    these.append(element_dim[s])
                else:
                    raise pw.fail(f"{entry['source']!r}: unknown subscript {s!r}")
            if var_dims is None:
                var_dims = tuple(these)
            elif tuple(these) != var_dims:
                raise pw.fail(f"{entry['source']!r}: subscripts {list(subs)} differ from an earlier definition's")
            combos = _combos(subs, dims)
            if pw.exclude:
                combos = [c for c in combos if not any(
                    all(el == x or el in dims.get(x, ()) for el, x in zip(c, ex)) for ex in pw.exclude)]
            if kind == "list":
                if len(value) != len(combos):
                    raise pw.fail(
                        f"{entry['source']!r}: {len(value)} values for {len(combos)} subscript elements"
                    )
                for combo, v in zip(combos, value):
                    element_eqs.append((combo, Num(v)))
                kinds.add("constant")
                continue
            node = value
            if isinstance(node, Call) and node.fn == "INTEG":
                kinds.add("stock")
                rate, init = node.args
                _check_no_integ(rate, pw)
                _check_no_integ(init, pw)
                for combo in combos:
                    element_eqs.append((combo, _bind(rate, subs, combo, position, (dims, links or {}))))
                    element_inits.append((combo, _bind(init, subs, combo, position, (dims, links or {}))))
                continue
            _check_no_integ(node, pw)
            node = _extract_tables(node, name, tables, lookups, entry, pw)
            _check_calls(node, lookups, pw)
            kinds.add("constant" if _is_number(node) else "aux")
            for combo in combos:
                element_eqs.append((combo, _bind(node, subs, combo, position, (dims, links or {}))))
        if "stock" in kinds and len(kinds) > 1:
            raise where.fail(f"{entry['source']!r}: some elements are stocks (INTEG), others not")
        kind = "stock" if "stock" in kinds else ("constant" if kinds == {"constant"} else "aux")
        var_dims = var_dims or ()
        seen = [c for c, _ in element_eqs]
        if len(set(seen)) != len(seen):
            raise where.fail(f"{entry['source']!r}: an element is defined twice")
        # elements left without an equation (Vensim allows it: smaller_range) are not variables;
        # the lowering refuses a reference to one
        if kind == "stock":
            for _, rate in element_eqs:
                _check_calls(rate, lookups, where)
            for _, init in element_inits:
                _check_calls(init, lookups, where)
        if not var_dims:
            eq = element_eqs[0][1]
            init = element_inits[0][1] if element_inits else None
            variables.append(Variable(kind=kind, equation=eq, init=init, **common))
        else:
            variables.append(Variable(
                kind=kind, equation=None, dims=var_dims, elements=tuple(element_eqs),
                element_inits=tuple(element_inits), **common))
    taken = {v.name for v in variables}
    for t in tables:
        if t.name in taken:
            raise ModelError(f"{path}:{t.line}: the name {t.name!r} for the WITH LOOKUP table of "
                             f"{t.source_name!r} is taken; rename that variable")
    variables += tables
    settings = _control(path, control, control_lines)
    values = {n: Num(settings[CONTROL[n]]) for n in CONTROL}

    def value(r: Ref) -> Node:
        if r.subscripts:
            return r
        if r.name in values:  # TIME STEP, INITIAL TIME, ... are numbers fixed before the run
            return values[r.name]
        if r.name in position and r.name not in defs:  # an element read as a value: its position
            return Num(float(position[r.name]))
        return r

    def fixed(node):
        return _element_lookups(map_refs(_count_elements(node, dims, path), value), sub_tables, path)

    variables = [replace(
        v, equation=None if v.equation is None else fixed(v.equation),
        init=None if v.init is None else fixed(v.init),
        elements=tuple((k, fixed(n)) for k, n in v.elements),
        element_inits=tuple((k, fixed(n)) for k, n in v.element_inits)) for v in variables]
    return Project(
        path=str(path), variables=tuple(variables), dimensions=tuple(dims.items()), **settings,
        method="euler",
    )


def _combos(subs: tuple[str, ...], dims: dict) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for s in subs:
        options = dims.get(s, (s,))
        combos = [c + (e,) for c in combos for e in options]
    return combos


def _bind(node: Node, subs: tuple[str, ...], combo: tuple[str, ...], position: dict | None = None,
          links: tuple[dict, dict] | None = None) -> Node:
    """Replace dimension subscripts that the left-hand side binds with the element in ``combo``.

    A dimension on the right that is a subrange (or the parent) of the left's is bound by element;
    ``dim!`` (summed) stays. A bound dimension read as a value (``IF THEN ELSE(d1 = d2, ..)``) is
    the element's 1-based position in the first dimension declaring it (``position``)."""
    binding = {s: e for s, e in zip(subs, combo) if s != e}
    if links is not None:  # mapped ranges (->) take the element at the same position
        dims, mapped = links
        for s, e in list(binding.items()):
            for other in mapped.get(s, ()):
                if other not in binding and e in dims[s]:
                    binding[other] = dims[other][dims[s].index(e)]
    if not binding:
        return node

    def bound(r: Ref) -> Node:
        if not r.subscripts and r.name in binding and position and binding[r.name] in position:
            return Num(float(position[binding[r.name]]))
        return Ref(r.name, tuple(binding.get(s, s) for s in r.subscripts))

    return map_refs(node, bound)


def _element_lookups(node: Node, tables: set[str], path: Path) -> Node:
    """``LOOKUP_CALL(lookup[a, b], x)`` (subscripts bound to elements) -> a call of ``lookup__a__b``."""
    if isinstance(node, Call):
        args = tuple(_element_lookups(a, tables, path) for a in node.args)
        if node.fn == "LOOKUP_CALL" and args[0].subscripts:
            name = args[0].name + "".join(f"__{e}" for e in args[0].subscripts)
            if name not in tables:
                raise ModelError(f"{path}: no lookup {args[0].name}{list(args[0].subscripts)}")
            return Call("LOOKUP_CALL", (Ref(name), args[1]))
        return Call(node.fn, args)
    if isinstance(node, BinOp):
        return BinOp(node.op, _element_lookups(node.left, tables, path), _element_lookups(node.right, tables, path))
    if isinstance(node, Unary):
        return Unary(node.op, _element_lookups(node.operand, tables, path))
    return node


def _count_elements(node: Node, dims: dict, path: Path) -> Node:
    """``ELMCOUNT(dim)`` -> the number of elements of ``dim``."""
    if isinstance(node, Call):
        if node.fn == "ELMCOUNT":
            arg = node.args[0]
            if not isinstance(arg, Ref) or arg.name not in dims:
                raise ModelError(f"{path}: ELMCOUNT needs a subscript range, got {arg!r}")
            return Num(float(len(dims[arg.name])))
        return Call(node.fn, tuple(_count_elements(a, dims, path) for a in node.args))
    if isinstance(node, BinOp):
        return BinOp(node.op, _count_elements(node.left, dims, path), _count_elements(node.right, dims, path))
    if isinstance(node, Unary):
        return Unary(node.op, _count_elements(node.operand, dims, path))
    return node




def _check_no_integ(node: Node, where: _Where) -> None:
    for n in walk(node):
        if isinstance(n, Call) and n.fn == "INTEG":
            raise where.fail("unsupported Vensim construct: INTEG inside an expression (it must be the whole equation)")


def _extract_tables(node: Node, name: str, tables: list, lookups: set, entry: dict, where: _Where) -> Node:
    """Replace ``WITH LOOKUP(x, table)`` by a call of a new lookup variable ``<name>_lookup``."""

    def fn(n: Node) -> Node:
        if isinstance(n, Call):
            args = tuple(fn(a) for a in n.args)
            if n.fn == "WITH_LOOKUP":
                table = args[1]
                if not (isinstance(table, Call) and table.fn == "_TABLE"):
                    raise where.fail("WITH LOOKUP needs a table of points as its second argument")
                xs = tuple(a.value for a in table.args[0].args)
                ys = tuple(a.value for a in table.args[1].args)
                lk = f"{name}_lookup" + (f"_{len(tables) + 1}" if any(t.name == f"{name}_lookup" for t in tables) else "")
                tables.append(Variable(
                    name=lk, source_name=f"{entry['source']} (WITH LOOKUP table)", kind="lookup",
                    equation=None, lookup=(xs, ys, "hold"), line=where.line))
                lookups.add(lk)
                return Call("LOOKUP_CALL", (Ref(lk), args[0]))
            if any(isinstance(a, Call) and a.fn == "_TABLE" for a in args):
                raise where.fail(f"a table of points is allowed only in WITH LOOKUP, not in {n.fn}")
            return Call(n.fn, args)
        if isinstance(n, BinOp):
            return BinOp(n.op, fn(n.left), fn(n.right))
        if isinstance(n, Unary):
            return Unary(n.op, fn(n.operand))
        return n

    return fn(node)


def _check_calls(node: Node, lookups: set[str], where: _Where) -> None:
    for n in walk(node):
        if isinstance(n, Call) and n.fn == "LOOKUP_CALL" and n.args[0].name not in lookups:
            raise where.fail(f"unsupported Vensim function {n.args[0].name.upper().replace('_', ' ')!r}")
        if isinstance(n, Call) and n.fn == "_TABLE":
            raise where.fail("a table of points is allowed only in WITH LOOKUP")


def _is_number(node: Node) -> bool:
    if isinstance(node, Num):
        return True
    if isinstance(node, Unary) and node.op in "+-":
        return _is_number(node.operand)
    if isinstance(node, BinOp) and node.op in ("+", "-", "*", "/", "^"):
        return _is_number(node.left) and _is_number(node.right)
    return False


def _evaluate(node: Node, env: dict[str, float], where: str) -> float:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref) and not node.subscripts and node.name in env:
        return env[node.name]
    if isinstance(node, Unary) and node.op in "+-":
        v = _evaluate(node.operand, env, where)
        return -v if node.op == "-" else v
    if isinstance(node, BinOp) and node.op in ("+", "-", "*", "/", "^"):
        a, b = _evaluate(node.left, env, where), _evaluate(node.right, env, where)
        try:
            return {"+": a + b, "-": a - b, "*": a * b}.get(node.op) if node.op in "+-*" else (
                a / b if node.op == "/" else a ** b)
        except ZeroDivisionError:
            raise ModelError(f"{where}: division by zero") from None
    raise ModelError(f"{where}: must be a number or an expression of the other control settings")


def _control(path: Path, control: dict[str, Node], lines: dict[str, int] | None = None) -> dict[str, float]:
    missing = [n.upper().replace("_", " ") for n in ("initial_time", "final_time", "time_step") if n not in control]
    if missing:
        raise ModelError(f"{path}: the model has no {', '.join(missing)} (Vensim's simulation control)")
    env: dict[str, float] = {}
    for _ in range(len(control) + 1):  # resolve settings that refer to each other
        for name, node in control.items():
            if name not in env:
                try:
                    env[name] = _evaluate(node, env, f"{path}: {name.upper()}")
                except ModelError:
                    pass
    for name in control:
        if name not in env:
            where = f"{path}:{lines[name]}" if lines and name in lines else str(path)
            _evaluate(control[name], env, f"{where}: unsupported construct: {name.upper().replace('_', ' ')}")
    env.setdefault("saveper", env["time_step"])
    return {CONTROL[n]: float(v) for n, v in env.items()}
