"""Push-versus-pull identifiability: contraction and correlation against closed forms, the
verdicts, priors on a schedule's values, the `identify` refusals, and SBC on an identifiable
structure (uniform ranks, contraction) and a non-identifiable one (flagged)."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax import ConfigError
from spreadjax._cli import app
from spreadjax._config import load_config
from spreadjax.calibrate._identify import CONTRACTED, contraction, correlation, identifiability
from spreadjax.calibrate._sbc import rank_bins, ranks_of, sbc_flags, uniformity_p_value

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SITES = ("north", "south", "east")
runner = CliRunner()


def test_contraction_of_a_conjugate_normal_posterior():
    # prior N(0, 2^2), n = 9 observations with sd 1: posterior variance 1 / (1/4 + 9) exactly
    rng = np.random.default_rng(0)
    prior = rng.normal(0.0, 2.0, 400_000)
    post_var = 1.0 / (1.0 / 4.0 + 9.0)
    post = rng.normal(0.7, np.sqrt(post_var), 400_000)
    # sample variances of 4e5 normal draws are within 4 * sqrt(2 / 4e5) = 0.9% of the truth
    assert contraction(prior, post) == pytest.approx(1.0 - post_var / 4.0, abs=0.01)
    assert contraction(prior, prior[::-1]) == pytest.approx(0.0, abs=0.01)  # no data: no contraction


def test_correlation_of_a_known_bivariate_normal():
    rng = np.random.default_rng(1)
    cov = [[1.0, -0.8 * 0.5], [-0.8 * 0.5, 0.25]]
    x = rng.multivariate_normal([0.0, 1.0], cov, 200_000)
    # the sd of a sample correlation near -0.8 is (1 - 0.64) / sqrt(n) = 0.0008
    assert correlation(x[:, 0], x[:, 1]) == pytest.approx(-0.8, abs=0.005)
    assert np.isnan(correlation(np.ones(10), x[:10, 0]))


def _groups(log_p_prior, log_q_prior, log_p_post, log_q_post):
    """Prior and posterior groups with complete-pooled p and q, ``(chain=1, draw)``."""
    def ds(a, b):
        return xr.Dataset({"p": (("chain", "draw"), np.exp(a)[None]), "q": (("chain", "draw"), np.exp(b)[None])})
    return ds(log_p_prior, log_q_prior), ds(log_p_post, log_q_post)


def test_verdicts_separated_ridge_and_uninformed():
    rng = np.random.default_rng(2)
    n = 20_000
    prior = rng.normal(-1.0, 1.0, (2, n))
    # separated: both posteriors sd 0.2 (contraction 0.96), independent
    post = rng.normal([[-2.0], [-0.5]], 0.2, (2, n))
    ident = identifiability(None, *_groups(*prior, *post), SITES)
    assert ident.separated is True and ident.verdict.startswith("The data separate push from pull")
    assert ident.contraction["push"]["pooled"] == pytest.approx(1 - 0.04, abs=0.01)
    assert set(ident.correlation) == {"pooled", *SITES}
    # a ridge: log p + log q pinned, log p - log q not (each keeps 80% of its prior variance)
    a = rng.normal(0.0, np.sqrt(0.8), n)
    ridge = identifiability(None, *_groups(*prior, -1.0 + a + rng.normal(0, 0.05, n), -1.0 - a), SITES)
    assert ridge.separated is False and "only their combination is pinned down" in ridge.verdict
    assert ridge.correlation["pooled"] < -0.95 and ridge.contraction["pull"]["pooled"] == pytest.approx(0.2, abs=0.03)
    # q untouched by the data: its posterior is its prior
    flat = identifiability(None, *_groups(*prior, post[0], rng.normal(-1.0, 1.0, n)), SITES)
    assert flat.separated is False and "say almost nothing about pull (q)" in flat.verdict


def test_partially_pooled_values_are_read_per_site_from_the_dims():
    rng = np.random.default_rng(3)
    n, k = 4000, len(SITES)
    prior = xr.Dataset({"q_pop": (("chain", "draw"), np.exp(rng.normal(0, 1, (1, n)))),
                        "q": (("chain", "draw", "site"), np.exp(rng.normal(0, 1.2, (1, n, k)))),
                        "p": (("chain", "draw"), np.exp(rng.normal(0, 1, (1, n))))})
    post = xr.Dataset({"q_pop": (("chain", "draw"), np.exp(rng.normal(0, 0.5, (2, n)))),
                       "q": (("chain", "draw", "site"), np.exp(rng.normal(0, [0.3, 0.6, 1.2], (2, n, k)))),
                       "p": (("chain", "draw"), np.exp(rng.normal(0, 0.1, (2, n))))})
    ident = identifiability(None, prior, post, SITES)
    c = ident.contraction["pull"]
    # 1 - sd_post^2 / sd_prior^2 per site: 1 - 0.09/1.44, 1 - 0.36/1.44, 0; pooled 1 - 0.25
    assert [c[s] for s in SITES] == pytest.approx([1 - 0.09 / 1.44, 0.75, 0.0], abs=0.05)
    assert c["pooled"] == pytest.approx(0.75, abs=0.05)
    assert "say almost nothing" not in ident.verdict and ident.separated is True


def test_ranks_and_uniformity_test():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=(400, 1))
    calibrated = rng.normal(size=(400, 99, 1))  # draws from the same law as the truth: uniform ranks
    too_narrow = rng.normal(0.0, 0.5, size=(400, 99, 1))  # a posterior narrower than it should be
    assert rank_bins(99, 400) == 20 and rank_bins(99, 30) == 5 and rank_bins(99, 12) == 2
    ok = ranks_of(truth, calibrated)
    bad = ranks_of(truth, too_narrow)
    assert ok.min() >= 0 and ok.max() <= 99
    assert uniformity_p_value(ok[:, 0], 99, 20) > 0.01
    assert uniformity_p_value(bad[:, 0], 99, 20) < 1e-6  # U-shaped: truths fall outside the draws


def test_schedule_prior_is_one_value_per_breakpoint_shared_by_the_sites():
    cfg = load_config(CONFIGS / "medical_innovation_time_varying_push.toml")
    prior = next(p for p in cfg.calibration.priors if p.name == "programme")
    assert prior.breakpoints == 17 and prior.pooling == "complete"
    from spreadjax.calibrate._run import build_problem

    problem = build_problem(cfg)
    # a free programme held at 0.2 with p = 3 per year is a constant push of 0.6 per year
    v = {"programme": np.full(17, 0.2), "q": np.array([0.4, 0.5, 0.6, 0.7]), "ceiling": np.full(4, 0.9)}
    params = problem.params(v)
    assert params["programme"]["values"].shape == (17, 4)
    np.testing.assert_allclose(params["programme"]["values"], 0.2)
    varying = np.asarray(problem.simulate(v)["ever_adopted"])
    base = dict(problem.base_params)
    base["p"] = base["p"] * 0.2
    constant = np.asarray(problem.sim({**problem.params({k: v[k] for k in ("q", "ceiling")}), "p": base["p"]},
                                      problem.network)["ever_adopted"])
    np.testing.assert_allclose(varying, constant, rtol=1e-12)  # same equations, same numbers


def test_schedule_prior_refuses_pooling(tmp_path):
    text = (CONFIGS / "medical_innovation_time_varying_push.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("concentration0 = 1.0", "concentration0 = 1.0\npooling = \"partial\"", 1))  # the programme
    with pytest.raises(ConfigError, match=r"\[priors.programme\] is a schedule: each breakpoint's value is shared"):
        load_config(bad)


@pytest.mark.parametrize("args, message", [
    (["--sbc", "3"], "--sbc 3: expected a whole number of replications from 10"),
    ([], "give --posterior FILE"),
    (["--posterior", "nope.nc"], "--posterior nope.nc: no such posterior file"),
])
def test_identify_refusals_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["identify", str(CONFIGS / "medical_innovation.toml"), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


def test_identify_refuses_a_config_without_data(tmp_path):
    result = runner.invoke(app, ["identify", str(CONFIGS / "bass.toml"), "--out", str(tmp_path / "o"), "--sbc", "20"])
    assert result.exit_code == 2 and "no [data] section" in result.output


def test_sbc_flags_in_plain_words():
    class R:  # an SBCResult's fields, as sbc_flags reads them
        labels = ["p", "q"]
        ranks = np.zeros((40, 2), int)
        bins = 5
        p_values = np.array([0.4, 1e-5])
        contraction = np.column_stack([np.full(40, 0.9), np.full(40, 0.02)])
        divergences = 0
        settings = {"chains": 2, "samples": 50}

    flags = sbc_flags(R())
    assert len(flags) == 2
    assert flags[0].startswith("q: ranks are not uniform") and "miscalibrated" in flags[0]
    assert flags[1].startswith("q: not identified by data like these") and "98% of the prior variance" in flags[1]


def test_sbc_figures_are_written_atomically(tmp_path):
    from spreadjax.calibrate._sbc import SBCResult
    from spreadjax.report._identify_figures import rank_histograms, zscore_contraction

    rng = np.random.default_rng(6)
    n = 40
    res = SBCResult(["p", "q[north]", "q[south]"], rng.integers(0, 100, (n, 3)), 99, 5, np.array([0.5, 0.2, 1e-4]),
                    rng.uniform(0, 1, (n, 3)), rng.normal(size=(n, 3)), 0, 1.0, {"chains": 2, "samples": 50})
    for fn, name in ((rank_histograms, "sbc_ranks.png"), (zscore_contraction, "sbc_contraction.png")):
        path = fn(res, tmp_path / name)
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 5_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sbc_contraction.png", "sbc_ranks.png"]  # no temp files


# -- SBC end to end: one compiled program per structure -------------------------------------------
BASS = """title = "two towns, Bass"
[model]
name = "four_stage"
[model.options]
awareness_stage = false
implementation_order = 0
[sites]
names = ["north", "south"]
[parameters]
initial_adopters = 0.0
recognition_baseline = 1.0
pilot_evidence = 0.0
adopter_evidence = 0.0
discontinuation_rate = 0.0
[data]
counts = "counts.csv"
[observation]
model = "binomial"
[priors.p]
dist = "LogNormal"
loc = -3.5
scale = 0.5
[priors.q]
dist = "LogNormal"
loc = -0.9
scale = 0.5
[simulation]
start = 0.0
end = {end}
steps_per_year = 4
outputs_per_year = 4
solver = "rk4"
dtype = "float64"
"""


def _problem(tmp_path: Path, quarters: int):
    """Two towns of 900 and 300 people observed quarterly for ``quarters`` quarters (the counts
    only fix shapes and populations: SBC simulates its own)."""
    from spreadjax.calibrate._run import build_problem

    rows = ["site,time,population,new_adopters"]
    rows += [f"{s},{k / 4},{pop},1" for s, pop in (("north", 900), ("south", 300)) for k in range(1, quarters + 1)]
    (tmp_path / "counts.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "bass.toml").write_text(BASS.replace("{end}", str(quarters / 4)))
    return build_problem(load_config(tmp_path / "bass.toml"))


def test_identify_posterior_writes_the_verdict_and_the_report_paragraph(tmp_path):
    import json

    from spreadjax.calibrate._identity import calibration_identity
    from spreadjax.calibrate._run import write_posterior
    from spreadjax.report._identify_section import identify_paragraph

    _problem(tmp_path, 32)
    config = load_config(tmp_path / "bass.toml")
    rng = np.random.default_rng(5)
    prior = xr.Dataset({"p": (("chain", "draw"), np.exp(rng.normal(-3.5, 0.5, (1, 500)))),
                        "q": (("chain", "draw"), np.exp(rng.normal(-0.9, 0.5, (1, 500))))})
    # a posterior on a ridge: log p + log q pinned, each keeping 64% of its prior variance
    a = rng.normal(0.0, 0.4, (2, 400))
    post = xr.Dataset({"p": (("chain", "draw"), np.exp(-3.5 + a)), "q": (("chain", "draw"), np.exp(-0.9 - a))},
                      attrs=calibration_identity(config))
    obs = xr.Dataset({"population": (("site",), np.array([900.0, 300.0]))}, coords={"site": ["north", "south"]})
    path = write_posterior({"posterior": post, "prior": prior, "observed_data": obs}, tmp_path / "posterior.nc")
    out = tmp_path / "out"
    result = runner.invoke(app, ["identify", str(tmp_path / "bass.toml"), "--out", str(out), "--posterior", str(path)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "identify.json").read_text())["identifiability"]
    assert saved["push"] == "p" and saved["pull"] == "q" and saved["separated"] is False
    assert saved["correlation"]["pooled"] == pytest.approx(-1.0, abs=1e-9)
    assert saved["contraction"]["push"]["pooled"] == pytest.approx(1 - 0.16 / 0.25, abs=0.1)  # 500 prior draws
    assert "only their combination is pinned down" in result.output
    # the same verdict in the run's report (a plain box: a limit of the data, not a failed check)
    html = identify_paragraph({"posterior": post, "prior": prior})
    assert '<div class="flag"><p>The data cannot separate push from pull: only their combination' in html
    assert identify_paragraph({"posterior": post}) == ""  # no prior draws: nothing to compare with
    # a posterior of another config is refused
    other = runner.invoke(app, ["identify", str(CONFIGS / "medical_innovation.toml"), "--out", str(tmp_path / "o2"),
                                "--posterior", str(path)])
    assert other.exit_code == 2 and "was calibrated on sites" in other.output


@pytest.mark.slow
def test_sbc_passes_an_identifiable_structure_and_flags_a_non_identifiable_one(tmp_path):
    from spreadjax.calibrate._sbc import run_sbc
    from spreadjax.calibrate._refit import BatchSettings

    settings = BatchSettings(chains=2, warmup=150, samples=50, max_tree_depth=6)
    # eight years: the whole S-curve, p from the start and q from the take-off
    whole = run_sbc(_problem(tmp_path, 32), 20, settings=settings, seed=3)
    assert whole.labels == ["p", "q"] and whole.ranks.shape == (20, 2)
    assert np.all(whole.uniform), whole.p_values
    med = np.median(whole.contraction, axis=0)
    assert np.all(med > 0.9), med  # posterior variance under a tenth of the prior's
    assert whole.flags == [] and whole.separated_share == 1.0
    # half a year: the early, linear phase, where hardly anyone has adopted yet to pull anyone
    early = run_sbc(_problem(tmp_path, 2), 20, settings=settings, seed=3)
    assert np.all(early.uniform), early.p_values  # the computation is still right...
    med = np.median(early.contraction, axis=0)
    assert med[0] > CONTRACTED and med[1] < 0.1, med  # ...but q is not identified
    assert any(f.startswith("q: not identified by data like these") for f in early.flags), early.flags
    assert early.separated_share == 0.0
