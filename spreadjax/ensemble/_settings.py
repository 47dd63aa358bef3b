"""Validation of a config's ``[scenarios.NAME]`` and ``[ensemble]`` sections (no dask here)."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._limits import MAX_SEED
from .._errors import ConfigError, check_keys
from ._adopted import ADOPTED, AdoptedSource, adopted_source

SOURCES = ("posterior", "prior", "design", "fixed")
CLUSTERS = ("local", "slurm", "pbs")


@dataclass(frozen=True)
class Scenario:
    """A named change to parameters and schedules; values are scalars or per-site tuples,
    schedules ``(times, values)``."""

    name: str
    description: str = ""
    parameters: tuple[tuple[str, Any], ...] = ()
    schedules: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Target:
    """Reach ``fraction`` adopted (of all organisations) by ``by`` years (or ``date``)."""

    fraction: float
    by: float
    label: str
    date: str | None = None

    def as_dict(self) -> dict:
        """The form :func:`summarize_ensemble` takes: fraction, label and date or years."""
        return {"fraction": self.fraction, "label": self.label, **({"date": self.date} if self.date else {"by": self.by})}


@dataclass(frozen=True)
class ClusterSettings:
    kind: str = "local"
    options: tuple[tuple[str, Any], ...] = ()  # passed to dask-jobqueue's SLURMCluster/PBSCluster
    jobs: int = 1


@dataclass(frozen=True)
class EnsembleSettings:
    draws: int = 100
    source: str = "prior"
    posterior: str | None = None
    design: tuple[tuple[str, tuple[float, float]], ...] = ()
    replicates: int = 1
    seed: int = 0
    chunk_size: int | str = 256  # draws per chunk, or "auto": from free device memory (_plan.chunk_size_for)
    outputs: tuple[str, ...] = ("adopted",)
    baseline: str | None = None
    targets: tuple[Target, ...] = ()
    workers: int | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    adopted: AdoptedSource | None = None  # where the adopted count comes from; None: the model has none


def parse_scenarios(raw: dict, where: str, model: Any, parse_values: Any) -> tuple[Scenario, ...]:
    """``[scenarios.NAME]`` tables; ``parse_values(table, label)`` validates parameters/schedules
    with the same rules as the config's own ``[parameters]`` and ``[schedules]``."""
    table = raw.get("scenarios")
    if table is None:
        return (Scenario("baseline", "the config as written"),)
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: [scenarios] must hold at least one [scenarios.NAME] table")
    out = []
    for name, spec in table.items():
        label = f"[scenarios.{name}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: {label} must be a table")
        for key in spec:
            if key not in ("description", "parameters", "schedules"):
                raise ConfigError(f"{where}: {label} unknown key {key!r}; allowed: description, parameters, schedules")
        params, schedules = parse_values(spec.get("parameters", {}), spec.get("schedules", {}), label)
        out.append(Scenario(name, str(spec.get("description", "")), params, schedules))
    return tuple(out)


def parse_ensemble(raw: dict, where: str, model: Any, scenarios: tuple[Scenario, ...], simulation: Any,
                   has_priors: bool, outputs_known: list[str], observation: Any = None,
                   populations: Any = None) -> EnsembleSettings:
    """``[ensemble]``; ``observation`` (a calibrate ``Observation``) and the data's ``populations``
    say where the adopted count comes from (:func:`adopted_source`)."""
    table = raw.get("ensemble", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [ensemble] must be a table")
    check_keys(table, tuple(EnsembleSettings.__dataclass_fields__), where, "[ensemble]")
    ints = {}
    for key, lo in (("draws", 1), ("replicates", 1), ("seed", 0), ("chunk_size", 1)):
        v = table.get(key, getattr(EnsembleSettings, key))
        if key == "chunk_size" and v == "auto":
            ints[key] = v
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            also = ' or "auto"' if key == "chunk_size" else ""
            raise ConfigError(f"{where}: [ensemble] {key} = {v!r}: expected a whole number >= {lo}{also}")
        ints[key] = v
    if ints["seed"] > MAX_SEED:
        raise ConfigError(f"{where}: [ensemble] seed = {ints['seed']}: expected a whole number from 0 to {MAX_SEED:,}")
    source = table.get("source", "posterior" if has_priors else "fixed")
    if source not in SOURCES:
        raise ConfigError(f"{where}: [ensemble] source = {source!r}: expected one of {', '.join(SOURCES)}")
    if source == "prior" and not has_priors:
        raise ConfigError(f"{where}: [ensemble] source = \"prior\" needs a [priors] section")
    posterior = table.get("posterior")
    if posterior is not None:
        if not isinstance(posterior, str):
            raise ConfigError(f"{where}: [ensemble] posterior = {posterior!r}: expected a file path")
        if source != "posterior":
            raise ConfigError(f"{where}: [ensemble] posterior = {posterior!r} but source = {source!r} draws no "
                              "posterior; set source = \"posterior\" or remove posterior")
        posterior = str(Path(posterior) if Path(posterior).is_absolute() else Path(where).parent / posterior)
    design = _design(table.get("design"), where, model, source)
    try:
        adopted = adopted_source(model, observation, populations) if hasattr(model, "names") else AdoptedSource()
    except ConfigError as exc:
        if "ensemble" in raw:
            raise ConfigError(f"{where}: [ensemble]: {exc}") from None
        adopted = None  # a user model without an adopted count: simulate and check work, ensembles refuse
    outputs = table.get("outputs", list(adopted.outputs) if adopted else outputs_known[:1])
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise ConfigError(f"{where}: [ensemble] outputs must be a non-empty list of names")
    for o in outputs:
        if o not in outputs_known:
            raise ConfigError(f"{where}: [ensemble] outputs: unknown name {o!r}")
    for name in adopted.outputs if adopted else ():
        if name not in outputs:
            raise ConfigError(f"{where}: [ensemble] outputs must include {name!r} (the summaries use it)")
    if adopted is not None and adopted.derived and ADOPTED in outputs:
        raise ConfigError(f"{where}: [ensemble] outputs: {ADOPTED!r} is the store's adopted count, here "
                          f"{adopted.describe()}; leave it out")
    names = [s.name for s in scenarios]
    baseline = table.get("baseline", names[0])
    if baseline not in names:
        raise ConfigError(f"{where}: [ensemble] baseline = {baseline!r} is not a scenario; scenarios: {', '.join(names)}")
    targets = _targets(table.get("targets", []), where, simulation.start_date)
    for t in targets:
        if not simulation.start <= t.by <= simulation.end + 1e-9:
            raise ConfigError(f"{where}: [ensemble] target '{t.label}' falls outside the simulated years "
                              f"{simulation.start:g} to {simulation.end:g}; extend [simulation] end")
    workers = table.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"{where}: [ensemble] workers = {workers!r}: expected a whole number >= 1")
    cluster = _cluster(table.get("cluster", {}), where)
    return EnsembleSettings(ints["draws"], source, posterior, design, ints["replicates"], ints["seed"],
                            ints["chunk_size"], tuple(outputs), baseline, targets, workers, cluster, adopted)


def _design(design: Any, where: str, model: Any, source: str) -> tuple:
    if source != "design":
        if design is not None:
            raise ConfigError(f"{where}: [ensemble] design is used only with source = \"design\"")
        return ()
    if not isinstance(design, dict) or not design:
        raise ConfigError(f"{where}: [ensemble] source = \"design\" needs design = {{ NAME = [low, high], ... }}")
    known = {p.name: p for p in model.parameters}
    out = []
    for name, bounds in design.items():
        if name not in known:
            raise ConfigError(f"{where}: [ensemble] design: unknown parameter {name!r}")
        ok = isinstance(bounds, list) and len(bounds) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        if not ok or not bounds[0] < bounds[1]:
            raise ConfigError(f"{where}: [ensemble] design {name} = {bounds!r}: expected [low, high] with low < high")
        p = known[name]
        if bounds[0] < p.lower or bounds[1] > p.upper:
            raise ConfigError(f"{where}: [ensemble] design {name} = {bounds!r} leaves the valid range "
                              f"[{p.lower:g}, {p.upper:g}]")
        out.append((name, (float(bounds[0]), float(bounds[1]))))
    return tuple(out)


def _targets(targets: Any, where: str, start_date: str | None) -> tuple[Target, ...]:
    if not isinstance(targets, list):
        raise ConfigError(f"{where}: [ensemble] targets must be a list of {{ fraction = 0.5, date = \"2028-03-31\" }}")
    out = []
    for i, t in enumerate(targets):
        label = f"[ensemble] targets[{i}]"
        if not isinstance(t, dict) or "fraction" not in t or ("by" in t) == ("date" in t):
            raise ConfigError(f"{where}: {label} needs fraction and one of by (years) or date")
        for key in t:
            if key not in ("fraction", "by", "date", "label"):
                raise ConfigError(f"{where}: {label} unknown key {key!r}; allowed: fraction, by, date, label")
        own = t.get("label")
        if own is not None and (not isinstance(own, str) or not own.strip()):
            raise ConfigError(f"{where}: {label} label = {own!r}: expected a short text")
        frac = t["fraction"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ConfigError(f"{where}: {label} fraction = {frac!r}: expected a number in (0, 1]")
        if "date" in t:
            if start_date is None:
                raise ConfigError(f"{where}: {label} uses a date but [simulation] has no start_date")
            try:
                date = _dt.date.fromisoformat(str(t["date"]))
            except ValueError:
                raise ConfigError(f"{where}: {label} date = {t['date']!r}: expected a date like 2028-03-31") from None
            by = (date - _dt.date.fromisoformat(start_date)).days / 365.25
            text = own or f"{frac:.0%} adopted by {date.isoformat()}"
            out.append(Target(float(frac), float(by), text, date.isoformat()))
            continue
        else:
            by = t["by"]
            if isinstance(by, bool) or not isinstance(by, (int, float)):
                raise ConfigError(f"{where}: {label} by = {by!r}: expected a number of years")
            text = own or f"{frac:.0%} adopted by year {by:g}"
        out.append(Target(float(frac), float(by), text))
    return tuple(out)


def _cluster(table: Any, where: str) -> ClusterSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [ensemble.cluster] must be a table")
    kind = table.get("kind", "local")
    if kind not in CLUSTERS:
        raise ConfigError(f"{where}: [ensemble.cluster] kind = {kind!r}: expected one of {', '.join(CLUSTERS)}")
    jobs = table.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{where}: [ensemble.cluster] jobs = {jobs!r}: expected a whole number >= 1")
    options = tuple(sorted((k, v) for k, v in table.items() if k not in ("kind", "jobs")))
    if kind == "local" and options:
        raise ConfigError(f"{where}: [ensemble.cluster] options {', '.join(k for k, _ in options)} apply to slurm/pbs only")
    return ClusterSettings(kind, options, jobs)
