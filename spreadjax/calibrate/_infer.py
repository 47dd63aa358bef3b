"""Inference: NUTS with several chains, and fast approximate paths (MAP, Laplace, SVI).

Every entry point takes a :class:`CalibrationProblem` and an integer ``seed`` and returns a
:class:`Fit`: draws shaped ``(chain, draw, ...)`` and, for NUTS, per-draw sampler statistics.
Chains run vectorised on one device, or in parallel when there are as many devices as chains.
``progress(done, total, stage)`` is called as work advances (the CLI draws a bar with it).
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import AutoDelta, AutoLaplaceApproximation, AutoNormal
from numpyro.optim import Adam

from ._problem import CalibrationProblem

Progress = Callable[[int, int, str], None]
METHODS = ("nuts", "svi", "map", "laplace")
EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "potential_energy")


@dataclass
class Fit:
    """Posterior draws ``{name: (chain, draw, ...)}`` and sampler statistics (NUTS only)."""

    method: str
    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        return next(iter(self.samples.values())).shape[0]


_SAMPLERS: dict[tuple, tuple[Any, MCMC]] = {}  # (problem id, settings) -> (weakref to problem, sampler)


def _noop(done: int, total: int, stage: str) -> None:
    return None


class MappedOnce:
    """A numpyro ``chain_method``: maps the one-chain function over chains (``jax.pmap`` across
    devices, or ``jax.jit(jax.vmap(...))`` on one) the first time, and hands back that same mapped
    function while numpyro asks again with the same fields to collect. ``MCMC.run`` builds a new
    one-chain ``partial`` on every call, so a string ``chain_method`` traces and lowers the whole
    sampler again (2-3 s for the calibration models); this one traces it once per sampler."""

    def __init__(self, parallel: bool):
        self.parallel = parallel
        self._mapped: tuple[Any, Callable] | None = None

    def __call__(self, one_chain: Callable) -> Callable:
        key = getattr(one_chain, "keywords", None)  # numpyro's partial: args, kwargs, fields collected
        if key is None or self._mapped is None or self._mapped[0] != key:
            self._mapped = (key, jax.pmap(one_chain) if self.parallel else jax.jit(jax.vmap(one_chain)))
        return self._mapped[1]


def chain_mapping(chains: int, progress_bar: bool) -> tuple[str, Any]:
    """(``"parallel"`` or ``"vectorized"``, the ``chain_method`` to give numpyro): parallel when
    there are as many devices as chains; :class:`MappedOnce` unless numpyro's progress bar, which
    needs numpyro's own mapping, is asked for."""
    parallel = jax.local_device_count() >= chains > 1
    method = "parallel" if parallel else "vectorized"
    return method, method if progress_bar else MappedOnce(parallel)


def run_nuts(
    problem: CalibrationProblem,
    *,
    chains: int = 4,
    warmup: int = 500,
    samples: int = 500,
    seed: int = 0,
    target_accept: float = 0.85,
    max_tree_depth: int = 8,
    progress_bar: bool = False,
) -> Fit:
    """NUTS with ``chains`` chains, compiled once; ``progress_bar`` shows numpyro's bar.

    The sampler is kept per problem and settings, so fitting the same problem again in this
    process (another seed, a benchmark's repeat) reuses its traced and compiled code. Chains run
    in parallel when there are as many devices as chains, else vectorised (the same one-chain
    program mapped two ways: equal to rounding over short runs, within Monte Carlo error over
    long ones). With ``progress_bar`` numpyro maps the chains itself (its bar needs
    that) and traces the sampler on every call."""
    method, mapping = chain_mapping(chains, progress_bar)
    key = (id(problem), chains, warmup, samples, target_accept, max_tree_depth, method, progress_bar)
    cached = _SAMPLERS.get(key)
    if cached is not None and cached[0]() is problem:
        mcmc = cached[1]
    else:
        kernel = NUTS(problem.model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                      init_strategy=init_to_median(num_samples=15))
        mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains, chain_method=mapping,
                    progress_bar=progress_bar)
        while len(_SAMPLERS) >= 4:
            _SAMPLERS.pop(next(iter(_SAMPLERS)))
        _SAMPLERS[key] = (weakref.ref(problem), mcmc)
    started = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), extra_fields=EXTRA_FIELDS)
    draws = jax.device_get(mcmc.get_samples(group_by_chain=True))
    stats = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
    total = time.perf_counter() - started
    settings = dict(chains=chains, warmup=warmup, samples=samples, seed=seed, target_accept=target_accept,
                    max_tree_depth=max_tree_depth, chain_method=method)
    return Fit("nuts", {k: np.asarray(v) for k, v in draws.items()},
               {k: np.asarray(v) for k, v in stats.items()}, {"total": total}, settings)


def run_approximate(
    problem: CalibrationProblem,
    *,
    method: str = "svi",
    steps: int = 3000,
    learning_rate: float = 0.01,
    draws: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
) -> Fit:
    """A fast approximation: ``svi`` (mean-field normal), ``map`` (point) or ``laplace``.

    The optimisation runs as one ``lax.scan``-compiled loop in ``10`` pieces for progress.
    Draws come from the fitted guide, shaped ``(1, draws, ...)``.
    """
    progress = progress or _noop
    if method == "laplace":  # its Hessian is forward-over-reverse: no forward-mode sensitivities
        problem = dataclasses.replace(problem, gradients="reverse")
    guides = {"svi": AutoNormal, "map": AutoDelta, "laplace": AutoLaplaceApproximation}
    guide = guides[method](problem.model, init_loc_fn=init_to_median(num_samples=15))
    svi = SVI(problem.model, guide, Adam(learning_rate), Trace_ELBO())
    key_init, key_draw = jax.random.split(jax.random.PRNGKey(seed))
    started = time.perf_counter()
    state = svi.init(key_init)
    pieces = 10
    per_piece = max(1, steps // pieces)

    @jax.jit
    def advance(state):
        def body(s, _):
            s, loss = svi.update(s)
            return s, loss

        return jax.lax.scan(body, state, None, length=per_piece)

    losses = []
    for i in range(pieces):
        state, loss = advance(state)
        losses.append(np.asarray(loss))
        progress((i + 1) * per_piece, pieces * per_piece, method)
    params = svi.get_params(state)
    if method == "map":
        point = guide.median(params)
        predictive = Predictive(problem.model, posterior_samples=jax.tree.map(lambda v: v[None], point),
                                return_sites=None)
        sites = {**jax.tree.map(lambda v: v[None], point), **predictive(key_draw)}  # latent + derived
        samples = {k: np.broadcast_to(np.asarray(v), (draws,) + np.shape(v)[1:]) for k, v in sites.items()
                   if k not in ("new_adopters", "aware")}
    else:
        with jax.numpy_rank_promotion("allow"):  # numpyro's guides broadcast sample_shape implicitly
            sample = jax.jit(lambda key, p: guide.sample_posterior(key, p, sample_shape=(draws,)))
            latent = sample(key_draw, params)  # jitted: the Laplace Hessian is costly unjitted
        predictive = Predictive(problem.model, posterior_samples=latent)
        sites = predictive(key_draw)
        samples = {**{k: np.asarray(v) for k, v in latent.items()},
                   **{k: np.asarray(v) for k, v in sites.items() if k not in ("new_adopters", "aware")}}
    samples = {k: v[None] for k, v in samples.items()}
    elapsed = time.perf_counter() - started
    return Fit(method, samples, {"loss": np.concatenate(losses)[None]}, {"total": elapsed},
               dict(method=method, steps=pieces * per_piece, learning_rate=learning_rate, draws=draws, seed=seed))


def predictive(problem: CalibrationProblem, samples: dict[str, np.ndarray] | None, seed: int,
               n: int | None = None) -> dict[str, np.ndarray]:
    """Draws of the data (``new_adopters``, and ``aware``) and of ``expected_adopters``.

    With ``samples`` (``(chain, draw, ...)``) the posterior predictive, shaped like them;
    without, ``n`` prior predictive draws shaped ``(1, n, ...)`` together with the prior draws.
    """
    key = jax.random.PRNGKey(seed)
    if samples is None:
        out = Predictive(lambda: problem.model(observe=False), num_samples=n)(key)
        return {k: np.asarray(v)[None] for k, v in out.items()}
    chains, draws = next(iter(samples.values())).shape[:2]
    flat = {k: jnp.reshape(v, (chains * draws,) + v.shape[2:]) for k, v in samples.items()}
    latents = latent_names(problem)
    flat = {k: v for k, v in flat.items() if k in latents}
    out = Predictive(lambda: problem.model(observe=False), posterior_samples=flat)(key)
    keep = ("new_adopters", "aware", "expected_adopters")
    return {k: np.asarray(v).reshape((chains, draws) + v.shape[1:]) for k, v in out.items() if k in keep}


#: problem id -> (weakref to the problem, its jitted log-likelihood); a few at most, as _SAMPLERS
#: (the function holds its problem, so a weak-keyed mapping would never drop an entry).
_LOGLIK: dict[int, tuple[Any, Callable]] = {}

#: Draws per batch of the pointwise log-likelihood: one batched simulation of this many draws at a time.
LOGLIK_CHUNK = 256


def pointwise_log_likelihood(problem: CalibrationProblem, samples: dict[str, np.ndarray],
                             chunk: int = LOGLIK_CHUNK) -> dict[str, np.ndarray]:
    """``log p(y_i | draw)`` at every observed point, by ``numpyro.infer.util.log_likelihood``:
    ``new_adopters`` (and ``aware`` with survey data, NaN where no survey was reported), each
    ``(chain, draw, time, site)`` like ``samples`` (``(chain, draw, ...)``).

    The draws go through the problem's own numpyro model (same observation model, conditioned on
    the observed counts) ``chunk`` at a time, in one compiled program (the last chunk padded)."""
    from numpyro.infer.util import log_likelihood

    chains, draws = next(iter(samples.values())).shape[:2]
    names = latent_names(problem)
    flat = {k: np.reshape(v, (chains * draws,) + v.shape[2:]) for k, v in samples.items() if k in names}
    total = chains * draws
    size = min(chunk, total)
    cached = _LOGLIK.get(id(problem))
    if cached is not None and cached[0]() is problem:  # a backtest scores every origin on one problem
        run = cached[1]
    else:
        run = jax.jit(lambda s: log_likelihood(problem.model, s, parallel=True))
        while len(_LOGLIK) >= 4:
            _LOGLIK.pop(next(iter(_LOGLIK)))
        _LOGLIK[id(problem)] = (weakref.ref(problem), run)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, total, size):
        pick = np.minimum(np.arange(start, start + size), total - 1)  # the last chunk padded: no retrace
        got = jax.device_get(run({k: v[pick] for k, v in flat.items()}))
        for k, v in got.items():
            parts.setdefault(k, []).append(np.asarray(v, np.float64)[:min(size, total - start)])
    out = {k: np.concatenate(v).reshape((chains, draws) + v[0].shape[1:]) for k, v in parts.items()}
    if "aware" in out:
        out["aware"] = np.where(np.asarray(problem.data.aware_mask), out["aware"], np.nan)
    return out


def latent_names(problem: CalibrationProblem) -> set[str]:
    names = set()
    for p in problem.priors:
        names |= set(p.latent_names())
    if problem.observation.kind != "binomial":
        names.add("concentration")
    return names
