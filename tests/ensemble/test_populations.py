"""The data's populations reach every run: sites of 7 and 900 organisations, not the model's 100.

Regression test for forecasts that ran with the model's default population whenever
``[parameters]`` did not set one: the store's populations must equal the data's, counts never
exceed them, and the stochastic spread of one step must be the binomial spread for that N.
"""

import json
import textwrap

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from spreadjax import load_config
from spreadjax._cli import app
from spreadjax.ensemble import open_results

runner = CliRunner()
P = 2.0  # push rate per year: the only hazard in the first step (nobody has adopted yet)
STEPS = 12  # per year; outputs every step, so the first output is one binomial step
REPLICATES = 4000

COUNTS = """site,time,population,adopters
Ashford,0.25,7,1
Ashford,0.5,7,3
Leeds,0.25,900,150
Leeds,0.5,900,400
"""


def config_text() -> str:
    return textwrap.dedent(f"""
        title = "small and large sites"
        [model]
        name = "four_stage"
        [model.options]
        awareness_stage = false
        implementation_order = 0
        [sites]
        names = ["Ashford", "Leeds"]
        [parameters]
        initial_adopters = 0
        recognition_baseline = 1.0
        pilot_evidence = 0.0
        adopter_evidence = 0.0
        discontinuation_rate = 0.0
        p = {P}
        [data]
        counts = "counts.csv"
        [priors.q]
        dist = "LogNormal"
        loc = -0.5
        scale = 1.0
        [simulation]
        end = 0.5
        steps_per_year = {STEPS}
        outputs_per_year = {STEPS}
        solver = "euler"
        dtype = "float64"
        [stochastic]
        enabled = true
        [ensemble]
        source = "fixed"
        draws = 1
        replicates = {REPLICATES}
        chunk_size = 1
        seed = 7
        targets = [{{ fraction = 0.5, by = 0.5 }}]
        """)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("populations")
    (tmp / "counts.csv").write_text(COUNTS)
    (tmp / "sites.toml").write_text(config_text())
    result = runner.invoke(app, ["ensemble", str(tmp / "sites.toml"), "--out", str(tmp / "out"), "--workers", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return tmp


def test_the_config_takes_the_populations_from_the_data(run):
    cfg = load_config(run / "sites.toml")
    assert dict(cfg.parameters)["population"] == (7.0, 900.0)
    assert cfg.data.population == (7.0, 900.0) and cfg.data.file.endswith("counts.csv")


def test_the_store_holds_the_data_populations_and_counts_stay_below_them(run):
    ds = open_results(run / "out" / "ensemble.zarr")
    np.testing.assert_array_equal(ds["population"].values, [7.0, 900.0])
    adopted = ds["adopted"].values  # (draw, scenario, replicate, time, site)
    assert adopted.shape == (1, 1, REPLICATES, STEPS // 2 + 1, 2)
    assert np.all(adopted >= 0) and np.all(adopted == np.round(adopted))  # whole organisations
    assert np.all(adopted[..., 0] <= 7) and np.all(adopted[..., 1] <= 900)
    assert adopted[..., 0].max() == 7  # the small site does fill up in some runs: the bound is N, not 100


def test_one_step_spread_is_binomial_for_each_population(run):
    ds = open_results(run / "out" / "ensemble.zarr")
    first = ds["adopted"].isel(draw=0, scenario=0, time=1).values  # (replicate, site): after one step
    prob = -np.expm1(-P / STEPS)  # Binomial(N, 1 - exp(-p dt)) from the model's hazard
    # N = 7: the whole distribution, by a chi-square test over 0..7 (tail merged where expected < 5)
    k = np.arange(8)
    expected = REPLICATES * stats.binom.pmf(k, 7, prob)
    observed = np.bincount(first[:, 0].astype(int), minlength=8)
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-3  # fixed seed: a wrong N (e.g. 100) gives p ~ 0
    # N = 900: mean and variance within 4 standard errors of N p and N p (1 - p)
    mean, var = 900 * prob, 900 * prob * (1 - prob)
    assert abs(first[:, 1].mean() - mean) < 4 * np.sqrt(var / REPLICATES)
    assert abs(first[:, 1].var(ddof=1) - var) < 4 * var * np.sqrt(2 / (REPLICATES - 1))


def test_summary_counts_are_at_most_the_population(run):
    summary = json.loads((run / "out" / "summary.json").read_text())
    assert summary["population"] == {"all": 907.0, "Ashford": 7.0, "Leeds": 900.0}
    counts = summary["scenarios"]["baseline"]["adopted_at_horizon"]
    for site, n in summary["population"].items():
        assert all(0 <= v <= n for v in counts[site].values()), (site, counts[site])
    final = open_results(run / "out" / "ensemble.zarr")["adopted"].isel(time=-1).values  # counts in the store
    # JSON keeps fractions to 4 digits and counts to 1: at most 900 x 5e-5 + 0.05 off
    assert counts["Ashford"]["mean"] == pytest.approx(final[..., 0].mean(), abs=0.1)
    assert counts["Leeds"]["mean"] == pytest.approx(final[..., 1].mean(), abs=0.1)
