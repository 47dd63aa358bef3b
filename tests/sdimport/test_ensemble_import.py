"""Ensembles, `spreadjax run` and the report of an imported model fitted as a share.

The bundled ``bass_adoption.mdl`` (no population parameter, no ``adopted`` stock) is imported with
``spreadjax import``; ``[observation] cumulative = "adopters"``, ``scale = "fraction"`` then say
what is adopted, and the ensemble store's ``adopted`` is the data's populations times that share.
With no pull the model's Euler share after ``k`` steps is ``1 - (1 - push dt)^k`` exactly (as in
test_calibrate_import), which every check below compares with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax._config import load_config

ROOT = Path(__file__).resolve().parents[2]
MDL = ROOT / "spreadjax" / "configs" / "models" / "bass_adoption.mdl"
POPULATION = (7.0, 900.0)
DT = 1 / 48  # the .mdl's TIME STEP (Euler)

ADDED = """
[sites]
names = ["Ashford", "Leeds"]

[parameters]
pull = 0.0

[data]
counts = "counts.csv"

[observation]
cumulative = "{cumulative}"
scale = "fraction"

[priors.push]
dist = "LogNormal"
loc = -1.0
scale = 1.0

[ensemble]
source = "{source}"
draws = 6
chunk_size = 4
{design}
"""


def imported(tmp_path: Path, source: str = "fixed", design: str = "", cumulative: str = "adopters") -> Path:
    """``spreadjax import`` of the bundled .mdl, in float64, with sites of 7 and 900 organisations."""
    config = tmp_path / "study.toml"
    if not config.exists():
        result = CliRunner().invoke(app, ["import", str(MDL), "--out", str(config)])
        assert result.exit_code == 0, result.output
        base = config.read_text().replace('solver = "euler"', 'solver = "euler"\ndtype = "float64"')
        (tmp_path / "imported.toml").write_text(base)
        rows = ["site,time,population,adopters", "Ashford,0.5,7,2", "Ashford,1.0,7,4",
                "Leeds,0.5,900,150", "Leeds,1.0,900,400"]
        (tmp_path / "counts.csv").write_text("\n".join(rows) + "\n")
    base = (tmp_path / "imported.toml").read_text()
    config.write_text(base + ADDED.format(source=source, design=design, cumulative=cumulative))
    return config


def default_push(cfg) -> float:
    """The model's own push (the .mdl's constant): what a "fixed" ensemble runs with."""
    return next(p.default for p in cfg.build_model().parameters if p.name == "push")


def euler_share(push: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``1 - (1 - push dt)^k`` at ``times`` (k = times / dt steps): the Bass share with no pull."""
    k = np.round(np.asarray(times) / DT)
    return 1 - (1 - np.asarray(push)[..., None, :] * DT) ** k[:, None]


def test_the_ensemble_stores_population_times_the_share(tmp_path):
    """Fixed parameters: the mean adopted count at each site and time is the site's population
    (7, 900) times the closed-form share; the store's populations are the data's."""
    from spreadjax.ensemble._run import run_ensemble
    from spreadjax.ensemble._store import open_results

    cfg = load_config(imported(tmp_path))
    assert cfg.build_model().population is None and "adopted" not in cfg.build_model().names
    assert cfg.ensemble.adopted.describe() == "adopters (a share) x the data's population"
    run_ensemble(cfg, tmp_path / "out" / "ensemble.zarr", workers=0)
    ds = open_results(tmp_path / "out" / "ensemble.zarr")
    np.testing.assert_array_equal(ds["population"].values, POPULATION)
    times = ds["time"].values
    push = default_push(cfg)
    want = np.asarray(POPULATION) * euler_share(np.full(2, push), times)  # (time, site)
    mean = ds["adopted"].mean(("draw", "replicate")).isel(scenario=0).values
    np.testing.assert_allclose(mean, want, rtol=1e-9)  # float64 Euler: only round-off differs
    np.testing.assert_allclose(ds["adopters"].isel(draw=0, scenario=0, replicate=0).values,
                               euler_share(np.full(2, push), times), rtol=1e-9)


def test_each_drawn_member_is_its_own_population_times_share(tmp_path):
    """A design over push: every draw's adopted count is population x the share at its own push;
    the summaries' fractions are the shares (site 'all': total adopted over 907)."""
    from spreadjax.ensemble._run import run_ensemble
    from spreadjax.ensemble._store import open_results
    from spreadjax.ensemble._summary import summarize_ensemble

    cfg = load_config(imported(tmp_path, "design", "design = { push = [0.2, 0.9] }"))
    run_ensemble(cfg, tmp_path / "out" / "ensemble.zarr", workers=0)
    ds = open_results(tmp_path / "out" / "ensemble.zarr")
    push = ds["draw_push"].values  # (draw, site)
    assert np.unique(push[:, 0]).size == 6
    want = np.asarray(POPULATION) * euler_share(push, ds["time"].values)  # (draw, time, site)
    np.testing.assert_allclose(ds["adopted"].isel(scenario=0, replicate=0).values, want, rtol=1e-9)
    summary, as_json = summarize_ensemble(ds)
    share = want / np.asarray(POPULATION)
    np.testing.assert_allclose(summary["adopted_fraction_mean"].sel(scenario="baseline", site="Leeds").values,
                               share[..., 1].mean(0), rtol=1e-9)
    total = want.sum(-1) / sum(POPULATION)
    np.testing.assert_allclose(summary["final_fraction_mean"].sel(scenario="baseline", site="all"),
                               total[:, -1].mean(), rtol=1e-9)
    assert as_json["population"] == {"all": 907.0, "Ashford": 7.0, "Leeds": 900.0}
    assert summary.attrs["adopted_from"] == "adopters (a share) x the data's population"


def test_streamed_summaries_agree_with_the_store(tmp_path):
    """``--summaries-only`` reduces the same adopted count on the device: exact means."""
    from spreadjax.ensemble._run import run_ensemble
    from spreadjax.ensemble._store import open_results
    from spreadjax.ensemble._stream import stream_summaries
    from spreadjax.ensemble._summary import summarize_ensemble

    cfg = load_config(imported(tmp_path, "design", "design = { push = [0.2, 0.9] }"))
    run_ensemble(cfg, tmp_path / "out" / "ensemble.zarr", workers=0)
    stored, _ = summarize_ensemble(open_results(tmp_path / "out" / "ensemble.zarr"))
    streamed, as_json = stream_summaries(cfg)
    for name in ("adopted_fraction_mean", "final_fraction_mean"):
        np.testing.assert_allclose(streamed[name].values, stored[name].values, rtol=1e-9)  # means are exact sums
    assert as_json["population"]["Leeds"] == 900.0


def test_a_store_is_resumed_and_refused_once_the_mapping_changes(tmp_path):
    """The same config resumes (nothing recomputed); a config whose adopted quantity differs
    (adopters + potential_adopters: everyone) is refused rather than mixed into the store."""
    from spreadjax._errors import InputError
    from spreadjax.ensemble._run import run_ensemble

    store = tmp_path / "out" / "ensemble.zarr"
    first = run_ensemble(load_config(imported(tmp_path)), store, workers=0)
    again = run_ensemble(load_config(imported(tmp_path)), store, workers=0)
    assert first.computed and not again.computed and again.skipped == first.plan.n_chunks
    other = load_config(imported(tmp_path, cumulative="adopters + potential_adopters"))
    with pytest.raises(InputError, match="written by a different config"):
        run_ensemble(other, store, workers=0)


def test_elasticity_of_the_extent_to_push_is_the_closed_forms(tmp_path):
    """d log(extent) / d log(push) at the horizon, all sites together: with no pull the share is
    s = 1 - (1 - push dt)^K, so the elasticity is push K dt (1 - push dt)^(K - 1) / s."""
    from spreadjax.report._sensitivity import lever_elasticities

    cfg = load_config(imported(tmp_path))
    e = lever_elasticities(cfg, None, levers=["push"])
    push, k = default_push(cfg), round(cfg.simulation.end / DT)
    share = 1 - (1 - push * DT) ** k
    want = push * k * DT * (1 - push * DT) ** (k - 1) / share
    np.testing.assert_allclose(float(e["mean"].sel(metric="extent", lever="push")), want, rtol=1e-7)
    np.testing.assert_allclose(float(e["extent"][0]), share, rtol=1e-9)


@pytest.mark.slow
def test_spreadjax_run_of_the_imported_config_draws_its_own_model(tmp_path):
    """configs/imported_bass.toml (quick settings) through `spreadjax run`: report.html with the
    imported model's diagram, not the flagship's; a report rebuilt without run.json draws it too."""
    text = (ROOT / "configs" / "imported_bass.toml").read_text()
    text = text.replace('file = "models/imported_bass_model.toml"',
                        f'file = "{ROOT / "configs" / "models" / "imported_bass_model.toml"}"')
    text = text.replace("chains = 4\nwarmup = 500\nsamples = 500", "chains = 1\nwarmup = 60\nsamples = 60")
    assert "warmup = 60" in text
    (tmp_path / "quick.toml").write_text(text + "\n[ensemble]\ndraws = 12\nchunk_size = 6\n\n[run]\nsensitivity_draws = 4\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "quick.toml"), "--out", str(out), "--workers", "0"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "Stock-and-flow diagram of the model bass_adoption_mdl" in page
    assert "four-stage model" not in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["population"] == {"all": 125.0, "city1": 62.0, "city2": 24.0, "city3": 21.0, "city4": 18.0}
    assert json.loads((out / "run.json").read_text())["population"]["city1"] == 62.0
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(out / "summary.json", bare)
    result = CliRunner().invoke(app, ["report", str(bare)])
    assert result.exit_code == 0, result.output
    assert "Stock-and-flow diagram of the model bass_adoption_mdl" in (bare / "report.html").read_text()


def test_a_report_that_records_no_model_draws_none(tmp_path):
    """A summary.json recording no model (and no run.json) gives no diagram, not the flagship's."""
    from spreadjax.ensemble._run import run_ensemble
    from spreadjax._pipeline import write_summaries
    from spreadjax.report import build_report

    cfg = load_config(imported(tmp_path))
    out = tmp_path / "out"
    run_ensemble(cfg, out / "ensemble.zarr", workers=0)
    write_summaries(cfg, out / "ensemble.zarr", out)
    page = build_report(out).read_text()
    assert "Stock-and-flow diagram of the model bass_adoption_mdl" in page
    doc = json.loads((out / "summary.json").read_text())
    doc.pop("model")
    (out / "summary.json").write_text(json.dumps(doc))
    page = build_report(out).read_text()
    assert "no diagram is drawn" in page and "Stock-and-flow diagram" not in page
