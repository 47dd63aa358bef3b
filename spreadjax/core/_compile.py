"""Compile a :class:`Model` into pure functions of ``(t, y, params, network)``.

The state ``y`` is one array of shape ``(state, site)``: the model's stocks, then the internal
stages of each delay and smooth. Everything structural (names, the order of evaluation, which
flow leaves and enters which state) is resolved here once, in Python; the returned functions only
do array arithmetic, so they trace once under ``jit`` and run under ``vmap`` and ``grad``. The
same functions evaluate with ``numpy`` (``xp=numpy``) for reference implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


from .._errors import ModelError
from ._expr import Expression, functions, lookup_function, parse, reached
from ._spec import Model

Params = dict[str, Any]  # name -> (site,) array; schedules -> {"times": (k,), "values": (k, site)}


@dataclass(frozen=True)
class State:
    """One row of the state array."""

    name: str  # stock name, or "delay[k]" / "smooth[k]" for internal stages (k from 1)
    counted: bool  # holds people or organisations (integer in stochastic mode)
    owner: str  # the stock, delay or smooth the row belongs to


@dataclass(frozen=True)
class FlowLink:
    """A lowered flow: its rate's name in the evaluation and its source/sink state rows."""

    name: str
    source: int | None
    sink: int | None
    tally: bool = False  # adds what the named flow moves to ``sink`` (a tally stock)


class CompiledModel:
    """A model's structure resolved into evaluation order and state layout.

    Hashable and comparable by its :class:`Model`, so it can be a static ``jit`` argument.
    """

    def __init__(self, model: Model):
        self.model = model
        lookups = model.lookup_names
        states: list[State] = []
        inits: list[tuple[int, Any, float]] = []  # (row, init expression, divisor)
        for s in model.stocks:
            inits.append((len(states), parse(s.init, f"stock {s.name!r}.init", lookups), 1.0))
            states.append(State(s.name, s.counted, s.name))
        for d in model.delays:
            expr = parse(d.init, f"delay {d.name!r}.init", lookups)
            for k in range(1, d.order + 1):
                inits.append((len(states), expr, float(d.order)))
                states.append(State(f"{d.name}[{k}]", d.counted, d.name))
        for sm in model.smooths:
            expr = parse(sm.init, f"smooth {sm.name!r}.init", lookups)
            for k in range(1, sm.order + 1):
                inits.append((len(states), expr, 1.0))
                states.append(State(f"{sm.name}[{k}]", False, sm.name))
        self.states: tuple[State, ...] = tuple(states)
        self._inits = tuple(inits)
        row = {s.name: i for i, s in enumerate(states)}
        first = {d.name: row[f"{d.name}[1]"] for d in model.delays}
        last = {d.name: row[f"{d.name}[{d.order}]"] for d in model.delays}

        # Derived quantities: name -> (reads, fn(env, fns) -> array). Internal names start with "_".
        derived: dict[str, tuple[frozenset[str], Callable]] = {}

        def add_expr(name: str, source: Any, where: str) -> None:
            expr = parse(source, where, lookups)
            derived[name] = (expr.names, expr)

        for sc in model.schedules:
            derived[sc.name] = (frozenset({"t"}), _schedule_fn(sc.name, sc.interpolation))
        for a in model.auxiliaries:
            add_expr(a.name, a.equation, f"auxiliary {a.name!r}")
        flows: list[FlowLink] = []
        for f in model.flows:
            add_expr(f.name, f.rate, f"flow {f.name!r}")
            src = None if f.source is None else last.get(f.source, row.get(f.source))
            snk = None if f.sink is None else first.get(f.sink, row.get(f.sink))
            flows.append(FlowLink(f.name, src, snk))
        for st in model.stocks:
            if st.tally is not None:
                flows.append(FlowLink(st.tally, None, row[st.name], tally=True))
        for d in model.delays:
            stages = tuple(f"{d.name}[{k}]" for k in range(1, d.order + 1))
            add_expr(f"_time_{d.name}", d.time, f"delay {d.name!r}.time")
            derived[d.name] = (frozenset(stages), _sum_fn(stages))
            for k, stage in enumerate(stages):
                out = f"_out_{d.name}_{k + 1}"
                derived[out] = (
                    frozenset({stage, f"_time_{d.name}"}),
                    _rate_fn(stage, f"_time_{d.name}", float(d.order)),
                )
                if k + 1 < d.order:
                    flows.append(FlowLink(out, row[stage], row[stages[k + 1]]))
            derived[f"{d.name}_exit"] = (frozenset({f"_out_{d.name}_{d.order}"}), _alias_fn(f"_out_{d.name}_{d.order}"))
        for sm in model.smooths:
            stages = tuple(f"{sm.name}[{k}]" for k in range(1, sm.order + 1))
            add_expr(f"_input_{sm.name}", sm.input, f"smooth {sm.name!r}.input")
            add_expr(f"_time_{sm.name}", sm.time, f"smooth {sm.name!r}.time")
            derived[sm.name] = (frozenset({stages[-1]}), _alias_fn(stages[-1]))
            upstream = (f"_input_{sm.name}",) + stages[:-1]
            for k, stage in enumerate(stages):
                name = f"_adjust_{sm.name}_{k + 1}"
                derived[name] = (
                    frozenset({upstream[k], stage, f"_time_{sm.name}"}),
                    _adjust_fn(upstream[k], stage, f"_time_{sm.name}", float(sm.order)),
                )
                flows.append(FlowLink(name, None, row[stage]))
        self.flows: tuple[FlowLink, ...] = tuple(flows)
        self._derived = derived
        #: an equation reads other sites without a network (site_sum, site_mean): sites are coupled
        #: even when no network is given
        self.couples_sites = any(
            isinstance(fn, Expression) and fn.calls & {"site_sum", "site_mean"}
            for fn in [d[1] for d in derived.values()] + [i[1] for i in inits])
        self._order = _topological_order(model.name, derived, set(row) | {p.name for p in model.parameters} | {"t"})
        for f in self.flows:
            if f.source is not None and f.sink is not None:
                a, b = self.states[f.source], self.states[f.sink]
                if a.counted != b.counted:
                    raise ModelError(
                        f"model {model.name!r}: flow {f.name!r} links the counted {a.owner!r} "
                        f"with the continuous {b.owner!r}" if a.counted else
                        f"model {model.name!r}: flow {f.name!r} links the continuous {a.owner!r} "
                        f"with the counted {b.owner!r}"
                    )

    # -- identity -------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledModel) and other.model == self.model

    def __hash__(self) -> int:
        return hash(self.model)

    def __repr__(self) -> str:
        return f"CompiledModel({self.model.name!r}, states={len(self.states)}, flows={len(self.flows)})"

    # -- names ----------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names that can be saved: stocks, delays, smooths, auxiliaries, flows, schedules."""
        return tuple(n for n in self.model.names if self.model.names[n] != "parameter")

    # -- parameters -----------------------------------------------------------------------
    def params(self, n_sites: int = 1, dtype: Any = None, **values: Any) -> Params:
        """Parameter PyTree with every parameter shaped ``(site,)`` and schedules as
        ``{"times": (k,), "values": (k, site)}``. ``values`` override the defaults: a scalar,
        one value per site, or for a schedule a mapping with ``times`` and/or ``values``."""
        import jax.numpy as jnp

        dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        known = {p.name for p in self.model.parameters} | {s.name for s in self.model.schedules}
        unknown = set(values) - known
        if unknown:
            raise ModelError(
                f"model {self.model.name!r} has no parameter or schedule {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        out: Params = {}
        for p in self.model.parameters:
            value = jnp.asarray(values.get(p.name, p.default), dtype)
            out[p.name] = _per_site(value, n_sites, f"parameter {p.name!r}")
        for sc in self.model.schedules:
            given = values.get(sc.name, {})
            if not isinstance(given, Mapping):
                raise ModelError(f"schedule {sc.name!r}: give a mapping with 'times' and 'values'")
            times = jnp.asarray(given.get("times", sc.times), dtype)
            vals = jnp.asarray(given.get("values", sc.values), dtype)
            if times.ndim != 1 or vals.shape[:1] != times.shape or vals.ndim > 2:
                raise ModelError(
                    f"schedule {sc.name!r}: {times.size} times but values of shape {vals.shape}"
                )
            if vals.ndim == 1:
                vals = jnp.broadcast_to(vals[:, None], (times.shape[0], n_sites))
            elif vals.shape[1] != n_sites:
                raise ModelError(
                    f"schedule {sc.name!r}: values of shape {vals.shape}; expected (breakpoints, {n_sites})"
                )
            out[sc.name] = {"times": times, "values": vals}
        return out

    # -- evaluation -----------------------------------------------------------------------
    def init(self, params: Params, t0: Any = 0.0, xp: Any = None) -> Any:
        """Initial state ``(state, site)`` from parameter expressions. The site axis comes from the
        parameters (or a schedule's values); a model with neither runs one site, ``(state, 1)``.
        A model without states (auxiliaries of time only) gives ``(0, site)``."""
        xp = _jnp() if xp is None else xp
        env: dict[str, Any] = {k: v for k, v in params.items() if not isinstance(v, Mapping)}
        env["t"] = t0
        fns = {**functions(xp, t0, None), **self.lookup_functions(xp)}
        if self.model.parameters:
            like = params[self.model.parameters[0].name]
        elif self.model.schedules:
            like = params[self.model.schedules[0].name]["values"][0]
        else:
            like = xp.zeros((1,), xp.result_type(float))
        rows = []
        for _, expr, div in self._inits:
            value = expr(env, fns) / div
            rows.append(xp.zeros_like(like) + value)
        if not rows:
            return xp.zeros((0, *xp.shape(like)), xp.result_type(like))
        return xp.stack(rows)

    def evaluate(
        self, t: Any, y: Any, params: Params, network: Any = None, xp: Any = None
    ) -> dict[str, Any]:
        """Every named quantity at time ``t`` (years) and state ``y`` ``(state, site)``."""
        xp = _jnp() if xp is None else xp
        env: dict[str, Any] = {}
        schedules: dict[str, Mapping] = {}
        for k, v in params.items():
            (schedules if isinstance(v, Mapping) else env)[k] = v
        env["t"] = t
        for i, s in enumerate(self.states):
            env[s.name] = y[i]
        env["_schedules"] = schedules
        env["_xp"] = xp
        fns = {**functions(xp, t, None if network is None else network.apply), **self.lookup_functions(xp)}
        for name in self._order:
            env[name] = self._derived[name][1](env, fns)
        return env

    def lookup_functions(self, xp: Any = None) -> dict[str, Callable]:
        """The model's lookups as elementwise functions of one array (any shape), bound to ``xp``."""
        xp = _jnp() if xp is None else xp
        return {lk.name: lookup_function(lk.x, lk.y, lk.extrapolation, xp) for lk in self.model.lookups}

    def flow_rates(self, t: Any, y: Any, params: Params, network: Any = None, xp: Any = None) -> list:
        """Rates of the lowered flows, in the order of :attr:`flows`, each ``(site,)``."""
        env = self.evaluate(t, y, params, network, xp)
        return [env[f.name] for f in self.flows]

    def rhs(self, t: Any, y: Any, params: Params, network: Any = None, xp: Any = None) -> Any:
        """Time derivative ``dy/dt`` ``(state, site)`` in units per year."""
        xp = _jnp() if xp is None else xp
        rows = self.rhs_rows(t, y, params, network, xp)
        return xp.stack(rows) if rows else xp.zeros_like(y)

    def rhs_rows(self, t: Any, y: Any, params: Params, network: Any = None, xp: Any = None) -> tuple:
        """``dy/dt`` as a tuple of rows, one ``(site, ...)`` array per state; ``y`` may be such a
        tuple too. Fixed-step solvers carry the state this way: no stacking and slicing per stage."""
        xp = _jnp() if xp is None else xp
        rates = self.flow_rates(t, y, params, network, xp)
        terms: list[list[tuple[int, Any]]] = [[] for _ in self.states]
        for f, r in zip(self.flows, rates):
            if f.source is not None:
                terms[f.source].append((-1, r))
            if f.sink is not None:
                terms[f.sink].append((1, r))
        rows = []
        for i, row_terms in enumerate(terms):
            total = xp.zeros_like(y[i])
            for sign, r in row_terms:
                total = total + r if sign > 0 else total - r
            rows.append(total)
        return tuple(rows)

    def counted_rows(self) -> tuple[int, ...]:
        """State rows that hold people or organisations (sum to the population)."""
        return tuple(i for i, s in enumerate(self.states) if s.counted)


def _jnp() -> Any:
    import jax.numpy as jnp

    return jnp


def _per_site(value: Any, n_sites: int, where: str) -> Any:
    import jax.numpy as jnp

    if value.ndim == 0:
        return jnp.broadcast_to(value, (n_sites,))
    if value.shape == (n_sites,):
        return value
    raise ModelError(f"{where}: expected a scalar or {n_sites} values (one per site), got shape {value.shape}")


def _schedule_fn(name: str, interpolation: str) -> Callable:
    def fn(env, fns):
        xp, sched, t = env["_xp"], env["_schedules"][name], env["t"]
        times, values = sched["times"], sched["values"]
        k = times.shape[0]
        if times.ndim == 1:  # shared breakpoints: values (k, site) or (k, site, member)
            def at(i):
                return values[i], times[i]
        else:  # per-member breakpoints (k, member) with values (k, site, member)
            def at(i):
                v = xp.take_along_axis(values, i[None, None, :], axis=0)[0]
                return v, xp.take_along_axis(times, i[None, :], axis=0)  # (1, member)
        passed = xp.sum(reached(xp, t, times), axis=0)  # a stage time on a breakpoint is at it
        if interpolation == "step" or k == 1:
            return at(xp.clip(passed - 1, 0, k - 1))[0]
        i = xp.clip(passed - 1, 0, k - 2)
        (v0, t0), (v1, t1) = at(i), at(i + 1)
        span = t1 - t0
        w = xp.clip(xp.where(span > 0, (t - t0) / xp.where(span > 0, span, 1), 1), 0, 1)
        return v0 + w * (v1 - v0)

    return fn


def _sum_fn(names: tuple[str, ...]) -> Callable:
    def fn(env, fns):
        total = env[names[0]]
        for n in names[1:]:
            total = total + env[n]
        return total

    return fn


def _alias_fn(name: str) -> Callable:
    return lambda env, fns: env[name]


def _rate_fn(stage: str, time: str, order: float) -> Callable:
    return lambda env, fns: order * env[stage] / env[time]


def _adjust_fn(upstream: str, stage: str, time: str, order: float) -> Callable:
    return lambda env, fns: order * (env[upstream] - env[stage]) / env[time]


def _topological_order(model: str, derived: Mapping[str, tuple[frozenset[str], Any]], given: set[str]) -> tuple[str, ...]:
    """Order derived quantities so each is computed after what it reads; reject loops."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2 or name in given:
            return
        if state.get(name) == 1:
            loop = " -> ".join(path[path.index(name):] + (name,))
            raise ModelError(f"model {model!r}: algebraic loop (no stock breaks it): {loop}")
        state[name] = 1
        for dep in sorted(derived[name][0]):
            if dep in derived:
                visit(dep, path + (name,))
        state[name] = 2
        order.append(name)

    for name in derived:
        visit(name, ())
    return tuple(order)


def compile_model(model: Model) -> CompiledModel:
    """Resolve ``model`` into a :class:`CompiledModel` (cached per model)."""
    return _compile_cached(model)


_CACHE: dict[Model, CompiledModel] = {}


def _compile_cached(model: Model) -> CompiledModel:
    if model not in _CACHE:
        _CACHE[model] = CompiledModel(model)
    return _CACHE[model]
