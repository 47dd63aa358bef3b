"""Exceptions raised for bad input, each naming where the problem is and how to fix it."""

from __future__ import annotations

import warnings


class SpreadjaxError(Exception):
    """Base class of every error spreadjax raises on purpose."""


class InputError(SpreadjaxError, ValueError):
    """Bad user input (a config, a data file, an argument): the CLI exits with code 2."""


class ConfigError(InputError):
    """A config file or mapping is invalid; the message names the file, key and value."""


class DataError(InputError):
    """A data file is invalid; the message names the file, row, column and value."""


class ModelError(InputError):
    """A model specification is inconsistent (unknown name, cycle, bad expression)."""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the stack level of the first frame outside spreadjax."""
    import sys

    frame = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("spreadjax"):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level - 1)


def suggest(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    """"; did you mean 'x'?" for the closest of ``allowed``, else the list of them."""
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"


def check_keys(table: dict, allowed: tuple[str, ...] | list[str], where: str, section: str) -> None:
    """Refuse a key of ``table`` not in ``allowed``, naming the file, the section and the closest key."""
    for key in table:
        if key not in allowed:
            place = f"{section} " if section else ""
            raise ConfigError(f"{where}: {place}unknown key {key!r}{suggest(key, allowed)}")


def check_regular_file(path, what: str, error: type[InputError] = InputError) -> None:
    """Refuse a path that exists but is neither a regular file nor a folder: a pipe, socket or device
    (``/dev/zero``) would block or never end when read. A missing path or a folder is left to the
    caller, which names it in its own words."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise error(f"{path}: is not a regular file (a pipe, socket or device); give {what}")
