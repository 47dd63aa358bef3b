"""Sizes estimated from a plan before anything is allocated, and refused when they cannot fit.

A run that would need more memory or disk than this machine has, or more solver steps than any
run could finish, is refused with the estimate in the message instead of ending in an
out-of-memory kill hours later. ``SPREADJAX_NO_SIZE_CHECK=1`` runs it anyway (for a machine
whose memory this process cannot see, such as a batch node with swap or a larger disk mounted
later). Imports only the standard library.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ._errors import InputError

#: The largest seed: seeds become int32 arrays in JAX (a larger one failed mid-run, after the store was made).
MAX_SEED = 2**31 - 1

OVERRIDE = "SPREADJAX_NO_SIZE_CHECK"
#: Solver steps per member over the horizon above which a run is refused: 1e9 RK4 steps of the
#: flagship model take hours even for one member.
MAX_STEPS = 10**9


def overridden() -> bool:
    """Whether the user turned the size checks off (``SPREADJAX_NO_SIZE_CHECK=1``)."""
    return os.environ.get(OVERRIDE, "").strip().lower() not in ("", "0", "false", "no")


def available_memory() -> int:
    """Memory this process can still allocate on the host, in bytes (``MemAvailable``, else free pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**34  # unknown: assume 16 GiB rather than refuse


def free_disk(path: str | Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 2**62  # cannot tell: do not refuse


def human(nbytes: float) -> str:
    """``1.5 GB``-style text (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"


def require_memory(need: float, what: str, hint: str, have: int | None = None) -> None:
    """Refuse ``what`` when its estimated ``need`` (bytes) exceeds the memory available."""
    have = available_memory() if have is None else have
    if need > have and not overridden():
        raise InputError(f"{what} needs about {human(need)} of memory but {human(have)} is available; {hint} "
                         f"(or set {OVERRIDE}=1 to try anyway)")


def require_disk(need: float, folder: str | Path, what: str, hint: str) -> None:
    """Refuse ``what`` when its estimated ``need`` (bytes, uncompressed) exceeds the free disk at ``folder``."""
    have = free_disk(folder)
    if need > have and not overridden():
        raise InputError(f"{what} needs up to {human(need)} of disk in {folder} but {human(have)} is free; {hint} "
                         f"(or set {OVERRIDE}=1 to try anyway)")


def require_steps(steps: float, what: str, hint: str) -> None:
    """Refuse ``what`` when one member would take more than :data:`MAX_STEPS` solver steps."""
    if steps > MAX_STEPS and not overridden():
        raise InputError(f"{what} takes {steps:.3g} solver steps per run (more than {MAX_STEPS:.0e}): {hint} "
                         f"(or set {OVERRIDE}=1 to try anyway)")
