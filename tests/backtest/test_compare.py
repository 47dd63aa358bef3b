"""`spreadjax compare` and `[compare]`: the ranking against each config's own files (backtest
scores, ArviZ's LOO of its posterior), resuming, PSIS-LOO putting the structure that made the data
first, and the comparison in `spreadjax run --backtest`'s report."""

import json
import warnings

import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app

from ..ensemble.test_cli import calibration_toml, flat, write
from .test_run import COUNTS

runner = CliRunner()
BACKTEST = "\n[backtest]\norigins = [1.0]\ndraws = 20\nbootstrap = 10\n"


def configs(tmp_path):
    write(tmp_path, COUNTS, name="counts.csv")
    base = calibration_toml("prior").replace("end = 1.0", "end = 1.5") + BACKTEST
    return (write(tmp_path, base, name="binomial.toml"),
            write(tmp_path, base.replace('model = "binomial"', 'model = "beta_binomial"'), name="overdispersed.toml"))


def arviz_loo(path):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 12 draws: ArviZ warns of Pareto k
        return az.loo(az.from_netcdf(path), var_name="new_adopters")


@pytest.mark.slow
def test_compare_ranks_by_the_backtest_writes_and_resumes(tmp_path):
    a, b = configs(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = flat(result.stdout)
    assert "[1/2] binomial: backtest" in text and "[2/2] overdispersed: calibrating on all the data" in text
    assert "the ranking uses leave-future-out" in text
    for name in ("compare.json", "compare.nc", "compare.png", "binomial/posterior.nc", "binomial/backtest.json",
                 "overdispersed/posterior.nc", "overdispersed/backtest/origin-3.nc"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "compare.json").read_text())
    rows = doc["rows"]
    assert [r["rank"] for r in rows] == [1, 2] and {r["name"] for r in rows} == {"binomial", "overdispersed"}
    assert rows[0]["crps"] <= rows[1]["crps"]  # best (lowest CRPS) first
    for r in rows:  # every number is the one in that config's own files
        bt = json.loads((out / r["name"] / "backtest.json").read_text())
        for key in ("crps", "covered50", "covered90"):
            assert r[key] == pytest.approx(bt["pooled"]["model"][key], abs=1e-5), key
        with xr.open_dataset(out / r["name"] / "backtest.nc", engine="h5netcdf") as ds:
            lpd = float(ds["lpd_one_ahead"].sel(forecaster="model").sum())
        assert r["elpd_lfo"] == pytest.approx(lpd, abs=1e-5)
        assert r["elpd_loo"] == pytest.approx(float(arviz_loo(out / r["name"] / "posterior.nc")["elpd_loo"]), abs=1e-5)
    assert sum(r["loo_weight"] for r in rows) == pytest.approx(1.0, abs=1e-5)
    assert sorted(r["loo_rank"] for r in rows) == [1, 2]
    assert any("Pareto k > 0.7" in w for w in doc["loo_warnings"])  # 12 draws of a time series
    with xr.open_dataset(out / "compare.nc", engine="h5netcdf") as ds:
        assert list(ds["config"].values) == [r["name"] for r in rows]
        assert ds["lpd_one_ahead"].dims == ("config", "origin", "site")

    done = {p: p.stat().st_mtime_ns for p in out.rglob("*.nc") if p.name == "posterior.nc" or p.parent.name == "backtest"}
    again = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out), "--no-plot"])
    assert again.exit_code == 0, again.output
    text = flat(again.stdout)
    assert text.count("already scored") == 2 and text.count("is already there for this config: kept") == 2
    assert {p: p.stat().st_mtime_ns for p in done} == done  # nothing fitted again
    assert json.loads((out / "compare.json").read_text())["rows"] == rows


@pytest.mark.slow
def test_run_with_backtest_and_compare_puts_the_ranking_in_the_report(tmp_path, monkeypatch):
    from ..test_refusals import COUNTS as SMALL_COUNTS
    from ..test_refusals import ENSEMBLE_RUN, calibration_toml as small_toml

    monkeypatch.setenv("SPREADJAX_CACHE_DIR", "off")
    (tmp_path / "counts.csv").write_text(SMALL_COUNTS)  # sites of 7 and 900 organisations
    bt = "[backtest]\norigins = [0.5]\ndraws = 10\nbootstrap = 10\n"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "overdispersed.toml").write_text(
        small_toml(data="../counts.csv") + bt + '[observation]\nmodel = "beta_binomial"\n')
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(small_toml() + ENSEMBLE_RUN + bt + '[compare]\nwith = ["other/overdispersed.toml"]\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--workers", "0", "--backtest"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = flat(result.stdout)
    assert "[+] which structure forecasts best" in text
    assert text.count("calibrating on 2 observation times") == 2  # this config's fold is reused, not refitted
    doc = json.loads((out / "compare.json").read_text())
    assert {r["name"] for r in doc["rows"]} == {"cfg", "overdispersed"}
    page = (out / "report.html").read_text()
    section = page.split('<section id="compare">')[1].split("</section>")[0]
    assert "<code>cfg</code> <strong>(this report)</strong>" in section
    assert "<code>overdispersed</code> <strong>" not in section and "data:image/png;base64" in section
