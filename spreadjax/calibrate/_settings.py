"""Validation of a config's calibration sections: ``[data]``, ``[observation]``, ``[priors]`` and
``[calibration]``. Called by the top-level config loader; errors name file, key and value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._limits import MAX_SEED
from .._errors import ConfigError, DataError
from ._observe import CUMULATIVE, OBSERVATIONS, SCALES, Observation
from ._priors import Prior, parse_prior

SECTIONS = ("data", "observation", "priors", "calibration")
BUNDLED = {"medical_innovation": "the Medical Innovation monthly adoption counts (four towns)"}
#: NUTS doubles its trajectory up to 2^depth gradient steps per draw: a deeper tree means a badly
#: scaled posterior, not a small limit (and 2^31 steps overflow the sampler's step counter).
MAX_TREE_DEPTH = 20


@dataclass(frozen=True)
class DataSettings:
    counts: str  # a bundled name or a resolved CSV path
    time_unit: str = "year"
    fit_until: float | None = None  # years: periods after it are held out


@dataclass(frozen=True)
class CalibrationSettings:
    method: str = "nuts"
    chains: int = 4
    warmup: int = 500
    samples: int = 500
    seed: int = 0
    target_accept: float = 0.85
    max_tree_depth: int = 8
    svi_steps: int = 3000
    learning_rate: float = 0.01
    draws: int = 1000
    prior_draws: int = 500
    dtype: str = "float64"


@dataclass(frozen=True)
class Calibration:
    data: DataSettings
    observation: Observation
    priors: tuple[Prior, ...]
    settings: CalibrationSettings


def parse_calibration(raw: dict, where: str, model: Any, fixed: dict[str, Any]) -> Calibration | None:
    """The calibration part of a config, or None when it has no ``[data]`` section."""
    present = [s for s in SECTIONS if s in raw]
    if not present:
        return None
    if "data" not in raw:
        raise ConfigError(f"{where}: [{present[0]}] needs a [data] section with the observations to fit")
    data = _data(_table(raw, "data", where), where)
    obs = _observation(_table(raw, "observation", where), where, model)
    priors = _priors(_table(raw, "priors", where), where, model, fixed, _table(raw, "schedules", where))
    settings = _settings(_table(raw, "calibration", where), where)
    return Calibration(data, obs, priors, settings)


def load_count_data(data: DataSettings, sites: tuple[str, ...] | None = None):
    """Load and validate the observed counts named by ``[data]``."""
    from ._data import load_counts, medical_innovation_counts

    if data.counts == "medical_innovation":
        return medical_innovation_counts()
    return load_counts(data.counts, sites=list(sites) if sites else None, time_unit=data.time_unit)


@dataclass(frozen=True)
class DataFacts:
    """What the count data fix for every run made from a config: ``population`` per site (people or
    organisations, in the config's site order), the observed times' range (years) and the data
    file with its SHA-256 (the data's identity in posteriors, stores and provenance)."""

    population: tuple[float, ...]
    first_time: float
    last_time: float
    file: str
    sha256: str


def data_file(data: DataSettings) -> Path:
    """The file behind ``[data] counts`` (a bundled data set's own CSV)."""
    if data.counts == "medical_innovation":
        from ._data import medical_innovation_path

        return medical_innovation_path("adoption_by_month.csv")
    return Path(data.counts)


def data_facts(data: DataSettings, sites: tuple[str, ...], where: str) -> DataFacts:
    """Read ``[data]`` once and check its sites are the config's; raises one-line errors naming both."""
    import hashlib

    import numpy as np

    ds = load_count_data(data, sites)  # a CSV's unknown site is reported at its row
    found = [str(x) for x in ds["site"].values]
    if sorted(found) != sorted(sites):
        file = ds.attrs.get("file", data.counts)
        raise ConfigError(f"{where}: [sites] names {list(sites)} do not match the sites of the data {file} "
                          f"{found}; use the data's site names")
    ds = ds.sel(site=list(sites))
    times = np.asarray(ds["time"].values, dtype=float)
    path = data_file(data)
    return DataFacts(tuple(float(x) for x in ds["population"].values), float(times.min()), float(times.max()),
                     str(path), hashlib.sha256(path.read_bytes()).hexdigest())


# -- sections -------------------------------------------------------------------------------
def _table(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {value!r}")
    return value


def _only(table: dict, allowed: tuple[str, ...], where: str, label: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: {label} unknown key {key!r}; allowed: {', '.join(allowed)}")


def _data(table: dict, where: str) -> DataSettings:
    _only(table, ("counts", "time_unit", "fit_until"), where, "[data]")
    counts = table.get("counts")
    if not isinstance(counts, str) or not counts:
        raise ConfigError(
            f"{where}: [data] counts = {counts!r}: give a CSV path or a bundled data set ({', '.join(BUNDLED)})"
        )
    if counts not in BUNDLED:
        path = Path(counts) if Path(counts).is_absolute() else Path(where).parent / counts
        if not path.exists():
            raise ConfigError(f"{where}: [data] counts = {counts!r}: file {str(path)!r} does not exist")
        counts = str(path)
    unit = table.get("time_unit", "year")
    if unit not in ("year", "month", "week", "day"):
        raise ConfigError(f"{where}: [data] time_unit = {unit!r}: expected year, month, week or day")
    until = table.get("fit_until")
    if until is not None and (isinstance(until, bool) or not isinstance(until, (int, float)) or not until > 0):
        raise ConfigError(f"{where}: [data] fit_until = {until!r}: expected a positive number of years")
    return DataSettings(counts, unit, None if until is None else float(until))


def _observation(table: dict, where: str, model: Any = None) -> Observation:
    _only(table, ("model", "concentration", "cumulative", "scale"), where, "[observation]")
    kind = table.get("model", "binomial")
    if kind not in OBSERVATIONS:
        raise ConfigError(f"{where}: [observation] model = {kind!r}: expected one of {', '.join(OBSERVATIONS)} "
                          "(or network_hazard, for individual adoption times)")
    conc = table.get("concentration")
    if conc is not None and kind == "binomial":
        raise ConfigError(f"{where}: [observation] concentration applies to beta_binomial and negative_binomial only")
    prior = parse_prior("concentration", conc, where, 0.0, math.inf) if conc is not None else None
    scale = table.get("scale", "count")
    if scale not in SCALES:
        raise ConfigError(f"{where}: [observation] scale = {scale!r}: expected \"count\" (the quantity is in "
                          "organisations) or \"fraction\" (a share of each site's population)")
    return Observation(kind, prior, _cumulative(table, where, model), scale)


def _cumulative(table: dict, where: str, model: Any) -> tuple[str, ...]:
    """``[observation] cumulative``: a model stock or auxiliary, or a sum of them (``"a + d"``)."""
    if "cumulative" not in table:
        return CUMULATIVE
    text = table["cumulative"]
    names = tuple(n.strip() for n in text.split("+")) if isinstance(text, str) else ()
    if not names or not all(n.isidentifier() for n in names):
        raise ConfigError(f"{where}: [observation] cumulative = {text!r}: expected the name of a model stock or "
                          "auxiliary, or a sum of names such as \"adopted + discontinued\"")
    kinds = model.names if model is not None else {}
    for n in names:
        kind = kinds.get(n)
        if kind in ("stock", "auxiliary", "delay", "smooth"):
            continue
        what = f"is a {kind}" if kind else "is not a name in the model"
        options = sorted(k for k, v in kinds.items() if v in ("stock", "auxiliary"))
        raise ConfigError(f"{where}: [observation] cumulative = {text!r}: {n!r} {what}; expected a stock or "
                          f"auxiliary of model {getattr(model, 'name', '?')!r} ({', '.join(options)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: [observation] cumulative = {text!r}: a name is repeated")
    return names


def _priors(table: dict, where: str, model: Any, fixed: dict[str, Any], schedules: dict) -> tuple[Prior, ...]:
    if not table:
        raise ConfigError(f"{where}: [priors] is empty: give at least one free parameter a prior")
    known = {p.name: p for p in model.parameters}
    out = []
    for name, spec in table.items():
        sched = next((s for s in model.schedules if s.name == name), None)
        if sched is not None:
            out.append(_schedule_prior(name, spec, where, sched, schedules))
            continue
        if name not in known:
            raise ConfigError(f"{where}: [priors] unknown parameter {name!r}; known: {', '.join(sorted(known))}")
        if name in fixed:
            raise ConfigError(f"{where}: {name} is both fixed in [parameters] and free in [priors]; keep one")
        p = known[name]
        out.append(parse_prior(name, spec, where, p.lower, p.upper))
    return tuple(out)


def _schedule_prior(name: str, spec: Any, where: str, sched: Any, schedules: dict) -> Prior:
    """A prior on a schedule's values: one independent draw per breakpoint of ``[schedules.NAME]``
    (the model's own breakpoints when the config gives none), shared by all sites."""
    import dataclasses

    prior = parse_prior(name, spec, where, sched.lower, sched.upper)
    if prior.pooling != "complete":
        raise ConfigError(f"{where}: [priors.{name}] is a schedule: each breakpoint's value is shared by all "
                          f"sites; remove pooling = {prior.pooling!r} (and hierarchical)")
    given = schedules.get(name)
    times = given.get("times") if isinstance(given, dict) else None
    k = len(times) if isinstance(times, list) and times else len(sched.times)
    return dataclasses.replace(prior, breakpoints=k)


def _settings(table: dict, where: str) -> CalibrationSettings:
    defaults = CalibrationSettings()
    allowed = tuple(CalibrationSettings.__dataclass_fields__)
    _only(table, allowed, where, "[calibration]")
    values: dict[str, Any] = {}
    for key in allowed:
        if key not in table:
            continue
        value, default = table[key], getattr(defaults, key)
        if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{where}: [calibration] {key} = {value!r}: expected a whole number >= 0")
        if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{where}: [calibration] {key} = {value!r}: expected a number")
        values[key] = float(value) if isinstance(default, float) else value
    s = CalibrationSettings(**{**defaults.__dict__, **values})
    if s.method not in ("nuts", "svi", "map", "laplace"):
        raise ConfigError(f"{where}: [calibration] method = {s.method!r}: expected nuts, svi, map or laplace")
    if s.chains < 1 or s.samples < 1 or s.draws < 1:
        raise ConfigError(f"{where}: [calibration] chains, samples and draws must be at least 1")
    if s.seed > MAX_SEED:
        raise ConfigError(f"{where}: [calibration] seed = {s.seed}: expected a whole number from 0 to {MAX_SEED:,}")
    if s.svi_steps < 1:
        raise ConfigError(f"{where}: [calibration] svi_steps = {s.svi_steps}: expected a whole number >= 1")
    if not 1 <= s.max_tree_depth <= MAX_TREE_DEPTH:
        raise ConfigError(f"{where}: [calibration] max_tree_depth = {s.max_tree_depth}: expected 1 to "
                          f"{MAX_TREE_DEPTH} (up to 2^depth gradient steps per draw; 8 to 10 is usual)")
    if not 0 < s.learning_rate < math.inf:
        raise ConfigError(f"{where}: [calibration] learning_rate = {s.learning_rate:g}: expected a positive, "
                          "finite step size (0.01 is usual)")
    if not 0 < s.target_accept < 1:
        raise ConfigError(f"{where}: [calibration] target_accept = {s.target_accept:g} must lie in (0, 1)")
    if s.dtype not in ("float32", "float64"):
        raise ConfigError(f"{where}: [calibration] dtype = {s.dtype!r}: expected float32 or float64")
    return s


__all__ = ["Calibration", "CalibrationSettings", "DataError", "DataFacts", "DataSettings", "data_facts",
           "data_file", "load_count_data",
           "parse_calibration"]
