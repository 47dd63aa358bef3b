"""Synthetic truth for the backtest and the comparison of structures (issue 15's checks).

Counts are drawn from the four-stage model (Bass structure) with a late take-off and site
ceilings below 1, through the binomial observation model the calibration uses. Then

- the structure that generated them (ceiling per site, take-off date) backtests with 90% bands
  that hold 85-95% of what happened, and wins ``spreadjax compare``;
- a structure without them (p and q partially pooled, as in
  ``configs/medical_innovation_no_ceiling.toml``) is a known misfit: its backtest says its bands
  cannot be trusted, in red in the report, and the comparison (out of sample and by PSIS-LOO)
  ranks it second.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import RK4, Simulation, compile_model, simulate
from spreadjax.models import four_stage_model
from spreadjax.report import build_report

from ..report.test_html import make_run_dir

SITES = ("Ashford", "Bolton", "Crewe", "Dover", "Ely", "Frome")
POPULATION = np.array([7.0, 60.0, 900.0, 120.0, 35.0, 400.0])
CEILING = np.array([0.6, 0.45, 0.55, 0.7, 0.8, 0.5])
TRUTH = dict(p=0.05, q=2.5, early_pace=0.15, takeoff=1.5, takeoff_width=0.25)
STEPS_PER_YEAR = 4  # one RK4 step per quarter: the data come from the same discrete model
TIMES = np.arange(1, 21) / 4  # quarterly, five years
BASS = dict(initial_adopters=0.0, recognition_baseline=1.0, pilot_evidence=0.0, adopter_evidence=0.0,
            discontinuation_rate=0.0)


def synthetic_counts(seed: int) -> np.ndarray:
    """Cumulative adopters ``(time, site)``: new ~ Binomial(not yet adopted, the true period hazard)."""
    cm = compile_model(four_stage_model(awareness_stage=False, implementation_order=0))
    sim = Simulation(cm, (0.0, *TIMES), 1 / STEPS_PER_YEAR, ("ever_adopted",), RK4())
    params = cm.params(len(SITES), jnp.float64, population=POPULATION, ceiling=CEILING, **BASS, **TRUTH)
    expected = np.asarray(simulate(sim, params)["ever_adopted"])
    rng = np.random.default_rng(seed)
    cum, rows = np.zeros(len(SITES)), []
    for prev, cur in zip(expected[:-1], expected[1:]):
        hazard = np.clip((cur - prev) / (POPULATION - prev), 0.0, 1.0)
        cum = cum + rng.binomial((POPULATION - cum).astype(int), hazard)
        rows.append(cum.copy())
    return np.array(rows)


def write_data(folder, counts):
    lines = ["site,time,population,adopters"]
    lines += [f"{site},{t:g},{int(POPULATION[s])},{int(counts[i, s])}"
              for s, site in enumerate(SITES) for i, t in enumerate(TIMES)]
    (folder / "counts.csv").write_text("\n".join(lines) + "\n")


BASE = textwrap.dedent("""
    [model]
    name = "four_stage"
    [model.options]
    awareness_stage = false
    implementation_order = 0
    [sites]
    names = {sites}
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
    [simulation]
    end = 5.0
    steps_per_year = {steps}
    outputs_per_year = 4
    dtype = "float64"
    [calibration]
    method = "nuts"
    chains = 2
    warmup = 100
    samples = 100
    max_tree_depth = 5
    seed = 3
    [backtest]
    origins = [2.5, 3.75]
    draws = 200
    bootstrap = 20
    """).format(sites=list(SITES), steps=STEPS_PER_YEAR).replace("'", '"')

def push_pull_priors(pooling: str) -> str:
    """LogNormal priors on p (median 0.05 per year) and q (median 1 per year)."""
    return "".join(f'[priors.{name}]\ndist = "LogNormal"\nloc = {loc}\nscale = 1.0\npooling = "{pooling}"\n'
                   for name, loc in (("p", -3.0), ("q", 0.0)))


GENERATING = BASE + push_pull_priors("complete") + textwrap.dedent("""
    [priors.ceiling]
    dist = "Beta"
    concentration1 = 2.0
    concentration0 = 2.0
    pooling = "partial"
    [priors.takeoff]
    dist = "Normal"
    loc = 2.5
    scale = 1.0
    [priors.early_pace]
    dist = "Beta"
    concentration1 = 2.0
    concentration0 = 5.0
    """)
MISFIT = BASE + push_pull_priors("partial")


def test_the_synthetic_data_have_a_late_takeoff_and_ceilings():
    counts = synthetic_counts(1)
    share = counts / POPULATION
    assert np.all(np.diff(counts, axis=0) >= 0) and np.all(counts <= POPULATION)
    assert np.all(share[7] < 0.2)  # slow for two years
    assert np.all(share[-1] <= CEILING + 0.15) and np.mean(share[-1] - share[7]) > 0.3  # then take-off


@pytest.mark.slow
def test_the_generating_structure_holds_its_bands_and_wins_and_a_misfit_is_flagged(tmp_path):
    write_data(tmp_path, synthetic_counts(1))
    (tmp_path / "takeoff_ceiling.toml").write_text('title = "generating"\n' + GENERATING)
    (tmp_path / "pooled_bass.toml").write_text('title = "misfit"\n' + MISFIT)
    out = tmp_path / "cmp"
    # as a user runs it: a fresh process (one CPU device per chain, no state from other tests),
    # with the test session's compile cache in place of the user's (tests/conftest.py)
    env = {**os.environ, "SPREADJAX_CACHE_DIR": jax.config.jax_compilation_cache_dir or "off"}
    result = subprocess.run([sys.executable, "-m", "spreadjax", "compare", str(tmp_path / "takeoff_ceiling.toml"),
                             str(tmp_path / "pooled_bass.toml"), "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr

    right = json.loads((out / "takeoff_ceiling" / "backtest.json").read_text())
    wrong = json.loads((out / "pooled_bass" / "backtest.json").read_text())
    assert 0.85 <= right["pooled"]["model"]["covered90"] <= 0.95 and right["calibrated"]
    assert not wrong["calibrated"] and wrong["pooled"]["model"]["covered90"] < 0.85

    # the report shows the misfit's verdict in red, before the forecast
    run_dir = make_run_dir(tmp_path / "report")
    (run_dir / "backtest.json").write_text((out / "pooled_bass" / "backtest.json").read_text())
    section = build_report(run_dir).read_text().split('<section id="backtest">')[1].split("</section>")[0]
    assert 'class="flag bad"' in section and f"held {wrong['pooled']['model']['covered90']:.0%}" in section

    # the comparison ranks the generating structure first, out of sample (CRPS, one-step-ahead
    # log density) and by PSIS-LOO, clearly: by several standard errors of the difference
    ranking = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["name"] for r in ranking] == ["takeoff_ceiling", "pooled_bass"]
    assert ranking[0]["crps"] < 0.5 * ranking[1]["crps"] and ranking[0]["elpd_lfo"] > ranking[1]["elpd_lfo"]
    assert ranking[0]["loo_rank"] == 1 and ranking[1]["elpd_loo"] < ranking[0]["elpd_loo"] - 3 * ranking[1]["loo_dse"]
