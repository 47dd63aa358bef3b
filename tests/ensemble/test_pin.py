"""Local workers are pinned to their share of the cores (jax 0.10's CPU runtime ignores the
one-thread XLA flags, so unpinned workers contend for every core)."""

import os
from types import SimpleNamespace

import pytest

from spreadjax.ensemble._pin import PinToCore
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
