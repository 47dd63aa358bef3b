"""Test settings: float64 available (truth checks need it), rank promotion raises, and XLA's
compiled programs are kept on disk between tests.

Each test picks its dtype explicitly through ``CompiledModel.params(..., dtype=...)``, so the
float32 default path is tested too.

A long-lived pytest worker compiles thousands of XLA programs, and each compiled CPU executable
holds about 20 memory mappings until it is freed. Linux caps a process at ``vm.max_map_count``
(65530 by default); past it LLVM's allocations fail and the worker dies with a segmentation fault
inside a compile (seen in CI at 92% of the suite). So after any test that leaves the process with
more than a third of the cap, JAX's caches are cleared (their executables freed) and recompiled
on demand.
"""

import tempfile
from pathlib import Path

import jax
import pytest

from spreadjax._jobs import set_compile_cache

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Many tests compile the same programs from different function objects (each test builds its own
# problem), which JAX's in-memory caches cannot share: the CLI's on-disk cache can. Both xdist
# workers and their dask workers share it (JAX locks the folder: see set_compile_cache).
set_compile_cache(str(Path(tempfile.gettempdir()) / "spreadjax-tests-xla-cache"))


def _map_count() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def _map_limit() -> int | None:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):  # not Linux
        return None


_LIMIT = _map_limit()


@pytest.fixture(autouse=True)
def _free_compiled_programs():
    """Clears JAX's compilation caches once the process holds over a third of its map limit."""
    yield
    if _LIMIT is not None and _map_count() > _LIMIT // 3:
        import gc

        jax.clear_caches()
        gc.collect()


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first: pytest-xdist hands out whole files (``--dist loadfile``) in
    collection order (``--no-loadscope-reorder``: by default it puts the files with the most
    tests first), so starting the longest ones first keeps a worker from idling at the end while
    the other finishes a long file it drew last."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within files is kept
