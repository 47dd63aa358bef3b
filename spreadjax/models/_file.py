"""User models without Python: one TOML file per :class:`~spreadjax.core.Model`.

The file has a ``[model]`` table (``name``, ``doc``, ``population``, ``[model.attrs]``) and one
table per element, keyed by its name, in the order the model lists them::

    [model]
    name = "clinic_backlog"
    population = "population"
    [parameters.population]      # default, units, doc, lower, upper, lever, positive
    default = 900
    [stocks.waiting]             # init, units, doc, counted, tally
    init = "population"
    [flows.treated]              # rate, source, sink, units, doc
    rate = "waiting * effect_of_load(waiting / capacity) / wait_time"
    source = "waiting"
    [auxiliaries.x]              # equation, units, doc
    [delays.d]                   # time, order, init, units, doc, counted
    [smooths.s]                  # input, time, order, init, units, doc
    [schedules.funding]          # times, values, interpolation, units, doc, lower, upper
    [lookups.effect_of_load]     # x, y, extrapolation, units, doc
    x = [0, 0.5, 1, 2]
    y = [1, 1, 0.8, 0.3]

Units follow the core: time in years, rates per year. Every problem raises one
:class:`~spreadjax._errors.ConfigError` or :class:`~spreadjax._errors.ModelError` naming the file,
the table and the key.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from .._errors import ConfigError, ModelError, check_keys
from .._io import read_toml
from ..core import Auxiliary, Delay, Flow, Lookup, Model, Parameter, Schedule, Smooth, Stock

#: Element tables in file order, with the dataclass each one builds.
KINDS: dict[str, type] = {
    "parameters": Parameter,
    "stocks": Stock,
    "flows": Flow,
    "auxiliaries": Auxiliary,
    "delays": Delay,
    "smooths": Smooth,
    "schedules": Schedule,
    "lookups": Lookup,
}
MODEL_KEYS = ("name", "doc", "population", "attrs")
#: A model file is a page or two of TOML; a far larger file is another file given by mistake.
MAX_MODEL_BYTES = 10 * 10**6

# How each field is read: "expr" (an equation string or a number), "number", "int", "bool", "str",
# "name" (a reference, or absent for a cloud), "numbers" (a list of numbers).
_FIELD_TYPES: dict[str, str] = {
    "default": "number", "lower": "number", "upper": "number", "lever": "bool", "positive": "bool",
    "init": "expr", "counted": "bool", "tally": "name", "rate": "expr", "source": "name", "sink": "name",
    "equation": "expr", "time": "expr", "order": "int", "input": "expr", "times": "numbers",
    "values": "numbers", "interpolation": "str", "x": "numbers", "y": "numbers", "extrapolation": "str",
    "units": "str", "doc": "str",
}


def load_model_file(path: str | Path) -> Model:
    """Read and validate a TOML model file."""
    data = read_toml(path, "model", MAX_MODEL_BYTES)
    return model_from_dict(data, str(path))


def model_from_dict(data: dict, where: str = "<model>") -> Model:
    """Build a :class:`Model` from a mapping laid out as a model file; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of tables, got {type(data).__name__}")
    check_keys(data, ("model", *KINDS), where, "")
    head = data.get("model")
    if not isinstance(head, dict):
        raise ConfigError(f"{where}: [model] is missing; start the file with [model] name = \"...\"")
    check_keys(head, MODEL_KEYS, where, "[model]")
    name = head.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: [model] name = {name!r}: expected the model's name, e.g. name = \"clinic\"")
    doc = _string(head, "doc", where, "[model]", "")
    population = head.get("population")
    if population is not None and not isinstance(population, str):
        raise ConfigError(f"{where}: [model] population = {population!r}: expected a parameter name")
    attrs = head.get("attrs", {})
    if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
        raise ConfigError(f"{where}: [model.attrs] must be a table of strings")
    groups: dict[str, tuple] = {}
    for kind, cls in KINDS.items():
        table = data.get(kind, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {kind} must be tables [{kind}.NAME], got {table!r}")
        groups[kind] = tuple(_element(cls, kind, key, value, where) for key, value in table.items())
    _check_references(groups, population, where)
    try:
        return Model(name, doc=doc, population=population, attrs=tuple(attrs.items()), **groups)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None


def model_to_dict(model: Model) -> dict:
    """The model as a mapping laid out as a model file (fields at their defaults left out)."""
    head: dict[str, Any] = {"name": model.name}
    if model.doc:
        head["doc"] = model.doc
    if model.population is not None:
        head["population"] = model.population
    if model.attrs:
        head["attrs"] = dict(model.attrs)
    out: dict[str, Any] = {"model": head}
    for kind, cls in KINDS.items():
        elements = getattr(model, kind)
        if not elements:
            continue
        table = out[kind] = {}
        for el in elements:
            row = {}
            for f in dataclasses.fields(cls):
                if f.name == "name":
                    continue
                value = getattr(el, f.name)
                if f.default is not dataclasses.MISSING and _same(value, f.default):
                    continue
                if value is None:
                    continue
                row[f.name] = list(value) if isinstance(value, tuple) else value
            table[el.name] = row
    return out


def dump_model_toml(model: Model) -> str:
    """The model as the text of a TOML model file (read back by :func:`load_model_file`)."""
    import tomli_w

    return tomli_w.dumps(model_to_dict(model))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


def _element(cls: type, kind: str, key: str, value: Any, where: str) -> Any:
    section = f"[{kind}.{key}]"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {section} must be a table, got {key} = {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
    check_keys(value, tuple(fields), where, section)
    missing = [n for n, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in value]
    if cls is Smooth and "init" not in value:
        missing.append("init")
    if missing:
        raise ConfigError(f"{where}: {section} {missing[0]} is missing")
    kwargs = {n: _read(v, _FIELD_TYPES[n], where, section, n) for n, v in value.items()}
    return cls(key, **kwargs)


def _read(value: Any, kind: str, where: str, section: str, key: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {section} {key} = {value!r}: expected {expected}")

    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "expr":
        if is_number:
            return float(value)
        if not isinstance(value, str):
            raise bad("an equation (a string) or a number")
        return value
    if kind == "number":
        if not is_number or math.isnan(value):
            raise bad("a number")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind in ("str", "name"):
        if not isinstance(value, str):
            raise bad("a name" if kind == "name" else "a string")
        return value
    if kind == "numbers":
        if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise bad("a list of numbers")
        for i, v in enumerate(value):
            if not math.isfinite(v):
                raise ConfigError(f"{where}: {section} {key}[{i}] = {v!r}: expected a finite number")
        return tuple(float(v) for v in value)
    raise AssertionError(kind)


def _string(table: dict, key: str, where: str, section: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {section} {key} = {value!r}: expected a string")
    return value


def _check_references(groups: dict[str, tuple], population: str | None, where: str) -> None:
    """Name the table and key of a reference to nothing (the core names only the element)."""
    from .._errors import suggest

    containers = [s.name for s in groups["stocks"]] + [d.name for d in groups["delays"]]
    for f in groups["flows"]:
        for end in ("source", "sink"):
            target = getattr(f, end)
            if target is not None and target not in containers:
                raise ModelError(f"{where}: [flows.{f.name}] {end} = {target!r} is not a stock or delay"
                                 f"{suggest(target, containers) if containers else ''}")
    flows = [f.name for f in groups["flows"]]
    for s in groups["stocks"]:
        if s.tally is not None and s.tally not in flows:
            raise ModelError(f"{where}: [stocks.{s.name}] tally = {s.tally!r} is not a flow"
                             f"{suggest(s.tally, flows) if flows else ''}")
    params = [p.name for p in groups["parameters"]]
    if population is not None and population not in params:
        raise ModelError(f"{where}: [model] population = {population!r} is not a parameter"
                         f"{suggest(population, params) if params else ''}")
