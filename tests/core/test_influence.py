"""Which levers reach the adopted stock, read from the equations, against the simulation itself:
scaling a lever the analysis calls inert must leave every output exactly unchanged, and scaling
one it calls active must change it. Product groups: parameters read only as their product move
the outputs identically."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from spreadjax._errors import ModelError
from spreadjax.core import Auxiliary, Delay, Flow, Model, Parameter, Smooth, Stock, compile_model
from spreadjax.core._influence import chain_owner, lever_influence, product_groups
from spreadjax.models import four_stage_model
from spreadjax.models._four_stage import LEVERS

SITES = 3
POP = np.array([7.0, 900.0, 60.0])


def _euler(model: Model, values: dict, network=None, steps: int = 120, dt: float = 1 / 24) -> np.ndarray:
    """Every state over ``steps`` Euler steps, in numpy (no compilation): ``(step, state, site)``."""
    cm = compile_model(model)
    params = {k: (np.asarray(v) if not isinstance(v, dict) else {kk: np.asarray(vv) for kk, vv in v.items()})
              for k, v in cm.params(SITES, np.float64, **values).items()}
    y = np.asarray(cm.init(params, 0.0, np), dtype=np.float64)
    out = [y]
    for i in range(steps):
        y = y + dt * np.asarray(cm.rhs(i * dt, y, params, network, np))
        out.append(y)
    return np.stack(out)


def _moves(model: Model, values: dict, lever: str, target: str, network=None, factor: float = 1.7,
           base: np.ndarray | None = None) -> bool:
    """Whether scaling ``lever`` by ``factor`` changes the ``target`` stock at any step."""
    row = compile_model(model).state_names.index(target)
    base = _euler(model, values, network)[:, row] if base is None else base
    scaled = np.asarray(values.get(lever, model.parameter(lever).default)) * factor
    moved = _euler(model, dict(values, **{lever: scaled}), network)[:, row]
    return not np.array_equal(base, moved)


class _Weights:
    """A peer network in numpy: ``apply(x)[i] = sum_j w[i, j] x[j]``."""

    def __init__(self, w):
        self.w = np.asarray(w, dtype=np.float64)

    def apply(self, x):
        return self.w @ np.asarray(x)


def _toy() -> Model:
    """Adoption driven by push (boost * gain) and by recognition of evidence; evidence is made
    by ``spark * rate_e``; recognition is a smooth of ``base + (1 - base) * E / (E + h * hurdle)``;
    ``unused`` feeds an auxiliary nothing reads; ``slow`` sets a pipeline's time."""
    P = Parameter
    return Model(
        "toy",
        parameters=(P("n", 100.0), P("a0", 1.0), P("gain", 0.3), P("boost", 1.0, lever=True),
                    P("spark", 1.0, lever=True), P("rate_e", 0.5), P("base", 0.2), P("h", 1.0),
                    P("hurdle", 1.0, lever=True), P("unused", 1.0, lever=True), P("slow", 1.0, lever=True),
                    P("q", 0.4)),
        stocks=(Stock("S", "n - a0"), Stock("A", "a0"), Stock("E", 0.0, counted=False)),
        auxiliaries=(Auxiliary("push", "boost * gain"), Auxiliary("idle", "unused * 2 + A"),
                     Auxiliary("target", "base + (1 - base) * E / (E + h * hurdle)")),
        flows=(Flow("start", "S * recog * (push + q * A / n)", "S", "pipe"),
               Flow("evidence", "spark * rate_e * A / n", None, "E"),
               Flow("done", "pipe_exit", "pipe", "A")),
        delays=(Delay("pipe", "slow", 2),),
        smooths=(Smooth("recog", "target", 0.5, 1, "base + (1 - base) * 0 / (h * hurdle)"),),
        population="n",
    )


LEVER_NAMES = ("boost", "spark", "hurdle", "unused", "slow")


@pytest.mark.parametrize("fixed, inert", [
    ({}, {"unused"}),  # every value free: only the structure speaks
    ({"rate_e": 0.5, "base": 0.2}, {"unused"}),
    ({"rate_e": 0.0}, {"unused", "spark", "hurdle"}),  # no evidence: spark multiplies 0; E / (0 + h * hurdle) = 0
    ({"base": 1.0}, {"unused", "spark", "hurdle"}),  # recognition is 1 whatever the evidence
    ({"gain": 0.0, "rate_e": 0.0}, {"unused", "spark", "hurdle", "boost"}),
])
def test_toy_verdicts_agree_with_the_simulation(fixed, inert):
    model = _toy()
    values = {"n": POP, "a0": [1.0, 5.0, 0.0], **{k: v for k, v in fixed.items()}}
    got = lever_influence(model, LEVER_NAMES, fixed, target="A", network=False)
    assert {k for k, v in got.items() if not v.active} == inert
    for lever in LEVER_NAMES:
        assert _moves(model, values, lever, "A") == (lever not in inert), lever
    assert "read by no equation" not in got["unused"].reason  # it is read, by an auxiliary nothing reads
    assert "no chain of equations" in got["unused"].reason and got["unused"].switched_off_by == ()
    if fixed.get("rate_e") == 0.0:
        assert got["spark"].switched_off_by == ("rate_e",) and "rate_e = 0" in got["spark"].reason
    if fixed.get("base") == 1.0:
        assert got["hurdle"].switched_off_by == ("base",) and "base = 1" in got["hurdle"].reason


def test_flagship_structures_agree_with_the_simulation():
    """Each lever of the four-stage model, over its structures and two sets of fixed values (the
    defaults; the bundled example's, which switch evidence off): inert exactly when scaling it
    changes nothing."""
    candidates = [*LEVERS, "p", "q"]
    bundled = {"initial_adopters": 0.0, "recognition_baseline": 1.0, "pilot_evidence": 0.0,
               "adopter_evidence": 0.0, "discontinuation_rate": 0.0}
    seen = set()
    weights = _Weights([[0, 0.5, 0.1], [0.5, 0, 0.2], [0.1, 0.2, 0]])
    for awareness, order, values, network in itertools.product((True, False), (0, 2), ({}, bundled), (None, weights)):
        model = four_stage_model(awareness_stage=awareness, implementation_order=order)
        defaults = {p.name: p.default for p in model.parameters}
        fixed = {**defaults, **values}
        fixed.pop("population")  # differs between sites: stays free
        got = lever_influence(model, candidates, fixed, network=network is not None)
        run_values = {"population": POP, "initial_adopters": [1.0, 3.0, 0.0] if not values else [0.0, 0.0, 0.0],
                      "programme": {"times": [0.0, 2.0], "values": [1.0, 0.5]}, **values}
        base = _euler(model, run_values, network)[:, compile_model(model).state_names.index("adopted")]
        for lever in candidates:
            moves = _moves(model, run_values, lever, "adopted", network, base=base)
            assert moves == got[lever].active, (awareness, order, values, network is not None, lever)
            seen.add((lever, got[lever].active))
    # the grid exercises both verdicts for every lever that can be switched off
    assert {lv for lv, active in seen if not active} == {"innovation_conditions", "barriers", "evidence_sharing",
                                                          "implementation_support"}
    assert {lv for lv, active in seen if active} == set(candidates)


def test_product_groups():
    model = four_stage_model(awareness_stage=False, implementation_order=0)
    groups = product_groups(model, [*LEVERS, "p", "q"])
    assert groups == [("innovation_conditions",), ("barriers",), ("evidence_sharing",), ("push_strength", "p"),
                      ("peer_influence", "q"), ("implementation_support",)]
    assert [chain_owner(model, g) for g in groups] == [None, None, None, "push", "pull", None]
    # reach is a third factor of the push: it joins when asked about
    assert product_groups(model, ["push_strength", "p", "reach", "q"]) == [("push_strength", "p", "reach"), ("q",)]
    # the simulation agrees: p and push_strength scaled alone give the same run
    values = {"population": POP, "initial_adopters": [1.0, 3.0, 0.0]}
    a = _euler(model, dict(values, p=0.03 * 1.7))
    b = _euler(model, dict(values, push_strength=1.7))
    assert not np.array_equal(a, _euler(model, values))
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-12)
    # not merged: a ratio (one divides), a name read elsewhere too, a name alone
    P = Parameter
    m = Model("m", parameters=(P("a", 1.0), P("b", 2.0), P("c", 1.0), P("d", 1.0), P("e", 1.0)),
              stocks=(Stock("X", 1.0),),
              flows=(Flow("f", "a / b * X + c * d * X + c", "X", None), Flow("g", "e * X", "X", None)))
    assert product_groups(m, ["a", "b", "c", "d", "e"]) == [("a",), ("b",), ("c",), ("d",), ("e",)]
    m2 = Model("m2", parameters=(P("a", 1.0), P("b", 2.0), P("k", 1.0)), stocks=(Stock("X", 1.0),),
               flows=(Flow("f", "k * X / (a * b)", "X", None),))
    assert product_groups(m2, ["a", "b", "k"]) == [("a", "b"), ("k",)]  # both divide: still one lever


def test_errors_name_the_problem():
    model = _toy()
    with pytest.raises(ModelError, match="nope"):
        lever_influence(model, ["nope"], {}, target="A")
    with pytest.raises(ModelError, match="'push' is not a stock"):
        lever_influence(model, ["boost"], {}, target="push")
