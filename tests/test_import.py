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


#: Each layer may import only itself, the layers before it and the shared leaf modules.
LAYERS = ("core", "models", "sdimport", "calibrate", "ensemble", "backtest", "design", "report")
LEAVES = {"_errors", "_io", "_jobs", "_limits", "_lock", "__version__"}
ALLOWED = {
    "core": set(), "models": {"core"}, "sdimport": {"core", "models"},
    "calibrate": {"core", "models"}, "ensemble": {"core", "models", "calibrate"},
    "backtest": {"core", "models", "calibrate", "ensemble"},
    "design": {"core", "models", "calibrate", "ensemble"},
    "report": {"core", "models", "calibrate", "ensemble", "backtest", "design"},
}


def _package_imports(path):
    """Top-level spreadjax modules a file imports (relative or absolute), e.g. {'core', '_config'}."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 2 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 2:
                found.update(a.name for a in node.names)
            elif node.level == 0 and (node.module or "").startswith("spreadjax."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("spreadjax."))
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_those_before_them(layer):
    from pathlib import Path

    import spreadjax

    root = Path(spreadjax.__file__).parent
    bad = {}
    for path in sorted((root / layer).glob("*.py")):
        reached = _package_imports(path) - LEAVES - ALLOWED[layer] - {layer}
        if reached:
            bad[path.name] = sorted(reached)
    assert not bad, f"spreadjax/{layer} reaches up or sideways: {bad}"
