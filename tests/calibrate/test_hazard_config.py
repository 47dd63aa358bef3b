"""Network-hazard configs: parsing, one-line errors through the CLI, CSV inputs, and the bundled
Medical Innovation config end to end through `spreadjax calibrate`.

Independent truths: the person-period rows built by the library's own Medical Innovation design
(``medical_innovation_design``: covariates from nodes.csv, binary union adjacency), which the
config path must reproduce from CSV files written here; the monthly adoption counts of the
separate file adoption_by_month.csv; and netdiffuseR's published lagged-exposure logit (peer
effect 0.06835, SE 0.36290) with the long-run posterior of docs/calibration_network_hazard.md.
"""

import csv
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax._config import load_config
from spreadjax._errors import ConfigError, DataError
from spreadjax.calibrate import (
    adjacency,
    medical_innovation_counts,
    medical_innovation_individuals,
)
from spreadjax.calibrate import medical_innovation_path as mi_path
from spreadjax.calibrate._hazard import PUBLISHED_MI, medical_innovation_design
from spreadjax.calibrate._hazard_job import load_hazard_inputs

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "spreadjax" / "configs" / "medical_innovation_hazard.toml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def config_text(*edits: tuple[str, str]) -> str:
    """The bundled config with each ``(old, new)`` replacement applied (``old`` must occur)."""
    text = BUNDLED.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def write_config(tmp_path: Path, *edits: tuple[str, str], name: str = "hazard.toml") -> Path:
    path = tmp_path / name
    path.write_text(config_text(*edits))
    return path


# --------------------------------------------------------------------------- parsing
def test_bundled_config_parses_to_the_literature_specification():
    cfg = load_config(ROOT / "configs" / "medical_innovation_hazard.toml")  # the symlink
    assert cfg.is_hazard and cfg.calibration.kind == "network_hazard"
    cal = cfg.calibration
    assert cal.data.individuals == "medical_innovation" and cal.data.time_unit == "month"
    assert [e.path for e in cal.data.edges] == ["medical_innovation"]
    obs = cal.observation
    assert (obs.link, obs.baseline, obs.lag, obs.ties) == ("logit", "period", 1, "binary")
    assert obs.covariates == ("belief", "proage", "proage^2")
    assert obs.networks == ("advice", "discussion", "friendship")
    priors = cal.prior_map()
    assert sorted(priors) == ["alpha", "beta_cov", "beta_exposure", "gamma"]
    assert all(p.dist == "Normal" and dict(p.args) == {"loc": 0.0, "scale": 10.0} for p in priors.values())
    assert cal.settings.method == "nuts" and cal.settings.dtype == "float64"


def test_bundled_config_builds_the_published_design():
    """The config's rows are the 826 person-periods of netdiffuseR's model, built independently by
    medical_innovation_design (its own covariate reader and adjacency)."""
    inputs = load_hazard_inputs(load_config(BUNDLED).calibration)
    _, ref = medical_innovation_design()
    got = inputs.data
    assert got.n_rows == 826 and got.info["at_risk"] == 981
    assert got.covariate_names == ("belief", "proage", "proage^2")
    assert got.site_names == ("city1", "city2", "city3", "city4") and got.period_labels == tuple(range(2, 18))
    for name in ("event", "exposure", "site", "period", "covariates", "node"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


def test_check_prints_the_design():
    result = runner.invoke(app, ["check", str(BUNDLED)])
    assert result.exit_code == 0, result.output
    line = " ".join(result.stdout.split())  # rich wraps long lines
    assert line.startswith(f"ok: {BUNDLED}: network hazard (logit link, period baseline, lag 1)")
    assert "125 individuals in 4 site(s)" in line and "826 usable person-periods (of 981 at risk)" in line
    assert "17 periods" in line


def rest_of_bundled() -> str:
    """The bundled config from [observation] on (everything but [data])."""
    text = BUNDLED.read_text()
    return text[text.index("[observation]"):]


def write_mi_csvs(tmp_path: Path, network_column: bool) -> str:
    """Medical Innovation as user CSV files: individuals (in months, with the covariates, blank where
    missing, and an unused column) and edges, either one file with a network column or one file per
    network; returns the config's [data] section for them."""
    with open(mi_path("nodes.csv"), newline="") as fh:
        nodes = list(csv.DictReader(fh))
    with open(tmp_path / "people.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "site", "adoption_time", "end_time", "belief", "proage", "unused"])
        w.writerows([r["node_id"], f"city{r['city']}", r["toa"], 17, r["belief"], r["proage"], "x"] for r in nodes)
    with open(mi_path("edges.csv"), newline="") as fh:
        edges = list(csv.DictReader(fh))
    data = '[data]\nindividuals = "people.csv"\ntime_unit = "month"\n'
    if network_column:
        with open(tmp_path / "ties.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "target", "network"])
            w.writerows([e["source"], e["target"], e["network"]] for e in edges)
        return data + 'edges = ["ties.csv"]\n\n'
    for net in ("advice", "discussion", "friendship"):
        with open(tmp_path / f"{net}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "target", "weight"])
            w.writerows([e["source"], e["target"], 1] for e in edges if e["network"] == net)
    return data + "\n[data.edges]\n" + "".join(f'{n} = "{n}.csv"\n' for n in ("advice", "discussion",
                                                                                    "friendship")) + "\n"


@pytest.mark.parametrize("network_column", [True, False], ids=["edge-list", "edge-table"])
def test_csv_files_give_the_same_rows_as_the_bundled_data(tmp_path, network_column):
    path = tmp_path / "csv.toml"
    path.write_text(write_mi_csvs(tmp_path, network_column) + rest_of_bundled())
    inputs = load_hazard_inputs(load_config(path).calibration)
    _, ref = medical_innovation_design()
    for name in ("event", "exposure", "site", "period", "covariates", "node"):
        np.testing.assert_array_equal(getattr(inputs.data, name), getattr(ref, name), err_msg=name)
    assert inputs.networks == ("advice", "discussion", "friendship")


def test_networks_and_ties_select_the_adjacency():
    cfg = load_config(BUNDLED)
    cal = cfg.calibration
    obs = cal.observation.__class__(**{**cal.observation.__dict__, "networks": ("advice",), "ties": "weighted"})
    inputs = load_hazard_inputs(cal.__class__(**{**cal.__dict__, "observation": obs}))
    expected = adjacency(medical_innovation_individuals(), "advice")
    np.testing.assert_array_equal(inputs.adjacency.values, expected.values)
    assert inputs.networks == ("advice",)


BAD = {
    # id: (edits, fragments of the one error line besides the config path)
    "unknown-observation-key": ([("lag = 1 ", "lagg = 1 ")], ["[observation] unknown key 'lagg'", "'lag'"]),
    "link": ([('link = "logit"', 'link = "probit"')], ["[observation] link = 'probit'", "logit, cloglog"]),
    "baseline": ([('baseline = "period"', 'baseline = "weekly"')], ["[observation] baseline = 'weekly'"]),
    "lag-negative": ([("lag = 1 ", "lag = -1 ")], ["[observation] lag = -1"]),
    "lag-fraction": ([("lag = 1 ", "lag = 1.5 ")], ["[observation] lag = 1.5"]),
    "ties": ([('ties = "binary"', 'ties = "fuzzy"')], ["[observation] ties = 'fuzzy'"]),
    "covariate-reserved": ([('"belief", "proage", "proage^2"', '"adoption_time"')],
                           ["[observation] covariates: 'adoption_time'"]),
    "covariate-missing": ([('"belief", "proage", "proage^2"', '"belief", "shoe_size"')],
                          ["[observation] covariates: 'shoe_size' is not a column of", "nodes.csv"]),
    "network-unknown": ([('"advice", "discussion", "friendship"]', '"advice", "coworkers"]')],
                        ["[observation] networks: 'coworkers'", "'friendship'"]),
    "base-period-unusable": ([("lag = 1 ", "base_period = 1\nlag = 1 ")],
                             ["[observation] base_period = 1", "no usable rows"]),
    "individuals-missing-file": ([('individuals = "medical_innovation"', 'individuals = "people.csv"')],
                                 ["[data] individuals = 'people.csv'", "does not exist"]),
    "edges-empty": ([('edges = ["medical_innovation"]', "edges = []")], ["[data] edges = []"]),
    "edges-missing": ([('edges = ["medical_innovation"]', "")], ["[data] edges is missing"]),
    "time-unit": ([('time_unit = "month"', 'time_unit = "fortnight"')], ["[data] time_unit = 'fortnight'"]),
    "period-length": ([('time_unit = "month"', 'time_unit = "month"\nperiod_length = 0')],
                      ["[data] period_length = 0"]),
    "counts-key": ([('time_unit = "month"', 'time_unit = "month"\ncounts = "medical_innovation"')],
                   ["[data] counts"]),
    "prior-group": ([("[priors.beta_exposure]", "[priors.peer_effect]")],
                    ["[priors] unknown coefficient group 'peer_effect'"]),
    "prior-dist": ([('[priors.beta_exposure]\ndist = "Normal"\nloc = 0.0\nscale = 10.0',
                     '[priors.beta_exposure]\ndist = "LogNormal"\nloc = 0.0\nscale = 1.0')],
                   ["[priors.beta_exposure] dist = 'LogNormal'", "Normal"]),
    "prior-scale": ([("[priors.beta_exposure]\ndist = \"Normal\"\nloc = 0.0\nscale = 10.0",
                      "[priors.beta_exposure]\ndist = \"Normal\"\nloc = 0.0\nscale = -1.0")],
                    ["[priors.beta_exposure] scale = -1.0", "positive"]),
    "prior-beta-cov-without-covariates": ([('covariates = ["belief", "proage", "proage^2"]', "")],
                                          ["[priors.beta_cov] is given but [observation] covariates is empty"]),
    "method": ([('method = "nuts"', 'method = "svi"')], ["[calibration] method = 'svi'", "NUTS only"]),
    "chains": ([("chains = 4", "chains = 0")], ["[calibration] chains"]),
    "calibration-key": ([("chains = 4", "chains = 4\nsvi_steps = 10")], ["[calibration] unknown key 'svi_steps'"]),
    "model-section": ([("[data]", '[model]\nname = "four_stage"\n\n[data]')],
                      ["[model] does not apply to a network_hazard config"]),
    "observation-model-missing": ([('model = "network_hazard"\n', "")],
                                  ["[data] individuals and edges are individual adoption data",
                                   '[observation] model = "network_hazard"']),
    "simulation-section": ([("[data]", "[simulation]\nend = 2.0\n\n[data]")],
                           ["[simulation] does not apply to a network_hazard config"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_hazard_config_exits_2_with_one_line(tmp_path, case):
    edits, fragments = BAD[case]
    path = write_config(tmp_path, *edits)
    out = tmp_path / "results"
    result = runner.invoke(app, ["calibrate", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hazard.toml"]


MINIMAL = '[data]\nindividuals = "people.csv"\nedges = ["ties.csv"]\n[observation]\nmodel = "network_hazard"\n'


def test_bad_individuals_row_names_file_line_and_column(tmp_path):
    (tmp_path / "people.csv").write_text("id,site,adoption_time,end_time\n1,a,2,10\n2,a,soon,10\n")
    (tmp_path / "ties.csv").write_text("source,target\n1,2\n")
    (tmp_path / "h.toml").write_text(MINIMAL)
    result = runner.invoke(app, ["check", str(tmp_path / "h.toml")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{tmp_path / 'people.csv'}, line 3 (data row 2), column 'adoption_time', value 'soon'" in lines[0]


def test_end_of_observation_is_required_and_sets_the_periods(tmp_path):
    (tmp_path / "people.csv").write_text("id,site,adoption_time\n1,a,2\n2,a,\n")
    (tmp_path / "ties.csv").write_text("source,target\n2,1\n")
    (tmp_path / "h.toml").write_text(MINIMAL)
    with pytest.raises(DataError, match=r"people\.csv: 2 row\(s\) have no end of observation.*\[data\] end_time"):
        load_hazard_inputs(load_config(tmp_path / "h.toml").calibration)
    (tmp_path / "h.toml").write_text(MINIMAL.replace('["ties.csv"]\n', '["ties.csv"]\nend_time = 4\n'))
    inputs = load_hazard_inputs(load_config(tmp_path / "h.toml").calibration)
    # 4 yearly periods; node 1 adopts in period 2 (at risk in 1-2), node 2 never (at risk in 1-4)
    assert inputs.person_periods["at_risk"].values.sum() == 6
    assert inputs.data.n_rows == 4  # period 1 has no lagged exposure: 2 rows dropped
    np.testing.assert_allclose(inputs.person_periods["period_end"].values, [1, 2, 3, 4])


@pytest.mark.parametrize("command", [["run"], ["simulate"], ["ensemble"]], ids=["run", "simulate", "ensemble"])
def test_forecasting_commands_refuse_a_hazard_config(tmp_path, command):
    path = shutil.copy(BUNDLED, tmp_path / "hazard.toml")
    out = tmp_path / "results"
    result = runner.invoke(app, [*command, str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"error: {path}: `spreadjax {command[0]}`" in lines[0]
    assert "needs a stock-and-flow [model] and aggregate counts" in lines[0]
    assert f"spreadjax calibrate {path} --out DIR" in lines[0]
    assert not out.exists()


def test_pipeline_api_refuses_a_hazard_config(tmp_path):
    from spreadjax._pipeline import run_pipeline

    with pytest.raises(ConfigError, match=r"`spreadjax run` \(the forecasting pipeline\) needs a stock-and-flow"):
        run_pipeline(load_config(BUNDLED), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_calibrate_bundled_hazard_config_end_to_end(tmp_path):
    """2 chains x (200 warm-up + 300 draws) with the bundled config's seed: 40-70 s on 2 shared cores,
    most of it compilation. Over seeds 1-3 the peer-effect mean ran 0.072-0.129, its sd 0.349-0.373."""
    path = write_config(tmp_path, ("chains = 4", "chains = 2"), ("warmup = 300", "warmup = 200"),
                        ("samples = 400", "samples = 300"), ("prior_draws = 500", "prior_draws = 100"))
    out = tmp_path / "results"
    result = runner.invoke(app, ["calibrate", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".spreadjax.lock", "posterior.nc", "diagnostics.txt", "diagnostics.csv", "predictive.png", "trace_rank.png",
         "prior_posterior.png"])  # and no temporary files
    for png in ("predictive.png", "trace_rank.png", "prior_posterior.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        idata = az.from_netcdf(str(out / "posterior.nc"))
    assert {"posterior", "sample_stats", "observed_data", "prior", "prior_predictive",
            "posterior_predictive"} <= set(idata.groups())
    post = idata.posterior
    assert post["beta_exposure"].shape == (2, 300)
    assert list(post["beta_cov"]["covariate"].values) == ["belief", "proage", "proage^2"]
    assert list(post["alpha"]["site"].values) == ["city1", "city2", "city3", "city4"]
    assert list(post["gamma"]["period"].values) == list(range(2, 18))
    assert np.all(post["gamma"].sel(period=2).values == 0.0)  # the base month
    assert idata.sample_stats["diverging"].values.sum() <= 3  # at most 0.5% of the draws

    # Peer effect against netdiffuseR's GLM. With nearly flat priors the posterior mean sits within a
    # few hundredths of the MLE (docs, 4 x 1000 draws: 0.0748 vs 0.06835); the Monte Carlo SE of a
    # mean from >= 200 effective draws is <= 0.363 / sqrt(200) = 0.026, so 0.25 published SEs (0.091)
    # leaves 3.5 MC SEs. The sd (MC SE about 3-4% here) must be within 15% of the published SE.
    glm, se = PUBLISHED_MI["exposure"]
    draws = post["beta_exposure"].values.reshape(-1)
    assert abs(draws.mean() - 0.0748) <= 0.25 * se, draws.mean()
    assert abs(draws.mean() - glm) <= 0.25 * se, draws.mean()
    assert abs(draws.std(ddof=1) / se - 1.0) <= 0.15, draws.std(ddof=1)
    # belief in science: clearly positive, as published (0.508, SE 0.166)
    belief = post["beta_cov"].sel(covariate="belief").values.reshape(-1)
    assert abs(belief.mean() - PUBLISHED_MI["belief"][0]) <= 0.25 * PUBLISHED_MI["belief"][1]

    # the peer effect line on stderr reports the same draws
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("peer effect"))
    mean, sd, lo, hi = map(float, re.search(r"posterior mean (\S+), sd (\S+), 90% interval \[(\S+), (\S+)\]",
                                            line).groups())
    assert mean == pytest.approx(draws.mean(), abs=5e-5) and sd == pytest.approx(draws.std(ddof=1), abs=5e-5)
    np.testing.assert_allclose([lo, hi], np.quantile(draws, [0.05, 0.95]), atol=5e-4)

    # observed counts: the individual adoption months agree with the separate monthly counts file
    counts = medical_innovation_counts()
    obs = idata.observed_data
    np.testing.assert_allclose(obs["time"].values, counts["time"].values)
    np.testing.assert_array_equal(obs["new_adopters"].transpose("time", "site").values,
                                  counts["new_adopters"].transpose("time", "site").values)
    np.testing.assert_array_equal(obs["population"].values, counts["population"].values)

    # posterior predictive new adopters per month and town; over the 17 months each town's mean total
    # is near its observed total: at the MLE the town intercept's score equation makes the summed
    # hazards equal the observed adoptions exactly, and the posterior mean moves the intercepts by a
    # fraction of an SE (docs), about a person here (seeds 1-3: within 0.9); Bernoulli noise in the
    # mean is ~0.3 people.
    pp = idata.posterior_predictive["new_adopters"]
    assert pp.dims == ("chain", "draw", "time", "site") and pp.shape == (2, 300, 17, 4)
    assert np.issubdtype(pp.dtype, np.integer) and int(pp.min()) >= 0
    predicted = pp.sum("time").mean(("chain", "draw")).values
    observed = obs["new_adopters"].sum("time").values
    np.testing.assert_allclose(predicted, observed, atol=3.0)
    # month 1 has no lagged exposure: the model does not score it and keeps the observed adoptions
    np.testing.assert_array_equal(pp.isel(time=0).values, np.broadcast_to(obs["new_adopters"].isel(time=0).values,
                                                                         pp.isel(time=0).shape))
    assert idata.prior_predictive["new_adopters"].shape == (1, 100, 17, 4)

    table = (out / "diagnostics.txt").read_text()
    assert table.splitlines()[2].split()[0] == "beta_exposure" and "Flags:" in table
    csv_rows = (out / "diagnostics.csv").read_text().splitlines()
    assert csv_rows[0].startswith("parameter,") and len(csv_rows) == 1 + 1 + 3 + 4 + 16
    assert math.isfinite(float(csv_rows[1].split(",")[1]))
