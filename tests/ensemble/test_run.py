"""Ensemble execution: dask equals in-process bit for bit, whatever the chunking, worker deaths or
interruptions; finished chunks are never recomputed; a store from another config is refused."""

import os
import signal

import numpy as np
import pytest

from spreadjax import InputError, parse_config
from spreadjax.ensemble import open_results, run_ensemble

CONFIG = {
    "title": "ensemble test",
    "model": {"name": "four_stage"},
    "sites": {"names": ["a", "b"]},
    "parameters": {"population": [50, 80], "initial_adopters": [2, 0]},
    "simulation": {"end": 4.0, "steps_per_year": 24, "outputs_per_year": 4, "dtype": "float32",
                   "start_date": "2025-04-01"},
    "scenarios": {"baseline": {}, "strong_peers": {"parameters": {"peer_influence": 1.5}},
                  "withdrawn": {"schedules": {"programme": {"times": [0, 2], "values": [1, 0]}}}},
    "ensemble": {"source": "design", "design": {"q": [0.2, 1.2], "p": [0.01, 0.2]}, "draws": 60,
                 "chunk_size": 16},
}


def config(tmp_path, **ensemble):
    raw = {**CONFIG, "ensemble": {**CONFIG["ensemble"], **ensemble}}
    return parse_config(raw, str(tmp_path / "ens.toml"))


def stochastic_config(tmp_path, **ensemble):
    raw = {**CONFIG, "stochastic": {"enabled": True},
           "simulation": {**CONFIG["simulation"], "solver": "euler"},
           "ensemble": {**CONFIG["ensemble"], "replicates": 3, **ensemble}}
    return parse_config(raw, str(tmp_path / "ens.toml"))


def result(path):
    return open_results(path)["adopted"].values


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    from spreadjax.ensemble._run import WORKER_ENV

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=WORKER_ENV, silence_logs=50) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    report = run_ensemble(config(tmp), tmp / "ref.zarr", workers=0)
    assert sorted(report.computed) == list(range(4)) and report.skipped == 0
    return result(tmp / "ref.zarr")


@pytest.mark.slow
def test_stochastic_dask_equals_in_process_with_common_random_numbers(tmp_path, cluster):
    cfg = stochastic_config(tmp_path, draws=12, chunk_size=4)
    run_ensemble(cfg, tmp_path / "in.zarr", workers=0)
    report = run_ensemble(cfg, tmp_path / "d.zarr", scheduler=cluster.scheduler_address)
    assert sorted(report.computed) == [0, 1, 2]
    ref = result(tmp_path / "in.zarr")
    np.testing.assert_array_equal(result(tmp_path / "d.zarr"), ref)
    assert ref.shape == (12, 3, 3, 17, 2)
    assert np.all(np.isfinite(ref)) and np.all(ref == np.rint(ref))
    # Scenarios share draws and keys: before the withdrawal at year 2 the baseline and the
    # withdrawn scenario see identical futures, member by member.
    np.testing.assert_array_equal(ref[:, 0, :, :9], ref[:, 2, :, :9])
    assert not np.array_equal(ref[:, 0, :, -1], ref[:, 2, :, -1])
    assert not np.array_equal(ref[:, :, 0], ref[:, :, 1])  # replicates have their own keys
    # A different chunk size gives the same members bit for bit.
    run_ensemble(stochastic_config(tmp_path, draws=12, chunk_size=5), tmp_path / "c.zarr", workers=0)
    np.testing.assert_array_equal(result(tmp_path / "c.zarr"), ref)


def test_dask_two_workers_equal_in_process_bit_for_bit(tmp_path, cluster, reference):
    report = run_ensemble(config(tmp_path), tmp_path / "d.zarr", scheduler=cluster.scheduler_address)
    assert sorted(report.computed) == list(range(4))
    np.testing.assert_array_equal(result(tmp_path / "d.zarr"), reference)


def test_chunk_size_does_not_change_results(tmp_path, reference):
    run_ensemble(config(tmp_path, chunk_size=7), tmp_path / "c.zarr", workers=0)
    np.testing.assert_array_equal(result(tmp_path / "c.zarr"), reference)


def test_worker_killed_mid_run_loses_nothing(tmp_path, cluster, reference):
    from distributed import Client

    cfg = config(tmp_path, chunk_size=4)  # 15 chunks: the kill lands mid-run
    with Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
    killed = []

    def progress(done, total):
        if done >= 2 and not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = run_ensemble(cfg, tmp_path / "k.zarr", scheduler=cluster.scheduler_address, progress=progress)
    assert killed and sorted(report.computed) == list(range(15))
    np.testing.assert_array_equal(result(tmp_path / "k.zarr"), reference)


@pytest.mark.parametrize("use_dask", [False, True])
def test_interrupted_run_resumes_without_recomputing(tmp_path, cluster, reference, use_dask):
    cfg = config(tmp_path, chunk_size=4)
    store = tmp_path / "r.zarr"
    where = dict(scheduler=cluster.scheduler_address) if use_dask else dict(workers=0)

    def stop_after_three(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ensemble(cfg, store, progress=stop_after_three, **where)
    done_before = int(open_results(store)["chunk_done"].values.sum())
    assert 3 <= done_before < 15
    report = run_ensemble(cfg, store, **where)
    assert report.skipped == done_before
    assert len(report.computed) == 15 - done_before  # finished chunks are not recomputed
    np.testing.assert_array_equal(result(store), reference)


def test_in_process_run_writes_each_chunk_while_the_next_computes(tmp_path, reference, monkeypatch):
    from spreadjax.ensemble import _run
    from spreadjax.ensemble._batch import ChunkRunner

    events = []
    launch, write = ChunkRunner.launch, _run.write_chunk
    monkeypatch.setattr(ChunkRunner, "launch", lambda self, start, *a: events.append(("launch", start)) or launch(self, start, *a))
    monkeypatch.setattr(_run, "write_chunk", lambda store, plan, i, r: events.append(("write", plan.chunk(i)[0])) or write(store, plan, i, r))
    run_ensemble(config(tmp_path), tmp_path / "p.zarr", workers=0)
    # chunk k + 1 (draws 16 k + 16) is launched before chunk k is written; then the last is written
    assert events == [("launch", 0), ("launch", 16), ("write", 0), ("launch", 32), ("write", 16),
                      ("launch", 48), ("write", 32), ("write", 48)]
    np.testing.assert_array_equal(result(tmp_path / "p.zarr"), reference)


def test_a_chunk_run_in_several_batches_equals_one_batch(tmp_path, reference, monkeypatch):
    from spreadjax.ensemble import _batch, _run

    # 30 member-sites: 5 draws of 3 scenarios x 2 sites; chunks of 16 draws -> 4 equal batches of 4
    monkeypatch.setattr(_batch, "CPU_MEMBER_SITES_PER_BATCH", 30)
    _run._runner.cache_clear()  # the runner is cached per config: build it with the small batches
    try:
        run_ensemble(config(tmp_path), tmp_path / "b.zarr", workers=0)
        runner = _run._runner(_run._worker_config(config(tmp_path), _run.plan_for(config(tmp_path))))
        assert runner.layout.batch == 4
    finally:
        _run._runner.cache_clear()
    np.testing.assert_array_equal(result(tmp_path / "b.zarr"), reference)


def test_store_from_another_config_is_refused(tmp_path):
    cfg = config(tmp_path, draws=8, chunk_size=8)
    run_ensemble(cfg, tmp_path / "s.zarr", workers=0)
    other = parse_config({**CONFIG, "parameters": {"population": [50, 81], "initial_adopters": [2, 0]},
                          "ensemble": {**CONFIG["ensemble"], "draws": 8, "chunk_size": 8}},
                         str(tmp_path / "ens.toml"))
    with pytest.raises(InputError, match="different config"):
        run_ensemble(other, tmp_path / "s.zarr", workers=0)
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(InputError, match="not a readable"):
        run_ensemble(cfg, tmp_path / "junk.zarr", workers=0)


def test_deterministic_scenarios_follow_the_levers(tmp_path):
    cfg = config(tmp_path, draws=16, chunk_size=16)
    run_ensemble(cfg, tmp_path / "det.zarr", workers=0)
    ds = open_results(tmp_path / "det.zarr")
    final = ds["adopted"].isel(time=-1, replicate=0).sum("site").values  # (draw, scenario)
    assert np.all(final[:, 1] > final[:, 0])  # stronger peer influence: more adoption, every draw
    assert np.all(final[:, 2] < final[:, 0])  # programme withdrawn: less, every draw
    q = ds["draw_q"].values[:, 0]
    assert q.min() >= 0.2 and q.max() <= 1.2 and np.unique(q).size == 16
