"""Damaged stores and concurrent writers.

A chunk file overwritten with garbage, truncated or deleted is named by ``spreadjax verify``
(exit 2) and recomputed, bit for bit, by a rerun; the drawn values are checked too. A second
writer on the same ``--out`` is refused naming the first (its pid), and writes nothing. A complete
store has consolidated metadata: ``xarray.open_zarr`` opens it without a warning.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from spreadjax._lock import HOLDER_NAME, LOCK_NAME, output_lock
from spreadjax.ensemble import open_results
from spreadjax.ensemble._store import checksum, verify_store

from .test_cli import COUNTS, calibration_toml, design_toml, ensemble, flat, ok, runner, write
from spreadjax._cli import app

OUTPUTS = 'outputs = ["adopted", "discontinued"]'


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-chunk store with two outputs: (config, out folder)."""
    tmp = tmp_path_factory.mktemp("integrity")
    config = write(tmp, design_toml(ensemble=OUTPUTS))
    ok(ensemble(config, "--out", tmp / "out", "--workers", "0"))
    return config, tmp / "out"


def copy_of(finished, tmp_path):
    config, out = finished
    dest = tmp_path / "out"
    shutil.copytree(out, dest)
    return config, dest


def chunk_file(store, output, i):
    array = zarr.open_group(str(store), mode="r")[output]
    return store / output / ".".join([str(i)] + ["0"] * (array.ndim - 1))


def values(store):
    ds = open_results(store)
    return {name: ds[name].values for name in ("adopted", "discontinued")}


def verify(path):
    return runner.invoke(app, ["verify", str(path)])


def test_a_finished_store_verifies_and_its_checksums_are_of_the_values(finished):
    _, out = finished
    result = verify(out)
    assert result.exit_code == 0, result.output
    assert "2 chunk(s) match their checksums" in flat(result.stdout)
    store = out / "ensemble.zarr"
    group = zarr.open_group(str(store), mode="r")
    names = [str(o) for o in group["output"][:]]
    assert names == ["adopted", "discontinued"]
    for i in range(2):  # an independent digest of the stored values, chunk by chunk
        for k, name in enumerate(names):
            assert int(group["chunk_checksum"][i, k]) == checksum(np.asarray(group[name][4 * i:4 * i + 4]))
    assert verify(store).exit_code == 0  # the store itself, not only its folder


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted", "other values"])
def test_a_damaged_chunk_is_named_and_recomputed_bit_for_bit(finished, tmp_path, damage):
    config, out = copy_of(finished, tmp_path)
    store = out / "ensemble.zarr"
    before = values(store)
    path = chunk_file(store, "discontinued", 1)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(raw)))
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "deleted":
        path.unlink()
    else:  # decodes cleanly, but the values are not the ones written
        group = zarr.open_group(str(store), mode="r+")
        group["discontinued"][4:8] = np.asarray(group["discontinued"][4:8]) + 1.0
    found = verify_store(store)
    assert [(i, name) for i, name, _ in found.damaged] == [(1, "discontinued")]
    result = verify(out)
    assert result.exit_code == 2
    line = flat(result.output)
    assert "chunk 1 discontinued" in line and "chunk 0" not in line and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1

    rerun = ok(ensemble(config, "--out", out, "--workers", "0"))
    text = flat(rerun.output)
    assert "1 chunk(s) computed, 1 already done" in text and "chunk 1 discontinued" in text
    after = values(store)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])  # bit for bit
    assert verify(out).exit_code == 0


def test_damaged_draws_are_refused_not_simulated(finished, tmp_path):
    config, out = copy_of(finished, tmp_path)
    store = out / "ensemble.zarr"
    group = zarr.open_group(str(store), mode="r+")
    group["draw_q"][0] = np.asarray(group["draw_q"][0]) * 2.0
    result = verify(out)
    assert result.exit_code == 2 and "draw_q" in flat(result.output)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rerun = ensemble(config, "--out", out, "--workers", "0")
    assert rerun.exit_code == 2 and "draw_q" in flat(rerun.output) and "Traceback" not in rerun.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # nothing rewritten


def test_damaged_bookkeeping_is_refused(finished, tmp_path):
    _, out = copy_of(finished, tmp_path)
    for path in (out / "ensemble.zarr" / "chunk_checksum").iterdir():
        if not path.name.startswith("."):
            path.write_bytes(b"not a chunk")
    result = verify(out)
    assert result.exit_code == 2 and "checksums cannot be read" in flat(result.output)


def test_a_complete_store_is_consolidated(finished):
    _, out = finished
    store = out / "ensemble.zarr"
    assert (store / ".zmetadata").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray warns when the metadata is not consolidated
        ds = xr.open_zarr(store)
    assert set(ds.data_vars) >= {"adopted", "discontinued", "population", "chunk_done", "chunk_checksum"}
    assert bool(ds["chunk_done"].all())


HOLD = textwrap.dedent("""
    import sys
    from spreadjax._lock import output_lock
    with output_lock(sys.argv[1], "spreadjax ensemble (test holder)"):
        print("held", flush=True)
        sys.stdin.read()
""")


@pytest.fixture
def held(tmp_path):
    """``tmp_path / "out"`` locked by another process: yields (folder, its pid)."""
    folder = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield folder, proc.pid
    finally:
        proc.stdin.close()
        code = proc.wait(timeout=60)
        proc.stdout.close()
        assert code == 0
    assert not folder.exists()  # the holder made the folder and wrote nothing: it is removed


def second_writer_args(command, tmp_path, folder):
    """The command line of ``command`` writing into ``folder`` (a config that passes every check)."""
    if command == "run":
        return ["run", "--out", str(folder)]  # the bundled example: refused before calibrating
    if command == "calibrate":
        write(tmp_path, COUNTS, name="counts.csv")
        return ["calibrate", str(write(tmp_path, calibration_toml("prior"), name="cal.toml")), "--out", str(folder)]
    config = str(write(tmp_path, design_toml(), name="cfg.toml"))
    return {"simulate": ["simulate", config, "--out", str(folder)],
            "ensemble": ["ensemble", config, "--out", str(folder), "--workers", "0"],
            "summaries-only": ["ensemble", config, "--out", str(folder), "--summaries-only"]}[command]


@pytest.mark.parametrize("command", ["ensemble", "summaries-only", "simulate", "calibrate", "run"])
def test_a_second_writer_is_refused_naming_the_holder(held, tmp_path, command):
    folder, pid = held
    before = sorted(p.name for p in folder.iterdir())
    result = runner.invoke(app, second_writer_args(command, tmp_path, folder))
    assert result.exit_code == 2, result.output
    line = flat(result.output)
    assert f"pid {pid}" in line and "another spreadjax is writing here" in line and "test holder" in line
    assert "Traceback" not in result.output and line.count("error:") == 1
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written
    assert json.loads((folder / HOLDER_NAME).read_text())["pid"] == pid


def test_the_lock_is_reentrant_in_a_process_and_freed_when_released(tmp_path):
    folder = tmp_path / "out"
    with output_lock(folder, "outer"):
        with output_lock(folder, "inner"):  # `spreadjax run` locks, then its ensemble locks again
            assert json.loads((folder / HOLDER_NAME).read_text())["command"] == "outer"
        assert (folder / HOLDER_NAME).exists()  # still held by the outer block
        (folder / "result.txt").write_text("kept")
    assert not (folder / HOLDER_NAME).exists() and (folder / LOCK_NAME).exists()
    assert (folder / "result.txt").read_text() == "kept"
    done = subprocess.run([sys.executable, "-c", HOLD, str(folder)], input="", capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "held"  # another process can take it now
