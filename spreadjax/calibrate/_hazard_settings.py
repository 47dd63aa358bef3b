"""Validation of a network-hazard config: individual adoption times and networks in ``[data]``,
``[observation] model = "network_hazard"``, priors on the hazard's coefficient groups and NUTS
settings. Called by the top-level config loader; errors name file, key and value.

A hazard config has no stock-and-flow ``[model]``: the discrete-time hazard of
:mod:`spreadjax.calibrate._hazard` is the model. Data files are checked to exist here and read
(and checked row by row) by :func:`spreadjax.calibrate._hazard_job.load_hazard_inputs`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._data import TIME_UNITS
from ._hazard import BASELINES, LINKS, PRIOR_GROUPS
from ._priors import Prior, parse_prior
from ._settings import CalibrationSettings, _only, _settings, _table

HAZARD = "network_hazard"
SECTIONS = ("title", "description", "data", "observation", "priors", "calibration")
DATA_KEYS = ("individuals", "edges", "time_unit", "period_length", "end_time")
OBSERVATION_KEYS = ("model", "link", "baseline", "base_period", "lag", "covariates", "networks", "ties")
CALIBRATION_KEYS = ("method", "chains", "warmup", "samples", "seed", "target_accept", "max_tree_depth",
                    "prior_draws", "dtype")
BUNDLED = {"medical_innovation": "Medical Innovation: 125 physicians, advice/discussion/friendship networks"}
#: Columns of an individuals file that describe the outcome, not a covariate.
RESERVED = ("id", "site", "adoption_time", "end_time")
TIES = ("binary", "weighted")
SQUARE = "^2"
DEFAULT_TARGET_ACCEPT = 0.9  # fit_network_hazard's default


@dataclass(frozen=True)
class EdgeSource:
    """One edge file: ``path`` (a bundled name or a resolved CSV path) and, in the table form
    ``[data.edges] NAME = "file.csv"``, the ``network`` its edges belong to."""

    path: str
    network: str | None = None


@dataclass(frozen=True)
class HazardDataSettings:
    individuals: str  # a bundled name or a resolved CSV path
    edges: tuple[EdgeSource, ...]
    time_unit: str = "year"  # unit of the numbers in the files and of period_length, end_time
    period_length: float = 1.0  # in time_unit
    end_time: float | None = None  # in time_unit: end of observation where the file gives none


@dataclass(frozen=True)
class HazardObservation:
    link: str = "logit"
    baseline: str = "period"
    base_period: int | None = None  # period number (1 = the first) whose effect is 0
    lag: int = 1  # periods between the contacts' adoption and the exposure it counts in
    covariates: tuple[str, ...] = ()  # columns of the individuals file; "NAME^2" squares NAME
    networks: tuple[str, ...] | None = None  # None: every network in the edge files
    ties: str = "binary"  # binary: a tie counts 1 (netdiffuseR's valued=FALSE); weighted: its weight


@dataclass(frozen=True)
class HazardCalibration:
    """The calibration part of a network-hazard config; ``where`` is the config (for messages)."""

    where: str
    data: HazardDataSettings
    observation: HazardObservation
    priors: tuple[Prior, ...]
    settings: CalibrationSettings

    kind = HAZARD

    def prior_map(self) -> dict[str, Prior]:
        """Group name (``alpha``, ``gamma``, ``beta_exposure``, ``beta_cov``) -> prior."""
        return {p.name: p for p in self.priors}


def is_hazard_config(raw: dict) -> bool:
    """Whether a raw config asks for the network hazard (``[observation] model``)."""
    obs = raw.get("observation")
    return isinstance(obs, dict) and obs.get("model") == HAZARD


def parse_hazard_calibration(raw: dict, where: str) -> HazardCalibration:
    """Validate a network-hazard config mapping (its top-level keys are known config sections)."""
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(
                f"{where}: [{key}] does not apply to a network_hazard config (individual adoption times "
                f"are fitted by the hazard, not simulated); remove it. Sections: {', '.join(SECTIONS)}"
            )
    if "data" not in raw:
        raise ConfigError(f"{where}: the [data] section is missing; e.g. individuals = \"medical_innovation\"")
    data = _data(_table(raw, "data", where), where)
    obs = _observation(_table(raw, "observation", where), where)
    priors = _priors(_table(raw, "priors", where), where, obs)
    settings = _calibration(_table(raw, "calibration", where), where)
    return HazardCalibration(where, data, obs, priors, settings)


# -- sections -------------------------------------------------------------------------------
def _unknown(table: dict, allowed: tuple[str, ...], where: str, label: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise ConfigError(f"{where}: {label} unknown key {key!r}; {hint}")


def _file(value: Any, where: str, label: str, bundled_ok: bool = True) -> str:
    """A bundled name, or a CSV path (relative to the config) that exists, resolved."""
    if not isinstance(value, str) or not value:
        names = f" or a bundled data set ({', '.join(BUNDLED)})" if bundled_ok else ""
        raise ConfigError(f"{where}: {label} = {value!r}: give a CSV path{names}")
    if value in BUNDLED:
        if bundled_ok:
            return value
        raise ConfigError(f"{where}: {label} = {value!r}: the table form maps a network name to a CSV path; "
                          f"for the bundled networks write edges = [{value!r}]")
    path = Path(value) if Path(value).is_absolute() else Path(where).parent / value
    if not path.is_file():
        raise ConfigError(f"{where}: {label} = {value!r}: file {str(path)!r} does not exist")
    return str(path)


def _positive(table: dict, key: str, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: [data] {key} = {value!r}: expected a positive number (in time_unit)")
    return float(value)


def _data(table: dict, where: str) -> HazardDataSettings:
    if "counts" in table:
        raise ConfigError(f"{where}: [data] counts: a network_hazard config fits individual adoption times; "
                          "give individuals = \"...\" and edges = [...] instead")
    _unknown(table, DATA_KEYS, where, "[data]")
    if "individuals" not in table:
        raise ConfigError(f"{where}: [data] individuals is missing: a CSV path (id, site, adoption_time) "
                          f"or a bundled data set ({', '.join(BUNDLED)})")
    individuals = _file(table["individuals"], where, "[data] individuals")
    edges = _edges(table.get("edges"), where)
    unit = table.get("time_unit", "month" if individuals in BUNDLED else "year")
    if unit not in TIME_UNITS:
        raise ConfigError(f"{where}: [data] time_unit = {unit!r}: expected {', '.join(TIME_UNITS)}")
    length = _positive(table, "period_length", where, 1.0)
    end = _positive(table, "end_time", where, None)
    if end is not None and end < length:
        raise ConfigError(f"{where}: [data] end_time = {end:g} is shorter than one period "
                          f"(period_length = {length:g} {unit}s)")
    return HazardDataSettings(individuals, edges, unit, length, end)


def _edges(value: Any, where: str) -> tuple[EdgeSource, ...]:
    if value is None:
        raise ConfigError(f"{where}: [data] edges is missing: a list of edge CSV paths (source, target, optional "
                          f"weight, network) or of bundled data sets ({', '.join(BUNDLED)})")
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        if not value:
            raise ConfigError(f"{where}: [data.edges] is empty: map each network name to a CSV path")
        return tuple(EdgeSource(_file(p, where, f"[data.edges] {name}", bundled_ok=False), str(name))
                     for name, p in value.items())
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: [data] edges = {value!r}: expected a non-empty list of CSV paths, "
                          "or a table of network name = CSV path")
    out = [EdgeSource(_file(p, where, f"[data] edges[{i}]")) for i, p in enumerate(value)]
    seen = set()
    for i, e in enumerate(out):
        if e.path in seen:
            raise ConfigError(f"{where}: [data] edges[{i}] = {value[i]!r} is listed twice")
        seen.add(e.path)
    return tuple(out)


def _names(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: [observation] {key} = {value!r}: expected a list of names")
    for i, v in enumerate(value):
        if v in value[:i]:
            raise ConfigError(f"{where}: [observation] {key}: {v!r} is listed twice")
    return tuple(value)


def _choice(table: dict, key: str, options: tuple[str, ...], default: str, where: str) -> str:
    value = table.get(key, default)
    if value not in options:
        raise ConfigError(f"{where}: [observation] {key} = {value!r}: expected one of {', '.join(options)}")
    return value


def _observation(table: dict, where: str) -> HazardObservation:
    _unknown(table, OBSERVATION_KEYS, where, "[observation]")
    link = _choice(table, "link", LINKS, "logit", where)
    baseline = _choice(table, "baseline", BASELINES, "period", where)
    ties = _choice(table, "ties", TIES, "binary", where)
    lag = table.get("lag", 1)
    if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
        raise ConfigError(f"{where}: [observation] lag = {lag!r}: expected a whole number of periods >= 0")
    base = table.get("base_period")
    if base is not None:
        if isinstance(base, bool) or not isinstance(base, int) or base < 1:
            raise ConfigError(f"{where}: [observation] base_period = {base!r}: expected a period number >= 1")
        if baseline != "period":
            raise ConfigError(f"{where}: [observation] base_period = {base} applies only with baseline = \"period\"")
    covariates = _names(table.get("covariates", []), where, "covariates")
    for name in covariates:
        column = name.removesuffix(SQUARE)
        if not column or column in RESERVED:
            raise ConfigError(f"{where}: [observation] covariates: {name!r} is not a covariate column "
                              f"({', '.join(RESERVED)} describe the adoption itself)")
    networks = _names(table["networks"], where, "networks") if "networks" in table else None
    if networks == ():
        raise ConfigError(f"{where}: [observation] networks = []: list at least one network, or leave the key "
                          "out to use them all")
    return HazardObservation(link, baseline, base, lag, covariates, networks, ties)


def _priors(table: dict, where: str, obs: HazardObservation) -> tuple[Prior, ...]:
    out = []
    for name, spec in table.items():
        if name not in PRIOR_GROUPS:
            close = difflib.get_close_matches(str(name), PRIOR_GROUPS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the hazard's groups are {', '.join(PRIOR_GROUPS)}"
            raise ConfigError(f"{where}: [priors] unknown coefficient group {name!r}; {hint}")
        if name == "beta_cov" and not obs.covariates:
            raise ConfigError(f"{where}: [priors.beta_cov] is given but [observation] covariates is empty")
        if name == "gamma" and obs.baseline != "period":
            raise ConfigError(f"{where}: [priors.gamma] is given but baseline = {obs.baseline!r} has no period effects")
        prior = parse_prior(name, spec, where, -math.inf, math.inf)
        if prior.dist != "Normal":
            raise ConfigError(f"{where}: [priors.{name}] dist = {prior.dist!r}: hazard coefficients are on the "
                              f"{obs.link} scale, the whole real line; use dist = \"Normal\"")
        if prior.per_site:
            raise ConfigError(f"{where}: [priors.{name}] pooling = {prior.pooling!r}: not supported by the network "
                              "hazard (site intercepts are separate coefficients); remove it")
        out.append(prior)
    return tuple(out)


def _calibration(table: dict, where: str) -> CalibrationSettings:
    _only(table, CALIBRATION_KEYS, where, "[calibration]")
    method = table.get("method", "nuts")
    if method != "nuts":
        raise ConfigError(f"{where}: [calibration] method = {method!r}: the network hazard is fitted by NUTS only; "
                          "use method = \"nuts\"")
    settings = _settings(table, where)
    if "target_accept" not in table:
        settings = dataclasses.replace(settings, target_accept=DEFAULT_TARGET_ACCEPT)
    return settings


__all__ = ["HAZARD", "EdgeSource", "HazardCalibration", "HazardDataSettings", "HazardObservation",
           "is_hazard_config", "parse_hazard_calibration"]
