"""The ensemble plan: draws x scenarios x replicates, split into chunks of draws (pure numpy/JAX).

Every member is a ``(draw, replicate)`` pair and is simulated under every scenario with the same
parameter draw and the same random key (common random numbers), so scenario differences are not
noise. A member's key is ``fold_in(fold_in(PRNGKey(seed), draw), replicate)``: it depends on the
member's own indices only, never on the chunk it falls in or the order chunks finish.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError


@dataclass(frozen=True)
class EnsemblePlan:
    """Sizes and chunking. Chunks are ranges of draws; the last one is padded when computed."""

    n_draws: int
    scenarios: tuple[str, ...]
    n_replicates: int
    chunk_size: int
    seed: int

    @property
    def n_chunks(self) -> int:
        return -(-self.n_draws // self.chunk_size)

    def chunk(self, i: int) -> tuple[int, int]:
        """Draw range ``[start, stop)`` of chunk ``i``."""
        start = i * self.chunk_size
        return start, min(start + self.chunk_size, self.n_draws)

    @property
    def n_members(self) -> int:
        return self.n_draws * self.n_replicates


def free_memory_bytes() -> int:
    """Free memory of the first local device: the GPU's (limit - in use) or the host's available RAM."""
    import os

    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 2**31


def chunk_size_for(config: Any, free_bytes: int | None = None, store_chunk: int | None = None) -> int:
    """Draws per chunk: the config's number, or for ``"auto"`` a power of two whose outputs and
    working state take at most a quarter of the free memory (256 to 2^20 draws, at most the
    draws). ``store_chunk``: an existing store's chunk size, which a resumed "auto" run keeps."""
    s = config.ensemble
    if s.chunk_size != "auto":
        return int(s.chunk_size)
    if store_chunk is not None:
        return int(store_chunk)
    import numpy as np

    free = free_memory_bytes() if free_bytes is None else free_bytes
    fit = max(1, free // 4 // max(_bytes_per_draw(config)[1], 1))
    size = 1 << int(np.floor(np.log2(fit)))
    return int(min(max(size, 256), 2**20, max(s.draws, 1)))


def _bytes_per_draw(config: Any) -> tuple[int, int]:
    """``(stored, in memory)`` bytes of one draw: its outputs over every scenario and replicate, and
    while computed, those outputs, their host copy and the working state."""
    s = config.ensemble
    per_member = np.dtype(config.simulation.dtype).itemsize * config.n_sites
    from ._adopted import stored_outputs

    outputs = len(stored_outputs(s.outputs, s.adopted)) * len(config.simulation.times) * per_member
    state = 64 * per_member  # stocks, delay stages and RK4 stages: a generous bound
    runs = len(config.scenarios) * s.replicates
    return runs * outputs, runs * (2 * outputs + state)


def plan_sizes(config: Any, plan: EnsemblePlan) -> dict[str, int]:
    """Estimated bytes of a plan: ``store`` (every output, uncompressed), ``chunk`` (one chunk being
    computed) and ``draws`` (the varied parameter values, ``(draw, site)`` float64 each)."""
    stored, computing = _bytes_per_draw(config)
    s = config.ensemble
    varied = len(s.design) if s.source == "design" else (
        len(config.calibration.priors) if s.source in ("prior", "posterior") and config.calibration else 0)
    return {"store": plan.n_draws * stored, "chunk": plan.chunk_size * computing,
            "draws": 2 * plan.n_draws * config.n_sites * varied * 8}


def check_plan_fits(config: Any, plan: EnsemblePlan, out_dir: Any = None, all_draws: bool = True) -> None:
    """Refuse a plan whose chunk and draws (all of them, or one chunk's when not ``all_draws``) cannot
    fit in memory, or whose store (when ``out_dir`` is given) cannot fit on the disk there; called
    before any draw is made or file written."""
    from .._limits import require_disk, require_memory

    sizes = plan_sizes(config, plan)
    if not all_draws:
        sizes["draws"] = sizes["draws"] * plan.chunk_size // max(plan.n_draws, 1)
    what = (f"{config.path}: the ensemble ({plan.n_draws:,} draws x {len(plan.scenarios)} scenario(s) x "
            f"{plan.n_replicates:,} replicate(s) x {len(config.simulation.times):,} times x {config.n_sites} "
            f"site(s), chunks of {plan.chunk_size:,} draws)")
    require_memory(sizes["chunk"] + sizes["draws"], what,
                   "lower [ensemble] draws, replicates or chunk_size (or chunk_size = \"auto\")")
    if out_dir is not None:
        require_disk(sizes["store"], out_dir, what,
                     "lower [ensemble] draws or replicates, save fewer outputs, or use --summaries-only")


def draw_values(config: Any, posterior: str | None = None) -> dict[str, np.ndarray]:
    """Values of the varied parameters per draw: ``{name: (draw, site)}``.

    ``source`` (from ``[ensemble]``): ``posterior`` (draws sampled without replacement when there
    are enough, with a seeded permutation), ``prior`` (the calibration priors), ``design`` (a
    scrambled Sobol design over the given ranges) or ``fixed`` (nothing varies but the seed).
    """
    s = config.ensemble
    n = s.draws
    rng = np.random.default_rng(s.seed)
    if s.source == "fixed":
        return {}
    if s.source == "design":
        return design_values(config, 0, n)
    timed = [p.name for p in config.calibration.priors if p.breakpoints] if config.calibration else []
    if timed:  # a (draw, site) table cannot hold a schedule's values per breakpoint
        raise InputError(f"{config.path}: [priors.{timed[0]}] is a schedule estimated per breakpoint; ensembles "
                         f"cannot draw it from the {s.source} yet: use [ensemble] source = \"fixed\" or "
                         "\"design\", or calibrate and identify this config only (docs/identifiability.md)")
    if s.source == "prior":
        return _prior_draws(config, n)
    return _posterior_draws(config, posterior or s.posterior, rng)


def design_values(config: Any, start: int, stop: int) -> dict[str, np.ndarray]:
    """Draws ``start .. stop`` of the config's scrambled Sobol design: ``{name: (draw, site)}``
    (the same values whichever range is asked for, so chunks can be drawn one at a time)."""
    from scipy.stats import qmc

    s = config.ensemble
    names = [name for name, _ in s.design]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Sobol balance needs 2^k points: fine here
        sobol = qmc.Sobol(len(names), scramble=True, seed=s.seed)
        if start:
            sobol.fast_forward(start)
        unit = sobol.random(stop - start)
    lo = np.array([b[0] for _, b in s.design])
    hi = np.array([b[1] for _, b in s.design])
    values = lo + unit * (hi - lo)
    return {name: np.repeat(values[:, i : i + 1], config.n_sites, axis=1) for i, name in enumerate(names)}


def _prior_draws(config: Any, n: int) -> dict[str, np.ndarray]:
    import jax
    from numpyro.infer import Predictive

    from ..calibrate._priors import sample_parameter

    priors = config.calibration.priors
    sites = config.n_sites

    def model():
        for p in priors:
            sample_parameter(p, sites)

    out = Predictive(model, num_samples=n)(jax.random.PRNGKey(config.ensemble.seed))
    return {p.name: _per_site(np.asarray(out[p.name]), n, sites) for p in priors}


def _posterior_draws(config: Any, path: str | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ..calibrate._identity import check_posterior
    from ..calibrate._run import read_posterior

    if path is None:
        raise InputError(
            f"{config.path}: [ensemble] source = \"posterior\" needs a posterior file: pass --posterior "
            "FILE or set [ensemble] posterior = \"...\" (run `spreadjax calibrate` to make one)"
        )
    groups = read_posterior(path)
    check_posterior(groups, config, path)  # the same model, sites, populations and data, or refused
    posterior = groups["posterior"]
    names = [p.name for p in config.calibration.priors] if config.calibration else []
    model_params = {p.name for p in config.build_model().parameters}
    names = names or [v for v in posterior.data_vars if v in model_params]
    missing = [v for v in names if v not in posterior]
    if missing or not names:
        raise InputError(f"{path}: the posterior has no draws of {', '.join(missing) or 'any model parameter'}")
    total = posterior.sizes["chain"] * posterior.sizes["draw"]
    n = config.ensemble.draws
    pick = rng.permutation(total)[:n] if n <= total else rng.integers(0, total, n)
    out = {}
    for name in names:
        arr = posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values[pick]
        if arr.ndim == 2 and arr.shape[1] != config.n_sites:
            raise InputError(f"{path}: {name} has {arr.shape[1]} sites; the config has {config.n_sites}")
        out[name] = _per_site(arr, n, config.n_sites)
    return out


def _per_site(arr: np.ndarray, n: int, sites: int) -> np.ndarray:
    return np.broadcast_to(arr.reshape(n, -1), (n, sites)).astype(float).copy()


def scenario_table(config: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    """Per-scenario values of everything any scenario changes, stacked on a leading scenario axis.

    Parameters become ``(scenario, site)``; schedules ``{"times": (scenario, k),
    "values": (scenario, k, site)}``, padded to the longest by repeating the last breakpoint
    (which leaves step and linear schedules unchanged).
    """
    changed_params = sorted({k for sc in config.scenarios for k, _ in sc.parameters})
    changed_sched = sorted({k for sc in config.scenarios for k, _ in sc.schedules})
    n = config.n_sites
    table: dict[str, Any] = {}
    for name in changed_params:
        rows = []
        for sc in config.scenarios:
            value = dict(sc.parameters).get(name)
            rows.append(np.asarray(base[name]) if value is None else np.broadcast_to(np.asarray(value, float), (n,)))
        table[name] = np.stack(rows)
    for name in changed_sched:
        entries = []
        for sc in config.scenarios:
            given = dict(sc.schedules).get(name)
            if given is None:
                times, values = np.asarray(base[name]["times"]), np.asarray(base[name]["values"])
            else:
                times = np.asarray(given[0], float)
                values = np.asarray([np.broadcast_to(np.asarray(v, float), (n,)) for v in given[1]])
            entries.append((times, values))
        k = max(t.size for t, _ in entries)
        pad = lambda a, axis_len: np.concatenate([a, np.repeat(a[-1:], axis_len - a.shape[0], 0)])  # noqa: E731
        table[name] = {"times": np.stack([pad(t, k) for t, _ in entries]),
                       "values": np.stack([pad(v, k) for _, v in entries])}
    return table
