"""The ``spreadjax ensemble`` command: the files it writes, resuming, dry runs and job scripts,
parameter draws from a posterior or the priors, and bad input (exit 2, one line, nothing written)."""

import json
import shutil
import textwrap

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax.ensemble import open_results
from spreadjax.ensemble._run import WORKER_ENV

runner = CliRunner()

SCENARIOS = """
[scenarios.baseline]
[scenarios.strong_peers]
parameters = { peer_influence = 1.5 }
[scenarios.withdrawn]
schedules = { programme = { times = [0.0, 2.0], values = [1.0, 0.0] } }
"""
TARGETS = 'targets = [{ fraction = 0.25, date = "2027-04-01" }, { fraction = 0.5, by = 4.0 }]'
LABELS = ["25% adopted by 2027-04-01", "50% adopted by year 4"]


def design_toml(scenarios=SCENARIOS, ensemble="", population="[50, 80]", cluster="",
                design="q = [0.2, 1.2], p = [0.01, 0.2]"):
    return textwrap.dedent("""
        title = "cli ensemble test"
        [model]
        name = "four_stage"
        [sites]
        names = ["a", "b"]
        [parameters]
        population = {population}
        initial_adopters = [2, 0]
        [simulation]
        end = 4.0
        steps_per_year = 12
        outputs_per_year = 4
        dtype = "float32"
        start_date = "2025-04-01"
        """).format(population=population) + scenarios + textwrap.dedent("""
        [ensemble]
        source = "design"
        design = {{ {design} }}
        draws = 8
        chunk_size = 4
        {targets}
        {ensemble}
        """).format(targets=TARGETS, ensemble=ensemble, design=design) + cluster


COUNTS = """site,time,population,adopters
a,0.25,40,2
a,0.5,40,5
a,0.75,40,10
a,1.0,40,16
b,0.25,30,1
b,0.5,30,3
b,0.75,30,6
b,1.0,30,10
"""


def calibration_toml(source="posterior"):
    """A two-town config like configs/medical_innovation.toml, fitted by a very short NUTS run."""
    return textwrap.dedent(f"""
        title = "tiny calibration"
        [model]
        name = "four_stage"
        [model.options]
        awareness_stage = false
        implementation_order = 0
        recognition_order = 1
        [sites]
        names = ["a", "b"]
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
        loc = -1.0
        scale = 1.0
        [priors.q]
        dist = "LogNormal"
        loc = -0.5
        scale = 1.0
        [calibration]
        method = "nuts"
        chains = 1
        warmup = 30
        samples = 12
        max_tree_depth = 5
        prior_draws = 10
        seed = 1
        [simulation]
        end = 1.0
        steps_per_year = 12
        outputs_per_year = 4
        solver = "euler"
        dtype = "float64"
        [scenarios.baseline]
        [scenarios.stronger]
        parameters = {{ peer_influence = 1.5 }}
        [ensemble]
        source = "{source}"
        draws = 6
        chunk_size = 3
        targets = [{{ fraction = 0.5, by = 1.0 }}]
        """)


def write(folder, text, name="ens.toml"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def ensemble(*args):
    return runner.invoke(app, ["ensemble", *map(str, args)])


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def flat(text):
    """Console text with rich's line wrapping undone."""
    return " ".join(text.split())


def no_nan(token):
    raise AssertionError(f"summary.json holds {token}")


@pytest.fixture(scope="module")
def design_run(tmp_path_factory):
    """The design config run once in this process: (config, out folder, stdout)."""
    tmp = tmp_path_factory.mktemp("design")
    config = write(tmp, design_toml())
    result = ok(ensemble(config, "--out", tmp / "out", "--workers", "0"))
    return config, tmp / "out", flat(result.stdout)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A posterior.nc from a short calibration run through the CLI: (folder, posterior path)."""
    tmp = tmp_path_factory.mktemp("calibrated")
    (tmp / "counts.csv").write_text(COUNTS)
    config = write(tmp, calibration_toml(), "cal.toml")
    ok(runner.invoke(app, ["calibrate", str(config), "--out", str(tmp / "cal"), "--no-plots"]))
    return tmp, tmp / "cal" / "posterior.nc"


def test_writes_store_and_summaries(design_run):
    _, out, stdout = design_run
    assert "8 draws (design) x 3 scenario(s)" in stdout and "2 chunk(s) computed, 0 already done" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".spreadjax.lock", "ensemble.zarr", "summary.json", "summary.nc"]
    ds = open_results(out / "ensemble.zarr")
    assert ds["adopted"].dims == ("draw", "scenario", "replicate", "time", "site")
    assert ds["adopted"].shape == (8, 3, 1, 17, 2)
    assert bool(ds["chunk_done"].all()) and np.all(np.isfinite(ds["adopted"].values))
    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert summary["schema"] == "spreadjax.ensemble.summary/1"
    assert summary["members"] == {"draws": 8, "replicates": 1, "members": 8}
    assert summary["sites"] == ["all", "a", "b"] and summary["baseline"] == "baseline"
    assert [t["label"] for t in summary["targets"]] == LABELS
    assert list(summary["scenarios"]) == ["baseline", "strong_peers", "withdrawn"]
    for name, entry in summary["scenarios"].items():
        assert list(entry["targets"]) == LABELS
        for per_site in entry["targets"].values():
            assert set(per_site) == {"all", "a", "b"} and all(0 <= p <= 1 for p in per_site.values())
        assert ("vs_baseline" in entry) == (name != "baseline")
    with xr.open_dataset(out / "summary.nc", engine="h5netcdf") as nc:
        prob = nc["target_probability"].load()
    assert prob.dims == ("scenario", "target", "site") and list(prob["target"].values) == LABELS
    np.testing.assert_allclose(prob.sel(site="all").values,
                               [[e["targets"][t]["all"] for t in LABELS] for e in summary["scenarios"].values()],
                               atol=1e-4)


def test_rerun_computes_nothing(design_run, tmp_path):
    config, out, _ = design_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    result = ok(ensemble(config, "--out", copy, "--workers", "0"))
    assert "0 chunk(s) computed, 2 already done" in flat(result.stdout)
    np.testing.assert_array_equal(open_results(copy / "ensemble.zarr")["adopted"].values,
                                  open_results(out / "ensemble.zarr")["adopted"].values)
    assert json.loads((copy / "summary.json").read_text()) == json.loads((out / "summary.json").read_text())


def test_two_local_workers_equal_in_process(design_run, tmp_path):
    config, out, _ = design_run
    result = ok(ensemble(config, "--out", tmp_path / "out", "--workers", "2"))
    assert "2 chunk(s) computed, 0 already done" in flat(result.stdout)
    np.testing.assert_array_equal(open_results(tmp_path / "out" / "ensemble.zarr")["adopted"].values,
                                  open_results(out / "ensemble.zarr")["adopted"].values)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    config = write(tmp_path, design_toml())
    stdout = flat(ok(ensemble(config, "--out", tmp_path / "out", "--dry-run", "--workers", "3")).stdout)
    assert "8 draws (design) x 3 scenario(s) [baseline, strong_peers, withdrawn]" in stdout
    assert "2 chunk(s) of 4 draws" in stdout and "(new)" in stdout
    assert "LocalCluster with 3 single-threaded worker process(es)" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ens.toml"]


def test_dry_run_slurm_prints_the_job_script(tmp_path):
    pytest.importorskip("dask_jobqueue")
    cluster = textwrap.dedent("""
        [ensemble.cluster]
        kind = "slurm"
        jobs = 2
        cores = 4
        memory = "8GB"
        queue = "compute"
        walltime = "01:30:00"
        """)
    config = write(tmp_path, design_toml(cluster=cluster))
    result = ok(ensemble(config, "--out", tmp_path / "out", "--dry-run"))
    lines = result.stdout.splitlines()
    assert "would submit 2 SLURM job(s) with this script:" in flat(result.stdout)
    sbatch = [line for line in lines if line.startswith("#SBATCH")]
    for want in ("#SBATCH -p compute", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=", "#SBATCH -t 01:30:00"):
        assert any(line.startswith(want) for line in sbatch), (want, sbatch)
    for key, value in WORKER_ENV.items():
        assert f"export {key}='{value}'" in lines  # printed verbatim, one line each
    assert any("dask_worker" in line and "--nthreads 1" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ens.toml"]


def test_posterior_source_draws_from_the_posterior(calibrated):
    tmp, posterior = calibrated
    out = tmp / "ens_posterior"
    result = ok(ensemble(tmp / "cal.toml", "--out", out, "--posterior", posterior, "--workers", "0"))
    assert "6 draws (posterior) x 2 scenario(s)" in flat(result.stdout)
    with xr.open_datatree(posterior, engine="h5netcdf") as tree:
        post = tree["posterior"].to_dataset().load()
    pairs = np.stack([post[v].values.ravel() for v in ("p", "q")], axis=1)  # (sample, 2)
    ds = open_results(out / "ensemble.zarr")
    drawn = np.stack([ds["draw_p"].values, ds["draw_q"].values], axis=-1)  # (draw, site, 2)
    assert drawn.shape == (6, 2, 2)
    np.testing.assert_array_equal(drawn[:, 0], drawn[:, 1])  # not hierarchical: one value for both sites
    for pq in drawn[:, 0]:
        assert np.any(np.all(pairs == pq, axis=1)), pq  # each draw is one posterior sample (p with its q)
    assert json.loads((out / "summary.json").read_text(), parse_constant=no_nan)["members"]["draws"] == 6


@pytest.mark.parametrize("change, message", [
    # other data for the same towns: other populations
    (lambda tmp: (tmp / "other.csv").write_text(COUNTS.replace(",40,", ",41,")) and
     calibration_toml().replace('counts = "counts.csv"', 'counts = "other.csv"'),
     "was calibrated with population [40, 30];"),
    # the same data, another fixed parameter
    (lambda tmp: calibration_toml().replace("discontinuation_rate = 0.0", "discontinuation_rate = 0.2"),
     "was calibrated with a different set of fixed parameters"),
    # the same data, another structure
    (lambda tmp: calibration_toml().replace("recognition_order = 1", "recognition_order = 2"),
     "was calibrated with a different model"),
    # other towns
    (lambda tmp: (tmp / "towns.csv").write_text(COUNTS.replace("b,", "c,")) and
     calibration_toml().replace('counts = "counts.csv"', 'counts = "towns.csv"').replace('["a", "b"]', '["a", "c"]'),
     "was calibrated on sites ['a', 'b']"),
])
def test_a_posterior_from_another_config_is_refused(calibrated, tmp_path, change, message):
    _, posterior = calibrated
    (tmp_path / "counts.csv").write_text(COUNTS)
    config = write(tmp_path, change(tmp_path), "other.toml")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = ensemble(config, "--out", tmp_path / "out", "--posterior", posterior, "--workers", "0")
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and str(config) in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_prior_source(tmp_path):
    (tmp_path / "counts.csv").write_text(COUNTS)
    config = write(tmp_path, calibration_toml(source="prior"), "cal.toml")
    result = ok(ensemble(config, "--out", tmp_path / "out", "--workers", "0"))
    assert "6 draws (prior)" in flat(result.stdout)
    ds = open_results(tmp_path / "out" / "ensemble.zarr")
    for name in ("draw_p", "draw_q"):
        values = ds[name].values
        assert values.shape == (6, 2) and np.all(values > 0) and np.unique(values[:, 0]).size == 6
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "summary.nc").exists()


def _not_a_posterior(tmp_path):
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    return tmp_path / "other.nc"


def _corrupt(tmp_path):
    (tmp_path / "corrupt.nc").write_bytes(b"not a netCDF file\n" * 50)
    return tmp_path / "corrupt.nc"


BAD = {
    "missing-posterior": (lambda tmp: (calibration_toml(), ["--posterior", tmp / "nope.nc"]),
                          "nope.nc: no such posterior file"),
    "corrupt-posterior": (lambda tmp: (calibration_toml(), ["--posterior", _corrupt(tmp), "--workers", "0"]),
                          "corrupt.nc: not a readable posterior file"),
    "other-netcdf": (lambda tmp: (calibration_toml(), ["--posterior", _not_a_posterior(tmp), "--workers", "0"]),
                     "other.nc: has no 'posterior' group"),
    "empty-scenarios": (lambda tmp: (design_toml(scenarios="[scenarios]\n"), []),
                        "[scenarios] must hold at least one [scenarios.NAME] table"),
    "unknown-scenario-parameter": (
        lambda tmp: (design_toml(scenarios="[scenarios.a]\n[scenarios.b]\nparameters = { peer_influenze = 2.0 }\n"), []),
        "peer_influenze"),
    "baseline-not-a-scenario": (lambda tmp: (design_toml(ensemble='baseline = "status_quo"'), []),
                                "baseline = 'status_quo' is not a scenario"),
    "scheduler-and-workers": (lambda tmp: (design_toml(), ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]),
                              "give --scheduler or --workers, not both"),
    "unreachable-scheduler": (lambda tmp: (design_toml(), ["--scheduler", "tcp://127.0.0.1:1"]),
                              "cannot reach the dask scheduler at 'tcp://127.0.0.1:1'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, case):
    if case == "unreachable-scheduler":  # the same failure, after 2 s instead of the real 20 s
        import distributed

        real = distributed.Client
        monkeypatch.setattr(distributed, "Client", lambda address, timeout=None, **kw: real(address, timeout="2s", **kw))
    make, message = BAD[case]
    (tmp_path / "counts.csv").write_text(COUNTS)
    text, args = make(tmp_path)
    config = write(tmp_path, text)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = ensemble(config, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out folder, nothing else


def test_store_from_another_config_is_refused(design_run, tmp_path):
    _, out, _ = design_run
    shutil.copytree(out, tmp_path / "out")
    files = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    changed = write(tmp_path, design_toml(population="[50, 81]"))  # one parameter changed
    result = ensemble(changed, "--out", tmp_path / "out", "--workers", "0")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "was written by a different config" in lines[0], result.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == files  # untouched


def test_scenario_setting_a_drawn_parameter_leaves_the_draw_to_the_others(tmp_path):
    scenarios = "[scenarios.baseline]\n[scenarios.fixed_q]\nparameters = { q = 2.0 }\n"
    config = write(tmp_path, design_toml(scenarios=scenarios, design="q = [0.2, 1.2]"))
    ok(ensemble(config, "--out", tmp_path / "out", "--workers", "0"))
    final = open_results(tmp_path / "out" / "ensemble.zarr")["adopted"].isel(time=-1, replicate=0).sum("site").values
    assert np.unique(final[:, 0]).size == 8  # baseline: q as drawn, different in every draw
    assert np.unique(final[:, 1]).size == 1  # fixed_q: q = 2.0 whatever the draw


def test_summaries_only_writes_summaries_and_no_store(design_run, tmp_path):
    cfg_path, stored, _ = design_run
    out = tmp_path / "streamed"
    result = runner.invoke(app, ["ensemble", str(cfg_path), "--out", str(out), "--summaries-only"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [".spreadjax.lock", "summary.json", "summary.nc"]  # no ensemble.zarr
    streamed = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    exact = json.loads((stored / "summary.json").read_text(), parse_constant=no_nan)
    assert streamed["members"] == exact["members"] and list(streamed["scenarios"]) == list(exact["scenarios"])
    for name in exact["scenarios"]:  # target probabilities are exact counts in both
        assert streamed["scenarios"][name]["targets"] == exact["scenarios"][name]["targets"]
    bad = runner.invoke(app, ["ensemble", str(cfg_path), "--out", str(tmp_path / "x"), "--summaries-only",
                              "--workers", "2"])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
