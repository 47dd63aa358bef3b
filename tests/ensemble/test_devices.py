"""Several local devices: a chunk's draws are sharded over them and give the one-device result
(to float32 rounding for deterministic runs, exactly for stochastic ones).

JAX fixes the number of CPU devices when it starts, so the two-device run is a subprocess with
``--xla_force_host_platform_device_count=2``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spreadjax.ensemble import ChunkRunner

from .test_recompile import _config, _draws

SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
import jax
sys.path.insert(0, {root!r})
from tests.ensemble.test_recompile import _config, _draws
from spreadjax.ensemble import ChunkRunner
changes = json.loads({changes!r})
runner = ChunkRunner(_config(Path({tmp!r}), **changes))
out = runner.run(0, _draws(8, np.random.default_rng(2)), 8)["adopted"]
np.save({out!r}, out)
print(json.dumps({{"devices": jax.local_device_count(), "sharded_over": runner.layout.devices}}))
"""

STOCHASTIC = {"stochastic": {"enabled": True}, "ensemble": {"replicates": 2},
              "simulation": {"end": 4.0, "steps_per_year": 24, "outputs_per_year": 4, "dtype": "float32",
                             "start_date": "2025-04-01", "solver": "euler"}}


@pytest.mark.slow
@pytest.mark.parametrize("changes", [{}, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_two_devices_give_the_one_device_result(tmp_path, changes):
    root = str(Path(__file__).resolve().parents[2])
    out = tmp_path / "two.npy"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    script = SCRIPT.format(root=root, changes=json.dumps(changes), tmp=str(tmp_path), out=str(out))
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info == {"devices": 2, "sharded_over": 2}
    one = ChunkRunner(_config(tmp_path, **changes))
    assert one.layout.devices == 1
    expected = one.run(0, _draws(8, np.random.default_rng(2)), 8)["adopted"]
    if changes:  # stochastic: vmapped per member, every member's stream and counts are identical
        np.testing.assert_array_equal(np.load(out), expected)
    else:  # half the members per device: SIMD remainder loops may round the last float32 bit differently
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-5)
