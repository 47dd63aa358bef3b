"""`spreadjax backtest` end to end on a small two-town data set: the files, the scores' bookkeeping
against the data themselves, resuming, and refusals."""

import html
import json

import numpy as np
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app

from ..ensemble.test_cli import calibration_toml, flat, write

runner = CliRunner()

COUNTS = """site,time,population,adopters
a,0.25,40,2
a,0.5,40,5
a,0.75,40,10
a,1.0,40,16
a,1.25,40,22
a,1.5,40,27
b,0.25,900,10
b,0.5,900,30
b,0.75,900,70
b,1.0,900,140
b,1.25,900,240
b,1.5,900,350
"""
BACKTEST = """
[backtest]
origins = [0.75, 1.0]
draws = 20
bootstrap = 10
"""


def config(tmp_path):
    write(tmp_path, COUNTS, name="counts.csv")
    text = calibration_toml("prior").replace("end = 1.0", "end = 1.5") + BACKTEST
    return write(tmp_path, text, name="bt.toml")


def test_backtest_scores_every_held_out_point_and_resumes(tmp_path):
    cfg = config(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["backtest", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = flat(result.stdout)
    assert "2 origin(s) at 0.75, 1 years" in text and "[1/2] origin 0.75 years: calibrating on 3" in text
    for name in ("backtest.nc", "backtest.json", "backtest.png"):
        assert (out / name).is_file()
    summary = json.loads((out / "backtest.json").read_text())
    assert summary["origins"] == [0.75, 1.0]
    assert summary["points"] == (3 + 2) * 2  # held-out times after each origin x sites
    assert set(summary["pooled"]) == {"model", "bass", "no_change"}
    ds = xr.open_dataset(out / "backtest.nc", engine="h5netcdf").load()
    pop = np.array([40.0, 900.0])
    cum = np.array([[2, 10], [5, 30], [10, 70], [16, 140], [22, 240], [27, 350]], float) / pop
    # "no change" is a point forecast: its CRPS is the absolute change since the origin, from the data
    nc = ds["crps"].sel(forecaster="no_change")
    np.testing.assert_allclose(nc.sel(origin=0.75).dropna("time").values, np.abs(cum[3:] - cum[2]), rtol=1e-9)
    np.testing.assert_allclose(nc.sel(origin=1.0).dropna("time").values, np.abs(cum[4:] - cum[3]), rtol=1e-9)
    np.testing.assert_allclose(ds["observed"].sel(origin=0.75).dropna("time").values, cum[3:])
    # the pooled scores are the means over every held-out point
    model = ds["crps"].sel(forecaster="model").values
    np.testing.assert_allclose(summary["pooled"]["model"]["crps"], np.nanmean(model), atol=1e-5)
    q = ds["forecast"].sel(forecaster="model")
    assert float((q.sel(quantile=0.95) - q.sel(quantile=0.05)).min()) >= 0
    assert float(q.max()) <= 1.0  # counts never above the population
    # leave-future-out: one density of the next count per origin and site; none for "no change"
    lpd = ds["lpd_one_ahead"]
    assert lpd.dims == ("origin", "forecaster", "site")
    assert np.isfinite(lpd.sel(forecaster=["model", "bass"]).values).all()
    assert lpd.sel(forecaster="no_change").isnull().all()
    assert (lpd.sel(forecaster="model") < 0).all()  # the log of a probability of a count
    np.testing.assert_allclose(ds["lpd_time"].values, [1.0, 1.25])
    np.testing.assert_allclose(summary["elpd_lfo"]["model"], float(lpd.sel(forecaster="model").sum()), atol=1e-4)
    assert summary["elpd_lfo"]["no_change"] is None

    folds = {p.name: p.stat().st_mtime_ns for p in (out / "backtest").iterdir()}
    again = runner.invoke(app, ["backtest", str(cfg), "--out", str(out), "--no-plot"])
    assert again.exit_code == 0, again.output
    assert flat(again.stdout).count("already scored") == 2
    assert {p.name: p.stat().st_mtime_ns for p in (out / "backtest").iterdir()} == folds
    assert json.loads((out / "backtest.json").read_text()) == summary


def test_a_damaged_fold_is_scored_again(tmp_path):
    cfg = config(tmp_path)
    text = cfg.read_text().replace("origins = [0.75, 1.0]", "origins = [1.0]")
    cfg.write_text(text)
    out = tmp_path / "out"
    assert runner.invoke(app, ["backtest", str(cfg), "--out", str(out), "--no-plot"]).exit_code == 0
    fold = next((out / "backtest").iterdir())
    fold.write_bytes(b"\x89HDF\r\n garbage")
    again = runner.invoke(app, ["backtest", str(cfg), "--out", str(out), "--no-plot"])
    assert again.exit_code == 0, again.output
    assert "calibrating on 4" in flat(again.stdout)
    with xr.open_dataset(fold, engine="h5netcdf") as ds:
        assert ds.sizes["time"] == 2


def test_run_with_backtest_puts_it_in_the_report(tmp_path, monkeypatch):
    from ..test_refusals import COUNTS as SMALL_COUNTS
    from ..test_refusals import ENSEMBLE_RUN, calibration_toml as small_toml

    monkeypatch.setenv("SPREADJAX_CACHE_DIR", "off")
    (tmp_path / "counts.csv").write_text(SMALL_COUNTS)  # sites of 7 and 900 organisations
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(small_toml() + ENSEMBLE_RUN + "[backtest]\norigins = [0.5]\ndraws = 10\nbootstrap = 10\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--workers", "0", "--backtest"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "[+] backtest" in result.stdout and "origin 0.5 years: calibrating on 2" in flat(result.stdout)
    summary = json.loads((out / "backtest.json").read_text())
    assert summary["origins"] == [0.5] and summary["points"] == 2 * 2
    section = (out / "report.html").read_text().split('<section id="backtest">')[1].split("</section>")[0]
    assert html.escape(summary["verdict"]) in section and "data:image/png;base64" in section


def test_an_interrupted_backtest_says_what_is_kept_and_exits_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("spreadjax.backtest.run_backtest", interrupted)
    result = runner.invoke(app, ["backtest", str(config(tmp_path)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 130
    assert "interrupted: scored origins are kept in" in flat(result.stderr) and "Traceback" not in result.output

