"""Local workers are pinned to their share of the cores (jax 0.10's CPU runtime ignores the
one-thread XLA flags, so unpinned workers contend for every core), or to one GPU each."""

import os
from types import SimpleNamespace

import pytest

from spreadjax.ensemble._pin import PinToCore, PinToGPU, pin_workers
from spreadjax.ensemble._run import _client

from .test_run import config


@pytest.mark.parametrize("workers, cores, expect", [
    (1, [0, 1], [{0, 1}]),  # one worker keeps every core
    (2, [0, 1], [{0}, {1}]),
    (2, [0, 1, 2, 3], [{0, 2}, {1, 3}]),
    (3, [4, 7], [{4}, {7}, {4}]),  # more workers than cores: round the cores
])
def test_each_worker_gets_its_share_of_the_cores(monkeypatch, workers, cores, expect):
    got = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, mine: got.append((pid, mine)))
    plugin = PinToCore(cores, workers)
    for i in range(workers):
        plugin.setup(SimpleNamespace(name=i))
    plugin.setup(SimpleNamespace(name="tcp://not-a-local-worker"))  # left alone
    assert got == [(0, e) for e in expect]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two cores")
def test_run_ensembles_local_workers_run_on_one_core_each(tmp_path):
    with _client(config(tmp_path), None, 2) as client:
        cores = client.run(lambda: sorted(os.sched_getaffinity(0)))
    assert sorted(len(c) for c in cores.values()) == [1, 1]
    assert len({tuple(c) for c in cores.values()}) == 2, cores


def _unset(monkeypatch, name):
    """Remove ``name`` from the environment for this test; its value is restored afterwards
    (setting it first makes monkeypatch record it, present or not)."""
    monkeypatch.setenv(name, "")
    monkeypatch.delenv(name)


def test_each_worker_gets_one_gpu_and_memory_on_demand(monkeypatch):
    _unset(monkeypatch, "XLA_PYTHON_CLIENT_PREALLOCATE")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test
    plugin = PinToGPU(["2", "5"])
    seen = []
    for name in (0, 1, 2, "tcp://not-a-local-worker"):
        plugin.setup(SimpleNamespace(name=name))
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "5", "2", "2"]  # round the GPUs; a non-local worker is left alone
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    plugin.setup(SimpleNamespace(name=1))
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"  # the user's setting wins


def test_local_workers_on_a_gpu_machine_see_one_gpu_each(tmp_path, monkeypatch):
    import jax
    from distributed import Client, LocalCluster

    from spreadjax.ensemble._run import WORKER_ENV

    # JAX here "sees" two GPUs; the workers are real processes, which only read their environment
    monkeypatch.setattr(jax, "devices", lambda *a: [SimpleNamespace(platform="gpu")] * 2)
    _unset(monkeypatch, "CUDA_VISIBLE_DEVICES")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=WORKER_ENV, silence_logs=50) as cluster, Client(cluster) as client:
        assert pin_workers(client, 2)
        seen = client.run(lambda: (os.environ.get("CUDA_VISIBLE_DEVICES"),
                                   os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
                                   len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None))
    assert sorted(v[0] for v in seen.values()) == ["0", "1"]
    assert all(v[1] == "false" for v in seen.values())
    if hasattr(os, "sched_getaffinity"):  # GPU workers keep every core (no CPU pinning)
        assert all(v[2] == len(os.sched_getaffinity(0)) for v in seen.values())


def test_the_command_line_leaves_gpu_memory_to_its_workers(monkeypatch, capsys):
    import sys

    from spreadjax._cli import main

    _unset(monkeypatch, "XLA_PYTHON_CLIENT_PREALLOCATE")
    monkeypatch.setenv("SPREADJAX_CACHE_DIR", "off")  # main() would set this process's compile cache
    monkeypatch.setattr(sys, "argv", ["spreadjax", "--help"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0 and "spreadjax" in capsys.readouterr().out.lower()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
