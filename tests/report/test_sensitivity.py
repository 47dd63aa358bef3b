"""Sensitivity: autodiff elasticities against finite differences and the Bass closed form;
Sobol first-order indices against analytic values (Ishigami, linear model, pure noise)."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from spreadjax._config import load_config, parse_config
from spreadjax._errors import InputError
from spreadjax._jobs import build_simulation
from spreadjax.core import Simulation, simulate
from spreadjax.ensemble._summary import _crossing_kernel
from spreadjax.report._sensitivity import (
    lever_elasticities,
    sensitivity_json,
    sobol_first_order,
    sobol_from_ensemble,
    write_sensitivity,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
THRESHOLD = 0.1  # the small flagship reaches ~16% adopted in 4 years
H = 1e-5  # log-scale finite-difference step
DRAWS = {"p": np.array([[0.35] * 6, [0.25] * 6]), "q": np.array([1.6, 2.2])}


def _small_flagship():
    raw = tomllib.loads((CONFIGS / "flagship.toml").read_text())
    for section in ("ensemble", "scenarios"):  # not needed here (targets may lie past 4 years)
        raw.pop(section, None)
    raw["simulation"].update(end=4.0, steps_per_year=12, outputs_per_year=12, dtype="float64")
    return parse_config(raw, "small-flagship")


@pytest.fixture(scope="module")
def flagship():
    config = _small_flagship()
    return config, lever_elasticities(config, DRAWS, threshold=THRESHOLD)


def _metrics(sim, params, network, threshold):
    """Extent and pace for all sites together, with numpy (crossing kernel of the summaries)."""
    adopted = np.asarray(simulate(sim, params, network)["adopted"], dtype=np.float64)
    frac = adopted.sum(axis=1) / np.asarray(params["population"]).sum()
    pace = _crossing_kernel(frac, np.asarray(sim.ts), np.asarray([threshold]))[0]
    return np.array([frac[-1], pace])


def test_elasticities_match_central_finite_differences(flagship):
    config, e = flagship
    levers = [str(v) for v in e["lever"].values]
    # one row per lever: p and q are read only as push_strength * p and peer_influence * q
    assert levers == ["innovation_conditions", "barriers", "evidence_sharing", "push_strength",
                      "peer_influence", "implementation_support"]
    assert list(e["parameters"].values) == ["innovation_conditions", "barriers", "evidence_sharing",
                                            "push_strength * p", "peer_influence * q", "implementation_support"]
    assert list(e["acts_on"].values) == ["", "", "", "push", "pull", ""]
    assert set(e["status"].values) == {"active"} and not e["zero_over_draws"].values.any()
    assert e.attrs["n_draws"] == 2 and e.attrs["pace_never"] == 0 and e.attrs["check_failed"] == ""
    sim, base, network = build_simulation(config)
    for d in range(2):
        params = dict(base)
        params.update({k: np.asarray(v[d] if v.ndim == 2 else np.full(6, v[d]), float) for k, v in DRAWS.items()})
        m0 = _metrics(sim, params, network, THRESHOLD)
        np.testing.assert_allclose([e["extent"][d], e["pace"][d]], m0, rtol=1e-12)
        # every parameter of a merged lever, scaled alone, moves the outcome as the lever's row says
        for lever, names in zip(levers, e["parameters"].values, strict=True):
            for name in str(names).split(" * "):
                up, down = dict(params), dict(params)
                up[name] = np.asarray(params[name]) * math.exp(H)
                down[name] = np.asarray(params[name]) * math.exp(-H)
                fd = (np.log(_metrics(sim, up, network, THRESHOLD))
                      - np.log(_metrics(sim, down, network, THRESHOLD))) / (2 * H)
                got = e["elasticity"].sel(draw=d, lever=lever).values
                # central differences of step 1e-5 in log space: truncation ~1e-10, rounding ~1e-11
                np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-8, err_msg=f"draw {d}, {name} ({lever})")
    el = e["elasticity"].values
    np.testing.assert_allclose(e["mean"].values, el.mean(axis=0))
    np.testing.assert_allclose(e["q05"].values, np.quantile(el, 0.05, axis=0))
    np.testing.assert_allclose(e["q95"].values, np.quantile(el, 0.95, axis=0))
    assert (e["n_used"].values == 2).all()
    assert np.all(e["mean"].sel(metric="extent", lever="push_strength") > 0)
    assert np.all(e["mean"].sel(metric="pace", lever="push_strength") < 0)  # more push: sooner
    # barriers divide evidence where innovation_conditions multiply its generation
    np.testing.assert_allclose(e["elasticity"].sel(lever="barriers").values,
                               -e["elasticity"].sel(lever="innovation_conditions").values, rtol=1e-8)


@pytest.fixture(scope="module")
def bundled():
    """The bundled example's structure (no awareness stage, no implementation pipeline, evidence
    switched off by its fixed values) with two posterior-like draws of p and q per town."""
    config = load_config(CONFIGS / "medical_innovation.toml")
    draws = {"p": np.array([[0.3, 0.5, 0.4, 0.2], [0.6, 0.4, 0.3, 0.5]]), "q": np.array([1.0, 2.0])}
    return config, draws, lever_elasticities(config, draws)


def test_levers_not_in_the_bundled_model(bundled):
    config, draws, e = bundled
    status = dict(zip(e["lever"].values, e["status"].values, strict=True))
    assert status == {"innovation_conditions": "not in this model", "barriers": "not in this model",
                      "evidence_sharing": "not in this model", "push_strength": "active",
                      "peer_influence": "active", "implementation_support": "not in this model"}
    reason = dict(zip(e["lever"].values, e["reason"].values, strict=True))
    assert "read by no equation" in reason["implementation_support"]  # implementation_order = 0
    assert "recognition_baseline = 1" in reason["barriers"]
    assert "pilot_evidence = 0" in reason["innovation_conditions"] and "adopter_evidence = 0" in reason["innovation_conditions"]
    assert "without a network" in reason["evidence_sharing"]  # the towns are not linked: network(x) = 0
    # the structural verdict agrees with autodiff: exactly zero derivatives in every draw ...
    inert = [lv for lv, s in status.items() if s != "active"]
    assert (e["elasticity"].sel(lever=inert).values == 0.0).all() and e["zero_over_draws"].sel(lever=inert).all()
    assert np.isnan(e["mean"].sel(lever=inert).values).all()
    # ... and with the simulation: doubling an inert lever changes no output at all
    sim, base, network = build_simulation(config)
    sim = Simulation(sim.model, sim.ts, sim.dt, ("adopted",), sim.solver, sim.t0, False)  # mean-field
    params = dict(base)
    params.update({k: np.asarray(v[0] if v.ndim == 2 else np.full(4, v[0]), float) for k, v in draws.items()})
    ref = np.asarray(simulate(sim, params, network)["adopted"])
    for lever in inert:
        moved = dict(params, **{lever: np.asarray(params[lever]) * 2.0})
        np.testing.assert_array_equal(np.asarray(simulate(sim, moved, network)["adopted"]), ref, err_msg=lever)
    # the active levers are ranked, once each, with the inert ones listed apart
    data = sensitivity_json(e, None)
    assert [row["name"] for row in data["levers"]] == list(e["lever"].values)
    assert data["levers"][3]["parameters"] == ["push_strength", "p"] and data["levers"][3]["acts_on"] == "push"
    assert set(data["elasticities"]["extent"]) == {"push_strength", "peer_influence"}
    assert set(data["not_in_model"]) == set(inert)
    ranked = [(r["name"], r["metric"]) for r in data["ranking"]]
    assert sorted(ranked) == sorted((lv, m) for lv in ("push_strength", "peer_influence") for m in ("extent", "pace"))
    assert all(data["elasticities"]["extent"][lv]["mean"] > 0 for lv in ("push_strength", "peer_influence"))


def test_bass_closed_form():
    config = load_config(CONFIGS / "bass.toml")
    e = lever_elasticities(config, None, levers=["q", "p"])
    assert e.attrs["n_draws"] == 1 and e.attrs["pace_never"] == 0
    p, q, horizon = 0.03, 0.38, 10.0

    def bass(p, q, t):
        x = np.exp(-(p + q) * t)
        return (1 - x) / (1 + (q / p) * x)

    def half_time(p, q):  # F = 1/2 in closed form
        return np.log(2 + q / p) / (p + q)

    def elasticity(f, which):
        lo = f(p * math.exp(-H), q) if which == "p" else f(p, q * math.exp(-H))
        hi = f(p * math.exp(H), q) if which == "p" else f(p, q * math.exp(H))
        return (np.log(hi) - np.log(lo)) / (2 * H)

    for lever in ("q", "p"):
        extent = elasticity(lambda a, b: bass(a, b, horizon), lever)
        assert e["mean"].sel(metric="extent", lever=lever) == pytest.approx(extent, rel=1e-6)
        # pace interpolates linearly between weekly outputs: close to the exact crossing time
        assert e["mean"].sel(metric="pace", lever=lever) == pytest.approx(elasticity(half_time, lever), rel=1e-3)
    assert e["extent"].values[0] == pytest.approx(bass(p, q, horizon), rel=1e-8)
    assert e["pace"].values[0] == pytest.approx(half_time(p, q), abs=1e-3)


def test_elasticity_inputs_are_checked(flagship):
    config, _ = flagship
    with pytest.raises(InputError, match="not a parameter"):
        lever_elasticities(config, None, levers=["nope"])
    with pytest.raises(InputError, match="not a parameter"):
        lever_elasticities(config, {"nope": np.ones((2, 6))})
    with pytest.raises(InputError, match="shape"):
        lever_elasticities(config, {"p": np.ones((2, 5))})
    with pytest.raises(InputError, match="threshold"):
        lever_elasticities(config, None, threshold=1.5)


# --------------------------------------------------------------------------------- Sobol
def test_sobol_ishigami():
    # Ishigami (a=7, b=0.1) on uniform(-pi, pi)^3: S1 = 0.3139, 0.4424, 0 analytically
    rng = np.random.default_rng(1)
    x = rng.uniform(-np.pi, np.pi, (20_000, 3))
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    s = sobol_first_order({f"x{i + 1}": x[:, i] for i in range(3)}, y, n_boot=50)
    for name, truth in zip(("x1", "x2", "x3"), (0.3139, 0.4424, 0.0)):
        # RBD-FAST's standard error at 20,000 rows is ~0.005 (the interval below): 0.01 is 2 se
        assert s[name]["S1"] == pytest.approx(truth, abs=0.01), name
        assert s[name]["lo"] <= s[name]["S1"] <= s[name]["hi"]
        assert s[name]["hi"] - s[name]["lo"] < 0.03
    # the point estimate is SALib's rbd_fast, unchanged
    from SALib.analyze import rbd_fast

    ref = rbd_fast.analyze({"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3},
                           x, y, M=10, num_resamples=2, seed=3)
    np.testing.assert_allclose([s[f"x{i + 1}"]["S1"] for i in range(3)], ref["S1"], rtol=1e-12)


def test_sobol_linear_and_noise():
    # y = a . x with independent normal x: S1_i = a_i^2 sd_i^2 / sum_j a_j^2 sd_j^2
    rng = np.random.default_rng(2)
    a = np.array([2.0, 1.0, 0.5])
    sd = np.array([1.0, 1.5, 2.0])
    x = rng.normal(0.0, sd, (20_000, 3))
    y = x @ a
    truth = a**2 * sd**2 / np.sum(a**2 * sd**2)
    inputs = {f"x{i + 1}": x[:, i] for i in range(3)}
    inputs["noise"] = rng.normal(size=20_000)
    s = sobol_first_order(inputs, y, n_boot=20)
    for i in range(3):
        assert s[f"x{i + 1}"]["S1"] == pytest.approx(truth[i], abs=0.02)  # se ~0.005 at 20,000 rows
    assert abs(s["noise"]["S1"]) < 0.02
    # a posterior-sized sample with replicates (400 draws x 5, ties in x) and output noise:
    # truth a^2 sd^2 / (sum + 1); the 90% interval covers it
    x = np.repeat(rng.normal(0.0, sd, (400, 3)), 5, axis=0)
    y = x @ a + rng.normal(0.0, 1.0, len(x))
    truth = a**2 * sd**2 / (np.sum(a**2 * sd**2) + 1.0)
    s = sobol_first_order({f"x{i + 1}": x[:, i] for i in range(3)}, y, n_boot=100)
    for i in range(3):
        assert s[f"x{i + 1}"]["lo"] - 0.02 <= truth[i] <= s[f"x{i + 1}"]["hi"] + 0.02, (i, s, truth)
    # pure noise output: nothing explains it
    s = sobol_first_order({"u": rng.uniform(size=5_000), "v": rng.integers(0, 3, 5_000)}, rng.normal(size=5_000),
                          n_boot=10)
    assert abs(s["u"]["S1"]) < 0.02 and abs(s["v"]["S1"]) < 0.02
    # a constant output has no variance to share
    assert math.isnan(sobol_first_order({"u": np.arange(20.0)}, np.ones(20))["u"]["S1"])
    with pytest.raises(InputError):
        sobol_first_order({"u": np.arange(20.0)}, np.ones(19))
    with pytest.raises(InputError, match="harmonics"):
        sobol_first_order({"u": np.arange(20.0)}, np.arange(20.0), harmonics=10)


def _ensemble(n_draw=300, n_rep=2, chunk=100, seed=3):
    """Sites follow logistic curves whose rate is set by ``draw_rate``; ``draw_other`` does
    nothing; replicates add small noise. Slow members never reach 50%."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, 5 * 12 + 1) / 12.0
    pop = np.array([40.0, 60.0])
    rate = rng.uniform(0.5, 3.0, n_draw)
    other = rng.uniform(0.0, 1.0, n_draw)
    noise = rng.normal(0, 0.05, (n_draw, 1, n_rep, 1, 1))
    r = (rate[:, None, None, None, None] * np.exp(noise)) * np.array([1.0, 1.2])[None, None, None, None, :]
    scen = np.array([1.0, 1.3])[None, :, None, None, None]
    frac = 1 / (1 + 20 * np.exp(-r * scen * t[None, None, None, :, None]))
    adopted = frac * pop
    ds = xr.Dataset(
        {"adopted": (("draw", "scenario", "replicate", "time", "site"), adopted),
         "population": (("site",), pop),
         "draw_rate": (("draw", "site"), np.repeat(rate[:, None], 2, 1)),
         "draw_other": (("draw", "site"), np.repeat(other[:, None], 2, 1)),
         "chunk_done": (("chunk",), np.ones(-(-n_draw // chunk), bool))},
        coords={"draw": np.arange(n_draw), "scenario": ["baseline", "push"], "replicate": np.arange(n_rep),
                "time": t, "site": ["north", "south"]},
        attrs={"chunk_size": chunk},
    )
    return ds


def test_sobol_from_ensemble():
    ds = _ensemble()
    s = sobol_from_ensemble(ds, n_boot=50)
    assert s["scenario"] == "baseline" and s["n_members"] == 600
    assert s["extent"]["rate"]["S1"] > 0.8 and abs(s["extent"]["other"]["S1"]) < 0.05
    assert s["pace"]["rate"]["S1"] > 0.8 and abs(s["pace"]["other"]["S1"]) < 0.05
    total = (ds["adopted"].sum("site") / ds["population"].sum()).sel(scenario="baseline")
    never = int((total.max("time") < 0.5).sum())
    assert 0 < s["pace_never"] == never
    push = sobol_from_ensemble(ds, "push", n_boot=10)
    assert push["pace_never"] < s["pace_never"]
    ds["chunk_done"][-1] = False
    assert sobol_from_ensemble(ds, n_boot=10)["n_members"] == 400
    with pytest.raises(InputError, match="scenario"):
        sobol_from_ensemble(ds, "nope")
    with pytest.raises(InputError, match="varied"):
        sobol_from_ensemble(ds.drop_vars(["draw_rate", "draw_other"]))


# ---------------------------------------------------------------------------------- JSON
def test_write_sensitivity(flagship, tmp_path):
    _, e = flagship
    sobol = {"extent": {"rate": {"S1": 0.7, "lo": 0.6, "hi": 0.8}, "flat": {"S1": float("nan"), "lo": math.nan, "hi": math.nan}},
             "pace": {"rate": {"S1": -0.01, "lo": -0.02, "hi": 0.01}, "p": {"S1": 0.2, "lo": 0.1, "hi": 0.3}},
             "n_members": 10, "pace_never": 2}
    path = write_sensitivity(tmp_path / "out" / "sensitivity.json", e, sobol)
    assert [p.name for p in path.parent.iterdir()] == ["sensitivity.json"]
    data = json.loads(path.read_text())
    assert data == sensitivity_json(e, sobol)
    assert data["threshold"] == THRESHOLD and data["n_draws"] == 2 and data["pace_never"] == 0
    assert [row["name"] for row in data["levers"]] == [str(v) for v in e["lever"].values]
    assert data["not_in_model"] == {}
    assert set(data["elasticities"]) == {"extent", "pace"}
    cell = data["elasticities"]["pace"]["peer_influence"]
    assert set(cell) == {"mean", "q05", "q95"}
    assert cell["mean"] == pytest.approx(float(e["mean"].sel(metric="pace", lever="peer_influence")))
    assert data["sobol"]["extent"]["flat"] == {"S1": None, "lo": None, "hi": None}
    assert data["sobol"]["pace"]["rate"]["S1"] == -0.01
    assert data["sobol_lever"] == {"p": "push_strength"}  # p's index is the push lever's uncertainty
    assert data["sobol_members"] == 10 and data["sobol_pace_never"] == 2
    ranking = data["ranking"]
    assert len(ranking) == 2 * len(data["levers"]) + 4
    assert {r["kind"] for r in ranking} == {"lever", "parameter"}
    values = [abs(r["value"]) for r in ranking if r["value"] is not None]
    assert values == sorted(values, reverse=True) and ranking[-1]["value"] is None
    assert set(ranking[0]) == {"name", "kind", "metric", "value"}
    # NaN elasticities (never reached) are written as null too
    e2 = e.copy(deep=True)
    e2["mean"][:] = np.nan
    assert sensitivity_json(e2, None)["elasticities"]["extent"]["peer_influence"]["mean"] is None
