"""One writer per output folder: a lock file (``filelock``) and a note of who holds it.

``output_lock(folder, command)`` takes ``folder/.spreadjax.lock`` without waiting; while it is
held, ``folder/.spreadjax.lock.json`` names the holder (pid, host, command, start time), so a
second writer is refused with one line naming it. The lock is the operating system's (``flock``),
so a killed holder frees it at once. It is re-entrant within a process: ``spreadjax run`` holds
it while the ensemble it starts takes it again. A folder the lock created, and that holds nothing
else when the lock is released, is removed: a refused command leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from ._errors import InputError

LOCK_NAME = ".spreadjax.lock"
HOLDER_NAME = ".spreadjax.lock.json"

_held: dict[str, int] = {}  # resolved folder -> depth, for this process
_guard = threading.Lock()


def holder(folder: Path) -> str:
    """Who holds ``folder``'s lock, as the holder wrote it (or "an unknown process")."""
    try:
        h = json.loads((Path(folder) / HOLDER_NAME).read_text())
        return f"{h['command']} (pid {h['pid']} on {h['host']}, since {h['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


@contextlib.contextmanager
def output_lock(folder: Path, command: str) -> Iterator[Path]:
    """Hold the write lock of ``folder`` (created if missing) for the block; yields the folder.

    Raises :class:`InputError` naming the holder when another process has it.
    """
    from filelock import FileLock, Timeout

    folder = Path(folder)
    key = str(folder.absolute().resolve())
    with _guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield folder
        finally:
            with _guard:
                _held[key] -= 1
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise InputError(f"{folder}: another spreadjax is writing here: {holder(folder)}; wait for it to "
                         "finish, or choose another --out") from None
    try:
        note = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        (folder / HOLDER_NAME).write_text(json.dumps(note))
        with _guard:
            _held[key] = 1
        yield folder
    finally:
        with _guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            (folder / HOLDER_NAME).unlink()
        lock.release()
        if created:
            _remove_if_empty(folder)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when only the lock file is left in it."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass
