"""The command line: exit codes, one-line errors without tracebacks, files written atomically."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax._io import write_atomic

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

runner = CliRunner()


def run_cli(*args, cwd=None):
    """The real entry point in a fresh interpreter (exit code and stderr as a user sees them)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "spreadjax", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[model]\nname = "four_stage"\n[parameters]\nq = -0.3\n')
    return path


def test_check_good_config():
    result = runner.invoke(app, ["check", str(CONFIGS / "flagship.toml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")
    line = " ".join(result.stdout.split())  # rich wraps at 80 columns, where depends on the clone's path
    assert "flagship.toml" in line and "6 site(s)" in line and "97 output times" in line


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_check_every_example_config(name):
    result = runner.invoke(app, ["check", str(CONFIGS / name)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {CONFIGS / name}: ")


def test_check_stochastic_config_mentions_replicates():
    result = runner.invoke(app, ["check", str(CONFIGS / "clinicians_stochastic.toml")])
    assert result.exit_code == 0, result.output
    assert "stochastic x200" in result.stdout


def test_simulate_bass_writes_netcdf_and_png(tmp_path):
    out = tmp_path / "results"
    result = runner.invoke(app, ["simulate", str(CONFIGS / "bass.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "adopted by year 10:" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [".spreadjax.lock", "simulation.nc", "simulation.png"]  # no temp files left
    with xr.open_dataset(out / "simulation.nc", engine="h5netcdf") as ds:
        ds.load()
    assert ds["adopted"].dims == ("time", "site")
    assert ds["adopted"].attrs["units"] == "organisations"
    assert ds["population"].dims == ("site",)
    assert ds["population"].attrs["units"] == "organisations"
    assert float(ds["population"].sum()) == 1000.0
    assert ds["time"].attrs["units"] == "years"
    assert ds.sizes["time"] == 521
    np.testing.assert_allclose(ds["time"].values[[0, -1]], [0.0, 10.0])
    assert np.all(np.diff(ds["adopted"].values[:, 0]) > 0)
    assert ds.attrs["model"] == "four_stage" and ds.attrs["config"].endswith("bass.toml")
    png = (out / "simulation.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 10_000


def test_simulate_no_plot(tmp_path):
    result = runner.invoke(app, ["simulate", str(CONFIGS / "bass.toml"), "--out", str(tmp_path), "--no-plot"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".spreadjax.lock", "simulation.nc"]


@pytest.mark.parametrize("command", ["check", "simulate"])
def test_bad_config_exits_2_with_one_line(tmp_path, command):
    path = bad_config(tmp_path)
    out = tmp_path / "results"
    args = [command, path] + (["--out", out] if command == "simulate" else [])
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), proc.stderr
    assert str(path) in lines[0] and "[parameters] q = -0.3 is negative" in lines[0]
    assert not out.exists()
    assert not (tmp_path / "out").exists()  # nor the default output folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_config_exits_2(tmp_path):
    proc = run_cli("simulate", tmp_path / "nope.toml", "--out", tmp_path / "results")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'nope.toml'}: no such config file"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", [
    '[model\nname = "four_stage"\n',                              # invalid TOML
    '[model]\nname = "four_stage"\n[simulaton]\nend = 5.0\n',      # unknown key
    '[model]\nname = "four_stage"\n[model.options]\nimplementation_order = "3"\n',
    '[model]\nname = "four_stage"\n[sites]\nnames = ["a", "a"]\n',
], ids=["toml-syntax", "unknown-key", "option-type", "duplicate-site"])
def test_bad_configs_in_process(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "results"
    result = runner.invoke(app, ["simulate", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not out.exists()


def test_info_prints_versions_and_devices():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"jax        {jax.__version__}" in lines
    assert any(line.startswith("jaxlib ") for line in lines)
    device_lines = [line for line in lines if line.startswith("device ")]
    assert device_lines
    if jax.default_backend() == "cpu":
        assert any(line.split()[1].startswith("cpu:") for line in device_lines), device_lines


STOCHASTIC = """
    title = "small stochastic test"
    [model]
    name = "four_stage"
    [model.options]
    implementation_order = 2
    [sites]
    names = ["ward A", "ward B"]
    [parameters]
    population = [60, 40]
    initial_adopters = [3, 0]
    p = 0.2
    q = 1.2
    [simulation]
    end = 1.0
    steps_per_year = 52
    outputs_per_year = 13
    solver = "euler"
    outputs = ["unaware", "aware", "implementing", "adopted", "discontinued"]
    [stochastic]
    enabled = true
    replicates = 20
    seed = 7
"""


def test_simulate_stochastic_writes_integer_counts(tmp_path):
    # float32 config in a process with 64-bit mode on (conftest): binomial draws must keep the dtype
    config = tmp_path / "stochastic.toml"
    config.write_text(textwrap.dedent(STOCHASTIC))
    out = tmp_path / "results"
    result = runner.invoke(app, ["simulate", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "90% of runs between" in result.stdout
    with xr.open_dataset(out / "simulation.nc", engine="h5netcdf") as ds:
        ds.load()
    assert ds.sizes == {"replicate": 20, "time": 14, "site": 2}
    np.testing.assert_array_equal(ds["replicate"].values, np.arange(20))
    for name in ("unaware", "aware", "implementing", "adopted", "discontinued"):
        assert ds[name].dims == ("replicate", "time", "site")
        assert np.issubdtype(ds[name].dtype, np.integer), (name, ds[name].dtype)
        assert int(ds[name].min()) >= 0
    total = sum(ds[s] for s in ("unaware", "aware", "implementing", "adopted", "discontinued"))
    np.testing.assert_array_equal(total.values, np.broadcast_to([60, 40], total.shape))
    assert ds.attrs["mode"] == "stochastic" and ds.attrs["seed"] == 7
    # replicates differ: chance matters
    assert len({tuple(ds["adopted"].isel(time=-1, replicate=r).values) for r in range(20)}) > 1
    assert (out / "simulation.png").read_bytes().startswith(PNG_MAGIC)


# -- atomic writes ------------------------------------------------------------------------------
class Interrupted(Exception):
    pass


def half_write(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"\x89HDF half of a file")
        fh.flush()
    raise Interrupted


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "sub" / "simulation.nc"
    with pytest.raises(Interrupted):
        write_atomic(target, half_write)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_interrupted_write_keeps_previous_file(tmp_path):
    target = tmp_path / "simulation.nc"
    target.write_bytes(b"previous result")
    with pytest.raises(Interrupted):
        write_atomic(target, half_write)
    assert target.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [target]


def test_write_atomic_success(tmp_path):
    target = tmp_path / "a.bin"
    assert write_atomic(target, lambda tmp: tmp.write_bytes(b"data")) == target
    assert target.read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == [target]
