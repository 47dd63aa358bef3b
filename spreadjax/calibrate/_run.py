"""The calibration job: config -> problem -> fit -> InferenceData-shaped results on disk.

``posterior.nc`` is a netCDF4 file with one group per ArviZ InferenceData group (``posterior``,
``sample_stats``, ``observed_data``, ``prior``, ``prior_predictive``, ``posterior_predictive``,
``log_likelihood``); ``arviz.from_netcdf`` reads it. Dims: ``chain``, ``draw``, ``time`` (years),
``site``. ``log_likelihood`` holds ``log p(y_i | draw)`` at every observed point (``new_adopters``,
and ``aware`` with survey data), as ``arviz.loo`` and ``arviz.compare`` expect.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._io import write_atomic
from ._diagnostics import diagnostic_flags, format_table, summarize
from ._infer import Fit, pointwise_log_likelihood, predictive, run_approximate, run_nuts
from ._problem import CalibrationProblem, CountData
from ._settings import load_count_data

GROUPS = ("posterior", "sample_stats", "observed_data", "prior", "prior_predictive", "posterior_predictive",
          "log_likelihood")


def build_problem(config: Any, fit_until: float | None = None) -> CalibrationProblem:
    """The calibration problem a config describes (``fit_until`` years overrides ``[data]``)."""
    import jax.numpy as jnp

    from .._jobs import build_network, enable_dtype
    from ..core import Simulation, compile_model, make_solver

    cal = config.calibration
    enable_dtype(cal.settings.dtype)
    dtype = jnp.dtype(cal.settings.dtype)
    ds = load_count_data(cal.data, config.sites)
    data = CountData.from_dataset(ds, config.sites, dtype)
    until = fit_until if fit_until is not None else cal.data.fit_until
    if until is not None:
        data = data.truncate(until)
    s = config.simulation
    cm = compile_model(config.build_model())
    values = config.param_values()
    if cm.model.population is not None:
        values[cm.model.population] = np.asarray(data.population)
    base = cm.params(config.n_sites, dtype, **values)
    outputs = cal.observation.cumulative + (("unaware",) if data.aware is not None else ())
    solver = make_solver(s.solver, **({"rtol": s.rtol, "atol": s.atol} if s.solver == "adaptive" else {}))
    sim = Simulation(cm, (s.start, *map(float, data.times)), s.dt, outputs, solver, t0=s.start)
    return CalibrationProblem(sim, base, build_network(config, dtype), cal.priors, cal.observation, data)


@dataclass
class CalibrationResult:
    """Groups of the InferenceData, the diagnostics summary and plain-words flags."""

    groups: dict[str, xr.Dataset]
    summary: xr.Dataset
    flags: list[str]
    fit: Fit

    def table(self) -> str:
        return format_table(self.summary)


def calibrate(problem: CalibrationProblem, settings: Any, progress_bar: bool = False,
              attrs: Mapping[str, Any] | None = None) -> CalibrationResult:
    """Fit ``problem`` with ``settings`` (a CalibrationSettings) and assemble the results."""
    s = settings
    check_fit_fits(problem, s)
    if s.method == "nuts":
        fit = run_nuts(problem, chains=s.chains, warmup=s.warmup, samples=s.samples, seed=s.seed,
                       target_accept=s.target_accept, max_tree_depth=s.max_tree_depth, progress_bar=progress_bar)
    else:
        fit = run_approximate(problem, method=s.method, steps=s.svi_steps, learning_rate=s.learning_rate,
                              draws=s.draws, seed=s.seed)
    prior = predictive(problem, None, s.seed + 1, n=s.prior_draws)
    post_pred = predictive(problem, fit.samples, s.seed + 2)
    groups = _groups(problem, fit, prior, post_pred, attrs or {})
    loglik = pointwise_log_likelihood(problem, fit.samples)
    groups["log_likelihood"] = _dataset(loglik, problem, base_attrs(fit, attrs or {}))
    stats = groups.get("sample_stats")
    summary = summarize(groups["posterior"], stats, var_names=parameter_names(problem))
    flags = diagnostic_flags(summary) if fit.method == "nuts" else [
        f"{fit.method} is an approximation: no convergence diagnostics; use method = \"nuts\" for final results"
    ]
    return CalibrationResult(groups, summary, flags, fit)


def check_fit_fits(problem: CalibrationProblem, s: Any) -> None:
    """Refuse a fit whose draws cannot fit in memory, before sampling: every kept draw holds the
    parameters (with their site offsets) and three ``(time, site)`` series (expected adopters and
    the predictive counts), float64, held about three times over (device, host, netCDF groups)."""
    from .._limits import require_memory

    n_sites, n_times = problem.n_sites, len(problem.data.times)
    per_draw = 8 * (3 * len(problem.priors) * n_sites + 3 * n_times * n_sites + 8)
    kept = (s.chains * s.samples if s.method == "nuts" else s.draws) + s.prior_draws
    require_memory(3 * kept * per_draw, f"calibration ({kept:,} kept draws x {n_times:,} times x {n_sites} site(s))",
                   "lower [calibration] samples, draws or prior_draws")


def parameter_names(problem: CalibrationProblem) -> list[str]:
    names = []
    for p in problem.priors:
        names += p.reported_names()
    if problem.observation.kind != "binomial":
        names.append("concentration")
    return names


def _dims(name: str, value: np.ndarray, n_sites: int) -> tuple[str, ...]:
    extra = value.ndim - 2
    if extra == 0:
        return ("chain", "draw")
    if extra == 1 and value.shape[-1] == n_sites:
        return ("chain", "draw", "site")
    if extra == 2:
        return ("chain", "draw", "time", "site")
    return ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(extra))


def _dataset(values: Mapping[str, np.ndarray], problem: CalibrationProblem, attrs: Mapping[str, Any]) -> xr.Dataset:
    n = problem.n_sites
    first = next(iter(values.values()))
    chains, draws = first.shape[:2]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "site": list(problem.data.sites),
              "time": problem.data.times}
    breakpoints = {p.name for p in problem.priors if p.breakpoints}  # a schedule's values: (chain, draw, breakpoint)
    data = {k: (("chain", "draw", f"{k}_breakpoint") if k in breakpoints and np.ndim(v) == 3
                else _dims(k, np.asarray(v), n), np.asarray(v)) for k, v in values.items()}
    ds = xr.Dataset(data, coords=coords)
    ds = ds.drop_vars([c for c in ("site", "time") if c not in ds.dims])
    ds.attrs.update(attrs)
    return ds


def base_attrs(fit: Fit, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs of every group: creation time, library versions, method, then ``attrs``."""
    import numpyro

    from .. import __version__

    return {"created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "inference_library": "numpyro", "inference_library_version": numpyro.__version__,
            "spreadjax_version": __version__, "method": fit.method, **dict(attrs)}


def fit_attrs(fit: Fit) -> dict[str, Any]:
    """Timings and sampler settings of a fit, as posterior attrs (``seconds_*``, ``setting_*``)."""
    return {**{f"seconds_{k}": v for k, v in fit.seconds.items()},
            **{f"setting_{k}": str(v) for k, v in fit.settings.items()}}


def nuts_stats(fit: Fit) -> dict[str, np.ndarray]:
    """The ArviZ ``sample_stats`` variables of a NUTS fit, each ``(chain, draw)``."""
    st = fit.stats
    steps = np.asarray(st["num_steps"])
    return {"diverging": np.asarray(st["diverging"]).astype(bool), "energy": np.asarray(st["energy"]),
            "n_steps": steps, "tree_depth": np.floor(np.log2(np.maximum(steps, 1))).astype(int) + 1,
            "acceptance_rate": np.asarray(st["accept_prob"]), "lp": -np.asarray(st["potential_energy"])}


def _groups(problem: CalibrationProblem, fit: Fit, prior: dict, post_pred: dict, attrs: Mapping[str, Any]) -> dict:
    common = base_attrs(fit, attrs)
    observed = {"new_adopters", "aware"}
    groups = {
        "posterior": _dataset({**fit.samples, **{"expected_adopters": post_pred["expected_adopters"]}},
                              problem, {**common, **fit_attrs(fit)}),
        "prior": _dataset({k: v for k, v in prior.items() if k not in observed}, problem, common),
        "prior_predictive": _dataset({k: v for k, v in prior.items() if k in observed}, problem, common),
        "posterior_predictive": _dataset({k: v for k, v in post_pred.items() if k in observed}, problem, common),
    }
    d = problem.data
    obs = {"new_adopters": (("time", "site"), np.asarray(d.new).astype(np.int64)),
           "adopters": (("time", "site"), np.asarray(d.cumulative).astype(np.int64)),
           "population": (("site",), np.asarray(d.population))}
    if d.aware is not None:
        obs["aware"] = (("time", "site"), np.where(np.asarray(d.aware_mask), np.asarray(d.aware), np.nan))
    groups["observed_data"] = xr.Dataset(obs, coords={"time": d.times, "site": list(d.sites)}, attrs=common)
    if fit.method == "nuts":
        groups["sample_stats"] = _dataset(nuts_stats(fit), problem, common)
    return groups


def write_posterior(groups: Mapping[str, xr.Dataset], path: str | Path) -> Path:
    """Write the groups as one netCDF4 file with a group each (readable by ArviZ), atomically."""
    tree = xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})
    return write_atomic(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"))


def read_posterior(path: str | Path) -> dict[str, xr.Dataset]:
    """Read the groups of a ``posterior.nc`` back into memory."""
    from .._errors import InputError, check_regular_file

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such posterior file; run `spreadjax calibrate` first")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a posterior.nc file")
    check_regular_file(path, "a posterior.nc file")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            groups = {name: tree[name].to_dataset().load() for name in tree.children}
    except Exception as exc:  # noqa: BLE001 - h5py/h5netcdf raise many types for a damaged file
        raise InputError(f"{path}: not a readable posterior file ({type(exc).__name__}: {exc}); "
                         "calibrate again or choose the right file") from None
    if "posterior" not in groups:
        raise InputError(f"{path}: has no 'posterior' group; groups: {', '.join(groups) or 'none'}")
    return groups
