"""User models without Python: TOML model files, ``[model] file = ...`` configs, their identity,
refusals naming the file, table and key, and the bundled worked example end to end."""

from __future__ import annotations

import dataclasses
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax._config import load_config
from spreadjax._errors import ConfigError, ModelError
from spreadjax.core import Lookup
from spreadjax.models import (dump_model_toml, four_stage_model, load_model_file, model_from_dict, model_to_dict,
                              s8_model)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
runner = CliRunner()

#: a waiting list drained by a clinic whose throughput falls as it is overloaded (a lookup)
CLINIC = textwrap.dedent("""
    [model]
    name = "clinic_backlog"
    doc = "a waiting list treated at a rate that falls when the clinic is overloaded"
    population = "population"

    [parameters.population]
    default = 900
    units = "patients"
    lower = 0
    positive = true

    [parameters.capacity]
    default = 300
    units = "patients"
    lower = 0
    positive = true

    [parameters.wait_time]
    default = 0.5
    units = "yr"
    lower = 0
    positive = true

    [stocks.waiting]
    init = "population"
    units = "patients"

    [stocks.treated]
    units = "patients"

    [stocks.treated_total]
    init = 0
    counted = false
    tally = "treatment"

    [flows.treatment]
    rate = "waiting * effect_of_load(waiting / capacity) / wait_time"
    source = "waiting"
    sink = "treated"

    [auxiliaries.load]
    equation = "waiting / capacity"

    [lookups.effect_of_load]
    x = [0, 0.5, 1, 2]
    y = [1, 1, 0.8, 0.3]
    doc = "throughput per patient falls as the clinic fills"
    """)
X, Y = (0.0, 0.5, 1.0, 2.0), (1.0, 1.0, 0.8, 0.3)


def _write(tmp: Path, text: str, name: str = "clinic.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _config(tmp: Path, model_text: str = CLINIC, extra: str = "") -> Path:
    (tmp / "models").mkdir(exist_ok=True)
    _write(tmp / "models", model_text)
    return _write(tmp, textwrap.dedent("""
        title = "clinic"
        [model]
        file = "models/clinic.toml"
        [sites]
        names = ["Ashford", "Leeds"]
        [parameters]
        population = [7, 900]
        capacity = [5, 300]
        [simulation]
        end = 2.0
        steps_per_year = 200
        outputs_per_year = 4
        dtype = "float64"
        outputs = ["waiting", "treated", "treated_total", "load"]
        """) + textwrap.dedent(extra), "cfg.toml")


# -- round trip ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [four_stage_model(), four_stage_model(False, 0, 2), s8_model()],
                         ids=["four_stage", "four_stage_direct", "s8"])
def test_models_round_trip_through_dict_and_toml(model, tmp_path):
    assert model_from_dict(model_to_dict(model), "x") == model
    text = dump_model_toml(model)
    assert model_from_dict(tomllib.loads(text), "x") == model
    assert load_model_file(_write(tmp_path, text)) == model


def test_a_file_with_lookups_round_trips_and_keeps_its_order(tmp_path):
    model = load_model_file(_write(tmp_path, CLINIC))
    assert model.lookups == (Lookup("effect_of_load", X, Y, "hold", "1", "throughput per patient falls as the clinic fills"),)
    assert [s.name for s in model.stocks] == ["waiting", "treated", "treated_total"]
    assert model.population == "population" and model.parameter("population").default == 900.0
    again = load_model_file(_write(tmp_path, dump_model_toml(model), "again.toml"))
    assert again == model and hash(again) == hash(model)


# -- a config runs it -----------------------------------------------------------------------------
def test_config_simulation_matches_an_independent_ode_solution(tmp_path):
    """``spreadjax simulate`` on a [model] file config against scipy's solution of the same ODE."""
    from scipy.integrate import solve_ivp

    path = _config(tmp_path)
    cfg = load_config(path)
    assert cfg.model == "clinic_backlog" and cfg.model_file == str(tmp_path / "models" / "clinic.toml")
    result = runner.invoke(app, ["simulate", str(path), "--out", str(tmp_path / "out"), "--no-plot"])
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(tmp_path / "out" / "simulation.nc")
    times = ds["time"].values
    for i, (pop, cap) in enumerate(((7.0, 5.0), (900.0, 300.0))):
        def rhs(t, w, cap=cap):
            return [-w[0] * np.interp(w[0] / cap, X, Y) / 0.5]

        sol = solve_ivp(rhs, (0.0, 2.0), [pop], t_eval=times, rtol=1e-10, atol=1e-10)
        # RK4 with 200 steps a year; the lookup's kinks (load 0.5, 1, 2) cost it its 4th order there: 1e-5
        waiting = ds["waiting"].isel(site=i).values
        np.testing.assert_allclose(waiting, sol.y[0], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(ds["treated"].isel(site=i).values, pop - sol.y[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ds["treated_total"].isel(site=i).values, pop - sol.y[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ds["load"].isel(site=i).values, sol.y[0] / cap, rtol=1e-5, atol=1e-8)
    ds.close()


def test_a_model_without_adopted_saves_its_stocks_and_plots_them(tmp_path):
    """No ``[simulation] outputs`` and no ``adopted`` stock: the stocks are saved and drawn, one panel each."""
    path = _config(tmp_path)
    path.write_text(path.read_text().replace('outputs = ["waiting", "treated", "treated_total", "load"]\n', ""))
    assert load_config(path).simulation.outputs == ("waiting", "treated", "treated_total")
    result = runner.invoke(app, ["simulate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    png = (tmp_path / "out" / "simulation.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    with xr.open_dataset(tmp_path / "out" / "simulation.nc") as ds:
        np.testing.assert_allclose(ds["waiting"] + ds["treated"], np.broadcast_to([7.0, 900.0], (9, 2)), rtol=1e-9)


def test_an_edited_model_file_changes_every_identity(tmp_path):
    from spreadjax._jobs import config_hash
    from spreadjax.calibrate._identity import calibration_identity
    from spreadjax.ensemble._store import identity

    path = _config(tmp_path)
    before = load_config(path)
    ids = (calibration_identity(before)["calibrated_model"], config_hash(before), identity(before, {}))
    # the same equations with a different lookup: the config file itself is unchanged
    _write(tmp_path / "models", CLINIC.replace("y = [1, 1, 0.8, 0.3]", "y = [1, 1, 0.7, 0.3]"))
    after = load_config(path)
    assert path.read_text() == Path(before.path).read_text()
    new = (calibration_identity(after)["calibrated_model"], config_hash(after), identity(after, {}))
    assert all(a != b for a, b in zip(ids, new)), (ids, new)
    assert after.build_model().lookups[0].y == (1.0, 1.0, 0.7, 0.3)


def test_the_posterior_identity_follows_the_content_not_the_path(tmp_path, monkeypatch):
    """The same model file reached from another working folder (or copied) is the same model."""
    from spreadjax.calibrate._identity import calibration_identity

    path = _config(tmp_path)
    here = calibration_identity(load_config(path))["calibrated_model"]
    monkeypatch.chdir(tmp_path)
    assert calibration_identity(load_config("cfg.toml"))["calibrated_model"] == here
    other = tmp_path / "copy"
    other.mkdir()
    _config(other)
    assert calibration_identity(load_config(other / "cfg.toml"))["calibrated_model"] == here


def test_the_diagram_is_drawn_from_the_models_own_structure(tmp_path):
    from spreadjax.report._report_figures import model_diagram_svg

    svg = model_diagram_svg(load_model_file(_write(tmp_path, CLINIC)))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for text in ("waiting", "treated", "treatment", "tally of treatment", "effect_of_load (4 points, hold)", "load"):
        assert f">{text}<" in svg or text in svg, text
    assert "evidence" not in svg and "recognition" not in svg  # nothing of the flagship's


# -- refusals ----------------------------------------------------------------------------------------
REFUSALS = {
    "unknown-top-table": (CLINIC + "\n[stock.extra]\ninit = 1\n", "unknown key 'stock'; did you mean 'stocks'?"),
    "unknown-key": (CLINIC.replace('source = "waiting"', 'sorce = "waiting"'),
                    "[flows.treatment] unknown key 'sorce'; did you mean 'source'?"),
    "wrong-type": (CLINIC.replace("default = 900", 'default = "900"'),
                   "[parameters.population] default = '900': expected a number"),
    "missing-rate": (CLINIC.replace('rate = "waiting * effect_of_load(waiting / capacity) / wait_time"\n', ""),
                     "[flows.treatment] rate is missing"),
    "bad-source": (CLINIC.replace('source = "waiting"', 'source = "wating"'),
                   "[flows.treatment] source = 'wating' is not a stock or delay; did you mean 'waiting'?"),
    "bad-tally": (CLINIC.replace('tally = "treatment"', 'tally = "treat"'), "[stocks.treated_total] tally = 'treat' is not a flow"),
    "bad-population": (CLINIC.replace('population = "population"', 'population = "pop"'),
                       "[model] population = 'pop' is not a parameter"),
    "unknown-name": (CLINIC.replace("/ wait_time", "/ wait_tme"), "flow 'treatment'.rate: unknown name(s) wait_tme"),
    "lookup-not-increasing": (CLINIC.replace("x = [0, 0.5, 1, 2]", "x = [0, 1, 0.5, 2]"),
                              "lookup 'effect_of_load': x must be strictly increasing, but x[2] = 0.5 follows x[1] = 1"),
    "lookup-lengths": (CLINIC.replace("y = [1, 1, 0.8, 0.3]", "y = [1, 1, 0.8]"), "x has 4 points but y has 3"),
    "lookup-text": (CLINIC.replace("y = [1, 1, 0.8, 0.3]", 'y = [1, 1, "a", 0.3]'),
                    "[lookups.effect_of_load] y = [1, 1, 'a', 0.3]: expected a list of numbers"),
    "lookup-extrapolation": (CLINIC.replace('doc = "throughput', 'extrapolation = "continuous"\ndoc = "throughput'),
                             "extrapolation must be one of 'hold', 'linear', 'step', got 'continuous'"),
    "calling-a-non-lookup": (CLINIC.replace("effect_of_load(waiting / capacity)", "capacity(waiting)"),
                             "unknown function 'capacity'"),
    "no-model-table": (CLINIC.replace("[model]\n", "[modle]\n"), "unknown key 'modle'; did you mean 'model'?"),
    "not-toml": ("[model\nname = 1", "not valid TOML"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_model_files_are_refused_naming_file_table_and_key(tmp_path, case):
    text, expected = REFUSALS[case]
    path = _write(tmp_path, text)
    with pytest.raises((ConfigError, ModelError)) as err:
        load_model_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_config_refuses_both_name_and_file_and_a_missing_file(tmp_path):
    path = _config(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('file = "models/clinic.toml"', 'file = "models/clinic.toml"\nname = "four_stage"'))
    with pytest.raises(ConfigError, match=r"\[model\] give either name .* or file"):
        load_config(path)
    path.write_text(text.replace("models/clinic.toml", "models/nope.toml"))
    with pytest.raises(ConfigError, match=r"cfg.toml: \[model\] file = 'models/nope.toml': no such model file"):
        load_config(path)


def test_calibration_needs_an_ever_adopted_stock(tmp_path):
    (tmp_path / "counts.csv").write_text("site,time,population,adopters\nAshford,0.5,7,2\nLeeds,0.5,900,70\n")
    path = _config(tmp_path, extra='[data]\ncounts = "counts.csv"\n[priors.wait_time]\ndist = "LogNormal"\n'
                                   'loc = 0.0\nscale = 1.0\n')
    text = path.read_text().replace("population = [7, 900]\n", "")
    path.write_text(text)
    with pytest.raises(ConfigError, match="the stock 'ever_adopted'; model 'clinic_backlog' .* has none"):
        load_config(path)


def test_cli_exits_2_with_one_line_for_a_bad_model_file(tmp_path):
    path = _config(tmp_path, CLINIC.replace('source = "waiting"', 'sorce = "waiting"'))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for command in (["check"], ["simulate", "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, [command[0], str(path), *command[1:]])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert f"{tmp_path / 'models' / 'clinic.toml'}: [flows.treatment] unknown key 'sorce'" in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


# -- the bundled worked example ---------------------------------------------------------------------
def test_bundled_example_loads_with_its_lookup():
    cfg = load_config(CONFIGS / "capacity_limited_spread.toml")
    model = cfg.build_model()
    assert model.lookup_names == {"served_share"}
    assert cfg.model_file.endswith("models/capacity_limited_spread.toml")
    assert {"adopted", "ever_adopted"} <= set(model.names) and model.population == "population"
    assert cfg.calibration is not None and [sc.name for sc in cfg.scenarios][:1] == ["baseline"]


@pytest.mark.slow
def test_bundled_example_runs_end_to_end(tmp_path):
    """``spreadjax run`` on the worked example, made small (1 chain, few draws): every file and a
    report whose model section draws the user model."""
    import json

    from spreadjax._pipeline import run_pipeline

    cfg = load_config(CONFIGS / "capacity_limited_spread.toml")
    s = cfg.calibration.settings
    small = dataclasses.replace(
        cfg,
        calibration=dataclasses.replace(cfg.calibration, settings=dataclasses.replace(
            s, chains=1, warmup=60, samples=40)),
        ensemble=dataclasses.replace(cfg.ensemble, draws=10, chunk_size=10, replicates=2),
        run=dataclasses.replace(cfg.run, sensitivity_draws=4),
    )
    run_pipeline(small, tmp_path / "out", say=lambda text: None)
    for name in ("posterior.nc", "summary.json", "run.json", "report.html"):
        assert (tmp_path / "out" / name).exists(), name
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert model_from_dict(run["model"]["structure"], "run.json") == cfg.build_model()
    page = (tmp_path / "out" / "report.html").read_text()
    assert "This run used the user model <code>capacity_limited_spread</code>" in page
    assert "served_share (5 points, hold)" in page
    assert "1 Generation" not in page  # the flagship's hand-drawn diagram is not used
