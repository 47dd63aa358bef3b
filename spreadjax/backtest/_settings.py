"""``[backtest]``: rolling-origin evaluation settings, validated against the data's times.

- ``origins``: how many forecast origins (a whole number, default 4, spread evenly over the
  observation times between ``min_train`` of them and the last but one), or a list of
  observation times in years;
- ``min_train``: the share of the observation times the earliest default origin has seen (0.4);
- ``horizon``: years ahead scored from each origin (default: every later observation);
- ``draws``: posterior draws per forecast (400); ``bootstrap``: refits of the Bass reference (100);
- ``seed``: of the forecast noise and the bootstrap (0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._limits import MAX_SEED
from .._errors import ConfigError, DataError, check_keys


#: Bass refits per site and origin: the reference's bands settle long before this, and each refit is a
#: least-squares fit in a Python loop (10^12 of them would run for ever and fill memory).
MAX_BOOTSTRAP = 10_000


@dataclass(frozen=True)
class BacktestSettings:
    origins: int | tuple[float, ...] = 4
    min_train: float = 0.4
    horizon: float | None = None
    draws: int = 400
    bootstrap: int = 100
    seed: int = 0

    def origin_indices(self, times: np.ndarray) -> list[int]:
        """Indices into the observation ``times`` (years) of the origins: each has at least one
        observation after it."""
        times = np.asarray(times, float)
        n = len(times)
        if n < 3:
            raise DataError(f"a backtest needs at least 3 observation times; the data have {n}")
        if isinstance(self.origins, tuple):
            idx = []
            for t in self.origins:
                hit = np.flatnonzero(np.isclose(times, t, atol=1e-9))
                if not hit.size or hit[0] >= n - 1:
                    raise DataError(f"[backtest] origins: {t:g} is not an observation time before the last "
                                    f"({times[0]:g} to {times[-2]:g} years)")
                idx.append(int(hit[0]))
            return sorted(set(idx))
        first = max(1, math.ceil(self.min_train * n) - 1)
        last = n - 2
        if first > last:
            raise DataError(f"[backtest] min_train = {self.min_train:g} leaves no observation to forecast "
                            f"({n} observation times)")
        return sorted({int(round(i)) for i in np.linspace(first, last, min(self.origins, last - first + 1))})

    def held_out(self, times: np.ndarray, k: int) -> np.ndarray:
        """Indices of the observations scored from origin ``k``."""
        times = np.asarray(times, float)
        later = np.arange(k + 1, len(times))
        if self.horizon is None:
            return later
        return later[times[later] <= times[k] + self.horizon + 1e-9]


def parse_backtest(raw: dict, where: str) -> BacktestSettings:
    """``[backtest]`` of a config (defaults when absent)."""
    table = raw.get("backtest", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [backtest] must be a table")
    check_keys(table, tuple(BacktestSettings.__dataclass_fields__), where, "[backtest]")
    d = BacktestSettings()
    origins = table.get("origins", d.origins)
    if isinstance(origins, list):
        if not origins or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
                                  for t in origins):
            raise ConfigError(f"{where}: [backtest] origins = {origins!r}: expected observation times in years")
        origins = tuple(float(t) for t in origins)
        twice = sorted({t for t in origins if origins.count(t) > 1})
        if twice:
            raise ConfigError(f"{where}: [backtest] origins: {twice[0]:g} is given twice; give each origin once")
    elif isinstance(origins, bool) or not isinstance(origins, int) or origins < 1:
        raise ConfigError(f"{where}: [backtest] origins = {origins!r}: expected a whole number >= 1 or a list of years")
    ints = {}
    for key, lo in (("draws", 10), ("bootstrap", 10), ("seed", 0)):
        v = table.get(key, getattr(d, key))
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"{where}: [backtest] {key} = {v!r}: expected a whole number >= {lo}")
        ints[key] = v
    if ints["seed"] > MAX_SEED:
        raise ConfigError(f"{where}: [backtest] seed = {ints['seed']}: expected a whole number from 0 to {MAX_SEED:,}")
    if ints["bootstrap"] > MAX_BOOTSTRAP:
        raise ConfigError(f"{where}: [backtest] bootstrap = {ints['bootstrap']:,}: at most {MAX_BOOTSTRAP:,} refits "
                          "(each is a least-squares fit per site and origin, held in memory; 100 to 1,000 is plenty)")
    share = table.get("min_train", d.min_train)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share < 1.0:
        raise ConfigError(f"{where}: [backtest] min_train = {share!r}: expected a share between 0 and 1")
    horizon = table.get("horizon")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, (int, float))
                                or not math.isfinite(horizon) or horizon <= 0):
        raise ConfigError(f"{where}: [backtest] horizon = {horizon!r}: expected years > 0")
    return BacktestSettings(origins, float(share), None if horizon is None else float(horizon), **ints)


@dataclass(frozen=True)
class CompareSettings:
    """``[compare]``: ``with`` the other configs (paths, resolved against this config's folder)
    whose structures `spreadjax run --backtest` ranks beside this one."""

    with_: tuple[str, ...] = ()


def parse_compare(raw: dict, where: str) -> CompareSettings | None:
    """``[compare]`` of a config, or None when absent; each file named must exist."""
    from pathlib import Path

    if "compare" not in raw:
        return None
    table = raw["compare"]
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [compare] must be a table")
    check_keys(table, ("with",), where, "[compare]")
    others = table.get("with", [])
    if (not isinstance(others, list) or not others
            or not all(isinstance(p, str) and p.strip() for p in others)):
        raise ConfigError(f"{where}: [compare] with = {others!r}: expected a list of config files, "
                          "e.g. with = [\"other.toml\"]")
    base = Path(where).parent
    paths = []
    for name in others:
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.exists():
            raise ConfigError(f"{where}: [compare] with: {path}: no such config file")
        if not path.is_file():
            raise ConfigError(f"{where}: [compare] with: {path}: is not a file, expected a TOML config")
        paths.append(str(path))
    return CompareSettings(tuple(paths))
