"""The XMILE reader: settings, variables, graphical functions, arrays, equation syntax and the
errors it raises, checked against hand-written XMILE and the vendored SDXorg files."""

from __future__ import annotations

import math
import operator
from pathlib import Path

import numpy as np
import pytest

from spreadjax._errors import ModelError
from spreadjax.sdimport._ir import BinOp, Call, Num, Ref, Unary
from spreadjax.sdimport._xmile import parse

SDXORG = Path(__file__).parent / "sdxorg"

HEAD = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
<header><vendor>test</vendor><product version="1">hand</product></header>
<sim_specs method="{method}" time_units="Months"><start>2</start><stop>14</stop><dt{dt_attr}>{dt}</dt></sim_specs>
{extra}
<model><variables>
"""
TAIL = "</variables></model></xmile>\n"


def write(tmp_path: Path, body: str, *, extra: str = "", method: str = "Euler", dt: str = "0.25",
          dt_attr: str = "", name: str = "m.xmile") -> Path:
    path = tmp_path / name
    path.write_text(HEAD.format(method=method, dt=dt, dt_attr=dt_attr, extra=extra) + body + TAIL)
    return path


def aux(name: str, eqn: str, inner: str = "") -> str:
    return f'<aux name="{name}"><eqn>{eqn}</eqn>{inner}</aux>\n'


def equation(tmp_path: Path, eqn: str, others: str = "") -> object:
    """The IR of one auxiliary's equation ``eqn`` (others may define the names it reads)."""
    project = parse(write(tmp_path, aux("out", eqn) + others))
    return {v.name: v for v in project.variables}["out"].equation


_BIN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "^": operator.pow,
        "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge, "=": operator.eq,
        "<>": operator.ne}


def evaluate(node, env: dict[str, float]) -> float:
    """Evaluate an IR tree with Python's arithmetic (the independent truth for precedence)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref):
        return env[node.name]
    if isinstance(node, Unary):
        x = evaluate(node.operand, env)
        return {"-": -x, "+": x, "not": float(not x)}[node.op]
    if isinstance(node, BinOp):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if node.op == "and":
            return float(bool(a) and bool(b))
        if node.op == "or":
            return float(bool(a) or bool(b))
        return float(_BIN[node.op](a, b))
    if isinstance(node, Call):
        args = [evaluate(a, env) for a in node.args]
        if node.fn == "IF_THEN_ELSE":
            return args[1] if args[0] else args[2]
        if node.fn == "MODULO":
            return math.fmod(args[0], args[1]) if args[0] >= 0 else args[0] % args[1]
        return {"MIN": min, "MAX": max}[node.fn](*args)
    raise TypeError(node)


def test_teacup_settings_stock_and_quoted_names():
    project = parse(SDXORG / "samples/teacup/teacup.xmile")
    assert (project.start, project.stop, project.dt, project.saveper, project.method) == (0.0, 30.0, 0.125, 0.125, "euler")
    v = {v.name: v for v in project.variables}
    assert set(v) == {"heat_loss_to_room", "room_temperature", "teacup_temperature", "characteristic_time"}
    cup = v["teacup_temperature"]
    assert (cup.kind, cup.init, cup.outflows, cup.inflows) == ("stock", Num(180.0), ("heat_loss_to_room",), ())
    assert cup.equation == Unary("-", Ref("heat_loss_to_room"))  # the net rate, besides the flow lists
    assert cup.source_name == "Teacup Temperature" and cup.doc == "The average temperature of the tea and the cup"
    assert v["room_temperature"].kind == "constant"
    assert v["heat_loss_to_room"].equation == BinOp(
        "/", BinOp("-", Ref("teacup_temperature"), Ref("room_temperature")), Ref("characteristic_time"))
    assert v["heat_loss_to_room"].line == 18  # the <flow> element's line in the file


@pytest.mark.parametrize(
    ("eqn", "expected"),
    [
        ("-2^2", -4.0),  # ^ binds tighter than unary minus (the suite's exponentiation test)
        ("2^3^2", 512.0),  # right-associative
        ("2^-1", 0.5),
        ("4 - 5 + 6", 5.0),  # left-associative (the suite's eval_order test)
        ("10/2*5", 25.0),
        ("1 + 2 * 3 ^ 2", 19.0),
        ("-(7 - 9) * 900", 1800.0),
        ("7 mod 3 + 1", 2.0),
        ("IF 3 > 2 AND NOT 0 THEN 7 ELSE 900", 7.0),
        ("if 1 < 0 or 2 <= 1 then 7 else 900", 900.0),
        ("(IF a = 7 THEN 1 ELSE 0) + (IF a <> 7 THEN 10 ELSE 20)", 21.0),
        ("1 + IF a >= 7 THEN 2 ELSE 3", 3.0),
        ("MIN(a, 900) + MAX(a, 900)", 907.0),
        (".5e1 + 1E-1", 5.1),
        ("a {a comment} * 2", 14.0),
    ],
)
def test_operator_precedence_matches_python(tmp_path, eqn, expected):
    node = equation(tmp_path, eqn.replace("<", "&lt;").replace(">", "&gt;"), aux("a", "7"))
    assert evaluate(node, {"a": 7.0}) == pytest.approx(expected, rel=1e-12)


def test_builtins_translate_to_the_ir(tmp_path):
    others = aux("x", "7") + aux("T", "3") + aux("i", "900")
    x, T, i = Ref("x"), Ref("v_t"), Ref("i")  # "T" clashes with spreadjax's time name t
    cases = {
        "SMTH1(x, T)": Call("SMOOTH", (x, T)),
        "SMTH1(x, T, i)": Call("SMOOTHI", (x, T, i)),
        "SMTH3(x, T, i)": Call("SMOOTH3I", (x, T, i)),
        "SMTHN(x, T, 5)": Call("SMOOTHN", (x, T, x, Num(5.0))),
        "DELAY1(x, T)": Call("DELAY1", (x, T)),
        "DELAY3(x, T, i)": Call("DELAY3I", (x, T, i)),
        "DELAYN(x, T, 4, i)": Call("DELAYN", (x, T, i, Num(4.0))),
        "DELAY(x, T)": Call("DELAY_FIXED", (x, T, x)),
        "STEP(x, 5)": Call("STEP", (x, Num(5.0))),
        "RAMP(x, 5)": Call("RAMP", (x, Num(5.0), Num(math.inf))),
        "RAMP(x, 5, 9)": Call("RAMP", (x, Num(5.0), Num(9.0))),
        "PULSE(x, 5)": BinOp("*", BinOp("/", x, Ref("time_step")), Call("PULSE", (Num(5.0), Ref("time_step")))),
        "PULSE(x, 5, T)": BinOp("*", BinOp("/", x, Ref("time_step")),
                                Call("PULSE_TRAIN", (Num(5.0), Ref("time_step"), T, Num(math.inf)))),
        "SAFEDIV(x, T)": Call("ZIDZ", (x, T)),
        "SAFEDIV(x, T, i)": Call("XIDZ", (x, T, i)),
        "INIT(x)": Call("INITIAL", (x,)),
        "int(x)": Call("INTEGER", (x,)),
        "Abs(x)": Call("ABS", (x,)),
        "Time + DT + STARTTIME + STOPTIME": BinOp("+", BinOp("+", BinOp("+", Ref("time"), Ref("time_step")),
                                                               Ref("initial_time")), Ref("final_time")),
        "PI()": Num(math.pi),
    }
    for eqn, expected in cases.items():
        assert equation(tmp_path, eqn, others) == expected, eqn


def test_graphical_functions(tmp_path):
    body = (
        '<gf name="effect" type="extrapolate"><xscale min="0" max="900"/><ypts>1,0.5,0.25,0</ypts></gf>\n'
        '<gf name="stepwise" type="discrete"><xpts sep=";">0;7;10</xpts><ypts sep=";">1;2;3</ypts></gf>\n'
        + aux("load", "7")
        + aux("capacity", "load / 900", '<gf><xpts>0,0.5,1</xpts><ypts>0,0.8,1</ypts></gf>')
        + aux("use1", "effect(load) + LOOKUP(stepwise, load)")
        + aux("use2", "capacity(0.25)")
    )
    v = {v.name: v for v in parse(write(tmp_path, body)).variables}
    assert v["effect"].kind == "lookup" and v["effect"].lookup == ((0.0, 300.0, 600.0, 900.0), (1, 0.5, 0.25, 0), "linear")
    assert v["stepwise"].lookup == ((0.0, 7.0, 10.0), (1.0, 2.0, 3.0), "step")
    # a variable with an equation and a gf: a lookup '<name>_lookup' applied to the equation
    assert v["capacity_lookup"].lookup == ((0.0, 0.5, 1.0), (0.0, 0.8, 1.0), "hold")
    assert v["capacity"].equation == Call("LOOKUP_CALL", (Ref("capacity_lookup"), BinOp("/", Ref("load"), Num(900.0))))
    assert v["use1"].equation == BinOp("+", Call("LOOKUP_CALL", (Ref("effect"), Ref("load"))),
                                       Call("LOOKUP_CALL", (Ref("stepwise"), Ref("load"))))
    assert v["use2"].equation == Call("LOOKUP_CALL", (Ref("capacity_lookup"), Num(0.25)))


def test_arrays(tmp_path):
    extra = ('<dimensions><dim name="Site"><elem name="North"/><elem name="South Bank"/><elem name="3rd"/></dim>'
             '<dim name="Age" size="2"/></dimensions>')
    site = '<dimensions><dim name="Site"/></dimensions>'
    both = '<dimensions><dim name="Site"/><dim name="Age"/></dimensions>'
    body = (
        f'<aux name="pop">{site}<eqn>7, 900, 12</eqn></aux>\n'
        f'<aux name="grid">{both}<eqn>1,2;\n 3,4;\n 5,6;</eqn></aux>\n'
        f'<stock name="adopters">{site}<element subscript="North"><eqn>1</eqn></element>'
        '<element subscript="South Bank"><eqn>2</eqn></element><element subscript="3rd"><eqn>pop[North]</eqn></element>'
        '<inflow>adopting</inflow><non_negative/></stock>\n'
        f'<flow name="adopting">{site}<eqn>pop[Site] * grid[Site, 2] / SUM(pop[*])</eqn></flow>\n'
        + aux("smallest", "MIN(pop[*]) + pop[South_Bank]")
    )
    project = parse(write(tmp_path, body, extra=extra))
    assert project.dimensions == (("site", ("north", "south_bank", "v_3rd")), ("age", ("v_1", "v_2")))
    v = {v.name: v for v in project.variables}
    assert v["pop"].dims == ("site",) and v["pop"].kind == "constant"
    assert v["pop"].elements == ((("north",), Num(7.0)), (("south_bank",), Num(900.0)), (("v_3rd",), Num(12.0)))
    assert [k for k, _ in v["grid"].elements] == [("north", "v_1"), ("north", "v_2"), ("south_bank", "v_1"),
                                                  ("south_bank", "v_2"), ("v_3rd", "v_1"), ("v_3rd", "v_2")]
    assert [n.value for _, n in v["grid"].elements] == [1, 2, 3, 4, 5, 6]
    st = v["adopters"]
    assert st.kind == "stock" and st.non_negative and st.init is None and st.inflows == ("adopting",)
    assert st.equation == Ref("adopting", ("site",))
    assert st.element_inits == ((("north",), Num(1.0)), (("south_bank",), Num(2.0)), (("v_3rd",), Ref("pop", ("north",))))
    assert v["adopting"].equation == BinOp(
        "/", BinOp("*", Ref("pop", ("site",)), Ref("grid", ("site", "v_2"))), Call("SUM", (Ref("pop", ("site!",)),)))
    assert v["smallest"].equation == BinOp("+", Call("VMIN", (Ref("pop", ("site!",)),)), Ref("pop", ("south_bank",)))


def test_settings_legacy_layout_and_behavior(tmp_path):
    path = tmp_path / "legacy.stmx"
    path.write_text(
        '<xmile version="1.0" xmlns="http://www.systemdynamics.org/XMILE">\n'
        '<sim_specs method="RK4"><start>0</start><stop>100</stop><dt reciprocal="true">4</dt></sim_specs>\n'
        '<behavior><stock><non_negative/></stock></behavior>\n'
        '<isee:prefs layer="model"/>\n'  # an undeclared prefix, as Stella writes it
        '<model><stock name="S"><eqn>900</eqn><outflow>f</outflow><display x="1"/></stock>\n'
        '<stock name="Free"><eqn>7</eqn><non_negative>false</non_negative></stock>\n'
        '<flow name="f"><eqn>S/7</eqn></flow></model></xmile>\n'
    )
    project = parse(path)
    assert (project.dt, project.method, project.saveper) == (0.25, "rk4", 0.25)
    v = {v.name: v for v in project.variables}
    assert v["s"].non_negative and not v["free"].non_negative and not v["f"].non_negative


@pytest.mark.parametrize(
    ("body", "kwargs", "line", "message"),
    [
        (aux("a", "FORCST(7, 3, 1)"), {}, 7, "unsupported XMILE function FORCST()"),
        (aux("a", "b + 1"), {}, 7, "unknown variable 'b'"),
        (aux("a", "3 +"), {}, 7, "unexpected 'end'"),
        (aux("a", "7 ??? 9"), {}, 7, "unexpected character '?'"),
        (aux("a", "SMTH1(7)"), {}, 7, "SMTH1 takes 2 or 3 argument(s), got 1"),
        ('<module name="hares"/>\n', {}, 7, "XMILE modules"),
        ('<stock name="belt"><eqn>0</eqn><conveyor><len>3</len></conveyor></stock>\n', {}, 7, "conveyor"),
        ('<gf name="g"><xpts>0,1</xpts><ypts>1,2,3</ypts></gf>\n', {}, 7, "2 x points and 3 y points"),
        ('<gf name="g" type="wiggly"><xpts>0,1</xpts><ypts>1,2</ypts></gf>\n', {}, 7, "type 'wiggly'"),
        (aux("a", "1") + aux("A", "2"), {}, 8, "defined twice"),
        (aux("a", "1"), {"method": "RK45"}, 4, "integration method 'RK45'"),
        (aux("a", "1"), {"dt": "0"}, 4, "dt > 0"),
        (aux("a", "1") + "<aux>\n", {}, 9, "not well-formed XML"),
    ],
)
def test_errors_name_the_construct_file_and_line(tmp_path, body, kwargs, line, message):
    path = write(tmp_path, body, **kwargs)
    with pytest.raises(ModelError) as info:
        parse(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}:"), text
    assert message in text, text
    assert "\n" not in text


def test_not_xmile(tmp_path):
    path = tmp_path / "x.xmile"
    path.write_text("<html><body/></html>")
    with pytest.raises(ModelError, match=r"x.xmile:1: not an XMILE file"):
        parse(path)


def test_vendored_suite_parses():
    """Every vendored XMILE file either parses or fails for a reason the suite's file really has
    (modules, macros, xmutil's '???' placeholders for lost array data, malformed XML)."""
    files = sorted(p for p in SDXORG.rglob("*") if p.suffix in (".xmile", ".stmx"))
    assert len(files) == 118
    failed = {}
    for f in files:
        try:
            parse(f)
        except ModelError as e:
            failed[f.relative_to(SDXORG).as_posix()] = str(e)
    expected_reasons = ("modules", "'???'", "not well-formed", "MACRO(", "is not an element of", "IF false_input not")
    for f, reason in failed.items():
        assert any(r in reason for r in expected_reasons), (f, reason)
    assert len(files) - len(failed) == 88


def test_time_functions_end_to_end_against_closed_forms(tmp_path):
    """SMTH1/SMTH3, DELAY3/DELAYN of a step, RAMP, PULSE and an extrapolating gf, imported and
    run (RK4, dt = 1/64), against their closed forms. DT is read by PULSE without the model
    defining it: the reader supplies it from <sim_specs>."""
    from spreadjax.core import RK4, Simulation, compile_model
    from spreadjax.sdimport import import_model

    body = (
        aux("x", "STEP(900, 4)") + aux("s1", "SMTH1(x, 3)") + aux("s3", "SMTH3(x, 3)")
        + aux("d3", "DELAY3(x, 3)") + aux("dn", "DELAYN(x, 3, 5)") + aux("r", "RAMP(2, 1, 5)")
        + '<gf name="g" type="extrapolate"><xpts>0,10</xpts><ypts>0,5</ypts></gf>\n' + aux("gx", "g(TIME)")
        + '<stock name="p"><eqn>0</eqn><inflow>pin</inflow></stock><flow name="pin"><eqn>PULSE(7, 3)</eqn></flow>\n'
    )
    path = write(tmp_path, body, method="RK4", dt="0.015625")
    imported = import_model(path)
    assert (imported.start, imported.end, imported.dt, imported.solver) == (2.0, 14.0, 0.015625, "rk4")
    cm = compile_model(imported.model)
    ts = np.arange(2.0, 14.0 + 1e-9, 0.5)
    names = ("s1", "s3", "d3", "dn", "r", "gx", "p")
    out = Simulation(cm, tuple(ts), imported.dt, names, solver=RK4(), t0=2.0)(cm.params(dtype="float64"))
    got = {k: np.asarray(v).reshape(len(ts), -1)[:, 0] for k, v in out.items()}
    u = np.clip(ts - 4.0, 0.0, None)
    erlang = lambda k, n: 900 * (1 - np.exp(-k * u) * sum((k * u) ** j / math.factorial(j) for j in range(n)))  # noqa: E731
    # the step lands on the grid at t = 4, where RK4's stages straddle it: about one step's worth of
    # error, 900 * dt / T = 4.7 at most, decaying after
    assert got["s1"] == pytest.approx(900 * (1 - np.exp(-u / 3)), abs=5)
    assert got["s3"] == pytest.approx(erlang(1.0, 3), abs=5)
    assert got["d3"] == pytest.approx(erlang(1.0, 3), abs=5)
    assert got["dn"] == pytest.approx(erlang(5 / 3, 5), abs=5)
    assert not np.allclose(got["dn"], got["d3"], atol=50)  # the order matters
    assert got["r"] == pytest.approx(2 * np.clip(np.minimum(ts, 5) - 1, 0, None), abs=1e-9)
    assert got["gx"] == pytest.approx(ts / 2, abs=1e-9)  # extrapolated beyond x = 10
    # 7 units added at t = 3 (RK4's last stage of the step ending at 3 sees 1/6 of it already)
    off = ts != 3.0
    assert got["p"][off] == pytest.approx(np.where(ts > 3, 7.0, 0.0)[off], abs=1e-9)


def _run_xmile(path, names):
    from spreadjax.core import Euler, Simulation, compile_model
    from spreadjax.sdimport import import_model

    imported = import_model(path)
    cm = compile_model(imported.model)
    n = int(round((imported.end - imported.start) / imported.dt))
    ts = imported.start + imported.dt * np.arange(n + 1)
    out = Simulation(cm, tuple(ts), imported.dt, names, solver=Euler(), t0=imported.start)(cm.params(dtype="float64"))
    return {k: np.asarray(v).reshape(len(ts), -1)[:, 0] for k, v in out.items()}, ts


def test_non_negative_stocks_and_flows_follow_an_euler_recurrence(tmp_path):
    """XMILE non-negative: a flow is max(0, rate); a stock never goes below zero (Euler: the
    step is max(S + dt * net, 0)); the flows themselves keep their values. Against numpy."""
    body = (
        '<flow name="drain"><eqn>9 - TIME</eqn></flow>\n'
        '<flow name="nn drain"><eqn>9 - TIME</eqn><non_negative/></flow>\n'
        '<stock name="free"><eqn>7</eqn><outflow>drain</outflow></stock>\n'
        '<stock name="kept"><eqn>7</eqn><outflow>drain</outflow><non_negative/></stock>\n'
        '<stock name="fed"><eqn>900</eqn><outflow>nn drain</outflow></stock>\n'
    )
    got, ts = _run_xmile(write(tmp_path, body, dt="0.5"), ("drain", "nn_drain", "free", "kept", "fed"))
    dt = 0.5
    free, kept, fed = [7.0], [7.0], [900.0]
    for t in ts[:-1]:
        free.append(free[-1] - dt * (9 - t))
        kept.append(max(kept[-1] - dt * (9 - t), 0.0))
        fed.append(fed[-1] - dt * max(9 - t, 0.0))
    np.testing.assert_allclose(got["drain"], 9 - ts, atol=1e-12)
    np.testing.assert_allclose(got["nn_drain"], np.maximum(9 - ts, 0), atol=1e-12)
    np.testing.assert_allclose(got["free"], free, atol=1e-9)
    np.testing.assert_allclose(got["kept"], kept, atol=1e-9)
    np.testing.assert_allclose(got["fed"], fed, atol=1e-9)
    assert min(free) < -1 and min(kept) == 0.0 and got["kept"][-1] > 0  # refilled once drain < 0


def test_a_non_negative_stock_with_rk4_is_refused(tmp_path):
    from spreadjax.sdimport import import_model

    body = ('<flow name="drain"><eqn>1</eqn></flow>\n'
            '<stock name="kept"><eqn>7</eqn><outflow>drain</outflow><non_negative/></stock>\n')
    with pytest.raises(ModelError, match=r"m\.xmile:\d+: unsupported construct: the non-negative stock 'kept' with RK4"):
        import_model(write(tmp_path, body, method="RK4"))


def test_int_mod_and_trig_run_against_numpy(tmp_path):
    body = aux("x", "TIME - 8.5") + aux("i", "INT(x)") + aux("m", "x MOD 3") + aux("s", "SIN(x) + ARCTAN(x)")
    got, ts = _run_xmile(write(tmp_path, body), ("i", "m", "s"))
    x = ts - 8.5
    np.testing.assert_array_equal(got["i"], np.trunc(x))
    np.testing.assert_allclose(got["m"], np.fmod(x, 3), atol=1e-14)
    np.testing.assert_allclose(got["s"], np.sin(x) + np.arctan(x), rtol=1e-13)
