"""Dask workers use the client's XLA compilation cache: a fresh process (as a worker is) given the
setting compiles into that folder, one that already has a cache keeps its own, and a folder the
worker cannot see is ignored."""

import json
import subprocess
import sys

from spreadjax.ensemble._run import compile_cache_setting

WORKER = """
import json, sys
import jax
from spreadjax.ensemble._run import use_compile_cache
setting = json.loads(sys.argv[1])
used = use_compile_cache(None if setting is None else tuple(setting))
jax.jit(lambda x: jax.numpy.sin(x) * 2)(jax.numpy.arange(3.0)).block_until_ready()
print(json.dumps({"used": used, "dir": jax.config.jax_compilation_cache_dir}))
"""


def worker(setting, env=None):
    import os

    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(setting)], capture_output=True, text=True,
                         check=True, env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_worker_compiles_into_the_clients_cache(tmp_path):
    import jax

    # workers get this process's cache (the test session's: tests/conftest.py), with its threshold
    assert compile_cache_setting() == (jax.config.jax_compilation_cache_dir,
                                       jax.config.jax_persistent_cache_min_compile_time_secs)
    cache = tmp_path / "xla"
    cache.mkdir()
    assert worker([str(cache), 0.0]) == {"used": True, "dir": str(cache)}
    assert any(cache.iterdir())  # the worker wrote its compiled program there
    assert worker([str(tmp_path / "absent"), 0.0]) == {"used": False, "dir": None}
    assert worker(None) == {"used": False, "dir": None}
    own = tmp_path / "own"
    own.mkdir()
    got = worker([str(cache), 0.0], env={"JAX_COMPILATION_CACHE_DIR": str(own)})
    assert got == {"used": False, "dir": str(own)}
