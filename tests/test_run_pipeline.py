"""`spreadjax run` end to end on a reduced Medical Innovation config, resuming, `spreadjax report`,
the report in headless Chromium, and bad input (exit 2, one line, nothing half-written).

The reduced config is the bundled ``configs/medical_innovation.toml`` with a short NUTS run and a
small ensemble; stochastic mode, the scenarios and the targets are kept, and it reads the bundled
data set, so no CSV is written here.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app
from tests.report.test_html import CHROMIUM, assert_renders_offline

runner = CliRunner()
BUNDLED = Path(__file__).resolve().parents[1] / "spreadjax" / "configs" / "medical_innovation.toml"
SECTIONS = (("headline", "What to expect"), ("backtest", "How well did the model forecast the past?"), ("futures", "How adoption may unfold"), ("pace", "Pace and extent"),
            ("levers", "Which lever matters most"), ("design", "What to do"), ("calibration", "How well the model fits the data"),
            ("model", "The model, its assumptions and limits"), ("reproducibility", "Reproducibility"))
PNGS = ("predictive.png", "trace_rank.png", "prior_posterior.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDE = {"COLUMNS": "10000"}  # rich wraps at the console width: keep each printed line whole


# ------------------------------------------------------------------------------ helpers
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(doc: dict) -> str:
    """A TOML writer for configs: top-level keys, then one [table] each (deeper tables inline)."""
    lines = [f"{json.dumps(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {_value(vv)}" for kk, vv in v.items()]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == doc
    return text


def reduced_config() -> dict:
    raw = tomllib.loads(BUNDLED.read_text())
    assert raw["stochastic"]["enabled"] and len(raw["scenarios"]) == 3 and len(raw["ensemble"]["targets"]) == 2
    raw["calibration"].update(chains=2, warmup=100, samples=100, prior_draws=50)
    raw["ensemble"].update(draws=40, replicates=2, chunk_size=20)
    raw["run"]["sensitivity_draws"] = 10
    raw["design"].update(draws=20, steps=40, starts=1, de_generations=3)  # the step runs; its numbers: tests/design
    raw.pop("compare")  # its configs lie beside the bundled one, not in the test's folder
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(to_toml(raw))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(path: Path) -> dict[str, tuple[int, int, str]]:
    """(mtime_ns, size, sha256) of a file, or of every file under a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): (p.stat().st_mtime_ns, p.stat().st_size, _sha(p)) for p in files}


def _listing(d: Path) -> dict[str, tuple[int, int, str]]:
    return _snapshot(d) if d.exists() else {}


def _no_nan(text: str):
    def refuse(name):
        raise AssertionError(f"summary.json holds {name}")

    return json.loads(text, parse_constant=refuse)


def n_of_10(p: float) -> str:
    """The headline's wording of a probability, written out here independently."""
    if p <= 0:
        return "none"
    if p >= 1:
        return "all"
    n = math.floor(10 * p + 0.5)
    return "fewer than 1 in 10" if n == 0 else "more than 9 of 10" if n == 10 else f"{n} of 10"


def invoke(*args: str, env: dict | None = None):
    """The CLI in this process. With ``env=WIDE`` its consoles are made wide too: rich reads
    ``COLUMNS`` when a console is made, and pytest-xdist workers start with ``COLUMNS=80``."""
    if env is not WIDE:
        return runner.invoke(app, [str(a) for a in args], env=env)
    from spreadjax import _cli

    with pytest.MonkeyPatch.context() as patch:
        for console in (_cli.out, _cli.err):
            patch.setattr(console, "_width", int(WIDE["COLUMNS"]))  # the width it fixed when made
        return runner.invoke(app, [str(a) for a in args], env=env)


def assert_input_error(result, *names: str) -> str:
    """Exit 2, one 'error:' line naming ``names``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ the run
@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    config = write_config(root / "medical_innovation_small.toml", reduced_config())
    out = root / "out"
    started = time.perf_counter()
    result = invoke("run", config, "--out", out, "--workers", "0", env=WIDE)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, (result.output, result.exception)
    return {"config": config, "out": out, "result": result, "seconds": seconds}


@pytest.mark.slow
def test_run_end_to_end_resume_and_report(first_run):
    from spreadjax._config import load_config
    from spreadjax._jobs import config_hash
    from spreadjax.calibrate._data import medical_innovation_path
    from spreadjax.calibrate._run import read_posterior
    from spreadjax.ensemble import open_results
    from spreadjax.report import headline

    config, out, result = first_run["config"], first_run["out"], first_run["result"]
    stdout = result.stdout
    assert "Traceback" not in result.output
    assert "2 chunk(s) computed, 0 already done" in stdout

    # ---- every file, readable
    sha = config_hash(load_config(config))
    groups = read_posterior(out / "posterior.nc")
    assert set(groups) == {"posterior", "prior", "prior_predictive", "posterior_predictive", "observed_data",
                           "sample_stats", "log_likelihood"}
    assert groups["log_likelihood"]["new_adopters"].dims == ("chain", "draw", "time", "site")
    post = groups["posterior"]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 100 and {"p", "q"} <= set(post.data_vars)
    assert post.attrs["config_sha256"] == sha
    assert float(post.attrs["fit_until"]) == pytest.approx(0.7083333333333334)
    assert groups["prior"].sizes["draw"] == 50
    assert "Flags:" in (out / "diagnostics.txt").read_text()
    diag = (out / "diagnostics.csv").read_text().splitlines()
    assert diag[0].split(",")[0] == "parameter" and any(r.startswith("p[") for r in diag[1:])
    for png in PNGS:
        assert (out / png).read_bytes()[:8] == PNG_MAGIC, png

    ds = open_results(out / "ensemble.zarr")
    assert ds.sizes["draw"] == 40 and ds.sizes["replicate"] == 2
    assert list(ds["scenario"].values) == ["baseline", "half_the_push", "stronger_peer_ties"]
    assert np.asarray(ds["chunk_done"].values).tolist() == [True, True]
    assert np.isfinite(ds["adopted"].values).all()

    summary = _no_nan((out / "summary.json").read_text())
    assert summary["baseline"] == "baseline" and len(summary["targets"]) == 2
    assert summary["members"] == {"draws": 40, "replicates": 2, "members": 80}
    with xr.open_dataset(out / "summary.nc") as snc:
        assert snc.sizes["scenario"] == 3
    sens = json.loads((out / "sensitivity.json").read_text())
    assert sens["elasticities"] and sens["sobol"] and sens["ranking"]
    observed = json.loads((out / "observed.json").read_text())
    assert set(observed["adopted_fraction"]) == {"all", "city1", "city2", "city3", "city4"}
    assert len(observed["time"]) == len(observed["date"]) == len(observed["adopted_fraction"]["all"]) > 8
    run = json.loads((out / "run.json").read_text())
    assert run["config_sha256"] == sha and run["config_path"] == str(config)
    data = medical_innovation_path("adoption_by_month.csv")
    assert run["data_files"] == {"adoption_by_month.csv": _sha(data)}
    assert run["seed"] == {"calibration": 1953, "ensemble": 1955}
    assert all(run["versions"].get(k, "not installed") != "not installed" for k in ("spreadjax", "jax", "numpyro"))
    assert run["devices"] and all(isinstance(d, str) and d for d in run["devices"])
    assert run["config_text"] == config.read_text()

    # ---- the report: every section, its figures, self-contained
    page = (out / "report.html").read_text(encoding="utf-8")
    positions = []
    for i, (sid, title) in enumerate(SECTIONS, 1):
        tag = f'<section id="{sid}"><h2>{i}. {html.escape(title)}</h2>'
        assert tag in page, tag
        positions.append(page.index(tag))
    assert positions == sorted(positions)
    assert page.count("data:image/png;base64") + page.count("<svg") >= 9  # 6 PNG figures + 3 calibration + diagram
    assert "could not be drawn" not in page
    assert "http://" not in page and "https://" not in page

    # ---- the headline: printed = headline(summary.json) = the report's, with summary.json's numbers
    lines = headline(summary)
    printed = stdout.split("[5/5] writing the report\n", 1)[1].splitlines()
    assert printed[:len(lines)] == lines
    assert printed[len(lines)].startswith(f"wrote {out / 'report.html'} (")
    for line in lines:
        assert html.escape(line) in page, line
    base = summary["scenarios"]["baseline"]
    for tg, line in zip(summary["targets"], lines, strict=False):
        p = base["targets"][tg["label"]]["all"]
        assert line.startswith(f"In {n_of_10(p)} simulated futures at least "), (p, line)
        for sc in ("half_the_push", "stronger_peer_ties"):
            q = summary["scenarios"][sc]["targets"][tg["label"]]["all"]
            assert f"under '{sc.replace('_', ' ')}', in {n_of_10(q)}" in line, (q, line)
    assert f"based on {summary['members']['members']} simulated futures" in " ".join(lines)

    # ---- the same command again: every stage is reused
    posterior_before = _snapshot(out / "posterior.nc")
    store_before = _snapshot(out / "ensemble.zarr")
    started = time.perf_counter()
    again = invoke("run", config, "--out", out, "--workers", "0", env=WIDE)
    seconds = time.perf_counter() - started
    assert again.exit_code == 0, (again.output, again.exception)
    assert "is already there for this config: kept" in again.stdout
    assert "0 chunk(s) computed, 2 already done" in again.stdout
    assert seconds < first_run["seconds"], (seconds, first_run["seconds"])
    assert _snapshot(out / "posterior.nc") == posterior_before
    assert _snapshot(out / "ensemble.zarr") == store_before
    assert again.stdout.split("[5/5] writing the report\n", 1)[1].splitlines()[:len(lines)] == lines

    # ---- `spreadjax report DIR` rebuilds the page from the files, recomputing nothing
    page = (out / "report.html").read_text(encoding="utf-8")
    (out / "report.html").write_text("stale")
    summary_before = _snapshot(out / "summary.json")
    rebuilt = invoke("report", out)
    assert rebuilt.exit_code == 0, (rebuilt.output, rebuilt.exception)
    assert rebuilt.stdout.strip() == f"wrote {out / 'report.html'}"
    new_page = (out / "report.html").read_text(encoding="utf-8")
    built = re.compile(r"Built by spreadjax on [^ ]+ ")
    assert "Built by spreadjax on" in new_page and built.sub("", new_page) == built.sub("", page)
    assert _snapshot(out / "posterior.nc") == posterior_before
    assert _snapshot(out / "ensemble.zarr") == store_before
    assert _snapshot(out / "summary.json") == summary_before


@pytest.mark.slow
def test_report_opens_in_headless_chromium(first_run, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package `chromium` (.ci/run does)")
    assert_renders_offline(first_run["out"] / "report.html", tmp_path)


# ------------------------------------------------------------------------------ bad input
def test_report_without_summary(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "observed.json").write_text("{}")
    assert_input_error(invoke("report", d), str(d / "summary.json"))
    assert sorted(p.name for p in d.iterdir()) == ["observed.json"]


def test_report_on_missing_folder(tmp_path):
    d = tmp_path / "nowhere"
    assert_input_error(invoke("report", d), str(d), "no such folder")
    assert not d.exists()


def test_report_with_corrupt_summary(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "summary.json").write_text('{"schema": "spreadjax.ensemble.summary/1", "scenarios": ')
    before = _listing(d)
    assert_input_error(invoke("report", d), str(d / "summary.json"))
    assert _listing(d) == before and not (d / "report.html").exists()


def test_run_with_empty_scenarios(tmp_path):
    raw = reduced_config()
    raw["scenarios"] = {}
    config = write_config(tmp_path / "empty.toml", raw)
    assert_input_error(invoke("run", config, "--out", tmp_path / "out"), str(config), "[scenarios]")
    assert not (tmp_path / "out").exists()


def test_run_without_data(tmp_path):
    raw = reduced_config()
    del raw["data"], raw["observation"]
    config = write_config(tmp_path / "nodata.toml", raw)
    assert_input_error(invoke("run", config, "--out", tmp_path / "out"), str(config), "[data]")
    assert not (tmp_path / "out").exists()


def test_run_posterior_ensemble_without_calibration(tmp_path):
    config = tmp_path / "posterior_less.toml"
    config.write_text('title = "posterior-less"\n[model]\nname = "four_stage"\n[sites]\nnames = ["a"]\n'
                      "[parameters]\npopulation = [50]\ninitial_adopters = [2]\n"
                      "[simulation]\nend = 2.0\nsteps_per_year = 12\noutputs_per_year = 4\n"
                      '[ensemble]\nsource = "posterior"\ndraws = 4\n')
    assert_input_error(invoke("run", config, "--out", tmp_path / "out"), str(config))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_run_refuses_corrupt_ensemble_store(first_run, tmp_path):
    """An otherwise matching run over a garbage store: refused up front, before calibrating; untouched."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("posterior.nc", "diagnostics.txt", "diagnostics.csv", *PNGS):
        shutil.copy2(first_run["out"] / name, out / name)
    store = out / "ensemble.zarr"
    store.mkdir()
    (store / "zarr.json").write_bytes(b"\x00\xffnot a zarr store{")
    (store / "chunk_done").write_bytes(b"garbage")
    before = _listing(out)
    result = invoke("run", first_run["config"], "--out", out, "--workers", "0")
    line = assert_input_error(result, str(store))
    assert "not a readable spreadjax ensemble store" in line
    assert "[1/5]" not in result.stdout  # refused before any stage started
    assert _listing(out) == before  # nothing new, nothing rewritten
