"""`cpu_devices_for_chains` splits the CPU into one JAX device per chain, only before JAX starts,
and respects a device count the user already set."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import jax
from spreadjax._jobs import cpu_devices_for_chains
first = cpu_devices_for_chains(int(sys.argv[1]))
jax.numpy.zeros(1).block_until_ready()  # JAX has started
again = cpu_devices_for_chains(8)
print(json.dumps({"first": first, "again": again, "devices": jax.local_device_count()}))
"""


def probe(chains, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(chains)], env={**clean, "JAX_PLATFORMS": "cpu", **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to split")
def test_one_cpu_device_per_chain_before_jax_starts_and_never_after():
    assert probe(4) == {"first": True, "again": False, "devices": 4}
    assert probe(1) == {"first": False, "again": False, "devices": 1}  # one chain: nothing to gain


def test_a_device_count_the_user_set_is_kept():
    assert probe(4, XLA_FLAGS="--xla_force_host_platform_device_count=2") == {
        "first": False, "again": False, "devices": 2}
