"""Vensim .mdl import: the reference workload S8 against the hand-written model and a numpy
reference, one small model per construct against a closed form or an independent numpy
recurrence, subscripts (a site dimension, a 2-D case) and the refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spreadjax._errors import ModelError
from spreadjax.core import RK4, Euler, Simulation, compile_model
from spreadjax.models import s8_model
from spreadjax.sdimport import import_model
from spreadjax.sdimport._vensim import parse

DATA = Path(__file__).parent / "data"


def mdl(tmp_path: Path, *equations: str, start: float = 0, stop: float = 4, dt: float = 0.25,
        name: str = "m.mdl") -> Path:
    """A .mdl file laid out as Vensim writes it (equation, units, comment, bar) with its control."""
    blocks = [f"{eq}\n\t~\t\n\t~\t\t|\n" for eq in equations]
    control = (f"********************************************************\n\t.Control\n"
               f"********************************************************~\n\t\tSimulation Control Parameters\n\t|\n\n"
               f"FINAL TIME  = {stop}\n\t~\tYear\n\t~\tThe final time.\n\t|\n\n"
               f"INITIAL TIME  = {start}\n\t~\tYear\n\t~\tThe initial time.\n\t|\n\n"
               f"SAVEPER  = \n        TIME STEP\n\t~\tYear [0,?]\n\t~\t|\n\n"
               f"TIME STEP  = {dt}\n\t~\tYear [0,?]\n\t~\t|\n\n")
    path = tmp_path / name
    path.write_text("{UTF-8}\n" + "\n".join(blocks) + "\n" + control
                    + "\\\\\\---/// Sketch information - do not modify anything except names\nV300\n")
    return path


def run(imported, outputs, solver=None, **values):
    """Simulate an imported model in float64: ``{name: (time, site)}`` and the output times."""
    cm = compile_model(imported.model)
    n = int(round((imported.end - imported.start) / imported.output_every))
    ts = imported.start + imported.output_every * np.arange(n + 1)
    solver = solver or (Euler() if imported.solver == "euler" else RK4())
    per_site = dict(imported.site_values)
    params = cm.params(max(1, len(imported.sites)), dtype=np.float64, **{**per_site, **values})
    out = Simulation(cm, tuple(ts), imported.dt, tuple(outputs), solver)(params)
    # (a model without parameters has scalar states: give every output a site axis)
    return {k: np.asarray(v).reshape(len(ts), -1) for k, v in out.items()}, ts


# -- S8 ------------------------------------------------------------------------------------------

def s8_numpy(method: str) -> np.ndarray:
    """S8 by its reference text (shared/benchmarks/REFERENCE_MODEL.md), a plain numpy loop:
    states (U, W, I1, I2, I3, A, D, R) at every step, (521, 8)."""
    p, q, rd, tau, delta, tau_r, r0, K = 0.01, 0.6, 2.0, 1.0, 0.05, 0.5, 0.2, 0.1
    dt = 1 / 52

    def f(y):
        U, W, I1, I2, I3, A, D, R = y
        aware, decide, disc = U * (p + q * A) * R, W * rd * R, delta * A
        i1, i2, i3 = 3 * I1 / tau, 3 * I2 / tau, 3 * I3 / tau
        R_tgt = r0 + (1 - r0) * A / (A + K)
        return np.array([-aware, aware - decide, decide - i1, i1 - i2, i2 - i3, i3 - disc, disc,
                         (R_tgt - R) / tau_r])

    y = np.array([0.99, 0, 0, 0, 0, 0.01, 0, r0])
    path = [y]
    for _ in range(520):
        if method == "euler":
            y = y + dt * f(y)
        else:
            k1 = f(y)
            k2 = f(y + dt / 2 * k1)
            k3 = f(y + dt / 2 * k2)
            k4 = f(y + dt * k3)
            y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(y)
    return np.array(path)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_s8_matches_the_hand_written_model_and_the_reference_text(method):
    imported = import_model(DATA / "s8.mdl")
    assert (imported.start, imported.end, imported.output_every) == (0, 10, 1 / 52)
    assert imported.dt == 1 / 52 and imported.solver == "euler"  # Vensim's convention
    solver = Euler() if method == "euler" else RK4()
    stocks = ("u", "w", "i1", "i2", "i3", "a", "d", "r")
    got, ts = run(imported, stocks, solver)
    assert len(ts) == 521
    cm = compile_model(s8_model())
    hand = Simulation(cm, tuple(ts), 1 / 52, ("U", "W", "I", "A", "D", "R"), solver)(cm.params(1, dtype=np.float64))
    # the same equations in float64 over 520 steps: agreement to rounding (1e-9 asked, far above it)
    for a, b in (("u", "U"), ("w", "W"), ("a", "A"), ("d", "D"), ("r", "R")):
        np.testing.assert_allclose(got[a], np.asarray(hand[b]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["i1"] + got["i2"] + got["i3"], np.asarray(hand["I"]), rtol=0, atol=1e-9)
    ref = s8_numpy(method)
    for k, name in enumerate(stocks):
        np.testing.assert_allclose(got[name][:, 0], ref[:, k], rtol=0, atol=1e-9)


def test_s8_net_rates_become_flows_between_the_stocks():
    model = import_model(DATA / "s8.mdl").model
    flows = {f.name: (f.source, f.sink) for f in model.flows}
    assert flows["aware"] == ("u", "w") and flows["decide"] == ("w", "i1")
    assert flows["impl_3"] == ("i3", "a") and flows["disc"] == ("a", "d")
    assert flows["r_net"] == (None, "r")  # (R tgt - R)/tau r is not a sum of named flows
    counted = {s.name: s.counted for s in model.stocks}
    assert counted == {"u": True, "w": True, "i1": True, "i2": True, "i3": True, "a": True, "d": True, "r": False}
    assert {p.name: p.default for p in model.parameters}["q"] == 0.6  # constants are parameters
    got, _ = run(import_model(DATA / "s8.mdl"), ("u", "w", "i1", "i2", "i3", "a", "d"))
    total = sum(got.values())
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)  # flows conserve the population


def test_s8_parameters_change_without_recompiling():
    imported = import_model(DATA / "s8.mdl")
    base, _ = run(imported, ("a",))
    faster, _ = run(imported, ("a",), q=1.2)
    assert faster["a"][-1, 0] > base["a"][-1, 0] + 0.01


# -- one construct at a time -----------------------------------------------------------------------

def test_delay1_of_a_step_follows_the_euler_closed_form(tmp_path):
    path = mdl(tmp_path, "input= STEP(5, 1)", "delay time= 2", "out= DELAY1(input, delay time)",
               "shipped= INTEG(out, 0)", "steady= DELAY1(3, delay time)", stop=6, dt=0.25)
    got, ts = run(import_model(path), ("out", "steady", "shipped"))
    # content S: S' = in - S/T from S = 0 at t = 1 (the step); Euler: S_m = 5T(1 - (1 - dt/T)^m)
    m = np.maximum(0, np.round((ts - 1) / 0.25))
    np.testing.assert_allclose(got["out"][:, 0], 5 * (1 - (1 - 0.25 / 2) ** m), rtol=0, atol=1e-12)
    # a constant input starts in equilibrium (content = input x delay time): out = 3 throughout
    np.testing.assert_allclose(got["steady"][:, 0], 3.0, rtol=0, atol=1e-12)


def test_delay3_and_delayn_match_a_stage_by_stage_recurrence_and_the_continuous_closed_form(tmp_path):
    path = mdl(tmp_path, "input= STEP(2, 0.5)", "out3= DELAY3(input, 1.5)", "outn= DELAYN(input, 1.5, 0, 3)",
               "out3i= DELAY3I(input, 1.5, 4)", stop=8, dt=1 / 64)
    imported = import_model(path)
    got, ts = run(imported, ("out3", "outn", "out3i"))
    dt, T = 1 / 64, 1.5
    stages, stages_i = np.zeros(3), np.full(3, 4 * T / 3)
    ref, ref_i = [], []
    for t in ts:
        ref.append(3 * stages[2] / T)
        ref_i.append(3 * stages_i[2] / T)
        inp = 2.0 if t >= 0.5 else 0.0
        for s in (stages, stages_i):
            out = 3 * s / T
            s += dt * (np.array([inp, out[0], out[1]]) - out)
    np.testing.assert_allclose(got["out3"][:, 0], ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["outn"][:, 0], ref, rtol=0, atol=1e-12)  # DELAYN of order 3 is DELAY3
    np.testing.assert_allclose(got["out3i"][:, 0], ref_i, rtol=0, atol=1e-12)
    # continuous truth: an input of 2 from an empty start (DELAY3I's initial outflow 0) gives the
    # Erlang-3 response 2 (1 - e^-x (1 + x + x^2/2)), x = 3 t / T; smooth, so RK4's error is O(dt^4)
    rk, _ = run(import_model(mdl(tmp_path, "out= DELAY3I(2, 1.5, 0)", stop=8, dt=1 / 64, name="c.mdl")),
                ("out",), RK4())
    x = 3 * ts / T
    # (RK4's global error, of order (dt / stage time)^4 / 100 ~ 1e-7 here, measured 2e-8)
    np.testing.assert_allclose(rk["out"][:, 0], 2 * (1 - np.exp(-x) * (1 + x + x**2 / 2)), rtol=0, atol=2e-7)


def test_smooth_of_a_step_is_first_order_in_euler_and_in_continuous_time(tmp_path):
    path = mdl(tmp_path, "input= STEP(1, 1)", "smoothed= SMOOTH(input, 0.5)", "s3= SMOOTH3(input, 0.5)",
               "si= SMOOTHI(0, 0.5, 4)", "s3i= SMOOTH3I(input, 0.5, 2)", "sn= SMOOTHN(input, 0.5, 2, 3)",
               stop=5, dt=1 / 32)
    imported = import_model(path)
    got, ts = run(imported, ("smoothed", "s3", "si", "s3i", "sn"))
    dt, T = 1 / 32, 0.5
    m = np.maximum(0, np.round((ts - 1) / dt))
    np.testing.assert_allclose(got["smoothed"][:, 0], 1 - (1 - dt / T) ** m, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["si"][:, 0], 4 * (1 - dt / T) ** np.round(ts / dt), rtol=0, atol=1e-12)
    # third order: three cascaded smooths of T/3 each, starting from 0 (input) and from 2 (given)
    for name, start in (("s3", 0.0), ("s3i", 2.0), ("sn", 2.0)):
        s = np.full(3, start)
        ref = []
        for t in ts:
            ref.append(s[2])
            up = np.array([1.0 if t >= 1 else 0.0, s[0], s[1]])
            s = s + dt * 3 * (up - s) / T
        np.testing.assert_allclose(got[name][:, 0], ref, rtol=0, atol=1e-12)
    # continuous truth: SMOOTHI of 1 from 0 is 1 - e^{-t/T}; RK4's error is O(dt^4) on this smooth path
    rk, _ = run(import_model(mdl(tmp_path, "out= SMOOTHI(1, 0.5, 0)", stop=5, dt=1 / 32, name="c.mdl")),
                ("out",), RK4())
    # (RK4's global error, of order (dt / T)^4 / 100 ~ 1e-7 here, measured 5e-8)
    np.testing.assert_allclose(rk["out"][:, 0], 1 - np.exp(-ts / T), rtol=0, atol=2e-7)


def test_pulse_step_ramp_if_then_else_min_max_and_initial(tmp_path):
    path = mdl(
        tmp_path, "p1= PULSE(2, 1)", "p0= PULSE(3, 0)", "injected= INTEG(p0 * 7 / TIME STEP, 0)",
        "s= STEP(2, 1.5)", "r= RAMP(0.5, 1, 3)",
        "c= IF THEN ELSE(Time > 2 :AND: Time <= 3, 1, IF THEN ELSE(Time = 0 :OR: :NOT: Time < 3.5, -1, 0))",
        "m= MIN(Time, 3) + MAX(Time, 1) - ABS(-2) + SQRT(4) * EXP(0) + LN(1)",
        "x= INTEG(1, 2)", "ix= INITIAL(x * 2 + Time)", "negpow= -2^2 + 0 * Time", stop=4, dt=0.25)
    got, t = run(import_model(path), ("p1", "p0", "injected", "s", "r", "c", "m", "x", "ix", "negpow"))
    g = {k: v[:, 0] for k, v in got.items()}
    np.testing.assert_array_equal(g["p1"], ((t >= 2) & (t < 3)).astype(float))
    np.testing.assert_array_equal(g["p0"], (t == 3).astype(float))  # width 0: one TIME STEP
    np.testing.assert_allclose(g["injected"], np.where(t > 3, 7.0, 0.0), atol=1e-12)
    np.testing.assert_array_equal(g["s"], np.where(t >= 1.5, 2.0, 0.0))
    np.testing.assert_allclose(g["r"], 0.5 * (np.clip(t, 1, 3) - 1), atol=1e-15)
    want_c = np.where((t > 2) & (t <= 3), 1.0, np.where((t == 0) | ~(t < 3.5), -1.0, 0.0))
    np.testing.assert_array_equal(g["c"], want_c)
    np.testing.assert_allclose(g["m"], np.minimum(t, 3) + np.maximum(t, 1) - 2 + 2, atol=1e-15)
    np.testing.assert_allclose(g["x"], 2 + t, atol=1e-12)
    np.testing.assert_array_equal(g["ix"], 4.0)  # frozen at the start: 2 * 2 + 0
    np.testing.assert_array_equal(g["negpow"], -4.0)  # Vensim: -2^2 = -(2^2)


def test_lookups_and_with_lookup_interpolate_and_hold(tmp_path):
    path = mdl(tmp_path, "effect(\n\t[(0,0)-(4,10)],(0.5,1),(1,2),(3,8))", "y= effect(Time)",
               "z= WITH LOOKUP(Time, ([(0,0)-(4,4)],(1,0),(2,3),(3,1)))", "clock= INTEG(1, 0)", stop=4, dt=0.25)
    imported = import_model(path)
    got, t = run(imported, ("y", "z"))
    np.testing.assert_allclose(got["y"][:, 0], np.interp(t, [0.5, 1, 3], [1, 2, 8]), atol=1e-15)
    np.testing.assert_allclose(got["z"][:, 0], np.interp(t, [1, 2, 3], [0, 3, 1]), atol=1e-15)
    assert {lk.name for lk in imported.model.lookups} == {"effect", "z_lookup"}


# -- subscripts ------------------------------------------------------------------------------------

REGIONS = (
    "region: north, south, east",
    "population[region]= 900, 700, 400",
    "initial share[region]= 0.01",
    "contact rate= 0.8",
    "adopters[region]= INTEG(adopting[region], population[region] * initial share[region])",
    "adopting[region]= contact rate * adopters[region] * (1 - adopters[region] / population[region])",
    "total adopters= SUM(adopters[region!])",
    "share of total[region]= adopters[region] / total adopters",
)


def logistic(t, K, r, a0):
    return K / (1 + (K - a0) / a0 * np.exp(-r * t))


def test_a_site_dimension_becomes_spreadjax_sites_with_per_site_parameters(tmp_path):
    imported = import_model(mdl(tmp_path, *REGIONS, stop=6, dt=1 / 16), sites="region")
    assert imported.sites == ("north", "south", "east") and imported.site_dimension == "region"
    assert dict(imported.site_values) == {"population": (900.0, 700.0, 400.0)}
    got, t = run(imported, ("adopters", "total_adopters", "share_of_total"), RK4())
    K = np.array([900.0, 700.0, 400.0])
    # RK4 at dt = 1/16 on a smooth logistic: global error O(dt^4) ~ 1e-6 of the carrying capacity
    np.testing.assert_allclose(got["adopters"], logistic(t[:, None], K, 0.8, 0.01 * K), rtol=1e-6)
    np.testing.assert_allclose(got["total_adopters"], got["adopters"].sum(axis=1, keepdims=True) + 0 * K, rtol=1e-12)
    np.testing.assert_allclose(got["share_of_total"].sum(axis=1), 1.0, rtol=1e-12)


def test_without_sites_every_dimension_is_expanded(tmp_path):
    path = mdl(tmp_path, *REGIONS, stop=6, dt=1 / 16)
    imported = import_model(path)
    assert imported.sites == ()
    names = [f"adopters__{r}" for r in ("north", "south", "east")]
    got, t = run(imported, names + ["total_adopters"])
    by_site, _ = run(import_model(path, sites="region"), ("adopters",))
    for k, n in enumerate(names):  # the same Euler arithmetic, one variable per element
        np.testing.assert_allclose(got[n][:, 0], by_site["adopters"][:, k], rtol=1e-13)
    np.testing.assert_allclose(got["total_adopters"][:, 0], by_site["adopters"].sum(axis=1), rtol=1e-13)


def test_a_two_dimensional_array_with_sites_and_an_expanded_dimension(tmp_path):
    path = mdl(
        tmp_path, "site: s1, s2, s3", "age: young, old",
        "initial[site, age]= 10, 20; 30, 40; 50, 60;", "decay rate[age]= 0.1, 0.3",
        "staff[site, age]= INTEG(-leaving[site, age], initial[site, age])",
        "leaving[site, age]= decay rate[age] * staff[site, age]",
        "young share[site]= staff[site, young] / SUM(staff[site, age!])",
        stop=5, dt=1 / 8)
    imported = import_model(path, sites="site")
    assert imported.sites == ("s1", "s2", "s3")
    assert dict(imported.site_values) == {"initial__young": (10.0, 30.0, 50.0), "initial__old": (20.0, 40.0, 60.0)}
    got, t = run(imported, ("staff__young", "staff__old", "young_share"))
    n = np.round(t / (1 / 8))[:, None]
    young = np.array([10.0, 30, 50]) * (1 - 0.1 / 8) ** n  # Euler on exponential decay, exactly
    old = np.array([20.0, 40, 60]) * (1 - 0.3 / 8) ** n
    np.testing.assert_allclose(got["staff__young"], young, rtol=1e-12)
    np.testing.assert_allclose(got["staff__old"], old, rtol=1e-12)
    np.testing.assert_allclose(got["young_share"], young / (young + old), rtol=1e-12)
    flows = {f.name: (f.source, f.sink) for f in imported.model.flows}
    assert flows["leaving__old"] == ("staff__old", None)  # an outflow to a cloud


def test_subranges_and_numeric_ranges(tmp_path):
    path = mdl(tmp_path, "grade: (g1-g4)", "upper: g3, g4", "w[grade]= 1, 2, 3, 4",
               "top= SUM(w[upper!])", "all= SUM(w[grade!])", "clock= INTEG(1, 0)")
    got, _ = run(import_model(path), ("top", "all"))
    assert got["top"][0, 0] == 7 and got["all"][0, 0] == 10


# -- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("equation, construct", [
    ("x= RANDOM NORMAL(0, 1, 0, 1, 0)", "RANDOM NORMAL"),
    ("x= SAMPLE IF TRUE(Time > 1, Time, 0)", "SAMPLE IF TRUE"),
    ("x= GAME(Time)", "GAME"),
    ("x= GET XLS DATA('a.xlsx', 'b', 'c', 'd')", "GET XLS DATA"),
    ("x:= 3", "data equation"),
    ("x= A FUNCTION OF(y)", "A FUNCTION OF"),
    ("x= 1 + INTEG(1, 0)", "INTEG inside an expression"),
])
def test_unsupported_constructs_are_refused_naming_file_and_line(tmp_path, equation, construct):
    path = mdl(tmp_path, "y= 1", equation)
    with pytest.raises(ModelError) as info:
        import_model(path)
    text = str(info.value)
    assert construct.lower() in text.lower() and f"{path}:6:" in text  # line 6: {UTF-8}, y (3 lines), a blank line


def test_other_refusals(tmp_path):
    with pytest.raises(ModelError, match=r"m\.mdl:2: .*reads 'nowhere'"):
        import_model(mdl(tmp_path, "x= nowhere * 2"))
    with pytest.raises(ModelError, match="no subscript dimension 'town'"):
        import_model(mdl(tmp_path, *REGIONS), sites="town")
    with pytest.raises(ModelError, match="differs between sites"):
        import_model(mdl(tmp_path, "r: a, b", "x[a]= Time", "x[b]= 2 * Time"), sites="r")
    with pytest.raises(ModelError, match="cannot parse"):
        import_model(mdl(tmp_path, "x= (1 + "))
    with pytest.raises(ModelError, match="unsupported Vensim construct :MACRO:"):
        import_model(mdl(tmp_path, ":MACRO: f(a)\nf= a\n~~|\n:END OF MACRO:"))
    with pytest.raises(ModelError, match="algebraic loop"):
        import_model(mdl(tmp_path, "x= y + 1", "y= x * 2"))
    bad = tmp_path / "nocontrol.mdl"
    bad.write_text("x= 1\n~~|\n")
    with pytest.raises(ModelError, match="no INITIAL TIME, FINAL TIME, TIME STEP"):
        import_model(bad)


def test_parse_keeps_units_comments_and_lines():
    project = parse(DATA / "s8.mdl")
    v = {x.name: x for x in project.variables}
    assert v["u"].kind == "stock" and v["u"].line == 2 and v["u"].doc == "Unaware."
    assert v["tau_r"].source_name == "tau r" and v["tau_r"].units == "Year" and v["tau_r"].kind == "constant"
    assert math.isclose(project.dt, 1 / 52) and project.saveper == project.dt



def test_a_rounded_time_step_is_read_as_the_whole_division_of_the_run_it_stands_for(tmp_path):
    # TIME STEP = 0.0208333 is 1/48 written to 6 figures: 72 steps over 1.5 years, not 71.99997
    path = mdl(tmp_path, "x= INTEG(1, 0)", stop=1.5, dt=0.0208333)
    imported = import_model(path)
    assert imported.dt == 1.5 / 72 and imported.output_every == imported.dt
    got, ts = run(imported, ("x",))
    np.testing.assert_allclose(got["x"][:, 0], ts, rtol=0, atol=1e-12)
    # a step that is not close to a whole division is kept as written
    assert import_model(mdl(tmp_path, "x= INTEG(1, 0)", stop=1.5, dt=0.4, name="b.mdl")).dt == 0.4


def test_a_comment_continued_on_the_next_line_is_one_line_of_text(tmp_path):
    path = tmp_path / "c.mdl"
    path.write_text(mdl(tmp_path, "x= INTEG(1, 0)").read_text().replace(
        "x= INTEG(1, 0)\n\t~\t\n\t~\t\t|", "x= INTEG(1, 0)\n\t~\tYear\n\t~\tthe first line \\\n\t\tand the second.\n\t|"))
    v = {x.name: x for x in parse(path).variables}
    assert " ".join(v["x"].doc.split()) == "the first line and the second." and "\x01" not in v["x"].doc


# -- the command -----------------------------------------------------------------------------------

def test_the_import_command_writes_a_config_that_simulates_per_site(tmp_path):
    from typer.testing import CliRunner

    from spreadjax._cli import app
    from spreadjax._config import load_config
    from spreadjax._jobs import simulate_config

    source = mdl(tmp_path, *REGIONS, stop=6, dt=1 / 16)
    config = tmp_path / "conf" / "regions.toml"
    result = CliRunner().invoke(app, ["import", str(source), "--out", str(config), "--sites", "region"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "conf" / "regions_model.toml").is_file()
    cfg = load_config(config)
    assert cfg.n_sites == 3 and cfg.simulation.solver == "euler" and cfg.simulation.dt == 1 / 16
    assert dict(cfg.parameters)["population"] == (900.0, 700.0, 400.0) or list(dict(cfg.parameters)["population"]) == [900.0, 700.0, 400.0]
    ds = simulate_config(cfg)
    got, _ = run(import_model(source, sites="region"), ("adopters",))
    # the config runs in its [simulation] dtype (float32 by default): agreement to float32 rounding
    np.testing.assert_allclose(np.asarray(ds["adopters"]).reshape(got["adopters"].shape), got["adopters"], rtol=1e-5)


def test_the_import_command_refuses_with_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from spreadjax._cli import app

    good = mdl(tmp_path, *REGIONS)
    bad = mdl(tmp_path, "x= RANDOM UNIFORM(0, 1, 0)", name="bad.mdl")
    runner = CliRunner()
    cases = [
        ([str(bad), "--out", str(tmp_path / "a.toml")], "bad.mdl:2: unsupported Vensim function"),
        ([str(tmp_path / "none.mdl"), "--out", str(tmp_path / "a.toml")], "no such model file"),
        ([str(tmp_path / "m.txt"), "--out", str(tmp_path / "a.toml")], "cannot import a .txt file"),
        ([str(good), "--out", str(tmp_path / "a.json")], "a config is a .toml file"),
        ([str(good), "--out", str(tmp_path)], "a config is a .toml file"),
        ([str(good), "--out", str(good) + "/x.toml"], "m.mdl: exists and is not a folder"),
        ([str(good), "--out", str(tmp_path / "a.toml"), "--sites", "town"], "no subscript dimension 'town'"),
    ]
    (tmp_path / "folder.toml").mkdir()
    cases.append(([str(good), "--out", str(tmp_path / "folder.toml")], "is a folder"))
    for args, message in cases:
        result = runner.invoke(app, ["import", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "a.toml").exists() and not (tmp_path / "a_model.toml").exists()
    assert runner.invoke(app, ["import", str(good), "--out", str(tmp_path / "a.toml")]).exit_code == 0
    again = runner.invoke(app, ["import", str(good), "--out", str(tmp_path / "a.toml")])
    assert again.exit_code == 2 and "pass --force" in " ".join(again.output.split())
    assert runner.invoke(app, ["import", str(good), "--out", str(tmp_path / "a.toml"), "--force"]).exit_code == 0


# -- functions, precedence, INITIAL, PULSE TRAIN, DELAY N, files ------------------------------------

def test_unary_minus_binds_looser_than_power_as_in_vensim(tmp_path):
    path = mdl(tmp_path, "a= -Time^2", "b= (-Time)^2", "c= 2^-Time", "d= -2^-2 + 0 * Time",
               "e= 3 - Time^2", "f= POWER(Time, 3)", stop=3, dt=0.5)
    got, t = run(import_model(path), "abcdef")
    g = {k: v[:, 0] for k, v in got.items()}
    np.testing.assert_allclose(g["a"], -(t ** 2), rtol=1e-15)
    np.testing.assert_allclose(g["b"], t ** 2, rtol=1e-15)
    np.testing.assert_allclose(g["c"], 2.0 ** -t, rtol=1e-15)
    np.testing.assert_allclose(g["d"], -0.25, rtol=1e-15)
    np.testing.assert_allclose(g["e"], 3 - t ** 2, rtol=1e-15)
    np.testing.assert_allclose(g["f"], t ** 3, rtol=1e-15)


def test_trig_rounding_modulo_and_log_match_numpy(tmp_path):
    path = mdl(tmp_path, "x= Time - 6.5", "s= SIN(x)", "c= COS(x)", "ta= TAN(x / 10)",
               "ac= ARCCOS(x / 7)", "asn= ARCSIN(x / 7)", "at= ARCTAN(x)", "th= TANH(x)",
               "i= INTEGER(x)", "md= MODULO(x, 3)", "lg= LOG(Time + 1, 10)", start=0, stop=13, dt=0.5)
    got, t = run(import_model(path), ("s", "c", "ta", "ac", "asn", "at", "th", "i", "md", "lg"))
    g = {k: v[:, 0] for k, v in got.items()}
    x = t - 6.5
    for name, want in (("s", np.sin(x)), ("c", np.cos(x)), ("ta", np.tan(x / 10)), ("ac", np.arccos(x / 7)),
                       ("asn", np.arcsin(x / 7)), ("at", np.arctan(x)), ("th", np.tanh(x)),
                       ("i", np.trunc(x)), ("md", np.fmod(x, 3)), ("lg", np.log10(t + 1))):
        np.testing.assert_allclose(g[name], want, rtol=1e-13, atol=1e-15, err_msg=name)
    assert g["md"][0] == -0.5 and g["i"][0] == -6.0  # MODULO(-6.5, 3) = -0.5 (sign of x), INTEGER rounds toward 0


def test_initial_of_a_time_varying_expression_is_its_value_at_the_start(tmp_path):
    # start 3: RAMP(2, 1, 5) is 4 then, STEP(10, 2) is 10, PULSE(3, 1) is 1, PULSE TRAIN on at 3
    path = mdl(tmp_path, "a= INITIAL(RAMP(2, 1, 5) + 7)", "b= INITIAL(STEP(10, 2) + STEP(1, 4))",
               "c= INITIAL(PULSE(3, 1) + PULSE TRAIN(1, 0.5, 2, 20))", "d= INITIAL(Time * 2)",
               "r= RAMP(2, 1, 5)", start=3, stop=8, dt=0.5)
    got, t = run(import_model(path), "abcdr")
    g = {k: v[:, 0] for k, v in got.items()}
    np.testing.assert_array_equal(g["a"], 11.0)
    np.testing.assert_array_equal(g["b"], 10.0)
    np.testing.assert_array_equal(g["c"], 2.0)
    np.testing.assert_array_equal(g["d"], 6.0)
    np.testing.assert_allclose(g["r"], 2 * (np.clip(t, 1, 5) - 1))  # the ramp itself still moves


def test_pulse_train_matches_numpy(tmp_path):
    path = mdl(tmp_path, "p= PULSE TRAIN(1, 0.5, 2, 7)", "q= PULSE TRAIN(2, 0, 1.5, 100)", stop=10, dt=0.25)
    got, t = run(import_model(path), "pq")
    want_p = ((t >= 1) & (t < 7) & (np.fmod(t - 1, 2) < 0.5)).astype(float)
    want_q = ((t >= 2) & (np.fmod(t - 2, 1.5) < 0.25)).astype(float)  # width 0: one TIME STEP
    np.testing.assert_array_equal(got["p"][:, 0], want_p)
    np.testing.assert_array_equal(got["q"][:, 0], want_q)
    assert want_p.sum() == 6 and want_q.sum() == 6


def test_delay_n_spelling_and_an_order_that_changes_later_keeps_its_start_value(tmp_path):
    base = ("inp= STEP(900, 1)", "order= 2 + STEP(1, 5)")
    a = run(import_model(mdl(tmp_path, *base, "out= DELAY N(inp, 2, 0, order)", "sm= SMOOTH N(inp, 2, 0, order)",
                             name="a.mdl", stop=10)), ("out", "sm"))[0]
    b = run(import_model(mdl(tmp_path, *base, "out= DELAYN(inp, 2, 0, 2)", "sm= SMOOTHN(inp, 2, 0, 2)",
                             name="b.mdl", stop=10)), ("out", "sm"))[0]
    np.testing.assert_array_equal(a["out"], b["out"])
    np.testing.assert_array_equal(a["sm"], b["sm"])
    assert a["out"][-1, 0] > 800


def test_delay_n_with_a_changing_delay_time_follows_vensims_stage_recurrence_and_conserves(tmp_path):
    """Vensim's DELAY N: stage k (from 0) empties at n / T(t - k dt), the delay time k steps
    earlier (SDXorg tests/delays: order 2, T 4 -> 6 at t = 15, reproduced to its printed digits);
    the value is the last stage's outflow, and the stages conserve what goes in."""
    path = mdl(tmp_path, "inp= -1 + STEP(5, 5)", "d= 4 + STEP(2, 15) - STEP(1.5, 22)",
               "out= DELAY N(inp, d, 6, 3)", "shipped= INTEG(out, 0)", "received= INTEG(inp, 0)",
               stop=40, dt=0.5)
    imported = import_model(path)
    stages = [s.name for s in imported.model.stocks if "stage" in s.name]
    assert len(stages) == 3 and not imported.model.delays
    got, ts = run(imported, ("out", "shipped", "received", *stages))
    n, dt = 3, 0.5
    delay = lambda t: 4 + 2 * (t >= 15) - 1.5 * (t >= 22)  # noqa: E731
    content = np.full(n, 6 * delay(0) / n)  # initial outflow 6 from every stage
    want = []
    for t in ts:
        times = np.array([delay(max(t - k * dt, 0)) for k in range(n)])
        out = n * content / times
        want.append(out[-1])
        content = content + dt * (np.concatenate([[-1 + 5 * (t >= 5)], out[:-1]]) - out)
    # the same float64 arithmetic in another order: round-off only
    np.testing.assert_allclose(got["out"][:, 0], want, rtol=0, atol=1e-12)
    held = sum(got[s][:, 0] for s in stages)
    np.testing.assert_allclose(held + got["shipped"][:, 0], 6 * 4 + got["received"][:, 0], rtol=0, atol=1e-12)


def test_delay_n_order_is_cut_until_no_stage_is_shorter_than_a_step(tmp_path):
    # order 3 of a delay of 1.25 at TIME STEP 0.5 runs as order 2 (SDXorg tests/delay_pipeline)
    a = import_model(mdl(tmp_path, "inp= STEP(4, 1)", "out= DELAY N(inp, 2.5 * TIME STEP, 6, 3)",
                         name="a.mdl", stop=6, dt=0.5))
    b = import_model(mdl(tmp_path, "inp= STEP(4, 1)", "out= DELAY N(inp, 2.5 * TIME STEP, 6, 2)",
                         name="b.mdl", stop=6, dt=0.5))
    assert [d.order for d in a.model.delays] == [2]
    np.testing.assert_array_equal(run(a, ("out",))[0]["out"], run(b, ("out",))[0]["out"])


def test_integer_of_a_division_is_exact_at_whole_values(tmp_path):
    """``Time / 10`` is a correctly rounded division (not a product with 0.1), so INTEGER sees
    -4 at t = 60, not -4 + 1 ulp (SDXorg tests/rounding)."""
    path = mdl(tmp_path, "a= -10 + Time / 10", "i= INTEGER(a)", "m= MODULO(a, 3)", stop=200, dt=1)
    got, t = run(import_model(path), ("a", "i", "m"))
    np.testing.assert_array_equal(got["a"][:, 0], -10 + t / 10)  # numpy: IEEE division
    np.testing.assert_array_equal(got["i"][:, 0], np.trunc(-10 + t / 10))
    np.testing.assert_allclose(got["m"][:, 0], np.fmod(-10 + t / 10, 3), rtol=0, atol=1e-13)


def test_vmin_vmax_and_sum_over_a_dimension(tmp_path):
    path = mdl(tmp_path, "r: a, b, c", "x[r]= 7, 900, -3", "lo= VMIN(x[r!]) + 0 * Time", "hi= VMAX(x[r!]) + 0 * Time",
               "tot= SUM(x[r!]) + 0 * Time", stop=1)
    got, _ = run(import_model(path), ("lo", "hi", "tot"))
    assert (got["lo"] == -3).all() and (got["hi"] == 900).all() and (got["tot"] == 904).all()


def test_two_backslash_sketch_marker_and_latin1_files(tmp_path):
    text = ("{UTF-8}\nvitesse é= 7 * Time\n~\t\n~\t\t|\n\nFINAL TIME  = 2\n~~|\nINITIAL TIME  = 0\n~~|\n"
            "TIME STEP  = 1\n~~|\n\\\\---/// Sketch information\nV300\n10,1,vitesse é,1,2,3\n")
    path = tmp_path / "latin.mdl"
    path.write_bytes(text.encode("latin-1"))
    imported = import_model(path)
    assert ("vitesse", "vitesse é") in imported.names  # decoded as Latin-1, not mangled
    got, t = run(imported, ("vitesse",))
    np.testing.assert_array_equal(got["vitesse"][:, 0], 7 * t)


def test_a_model_without_stocks_or_parameters_runs_with_a_site_axis(tmp_path):
    got, t = run(import_model(mdl(tmp_path, "y= Time * Time", stop=2, dt=0.5)), ("y",))
    assert got["y"].shape == (5, 1)
    np.testing.assert_allclose(got["y"][:, 0], t ** 2)


def test_delay_fixed_is_the_input_whole_steps_earlier(tmp_path):
    # delay times 0.5 -> 2 steps of 0.25, 1.1 -> 4 steps (rounded half up), read at the start
    path = mdl(tmp_path, "x= Time * Time", "a= DELAY FIXED(x, 0.5, -7)", "b= DELAY FIXED(x, 1.1 + Time, 900)",
               stop=4, dt=0.25)
    got, t = run(import_model(path), ("a", "b"))
    np.testing.assert_allclose(got["a"][:, 0], np.where(t >= 0.5, (t - 0.5) ** 2, -7), atol=1e-12)
    np.testing.assert_allclose(got["b"][:, 0], np.where(t >= 1.0, (t - 1.0) ** 2, 900), atol=1e-12)
    with pytest.raises(ModelError, match="exact only with Euler"):
        path = mdl(tmp_path, "a= DELAY FIXED(Time, 1, 0)", name="rk.mdl")
        from spreadjax.sdimport._lower import lower
        from dataclasses import replace as _replace
        lower(_replace(parse(path), method="rk4"))


def test_subscript_ranges_partial_definitions_equivalents_and_elements_as_values(tmp_path):
    path = mdl(
        tmp_path, "big: A, sub, D", "sub: B, C", "copy <-> big", "x[A]= 7", "x[C]= 900",
        "n= ELMCOUNT(big) + 0 * Time", "p= PROD(w[big!]) + 0 * Time", "w[big]= 1, 2, 3, 4",
        "eye[big, copy]= IF THEN ELSE(big = copy, 1, 0)", "pos[big]= big + 0 * Time", "isc[big]= IF THEN ELSE(big = C, 1, 0)",
        "y= x[C] * Time", stop=1, dt=0.5)
    imported = import_model(path)
    names = dict(imported.names)
    assert "x__a" in names and "x__c" in names and "x__b" not in names  # elements without an equation
    got, t = run(imported, ("n", "p", "y", "eye__b__b", "eye__b__c", "pos__a", "pos__d", "isc__c", "isc__b"))
    assert (got["n"] == 4).all() and (got["p"] == 24).all()
    np.testing.assert_allclose(got["y"][:, 0], 900 * t)
    assert (got["eye__b__b"] == 1).all() and (got["eye__b__c"] == 0).all()
    assert (got["pos__a"] == 1).all() and (got["pos__d"] == 4).all()  # the subrange listed later is expanded
    assert (got["isc__c"] == 1).all() and (got["isc__b"] == 0).all()
    with pytest.raises(ModelError, match=r"reads x\[b\], which has no equation"):
        import_model(mdl(tmp_path, "r: a, b", "x[a]= 1", "y= x[b] * Time", name="missing.mdl"))


def test_except_mappings_subscripted_lookups_tabbed_arrays_and_active_initial(tmp_path):
    path = mdl(
        tmp_path, "store: s1, s2, s3", "product: p1, p2", "skill: m, a -> product",
        "inv[store, product] :EXCEPT: [s3, p2], [s1, p1] = 7 * Time", "inv[s3, p2]= 900", "inv[s1, p1]= -1",
        "force[skill]= 5, 10", "work[product]= force[skill] * 2 + 0 * Time",
        "tab[store, product]= TABBED ARRAY(\n\t1\t2\n\t3\t4\n\t5\t6)",
        "curve[p1](\n\t(0, 0), (10, 5)) ~~|\ncurve[p2](\n\t(10, 1), (0, 3))",
        "shaped[product]= curve[product](Time * 2)",
        "ai= ACTIVE INITIAL(Time * 3, 45)", "st= INTEG(1, ai)", "q= QUANTUM(Time * 7, 2)", "qn= QUANTUM(Time * 7, -2)",
        stop=2, dt=0.5)
    imported = import_model(path)
    want_names = ("inv__s1__p2", "inv__s3__p1", "work__p1", "work__p2",
                  "shaped__p1", "shaped__p2", "ai", "st", "q", "qn")
    got, t = run(imported, want_names)
    g = {k: v[:, 0] for k, v in got.items()}
    constants = {p.name: p.default for p in imported.model.parameters}
    assert constants["inv__s1__p1"] == -1.0 and constants["inv__s3__p2"] == 900.0  # the excepted elements
    np.testing.assert_allclose(g["inv__s1__p2"], 7 * t)
    np.testing.assert_allclose(g["inv__s3__p1"], 7 * t)
    np.testing.assert_array_equal(g["work__p1"], 10.0)  # m <-> p1
    np.testing.assert_array_equal(g["work__p2"], 20.0)  # a <-> p2
    np.testing.assert_allclose(g["shaped__p1"], np.interp(2 * t, [0, 10], [0, 5]))
    np.testing.assert_allclose(g["shaped__p2"], np.interp(2 * t, [0, 10], [3, 1]))  # points sorted by x
    assert [constants[f"tab__{s}__{p}"] for s in ("s1", "s2", "s3") for p in ("p1", "p2")] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(g["ai"], 3 * t)
    np.testing.assert_allclose(g["st"], 45 + t)  # the stock starts from the initial value 45
    np.testing.assert_allclose(g["q"], 2 * np.trunc(7 * t / 2))
    np.testing.assert_allclose(g["qn"], 7 * t)  # a quantum <= 0 leaves the value as it is


def test_trend_and_forecast_follow_their_smooth_recurrence(tmp_path):
    path = mdl(tmp_path, "x= 7 + 900 * RAMP(1, 1, 3)", "tr= TREND(x, 2, 0.1)", "fc= FORECAST(x, 2, 5)",
               stop=4, dt=0.25)
    got, t = run(import_model(path), ("x", "tr", "fc"))
    x = got["x"][:, 0]
    np.testing.assert_allclose(x, 7 + 900 * (np.clip(t, 1, 3) - 1))
    dt, T = 0.25, 2.0
    avg_t, avg_f = [x[0] / (1 + 0.1 * T)], [x[0]]
    for k in range(len(t) - 1):
        avg_t.append(avg_t[-1] + dt * (x[k] - avg_t[-1]) / T)
        avg_f.append(avg_f[-1] + dt * (x[k] - avg_f[-1]) / T)
    avg_t, avg_f = np.array(avg_t), np.array(avg_f)
    np.testing.assert_allclose(got["tr"][:, 0], (x - avg_t) / (T * np.abs(avg_t)), rtol=1e-12)
    np.testing.assert_allclose(got["fc"][:, 0], x * (1 + 5 * (x - avg_f) / (T * np.abs(avg_f))), rtol=1e-12)
    assert got["tr"][0, 0] == pytest.approx(0.1)  # the initial trend
