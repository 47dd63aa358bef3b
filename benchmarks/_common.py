"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spreadjax._io import write_atomic


#: a warm-up call slower than this (seconds) is followed by one timed call, not the best of several
#: (1e6 members of numpy or diffrax: a scheduler tick is noise there, and three calls take minutes)
SLOW_CALL = 20.0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (the package's temp-file-and-rename writer)."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: platform, cores, load, JAX backend and devices, versions."""
    import os
    import platform

    import jax
    import numpy as np

    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
        "python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
