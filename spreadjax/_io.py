"""File input and output: TOML read with one clear error per problem; atomic writes (a temporary file
beside the target, then a rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``.

    On any error the temporary file is removed and ``path`` is left as it was, so a reader never
    sees a half-written file.
    """
    path = Path(path)
    if path.is_dir():
        from ._errors import InputError

        raise InputError(f"{path}: is a folder, where a file is to be written; remove or rename it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_netcdf(ds, path: str | Path) -> Path:
    """Write an xarray Dataset as netCDF4 (h5netcdf engine), atomically."""
    return write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False))


def read_toml(path: str | Path, what: str, max_bytes: int) -> dict:
    """Read a TOML ``what`` file ("config", "model") of at most ``max_bytes`` bytes.

    Each problem (missing, a folder, not a regular file, too large, not text, not TOML,
    unreadable) is one :class:`~spreadjax._errors.ConfigError` naming the file.
    """
    import tomllib

    from ._errors import ConfigError, check_regular_file

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such {what} file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a TOML {what} file")
    check_regular_file(path, f"a TOML {what} file", ConfigError)
    size = path.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{path}: is {size / 1e6:.0f} MB, too large for a TOML {what} file "
                          f"(at most {max_bytes // 10**6} MB); is it the right file?")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a TOML {what} file)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None

