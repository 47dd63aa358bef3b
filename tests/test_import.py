"""Importing spreadjax stays light: heavy or optional layers load only where they are used."""

import json
import subprocess
import sys

import pytest

HEAVY = ("dask", "distributed", "zarr", "arviz", "matplotlib", "typer", "rich")


@pytest.mark.parametrize("module", ["spreadjax", "spreadjax.calibrate"])
def test_import_does_not_load_heavy_modules(module):
    code = (
        f"import json, sys\nimport {module}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    leaked = json.loads(proc.stdout.strip().splitlines()[-1])
    top = sorted({m.split(".")[0] for m in leaked})
    assert not leaked, f"import {module} loaded {', '.join(top)} ({', '.join(leaked)})"
