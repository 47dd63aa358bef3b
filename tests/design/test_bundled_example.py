"""`spreadjax design` on the bundled Medical Innovation example, from a posterior fitted with few draws.

The optimised programme must beat every programme on the coarse grid under common random numbers
(the same posterior draws), with the paired gain's 90% interval above zero, and beat the baseline
the same way; the report's "What to do" section shows it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app
from tests.test_run_pipeline import BUNDLED, to_toml

runner = CliRunner()


@pytest.fixture(scope="module")
def designed(tmp_path_factory):
    root = tmp_path_factory.mktemp("design")
    raw = tomllib.loads(BUNDLED.read_text())
    raw.pop("compare")  # its configs lie beside the bundled one
    raw["calibration"].update(chains=1, warmup=150, samples=100)
    raw["design"].update(draws=50, de_generations=10)  # fewer futures and a shorter check: a faster test
    config = root / "medical_innovation_small.toml"
    config.write_text(to_toml(raw))
    fit = runner.invoke(app, ["calibrate", str(config), "--out", str(root / "fit"), "--no-plots"])
    assert fit.exit_code == 0, (fit.output, fit.exception)
    out = root / "out"
    result = runner.invoke(app, ["design", str(config), "--out", str(out), "--posterior",
                                 str(root / "fit" / "posterior.nc")])
    assert result.exit_code == 0, (result.output, result.exception)
    return raw, out, result


@pytest.mark.slow
def test_optimised_programme_beats_the_coarse_grid_and_the_baseline(designed):
    raw, out, result = designed
    d = json.loads((out / "design.json").read_text())
    assert d["objective"]["draws"] == raw["design"]["draws"]
    grid = d["grid"]
    assert grid["points"] == 3 ** 4 * 3 and grid["chosen_beats_all"]
    assert d["chosen"]["objective"] > grid["best_objective"]
    # paired on the same futures: the gain over the best grid programme, and over the baseline
    assert grid["gain_over_best"]["mean_interval90"][0] > 0, grid["gain_over_best"]
    assert d["gain"]["mean_interval90"][0] > 0 and d["gain"]["p_beats"] > 0.9, d["gain"]
    # the bundled example simulates chance: the same comparison with 5 shared rolls per future
    ch = d["gain_with_chance"]
    assert ch["draws"] == 50 * raw["ensemble"]["replicates"] and ch["mean_interval90"][0] > 0, ch
    # the constraints, on the written schedule
    with xr.open_dataset(out / "design.nc", engine="h5netcdf") as ds:
        prog = ds["programme"].values
        dt = float(np.diff(ds["time"].values)[0])
        gain = ds["gain"].values
    assert prog.min() >= 0 and prog.max() <= 1 + 1e-12
    assert prog.sum() * dt <= raw["design"]["budget"] * (1 + 1e-9)
    assert d["gain"]["mean"] == pytest.approx(float(gain.mean()), rel=1e-12)
    # both searches ran on the same problem and report what they reached and how long they took
    methods = [s["method"] for s in d["searches"]]
    assert methods[0].startswith("gradient") and methods[1].startswith("differential evolution")
    assert all(s["seconds"] > 0 and s["evaluations"] > 0 for s in d["searches"])
    assert "chosen programme" in result.output and "coarse grid" in result.output


@pytest.mark.slow
def test_report_section_shows_it(designed, tmp_path):
    from spreadjax.report._design_section import design_section

    _, out, _ = designed
    text = design_section(Path(out))
    d = json.loads((out / "design.json").read_text())
    assert "beats every one of them" in text and "<img" in text
    assert f"{100 * d['gain']['mean']:+.1f} points" in text
    assert f"{d['gain']['p_beats']:.0%}" in text
    assert "push strength" in text  # the lever it relies on most, in words
