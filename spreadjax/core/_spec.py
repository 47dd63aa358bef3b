"""The declarative stock-and-flow vocabulary: static, hashable model structure.

A :class:`Model` lists parameters, stocks, flows, auxiliaries, higher-order (Erlang) delays,
smooths, time-varying schedules and lookups (graphical functions). Equations are expression strings (see ``_expr``). Nothing here
holds numbers that change between runs except parameter *defaults*; values live in a parameter
PyTree built by :meth:`CompiledModel.params`. Time is in years; rates are per year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .._errors import ModelError
from ._expr import FUNCTIONS, parse

#: Names every equation may read besides the model's own.
RESERVED = frozenset({"t"}) | frozenset(FUNCTIONS)


@dataclass(frozen=True)
class Parameter:
    """A named constant, one value per site. ``lower``/``upper`` bound valid values."""

    name: str
    default: float
    units: str = "1"
    doc: str = ""
    lower: float = float("-inf")
    upper: float = float("inf")
    lever: bool = False  # a named multiplicative enhancer/inhibitor that scenarios change
    positive: bool = False  # must be strictly above ``lower`` (times, populations, capacities)


@dataclass(frozen=True)
class Stock:
    """A level integrated over time. ``counted`` stocks hold people or organisations: their
    flows become binomial draws in stochastic mode, and they sum to the population.

    A ``tally`` stock accumulates everything that passes through the named flow (for example
    cumulative adoptions, which never decrease even when adopters later discontinue). No flow
    may enter or leave it; it is never ``counted``.
    """

    name: str
    init: str | float = 0.0
    units: str = "1"
    doc: str = ""
    counted: bool = True
    tally: str | None = None  # name of a flow this stock accumulates (a cumulative count)


@dataclass(frozen=True)
class Flow:
    """A rate (units of the stocks per year) moving content from ``source`` to ``sink``.

    Either end may be ``None`` (a cloud outside the model) or the name of a stock or delay.
    A flow out of a delay draws on the delay's last stage; a flow into one enters its first.
    """

    name: str
    rate: str | float
    source: str | None = None
    sink: str | None = None
    units: str = "1/yr"
    doc: str = ""


@dataclass(frozen=True)
class Auxiliary:
    """A named intermediate quantity computed from other names at each instant."""

    name: str
    equation: str | float
    units: str = "1"
    doc: str = ""


@dataclass(frozen=True)
class Delay:
    """A material delay of Erlang ``order`` and mean residence ``time`` (years).

    It holds ``order`` internal stages; ``name`` reads its total content and ``<name>_exit`` its
    natural outflow rate ``order * last_stage / time``. ``init`` is the initial total content,
    spread evenly over the stages. Order 0 is not allowed: route the flow straight to the sink.
    """

    name: str
    time: str | float
    order: int = 3
    init: str | float = 0.0
    units: str = "1"
    doc: str = ""
    counted: bool = True


@dataclass(frozen=True)
class Smooth:
    """An information delay: exponential smoothing of ``input`` over ``time`` years, of
    ``order`` (1 = SMOOTH, 3 = SMOOTH3). ``name`` reads the smoothed value."""

    name: str
    input: str | float
    time: str | float
    order: int = 1
    init: str | float | None = None  # initial smoothed value, a parameter expression (required)
    units: str = "1"
    doc: str = ""


@dataclass(frozen=True)
class Schedule:
    """A time-varying input given by breakpoints ``times`` (years) and ``values``.

    ``interpolation`` is ``"step"`` (value holds until the next breakpoint, the
    system-dynamics convention for programme funding) or ``"linear"``. Before the first
    breakpoint the first value holds; after the last, the last value. Times and values are
    run-time parameters (``params[name]["times"]``, ``params[name]["values"]``), so a scenario
    that moves or rescales them never recompiles; their number is structural.
    """

    name: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    interpolation: str = "step"
    units: str = "1"
    doc: str = ""
    lower: float = float("-inf")
    upper: float = float("inf")


#: How a lookup extends beyond its first and last points.
EXTRAPOLATIONS = ("hold", "linear", "step")


@dataclass(frozen=True)
class Lookup:
    """A graphical function: piecewise linear through the points ``(x[i], y[i])``, called in
    equations by name like a function, ``effect_of_load(backlog / capacity)``.

    ``x`` must be strictly increasing. ``extrapolation`` says what happens outside the points:
    ``"hold"`` keeps the end values (Vensim's default and XMILE ``continuous``), ``"linear"``
    extends the end segments (XMILE ``extrapolate``, Vensim ``LOOKUP EXTRAPOLATE``), ``"step"``
    holds each ``y[i]`` from ``x[i]`` until the next point (XMILE ``discrete``). The points are
    structure (static), not run-time parameters. ``units`` are those of ``y``.
    """

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    extrapolation: str = "hold"
    units: str = "1"
    doc: str = ""

    def __post_init__(self) -> None:
        for attr in ("x", "y"):
            value = getattr(self, attr)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, attr, tuple(value))


@dataclass(frozen=True)
class Model:
    """A whole stock-and-flow model. Build with tuples; validated on creation."""

    name: str
    parameters: tuple[Parameter, ...] = ()
    stocks: tuple[Stock, ...] = ()
    flows: tuple[Flow, ...] = ()
    auxiliaries: tuple[Auxiliary, ...] = ()
    delays: tuple[Delay, ...] = ()
    smooths: tuple[Smooth, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    doc: str = ""
    population: str | None = None  # parameter that counted stocks sum to, if any
    attrs: tuple[tuple[str, str], ...] = field(default=())
    lookups: tuple[Lookup, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("parameters", "stocks", "flows", "auxiliaries", "delays", "smooths", "schedules", "lookups"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        _validate(self)

    @property
    def names(self) -> dict[str, str]:
        """Every name the model defines, mapped to its kind."""
        kinds = {}
        for kind in ("parameters", "stocks", "flows", "auxiliaries", "delays", "smooths", "schedules"):
            for el in getattr(self, kind):
                kinds[el.name] = kind[:-1] if kind != "auxiliaries" else "auxiliary"
        for d in self.delays:
            kinds[f"{d.name}_exit"] = "auxiliary"
        return kinds

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ModelError(f"model {self.name!r} has no parameter {name!r}")

    @property
    def lookup_names(self) -> frozenset[str]:
        """Names of the model's lookups (callable in equations, not values)."""
        return frozenset(lk.name for lk in self.lookups)

    def levers(self) -> tuple[str, ...]:
        """Names of the parameters flagged as levers (enhancers and inhibitors)."""
        return tuple(p.name for p in self.parameters if p.lever)


def _validate(model: Model) -> None:
    seen: dict[str, str] = {}
    groups = ("parameters", "stocks", "flows", "auxiliaries", "delays", "smooths", "schedules", "lookups")
    for kind in groups:
        for el in getattr(model, kind):
            where = f"model {model.name!r}: {kind[:-1]} {el.name!r}"
            if not el.name.isidentifier() or el.name.startswith("_"):
                raise ModelError(f"{where}: names must be identifiers not starting with '_'")
            if el.name in RESERVED:
                raise ModelError(f"{where}: {el.name!r} is reserved (time or a function name)")
            if el.name in seen:
                raise ModelError(f"{where}: the name is already used by a {seen[el.name]}")
            seen[el.name] = kind[:-1]
    for d in model.delays:
        if f"{d.name}_exit" in seen:
            raise ModelError(f"model {model.name!r}: {d.name}_exit clashes with the delay {d.name!r}")
        if not isinstance(d.order, int) or d.order < 1:
            raise ModelError(f"model {model.name!r}: delay {d.name!r}: order must be an integer >= 1, got {d.order!r}")
    for s in model.smooths:
        if not isinstance(s.order, int) or s.order < 1:
            raise ModelError(f"model {model.name!r}: smooth {s.name!r}: order must be an integer >= 1, got {s.order!r}")
        if s.init is None:
            raise ModelError(f"model {model.name!r}: smooth {s.name!r}: give an init expression")
    for sc in model.schedules:
        where = f"model {model.name!r}: schedule {sc.name!r}"
        if len(sc.times) != len(sc.values) or not sc.times:
            raise ModelError(f"{where}: times and values must be non-empty and of equal length")
        if any(b < a for a, b in zip(sc.times, sc.times[1:])):
            raise ModelError(f"{where}: times must not decrease, got {list(sc.times)}")
        if sc.interpolation not in ("step", "linear"):
            raise ModelError(f"{where}: interpolation must be 'step' or 'linear', got {sc.interpolation!r}")
    for lk in model.lookups:
        _validate_lookup(model.name, lk)
    containers = {s.name for s in model.stocks} | {d.name for d in model.delays}
    for f in model.flows:
        for end in (f.source, f.sink):
            if end is not None and end not in containers:
                raise ModelError(
                    f"model {model.name!r}: flow {f.name!r}: {end!r} is not a stock or delay"
                )
        if f.source is None and f.sink is None:
            raise ModelError(f"model {model.name!r}: flow {f.name!r} needs a source or a sink")
    flow_names = {f.name for f in model.flows}
    for st in model.stocks:
        if st.tally is None:
            continue
        where = f"model {model.name!r}: stock {st.name!r}"
        if st.tally not in flow_names:
            raise ModelError(f"{where}: tally of {st.tally!r}, which is not a flow")
        if st.counted:
            raise ModelError(f"{where}: a tally stock must have counted=False")
        if any(st.name in (f.source, f.sink) for f in model.flows):
            raise ModelError(f"{where}: no flow may enter or leave a tally stock")
    if model.population is not None and model.population not in {p.name for p in model.parameters}:
        raise ModelError(f"model {model.name!r}: population {model.population!r} is not a parameter")
    # Every name an equation reads must exist; state-only equations are checked in _compile.
    lookups = model.lookup_names
    known = set(seen) - lookups | {f"{d.name}_exit" for d in model.delays} | RESERVED
    params = {p.name for p in model.parameters} | {"t"} | set(FUNCTIONS)
    for kind, attr_names in (
        ("stocks", ("init",)), ("flows", ("rate",)), ("auxiliaries", ("equation",)),
        ("delays", ("time", "init")), ("smooths", ("input", "time", "init")),
    ):
        for el in getattr(model, kind):
            for attr in attr_names:
                expr = parse(getattr(el, attr), f"model {model.name!r}: {kind[:-1]} {el.name!r}.{attr}", lookups)
                misused = expr.names & lookups
                if misused:
                    name = sorted(misused)[0]
                    raise ModelError(
                        f"model {model.name!r}: {kind[:-1]} {el.name!r}.{attr}: {name!r} is a lookup; call it "
                        f"with one argument, e.g. {name}(x), in {expr.source!r}"
                    )
                unknown = expr.names - known
                if unknown:
                    raise ModelError(
                        f"model {model.name!r}: {kind[:-1]} {el.name!r}.{attr}: unknown name(s) "
                        f"{', '.join(sorted(unknown))} in {expr.source!r}"
                    )
                if attr == "init" and expr.names - params:
                    raise ModelError(
                        f"model {model.name!r}: {kind[:-1]} {el.name!r}.init may read only parameters, "
                        f"not {', '.join(sorted(expr.names - params))}"
                    )


def _validate_lookup(model: str, lk: Lookup) -> None:
    where = f"model {model!r}: lookup {lk.name!r}"
    for attr in ("x", "y"):
        value = getattr(lk, attr)
        if not isinstance(value, tuple) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ModelError(f"{where}: {attr} must be a list of numbers, got {value!r}")
        bad = [v for v in value if not math.isfinite(v)]
        if bad:
            raise ModelError(f"{where}: {attr} must be finite numbers, got {bad[0]!r}")
    if not lk.x:
        raise ModelError(f"{where}: give at least one point (x and y are empty)")
    if len(lk.x) != len(lk.y):
        raise ModelError(f"{where}: x has {len(lk.x)} points but y has {len(lk.y)}; give one y per x")
    for i, (a, b) in enumerate(zip(lk.x, lk.x[1:])):
        if not b > a:
            raise ModelError(
                f"{where}: x must be strictly increasing, but x[{i + 1}] = {b:g} follows x[{i}] = {a:g}"
            )
    if lk.extrapolation not in EXTRAPOLATIONS:
        raise ModelError(
            f"{where}: extrapolation must be one of {', '.join(map(repr, EXTRAPOLATIONS))}, "
            f"got {lk.extrapolation!r}"
        )
