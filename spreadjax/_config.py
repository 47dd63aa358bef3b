"""TOML configs validated once, at the boundary, into frozen objects.

Every problem raises :class:`ConfigError` with one line naming the file, the key and the value,
and saying how to fix it. Inner code trusts what comes out of :func:`load_config`.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ConfigError, InputError, ModelError, check_keys, check_regular_file, suggest
from ._limits import MAX_SEED

SECTIONS = ("title", "description", "model", "sites", "parameters", "schedules", "network",
            "simulation", "stochastic", "data", "observation", "priors", "calibration", "scenarios",
            "ensemble", "run", "backtest", "compare", "design")
HAZARD = "network_hazard"  # [observation] model of individual-level configs (no stock-and-flow model)
#: A config is a page of TOML: a file far larger is another file given by mistake (read whole, it could fill memory).
MAX_CONFIG_BYTES = 10 * 10**6


@dataclass(frozen=True)
class NetworkConfig:
    """Peer network: ``kind`` dense (weight matrix) or edges (source, target, weight by site)."""

    kind: str
    weight: tuple[tuple[float, ...], ...] = ()
    source: tuple[int, ...] = ()
    target: tuple[int, ...] = ()
    edge_weight: tuple[float, ...] = ()


@dataclass(frozen=True)
class SimulationConfig:
    """Time axis (years), solver and outputs."""

    start: float = 0.0
    end: float = 10.0
    dt: float = 1.0 / 52.0
    output_every: float = 1.0 / 12.0
    solver: str = "rk4"
    rtol: float = 1e-6
    atol: float = 1e-8
    dtype: str = "float32"
    outputs: tuple[str, ...] = ("adopted",)
    start_date: str | None = None

    @property
    def times(self) -> np.ndarray:
        """Output times in years: ``start, start + output_every, ..., end``."""
        n = int(round((self.end - self.start) / self.output_every))
        return self.start + self.output_every * np.arange(n + 1)


@dataclass(frozen=True)
class StochasticConfig:
    enabled: bool = False
    replicates: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """A validated config. ``parameters`` hold per-site tuples or scalars; ``schedules`` map a
    name to ``(times, values)``."""

    path: str
    title: str
    model: str
    model_options: tuple[tuple[str, Any], ...]
    sites: tuple[str, ...]
    parameters: tuple[tuple[str, Any], ...]
    schedules: tuple[tuple[str, Any], ...]
    network: NetworkConfig | None
    simulation: SimulationConfig
    stochastic: StochasticConfig
    raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    calibration: Any = None  # calibrate Calibration when [data] is given; HazardCalibration if is_hazard
    scenarios: tuple = ()  # spreadjax.ensemble Scenario objects (a single "baseline" by default)
    ensemble: Any = None  # spreadjax.ensemble EnsembleSettings
    run: Any = None  # RunSettings for `spreadjax run`
    data: Any = None  # calibrate DataFacts: what [data] fix (populations, times, the file's identity)
    backtest: Any = None  # spreadjax.backtest BacktestSettings for `spreadjax backtest`
    compare: Any = None  # spreadjax.backtest CompareSettings ([compare] with = other configs), or None
    #: the model read from ``[model] file`` (its options then hold the file's path and SHA-256), or None
    model_spec: Any = field(default=None, compare=False, hash=False, repr=False)
    design: Any = None  # spreadjax.design DesignSettings ([design]: the programme to optimise), or None

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def is_hazard(self) -> bool:
        """A network-hazard config: individual adoption times, no stock-and-flow model."""
        return self.model == HAZARD

    def require_model(self, command: str) -> None:
        """Raise a ConfigError if ``command`` needs a stock-and-flow model this config lacks."""
        if self.is_hazard:
            raise ConfigError(
                f"{self.path}: {command} needs a stock-and-flow [model] and aggregate counts; this is a "
                f"network_hazard config (individual adoption times): fit it with "
                f"`spreadjax calibrate {self.path} --out DIR`"
            )

    def build_model(self):
        self.require_model("a simulation")
        if self.model_spec is not None:
            return self.model_spec
        from .models import build_model

        return build_model(self.model, **dict(self.model_options))

    @property
    def model_file(self) -> str | None:
        """The TOML model file of ``[model] file``, or None for a bundled model."""
        return dict(self.model_options).get("file") if self.model_spec is not None else None

    def param_values(self) -> dict[str, Any]:
        """Values to pass to ``CompiledModel.params``: parameters and schedules."""
        values: dict[str, Any] = dict(self.parameters)
        for name, (times, vals) in self.schedules:
            values[name] = {"times": times, "values": vals}
        return values


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    from ._io import read_toml

    raw = read_toml(path, "config", MAX_CONFIG_BYTES)
    return parse_config(raw, str(path))


def parse_config(raw: dict, where: str = "<config>") -> Config:
    """Validate a config mapping (as read from TOML); ``where`` names it in errors."""
    _keys(raw, SECTIONS, where, "")
    title = _typed(raw, "title", str, where, "", "untitled")
    _typed(raw, "description", str, where, "", "")
    from .calibrate._hazard_settings import is_hazard_config, parse_hazard_calibration

    if is_hazard_config(raw):
        return Config(where, title, HAZARD, (), (), (), (), None, SimulationConfig(), StochasticConfig(), raw,
                      parse_hazard_calibration(raw, where))
    data = raw.get("data")
    if "model" not in raw and isinstance(data, dict) and ("individuals" in data or "edges" in data):
        raise ConfigError(f"{where}: [data] individuals and edges are individual adoption data: fit them with "
                          "[observation] model = \"network_hazard\"")
    m = _section(raw, "model", where, required=True)
    _keys(m, ("name", "options", "file"), where, "[model]")
    name = _typed(m, "name", str, where, "[model]", None)
    file = _typed(m, "file", str, where, "[model]", None)
    if file is not None:
        if name is not None or "options" in m:
            raise ConfigError(f"{where}: [model] give either name (a bundled model, with options) or file "
                              "(a TOML model file), not both")
        model, options = _model_file(file, where)
        name = model.name
    else:
        if name is None:
            raise ConfigError(f"{where}: [model] name is missing; e.g. name = \"four_stage\", or "
                              "file = \"my_model.toml\"")
        options = _section(m, "options", where, label="[model.options]")
        try:
            model = _build(name, options)
        except ModelError as exc:
            raise ConfigError(f"{where}: [model]: {exc}") from None
    sites = _sites(raw, model, where)
    n = len(sites)
    parameters = _parameters(raw, model, n, where)
    schedules = _schedules(raw, model, n, where)
    network = _network(raw, sites, where)
    simulation = _simulation(raw, model, where)
    _check_horizon(simulation, n, where)
    stochastic = _stochastic(raw, where)
    from .calibrate._settings import parse_calibration

    calibration = parse_calibration(raw, where, model, dict(parameters))
    if calibration is not None:
        _check_observed_names(model, where, file, calibration.observation)
    data = None
    if calibration is not None:
        from .calibrate._settings import data_facts

        data = data_facts(calibration.data, sites, where)
        parameters = _with_data_population(parameters, model, data, where)
        _check_observed_times(data, simulation, where)
    run = _run_settings(raw, where, simulation)
    if data is not None:
        for label, until in (("[data] fit_until", calibration.data.fit_until), ("[run] fit_until", run.fit_until)):
            if until is not None and until < data.first_time - 1e-9:
                raise ConfigError(f"{where}: {label} = {until:g} is before the first observation in {data.file} "
                                  f"(year {data.first_time:g}): there would be nothing to fit")
    _require_population(parameters, model, where)
    _check_counts(dict(parameters), model, n, where, "[parameters]", stochastic.enabled)
    from .ensemble._settings import parse_ensemble, parse_scenarios

    def scenario_values(params: Any, scheds: Any, label: str):
        section = label.strip("[]")
        return (_parameters({f"{section}.parameters": params}, model, n, where, f"{section}.parameters"),
                _schedules({f"{section}.schedules": scheds}, model, n, where, f"{section}.schedules"))

    scenarios = parse_scenarios(raw, where, model, scenario_values)
    for sc in scenarios:
        changed = dict(sc.parameters)
        if model.population in changed:
            raise ConfigError(f"{where}: [scenarios.{sc.name}] parameters: {model.population} is fixed per site "
                              "(by the data or [parameters]) and cannot change between scenarios")
        _check_counts({**dict(parameters), **changed}, model, n, where, f"[scenarios.{sc.name}]", stochastic.enabled)
    known_outputs = [k for k, v in model.names.items() if v != "parameter"]
    ensemble = parse_ensemble(raw, where, model, scenarios, simulation,
                              calibration is not None and bool(calibration.priors), known_outputs,
                              calibration.observation if calibration is not None else None,
                              data.population if data is not None else None)
    from .backtest._settings import parse_backtest, parse_compare
    from .design._settings import parse_design

    return Config(where, title, name, tuple(sorted(options.items())), sites, parameters, schedules,
                  network, simulation, stochastic, raw, calibration, scenarios, ensemble,
                  run, data, parse_backtest(raw, where),
                  parse_compare(raw, where), model if file is not None else None,
                  design=parse_design(raw, where, model, simulation, n))


def _check_observed_names(model, where: str, file: str | None, observation) -> None:
    """Calibration compares observed cumulative adopters with ``[observation] cumulative`` (by
    default the stock ``ever_adopted``); in counts it needs the model's population parameter (the
    data fix it), as a share (``scale = "fraction"``) the data's populations scale it instead."""
    which = f"model {model.name!r}" + (f" (file {file!r})" if file else "")
    names = model.names
    if observation.cumulative == ("ever_adopted",) and names.get("ever_adopted") != "stock":
        raise ConfigError(
            f"{where}: [data] is fitted to the model's cumulative adopters, the stock 'ever_adopted'; {which} has "
            "none: add a stock ever_adopted with tally = \"<the adoption flow>\" and counted = false, or name the "
            "quantity in [observation] cumulative = \"<stock>\" (with scale = \"fraction\" if it is a share)")
    if model.population is None and observation.scale == "count":
        raise ConfigError(f"{where}: [data] needs the model's population parameter; {which} names none: set "
                          "[model] population = \"<parameter>\" in the model file, or, if "
                          f"[observation] cumulative = {' + '.join(observation.cumulative)!r} is a share of the "
                          "population, set [observation] scale = \"fraction\"")


def _with_data_population(parameters: tuple, model, data, where: str) -> tuple:
    """``parameters`` with the population the data fix; a different one in [parameters] is refused."""
    name = model.population
    if name is None:
        return parameters
    given = dict(parameters).get(name)
    if given is not None:
        ours = np.broadcast_to(np.asarray(given, float), (len(data.population),))
        if not np.array_equal(ours, np.asarray(data.population)):
            raise ConfigError(
                f"{where}: [parameters] {name} = {_show(given)} but the data {data.file} give "
                f"{_show(list(data.population))}; remove {name} from [parameters] (the data fix it)")
    return tuple((k, v) for k, v in parameters if k != name) + ((name, data.population),)


def _show(value: Any) -> str:
    values = value if isinstance(value, (list, tuple)) else [value]
    text = ", ".join(f"{v:g}" for v in values)
    return f"[{text}]" if isinstance(value, (list, tuple)) else text


def _check_observed_times(data, simulation: SimulationConfig, where: str) -> None:
    if data.first_time < simulation.start - 1e-9 or data.last_time > simulation.end + 1e-9:
        raise ConfigError(
            f"{where}: [data] observations run from year {data.first_time:g} to {data.last_time:g} but "
            f"[simulation] covers {simulation.start:g} to {simulation.end:g}; widen [simulation] start/end")


def _require_population(parameters: tuple, model, where: str) -> None:
    name = model.population
    if name is not None and name not in dict(parameters):
        raise ConfigError(
            f"{where}: [parameters] {name} is missing: give the number of organisations at each site "
            f"(e.g. {name} = [40, 120]) or a [data] file with a population column")


def _check_counts(values: dict, model, n: int, where: str, section: str, stochastic: bool) -> None:
    """Counted starting values (``initial_*`` in the population's units) fit in the population, and
    are whole numbers where counts are simulated (stochastic mode)."""
    name = model.population
    if name is None:
        return
    units = {p.name: p.units for p in model.parameters}
    counted = [p.name for p in model.parameters if p.name.startswith("initial_") and p.units == units[name]]
    values = {**{p.name: p.default for p in model.parameters if p.name in counted}, **values}
    per_site = lambda v: np.broadcast_to(np.asarray(v, float), (n,))  # noqa: E731
    pop = per_site(values[name])
    from .calibrate._data import MAX_COUNT

    if np.any(pop > MAX_COUNT):
        i = int(np.flatnonzero(pop > MAX_COUNT)[0])
        raise ConfigError(f"{where}: {section} {name} = {pop[i]:g} at site {i + 1}: too large; at most "
                          f"{MAX_COUNT:,} {units[name]} (counted exactly in float64)")
    for k in ([name] if stochastic else []) + (counted if stochastic else []):
        v = per_site(values[k])
        if np.any(v != np.round(v)):
            i = int(np.flatnonzero(v != np.round(v))[0])
            raise ConfigError(f"{where}: {section} {k} = {v[i]:g} at site {i + 1}: stochastic runs count "
                              f"{units[k]}; give a whole number")
    total = sum((per_site(values[k]) for k in counted), np.zeros(n))
    over = np.flatnonzero(total > pop)
    if over.size:
        i = int(over[0])
        parts = " + ".join(f"{k} {per_site(values[k])[i]:g}" for k in counted)
        raise ConfigError(f"{where}: {section} at site {i + 1}: {parts} exceed(s) {name} {pop[i]:g}; "
                          f"starting counts cannot be more than the {units[name]} there")


@dataclass(frozen=True)
class RunSettings:
    """``[run]``: how `spreadjax run` splits the data (fit on periods up to ``fit_until`` years, forecast
    the rest), how many draws the lever sensitivities use, and assumptions to state in the report."""

    fit_until: float | None = None
    sensitivity_draws: int = 100
    assumptions: tuple[str, ...] = ()


def _run_settings(raw: dict, where: str, simulation: SimulationConfig) -> RunSettings:
    r = _section(raw, "run", where)
    _keys(r, ("fit_until", "sensitivity_draws", "assumptions"), where, "[run]")
    fit_until = r.get("fit_until")
    if fit_until is not None:
        fit_until = _number(fit_until, where, "[run] fit_until")
        if not simulation.start < fit_until < simulation.end:
            raise ConfigError(f"{where}: [run] fit_until = {fit_until:g} must lie inside the simulated years "
                              f"{simulation.start:g} to {simulation.end:g}")
    draws = _typed(r, "sensitivity_draws", int, where, "[run]", 100)
    if draws < 1:
        raise ConfigError(f"{where}: [run] sensitivity_draws = {draws} must be at least 1")
    notes = r.get("assumptions", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ConfigError(f"{where}: [run] assumptions must be a list of sentences")
    return RunSettings(fit_until, draws, tuple(notes))


# -- helpers --------------------------------------------------------------------------------
_keys, _suggest = check_keys, suggest


def _section(raw: dict, key: str, where: str, required: bool = False, label: str | None = None) -> dict:
    label = label or f"[{key}]"
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: the {label} section is missing")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {label} must be a table, got {value!r}")
    return value


def _typed(table: dict, key: str, kind: type | tuple, where: str, section: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: {section} {key} = {value!r}: expected {names}".replace(":  ", ": "))
    return value


def _number(value: Any, where: str, label: str, allow_inf: bool = False) -> float:
    """A finite number (or +inf where ``allow_inf``, for limits whose default is "none")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {label} = {value!r}: expected a number")
    if math.isnan(value):
        raise ConfigError(f"{where}: {label} is nan")
    if math.isinf(value) and not (allow_inf and value > 0):
        raise ConfigError(f"{where}: {label} = {value!r}: expected a finite number")
    return float(value)


def _model_file(file: str, where: str) -> tuple[Any, dict]:
    """The model of ``[model] file`` (relative to the config's folder) and options recording the
    file's path and SHA-256, so that posteriors and ensemble stores notice an edited model."""
    import hashlib

    from .models import load_model_file

    path = Path(file) if Path(file).is_absolute() else Path(where).parent / file
    if not path.exists():
        raise ConfigError(f"{where}: [model] file = {file!r}: no such model file ({path})")
    model = load_model_file(path)  # its errors name the model file, the table and the key
    if model.name == HAZARD:
        raise ConfigError(f"{path}: [model] name = {HAZARD!r} is reserved for individual-level configs; rename it")
    return model, {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _build(name: str, options: dict):
    from .models import build_model

    return build_model(name, **options)


def _sites(raw: dict, model, where: str) -> tuple[str, ...]:
    s = _section(raw, "sites", where)
    _keys(s, ("names", "count"), where, "[sites]")
    names = s.get("names")
    count = s.get("count")
    if names is not None:
        if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
            raise ConfigError(f"{where}: [sites] names must be a non-empty list of strings, got {names!r}")
        for i, x in enumerate(names):
            if x == "all":
                raise ConfigError(f"{where}: [sites] names[{i}] = 'all' is reserved for all sites together; rename it")
            if not x.strip() or x != x.strip():
                raise ConfigError(f"{where}: [sites] names[{i}] = {x!r}: a site name must be non-blank text "
                                  "without leading or trailing spaces")
        if len(set(names)) != len(names):
            dup = next(x for x in names if names.count(x) > 1)
            raise ConfigError(f"{where}: [sites] names: {dup!r} appears twice")
        if count is not None and count != len(names):
            raise ConfigError(f"{where}: [sites] count = {count!r} but {len(names)} names are given")
        return tuple(names)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"{where}: [sites] count = {count!r}: expected a positive integer")
        return tuple(f"site{i + 1}" for i in range(count))
    lengths = {len(v) for v in _section(raw, "parameters", where).values() if isinstance(v, list)}
    n = max(lengths) if lengths else 1
    return tuple(f"site{i + 1}" for i in range(n))


def _parameters(raw: dict, model, n: int, where: str, section: str = "parameters") -> tuple[tuple[str, Any], ...]:
    table = _section(raw, section, where)
    known = {p.name: p for p in model.parameters}
    out = []
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: [{section}] unknown parameter {key!r}{_suggest(key, list(known))}")
        p = known[key]
        label = f"[{section}] {key}"
        unbounded = math.isinf(p.default)  # e.g. capacity: inf means "no limit"
        if isinstance(value, list):
            if len(value) != n:
                raise ConfigError(
                    f"{where}: {label} has {len(value)} values but there are {n} sites; "
                    "give one value per site or a single number"
                )
            nums = tuple(_number(v, where, f"{label}[{i}]", unbounded) for i, v in enumerate(value))
        else:
            nums = (_number(value, where, label, unbounded),)
        for v in nums:
            if p.positive and v <= p.lower:
                raise ConfigError(f"{where}: {label} = {v:g} must be greater than {p.lower:g} ({p.units})")
            if v < p.lower or v > p.upper:
                what = "negative" if v < 0 <= p.lower else "out of range"
                raise ConfigError(
                    f"{where}: {label} = {v:g} is {what}; it must lie in [{p.lower:g}, {p.upper:g}] ({p.units})"
                )
        out.append((key, nums if isinstance(value, list) else nums[0]))
    return tuple(out)


def _schedules(raw: dict, model, n: int, where: str, section: str = "schedules") -> tuple[tuple[str, Any], ...]:
    table = _section(raw, section, where)
    known = {s.name for s in model.schedules}
    out = []
    for key, sched in table.items():
        label = f"[{section}.{key}]"
        if key not in known:
            raise ConfigError(f"{where}: [{section}] unknown schedule {key!r}{_suggest(key, sorted(known))}")
        if not isinstance(sched, dict):
            raise ConfigError(f"{where}: {label} must be a table with times and values")
        _keys(sched, ("times", "values"), where, label)
        times, values = sched.get("times"), sched.get("values")
        if not isinstance(times, list) or not isinstance(values, list) or not times:
            raise ConfigError(f"{where}: {label} needs non-empty lists times = [...] and values = [...]")
        if len(times) != len(values):
            raise ConfigError(f"{where}: {label} has {len(times)} times but {len(values)} values")
        ts = tuple(_number(t, where, f"{label} times[{i}]") for i, t in enumerate(times))
        if any(b < a for a, b in zip(ts, ts[1:])):
            raise ConfigError(f"{where}: {label} times must not decrease, got {list(ts)}")
        vals = []
        for i, v in enumerate(values):
            if isinstance(v, list):
                if len(v) != n:
                    raise ConfigError(f"{where}: {label} values[{i}] has {len(v)} entries for {n} sites")
                vals.append(tuple(_number(x, where, f"{label} values[{i}]") for x in v))
            else:
                vals.append(_number(v, where, f"{label} values[{i}]"))
        spec = next(sc for sc in model.schedules if sc.name == key)
        for i, v in enumerate(vals):
            for x in v if isinstance(v, tuple) else (v,):
                if not spec.lower <= x <= spec.upper:
                    raise ConfigError(
                        f"{where}: {label} values[{i}] = {x:g} is out of range [{spec.lower:g}, {spec.upper:g}]"
                    )
        if any(isinstance(v, tuple) for v in vals):
            vals = [v if isinstance(v, tuple) else (v,) * n for v in vals]
        out.append((key, (ts, tuple(vals))))
    return tuple(out)


def _network(raw: dict, sites: tuple[str, ...], where: str) -> NetworkConfig | None:
    net = _section(raw, "network", where)
    if not net:
        return None
    _keys(net, ("kind", "weights", "edges", "file"), where, "[network]")
    kind = net.get("kind")
    n = len(sites)
    index = {s: i for i, s in enumerate(sites)}
    if kind == "dense":
        w = net.get("weights")
        try:
            arr = np.asarray(w, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: [network] weights must be a {n}x{n} list of numbers") from None
        if arr.shape != (n, n):
            raise ConfigError(f"{where}: [network] weights has shape {arr.shape}; expected ({n}, {n}) for {n} sites")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ConfigError(f"{where}: [network] weights must be finite and >= 0")
        if np.any(np.diag(arr) != 0):
            i = int(np.flatnonzero(np.diag(arr))[0])
            raise ConfigError(f"{where}: [network] weights[{i}][{i}] = {arr[i, i]:g}: a site's influence on itself "
                              f"({sites[i]!r}) is already in the model; set the diagonal to 0")
        return NetworkConfig("dense", weight=tuple(map(tuple, arr.tolist())))
    if kind == "edges":
        edges = net.get("edges")
        file = net.get("file")
        if (edges is None) == (file is None):
            raise ConfigError(f"{where}: [network] kind = \"edges\" needs exactly one of edges = [...] or file = \"...\"")
        rows = _edge_rows(edges, file, where)
        if not rows:
            raise ConfigError(f"{where}: [network] {'edges' if file is None else f'file {file!r}'} holds no edges; "
                              "give at least one, or remove [network] for sites that do not influence each other")
        src, tgt, wts, seen = [], [], [], {}
        for label, row in rows:
            if edges is not None:
                _keys(row, ("source", "target", "weight"), where, f"[network] {label}")
            for end in ("source", "target"):
                if not isinstance(row.get(end), str) or row.get(end) not in index:
                    raise ConfigError(f"{where}: [network] {label}: {end} {row.get(end)!r} is not a site; sites: {', '.join(sites)}")
            pair = (row["source"], row["target"])
            if pair[0] == pair[1]:
                raise ConfigError(f"{where}: [network] {label}: source and target are both {pair[0]!r}: a site's "
                                  "influence on itself is already in the model; remove this edge")
            if pair in seen:
                raise ConfigError(f"{where}: [network] {label}: edge {pair[0]!r} -> {pair[1]!r} is given twice "
                                  f"(also {seen[pair]}); give it once, with the total weight")
            seen[pair] = label
            weight = _number(row.get("weight", 1.0), where, f"[network] {label} weight")
            if weight < 0:
                raise ConfigError(f"{where}: [network] {label}: weight {weight:g} is negative")
            src.append(index[row["source"]])
            tgt.append(index[row["target"]])
            wts.append(weight)
        return NetworkConfig("edges", source=tuple(src), target=tuple(tgt), edge_weight=tuple(wts))
    raise ConfigError(f"{where}: [network] kind = {kind!r}: expected \"dense\" or \"edges\"")


def _edge_rows(edges: Any, file: Any, where: str) -> list[tuple[str, dict]]:
    if edges is not None:
        if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
            raise ConfigError(f"{where}: [network] edges must be a list of tables {{source, target, weight}}")
        return [(f"edges[{i}]", e) for i, e in enumerate(edges)]
    import csv

    if not isinstance(file, str) or not file:
        raise ConfigError(f"{where}: [network] file = {file!r}: expected a path to a CSV file")
    path = Path(file) if Path(file).is_absolute() else Path(where).parent / file
    if not path.exists():
        raise ConfigError(f"{where}: [network] file {str(path)!r} does not exist")
    check_regular_file(path, "a CSV file", ConfigError)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"source", "target"} - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            return [(f"{path} row {i + 2}", _csv_weight(dict(r))) for i, r in enumerate(reader)]
    except IsADirectoryError:
        raise ConfigError(f"{where}: [network] file {str(path)!r} is a directory, expected a CSV file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: [network] file {str(path)!r} is not UTF-8 text; save it as a CSV file") from None
    except (OSError, csv.Error) as exc:
        raise ConfigError(f"{where}: [network] file {str(path)!r} cannot be read ({exc})") from None


def _csv_weight(row: dict) -> dict:
    """CSV cells are text: read a numeric weight as a float (anything else is reported later)."""
    try:
        row["weight"] = float(row["weight"])
    except (KeyError, TypeError, ValueError):
        pass
    return row


def _simulation(raw: dict, model, where: str) -> SimulationConfig:
    s = _section(raw, "simulation", where)
    allowed = ("start", "end", "dt", "steps_per_year", "output_every", "outputs_per_year", "solver",
               "rtol", "atol", "dtype", "outputs", "start_date")
    _keys(s, allowed, where, "[simulation]")
    sec = "[simulation]"
    start = _typed(s, "start", float, where, sec, 0.0)
    end = _typed(s, "end", float, where, sec, 10.0)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ConfigError(f"{where}: [simulation] start = {start:g}, end = {end:g}: both must be finite numbers of years")
    if end <= start:
        raise ConfigError(f"{where}: [simulation] end = {end:g} must be after start = {start:g}")
    dt = _step(s, "dt", "steps_per_year", where, 1 / 52)
    # default: about monthly, as a whole number of steps (1/12 is not a multiple of the default dt 1/52)
    every = _step(s, "output_every", "outputs_per_year", where, dt * max(1, round((1 / 12) / dt)))
    ratio = every / dt
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ConfigError(
            f"{where}: [simulation] outputs every {every:g} years is not a whole number of steps of "
            f"{dt:g} years; make output_every a multiple of dt"
        )
    span = (end - start) / every
    if abs(span - round(span)) > 1e-6:
        raise ConfigError(f"{where}: [simulation] end - start = {end - start:g} is not a multiple of output_every = {every:g}")
    solver = _typed(s, "solver", str, where, sec, "rk4")
    if solver not in ("euler", "rk4", "adaptive"):
        raise ConfigError(f"{where}: [simulation] solver = {solver!r}: expected \"euler\", \"rk4\" or \"adaptive\"")
    dtype = _typed(s, "dtype", str, where, sec, "float32")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"{where}: [simulation] dtype = {dtype!r}: expected \"float32\" or \"float64\"")
    rtol = _typed(s, "rtol", float, where, sec, 1e-6)
    atol = _typed(s, "atol", float, where, sec, 1e-8)
    for key, v in (("rtol", rtol), ("atol", atol)):
        if not 0 < v < (1 if key == "rtol" else math.inf):  # a relative error of 100% checks nothing
            raise ConfigError(f"{where}: [simulation] {key} = {v:g} must be positive and finite"
                              + (", below 1" if key == "rtol" else ""))
    # the flagship's adopted stock; a user model without one saves its stocks
    default = ["adopted"] if model.names.get("adopted") == "stock" else [st.name for st in model.stocks]
    outputs = s.get("outputs", default)
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise ConfigError(f"{where}: [simulation] outputs must be a non-empty list of names, got {outputs!r}")
    valid = [n for n, k in model.names.items() if k != "parameter"]
    for o in outputs:
        if o not in valid:
            raise ConfigError(f"{where}: [simulation] outputs: unknown name {o!r}{_suggest(o, valid)}")
    start_date = s.get("start_date")
    if start_date is not None:
        if isinstance(start_date, _dt.datetime):
            start_date = start_date.date()
        if isinstance(start_date, _dt.date):
            start_date = start_date.isoformat()
        elif not isinstance(start_date, str):
            raise ConfigError(f"{where}: [simulation] start_date = {start_date!r}: expected a date like 2024-04-01")
        try:
            _dt.date.fromisoformat(start_date)
        except ValueError:
            raise ConfigError(f"{where}: [simulation] start_date = {start_date!r}: expected a date like 2024-04-01") from None
    return SimulationConfig(start, end, dt, every, solver, rtol, atol, dtype, tuple(outputs), start_date)


def _check_horizon(s: SimulationConfig, n_sites: int, where: str) -> None:
    """Refuse a time axis no run could hold or finish, before its arrays are built."""
    from ._limits import require_memory, require_steps

    span = s.end - s.start
    require_steps(span / s.dt, f"{where}: [simulation] {span:g} years in steps of {s.dt:g}",
                  "use a larger dt (fewer steps_per_year) or a shorter horizon")
    n_times = round(span / s.output_every) + 1
    one_run = n_times * n_sites * len(s.outputs) * np.dtype(s.dtype).itemsize
    require_memory(3 * one_run, f"{where}: [simulation] {n_times:,} output times x {n_sites} site(s) x "
                   f"{len(s.outputs)} output(s) (one run)", "save fewer outputs_per_year")


def _step(s: dict, key: str, per_year_key: str, where: str, default: float) -> float:
    if key in s and per_year_key in s:
        raise ConfigError(f"{where}: [simulation] give {key} or {per_year_key}, not both")
    if per_year_key in s:
        v = s[per_year_key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{where}: [simulation] {per_year_key} = {v!r}: expected a positive integer")
        return 1.0 / v
    v = _number(s.get(key, default), where, f"[simulation] {key}")
    if not 0 < v < math.inf:
        raise ConfigError(f"{where}: [simulation] {key} = {v:g} must be a positive, finite number of years")
    return v


def _stochastic(raw: dict, where: str) -> StochasticConfig:
    s = _section(raw, "stochastic", where)
    _keys(s, ("enabled", "replicates", "seed"), where, "[stochastic]")
    enabled = _typed(s, "enabled", bool, where, "[stochastic]", False)
    reps = _typed(s, "replicates", int, where, "[stochastic]", 100)
    seed = _typed(s, "seed", int, where, "[stochastic]", 0)
    if reps < 1:
        raise ConfigError(f"{where}: [stochastic] replicates = {reps} must be at least 1")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where}: [stochastic] seed = {seed}: expected a whole number from 0 to {MAX_SEED:,}")
    return StochasticConfig(enabled, reps, seed)


__all__ = ["Config", "ConfigError", "InputError", "load_config", "parse_config"]
