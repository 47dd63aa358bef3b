"""TOML configs: every kind of bad input raises one ConfigError line naming the file, the key and
the bad value; good configs load and simulate."""

import datetime as dt
import textwrap
from pathlib import Path

import numpy as np
import pytest

from spreadjax import ConfigError, load_config, simulate_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

MODEL = '[model]\nname = "four_stage"\n'
POP = "[parameters]\npopulation = 50\n"  # every stock-and-flow config must say how many organisations


def write(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def check_error(path, *fragments):
    """Loading ``path`` raises one ConfigError line that names the file and every fragment."""
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert msg.startswith(str(path)), msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


# (id, TOML text, fragments the message must contain: the key and the bad value, at least)
BAD = [
    ("unknown-top-level-key", MODEL + "[simulaton]\nend = 5.0\n",
     ["unknown key 'simulaton'", "did you mean 'simulation'?"]),
    ("unknown-simulation-key", MODEL + "[simulation]\nstepsize = 0.1\n",
     ["[simulation]", "unknown key 'stepsize'"]),
    ("unknown-parameter", MODEL + "[parameters]\nqq = 0.3\n",
     ["[parameters]", "unknown parameter 'qq'", "did you mean 'q'?"]),
    ("string-for-number", MODEL + '[parameters]\nq = "fast"\n',
     ["[parameters] q", "'fast'", "expected a number"]),
    ("string-for-number-in-list", MODEL + '[sites]\ncount = 2\n[parameters]\npopulation = [10, "20"]\n',
     ["[parameters] population[1]", "'20'", "expected a number"]),
    ("string-for-simulation-number", MODEL + '[simulation]\nend = "ten"\n',
     ["[simulation] end", "'ten'", "expected float"]),
    ("negative-rate", MODEL + "[parameters]\nq = -0.3\n",
     ["[parameters] q", "-0.3", "negative"]),
    ("share-above-one", MODEL + "[parameters]\nreach = 1.5\n",
     ["[parameters] reach", "1.5", "out of range", "[0, 1]"]),
    ("per-site-list-wrong-length", MODEL + '[sites]\nnames = ["a", "b", "c"]\n[parameters]\npopulation = [10, 20]\n',
     ["[parameters] population", "2 values", "3 sites"]),
    ("schedule-times-decrease", MODEL + "[schedules.programme]\ntimes = [0.0, 3.0, 2.0]\nvalues = [1.0, 0.5, 0.0]\n",
     ["[schedules.programme] times", "[0.0, 3.0, 2.0]", "must not decrease"]),
    ("schedule-lengths-differ", MODEL + "[schedules.programme]\ntimes = [0.0, 3.0]\nvalues = [1.0, 0.5, 0.0]\n",
     ["[schedules.programme]", "2 times", "3 values"]),
    ("schedule-values-per-site-wrong-length",
     MODEL + "[sites]\ncount = 3\n[schedules.programme]\ntimes = [0.0, 3.0]\nvalues = [1.0, [0.5, 0.0]]\n",
     ["[schedules.programme] values[1]", "2 entries", "3 sites"]),
    ("unknown-schedule", MODEL + "[schedules.programm]\ntimes = [0.0]\nvalues = [1.0]\n",
     ["unknown schedule 'programm'", "did you mean 'programme'?"]),
    ("dense-weights-wrong-shape",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "dense"\nweights = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]\n',
     ["[network] weights", "(2, 3)", "expected (2, 2)"]),
    ("dense-weights-negative",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "dense"\nweights = [[0.0, -1.0], [1.0, 0.0]]\n',
     ["[network] weights", ">= 0"]),
    ("edge-unknown-site",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nedges = [{ source = "a", target = "z" }]\n',
     ["[network] edges[0]", "target 'z'", "is not a site", "a, b"]),
    ("edge-site-not-a-string",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nedges = [{ source = ["a"], target = "b" }]\n',
     ["[network] edges[0]", "source ['a']", "is not a site"]),
    ("edge-negative-weight",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nedges = [{ source = "a", target = "b", weight = -2.0 }]\n',
     ["[network] edges[0]", "weight -2", "negative"]),
    ("edge-file-not-a-path",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nfile = 3\n',
     ["[network] file", "3", "expected a path"]),
    ("edge-file-missing",
     MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nfile = "nope.csv"\n',
     ["[network] file", "nope.csv", "does not exist"]),
    ("network-kind", MODEL + '[network]\nkind = "sparse"\n',
     ["[network] kind", "'sparse'", '"dense" or "edges"']),
    ("output-every-not-multiple-of-dt", MODEL + "[simulation]\ndt = 0.25\noutput_every = 0.3\n",
     ["[simulation]", "output_every", "0.3", "0.25", "multiple of dt"]),
    ("span-not-multiple-of-output-every", MODEL + "[simulation]\nend = 1.5\ndt = 0.25\noutput_every = 1.0\n",
     ["[simulation]", "1.5", "output_every = 1"]),
    ("end-before-start", MODEL + "[simulation]\nstart = 2.0\nend = 1.0\n",
     ["[simulation] end = 1", "start = 2"]),
    ("non-finite-end", MODEL + "[simulation]\nend = inf\n",
     ["[simulation]", "end = inf", "finite"]),
    ("non-finite-output-every", MODEL + "[simulation]\noutput_every = inf\n",
     ["[simulation] output_every = inf", "finite"]),
    ("zero-dt", MODEL + "[simulation]\ndt = 0.0\n",
     ["[simulation] dt = 0", "positive"]),
    ("dt-and-steps-per-year", MODEL + "[simulation]\ndt = 0.25\nsteps_per_year = 4\n",
     ["[simulation]", "dt", "steps_per_year", "not both"]),
    ("steps-per-year-not-int", MODEL + "[simulation]\nsteps_per_year = 4.5\n",
     ["[simulation] steps_per_year = 4.5", "positive integer"]),
    ("unknown-output", MODEL + '[simulation]\noutputs = ["adopted", "adoptd"]\n',
     ["[simulation] outputs", "unknown name 'adoptd'", "did you mean 'adopted'?"]),
    ("outputs-not-a-list", MODEL + '[simulation]\noutputs = "adopted"\n',
     ["[simulation] outputs", "'adopted'", "list"]),
    ("bad-dtype", MODEL + '[simulation]\ndtype = "float16"\n',
     ["[simulation] dtype", "'float16'", '"float32" or "float64"']),
    ("bad-solver", MODEL + '[simulation]\nsolver = "rk45"\n',
     ["[simulation] solver", "'rk45'", '"euler", "rk4" or "adaptive"']),
    ("bad-start-date", MODEL + '[simulation]\nstart_date = "2024-13-01"\n',
     ["[simulation] start_date", "'2024-13-01'"]),
    ("bad-rtol", MODEL + "[simulation]\nrtol = -1e-6\n",
     ["[simulation] rtol", "-1e-06", "positive"]),
    ("replicates-zero", MODEL + "[stochastic]\nenabled = true\nreplicates = 0\n",
     ["[stochastic] replicates = 0"]),
    ("stochastic-enabled-not-bool", MODEL + '[stochastic]\nenabled = "yes"\n',
     ["[stochastic] enabled", "'yes'", "expected bool"]),
    ("missing-model-section", '[parameters]\nq = 0.3\n',
     ["[model] section is missing"]),
    ("missing-model-name", '[model]\n[model.options]\nawareness_stage = false\n',
     ["[model] name is missing"]),
    ("model-name-not-string", '[model]\nname = 4\n',
     ["[model] name = 4", "expected str"]),
    ("unknown-model", '[model]\nname = "five_stage"\n',
     ["[model]", "unknown model 'five_stage'", "four_stage"]),
    ("unknown-model-option", MODEL + "[model.options]\nawareness = true\n",
     ["[model]", "no option 'awareness'", "awareness_stage"]),
    ("model-option-wrong-type", MODEL + '[model.options]\nimplementation_order = "3"\n',
     ["[model]", "'implementation_order'", "must be int", "'3'"]),
    ("model-option-bool-for-int", MODEL + "[model.options]\nimplementation_order = true\n",
     ["[model]", "'implementation_order'", "must be int", "True"]),
    ("model-option-invalid-value", MODEL + "[model.options]\nrecognition_order = 0\n",
     ["[model]", "order", "got 0"]),
    ("duplicate-site-names", MODEL + '[sites]\nnames = ["a", "b", "a"]\n',
     ["[sites] names", "'a' appears twice"]),
    ("sites-count-not-positive", MODEL + "[sites]\ncount = 0\n",
     ["[sites] count = 0", "positive integer"]),
    ("sites-count-disagrees", MODEL + '[sites]\nnames = ["a", "b"]\ncount = 3\n',
     ["[sites] count = 3", "2 names"]),
    ("section-not-a-table", "parameters = 3\n" + MODEL,
     ["[parameters]", "table", "3"]),
]


@pytest.mark.parametrize("text, fragments", [pytest.param(t, f, id=i) for i, t, f in BAD])
def test_bad_config(tmp_path, text, fragments):
    check_error(write(tmp_path, text), *fragments)


def test_invalid_toml_syntax(tmp_path):
    path = write(tmp_path, '[model]\nname = "four_stage\n')
    check_error(path, "not valid TOML", "line 2")


def test_not_a_text_file(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00bad")
    check_error(path, "not a text file")


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.toml", "no such config file")


def test_config_error_is_a_value_error(tmp_path):
    # callers that catch ValueError (or InputError) also catch config problems
    with pytest.raises(ValueError):
        load_config(tmp_path / "nope.toml")


# -- good configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.path == str(path)
    if cfg.is_hazard:  # individual adoption data: no stock-and-flow model; the sites come from the data
        from spreadjax.calibrate._hazard_job import load_hazard_inputs

        assert cfg.title and len(load_hazard_inputs(cfg.calibration).sites) >= 1
        return
    assert cfg.n_sites >= 1
    assert cfg.title and cfg.title != "untitled"
    cfg.build_model()  # the model options are valid


def test_bass_config_simulates_the_closed_form():
    cfg = load_config(CONFIGS / "bass.toml")
    ds = simulate_config(cfg)
    p, q, n = 0.03, 0.38, 1000.0
    t = ds["time"].values
    assert t[0] == 0.0 and t[-1] == pytest.approx(10.0) and len(t) == 521
    e = np.exp(-(p + q) * t)
    expected = n * (1 - e) / (1 + (q / p) * e)
    np.testing.assert_allclose(ds["adopted"].sel(site="site1").values, expected, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(ds["adopted_fraction"].values, ds["adopted"].values / n, rtol=1e-12)
    assert ds.attrs["config_sha256"] and ds.attrs["dtype"] == "float64" and ds.attrs["seed"] == -1


def test_flagship_config_simulates():
    cfg = load_config(CONFIGS / "flagship.toml")
    ds = simulate_config(cfg)
    assert list(ds["site"].values) == ["North", "North West", "Midlands", "East", "London", "South"]
    assert ds.sizes == {"time": 97, "site": 6}
    assert ds["adopted"].dtype == np.float32
    assert ds["date"].values[0] == np.datetime64("2024-04-01")
    assert str(ds["date"].values[-1])[:10] == "2032-04-01"
    stages = sum(ds[s] for s in ("unaware", "aware", "implementing", "adopted", "discontinued"))
    np.testing.assert_allclose(stages.values, np.broadcast_to(ds["population"].values, stages.shape), rtol=1e-4)
    # the programme is withdrawn after 3 years
    assert float(ds["programme"].sel(time=2.0, method="nearest").max()) == 1.0
    assert float(ds["programme"].sel(time=4.0, method="nearest").max()) == 0.0


def test_per_site_lists_and_scalars(tmp_path):
    cfg = load_config(write(tmp_path, MODEL + """
        [sites]
        names = ["a", "b", "c"]
        [parameters]
        population = [10, 20, 30.5]
        q = 0.5
        [schedules.programme]
        times = [0.0, 1.0]
        values = [[1.0, 0.5, 0.0], 0.25]
    """))
    values = cfg.param_values()
    assert values["population"] == (10.0, 20.0, 30.5)
    assert values["q"] == 0.5 and isinstance(values["q"], float)
    assert values["programme"] == {"times": (0.0, 1.0), "values": ((1.0, 0.5, 0.0), (0.25, 0.25, 0.25))}


def test_site_count_inferred_from_lists(tmp_path):
    cfg = load_config(write(tmp_path, MODEL + "[parameters]\npopulation = [10, 20]\nq = 0.5\n"))
    assert cfg.sites == ("site1", "site2")


def test_steps_and_outputs_per_year(tmp_path):
    cfg = load_config(write(tmp_path, MODEL + POP + "[simulation]\nend = 2.0\nsteps_per_year = 48\noutputs_per_year = 12\n"))
    assert cfg.simulation.dt == 1 / 48
    assert cfg.simulation.output_every == 1 / 12
    np.testing.assert_allclose(cfg.simulation.times, np.arange(25) / 12)


def test_default_simulation_is_consistent(tmp_path):
    # the defaults (dt = 1/52, outputs about monthly) must themselves pass validation
    sim = load_config(write(tmp_path, MODEL + POP)).simulation
    assert sim.dt == 1 / 52
    steps = sim.output_every / sim.dt
    assert steps == pytest.approx(round(steps)) and round(steps) >= 1
    assert sim.times[-1] == pytest.approx(10.0)
    assert (sim.solver, sim.dtype, sim.outputs) == ("rk4", "float32", ("adopted",))


def test_sites_count_start_date_and_dataset(tmp_path):
    # [sites] count names the sites; a TOML date literal gives a `date` coordinate
    cfg = load_config(write(tmp_path, MODEL + """
        [sites]
        count = 3
        [parameters]
        population = [10, 20, 30]
        initial_adopters = [1, 0, 0]
        q = 0.5
        [simulation]
        end = 1.0
        steps_per_year = 12
        outputs_per_year = 4
        solver = "euler"
        start_date = 2024-01-01
        outputs = ["adopted", "unaware"]
    """))
    assert cfg.sites == ("site1", "site2", "site3")
    assert cfg.simulation.start_date == "2024-01-01"
    ds = simulate_config(cfg)
    assert list(ds["site"].values) == ["site1", "site2", "site3"]
    assert ds.sizes == {"time": 5, "site": 3}
    assert ds["date"].values[0] == np.datetime64("2024-01-01")
    assert ds["date"].dims == ("time",)
    assert np.all(np.diff(ds["date"].values) > np.timedelta64(0, "D"))
    np.testing.assert_array_equal(ds["population"].values, [10, 20, 30])
    assert ds["adopted"].attrs["units"] == "organisations"


def test_start_date_datetime_literal(tmp_path):
    cfg = load_config(write(tmp_path, MODEL + POP + "[simulation]\nstart_date = 2024-04-01T09:30:00\n"))
    assert cfg.simulation.start_date == "2024-04-01"
    assert dt.date.fromisoformat(cfg.simulation.start_date) == dt.date(2024, 4, 1)


def test_edges_from_csv_file(tmp_path):
    (tmp_path / "edges.csv").write_text("source,target,weight\na,b,0.5\nb,a,1\n")
    cfg = load_config(write(tmp_path, MODEL + POP + """
        [sites]
        names = ["a", "b"]
        [network]
        kind = "edges"
        file = "edges.csv"
    """))
    assert cfg.network.kind == "edges"
    assert cfg.network.source == (0, 1) and cfg.network.target == (1, 0)
    assert cfg.network.edge_weight == (0.5, 1.0)


def test_edges_csv_bad_weight_names_file_and_row(tmp_path):
    csv = tmp_path / "edges.csv"
    csv.write_text("source,target,weight\na,b,lots\n")
    path = write(tmp_path, MODEL + '[sites]\nnames = ["a", "b"]\n[network]\nkind = "edges"\nfile = "edges.csv"\n')
    check_error(path, str(csv), "row 2", "weight", "'lots'")
