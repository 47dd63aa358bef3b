"""A calibration problem's data as model arguments, and many NUTS fits compiled once.

:meth:`CalibrationProblem.model` closes over the observed counts, so a fit to other counts of the
same shape traces and compiles the whole sampler again. Here the counts (and the mask of the
periods scored) are arguments of the numpyro model, so one compiled program serves every fit:
:func:`fit_many` runs ``chains`` chains on each of ``replications`` data sets at once
(simulation-based calibration), and :class:`Refitter` fits the data up to one origin after another
(backtests). The compile dominates small fits: 93 s first fit against 12 s refit on six sites.

The sampler is numpyro's NUTS through its functional interface (``numpyro.infer.hmc.hmc``), with
step-size and diagonal mass-matrix adaptation during ``warmup``, as ``run_nuts`` uses it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._observe import EPS, period_hazard
from ._problem import CalibrationProblem


def data_model(problem: CalibrationProblem):
    """``model(new, cumulative, fit_mask)``: ``problem``'s numpyro model scoring the counts it is
    given, ``new`` and ``cumulative`` ``(time, site)`` (people), in place of the observed ones, on
    the periods where ``fit_mask`` ``(time,)`` is true; the population, the adopters before the
    first period and any survey come from ``problem``."""

    def model(new: Any, cumulative: Any, fit_mask: Any) -> None:
        data = dataclasses.replace(problem.data, new=new, cumulative=cumulative, fit_mask=fit_mask)
        dataclasses.replace(problem, data=data).model()

    return model


def prior_values(problem: CalibrationProblem, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` draws from the priors: every latent and reported value (``{name: (n, ...)}``),
    the observation model's ``concentration`` included when it has one."""
    from numpyro.infer import Predictive

    from ._priors import sample_parameter

    def model():
        for p in problem.priors:
            sample_parameter(p, problem.n_sites)
        if problem.observation.kind != "binomial":
            problem.observation._concentration()

    out = Predictive(model, num_samples=n)(jax.random.PRNGKey(seed))
    return {k: np.asarray(v) for k, v in out.items()}


def simulate_counts(problem: CalibrationProblem, values: dict[str, np.ndarray], seed: int) -> tuple[Any, Any]:
    """Counts drawn from the problem's own observation model at each of ``n`` parameter draws
    ``values`` (``{name: (n, ...)}``, as :func:`prior_values` gives): ``new`` and ``cumulative``,
    each ``(n, time, site)``, float (people).

    Binomial and beta-binomial counts are drawn period by period, each period's at-risk being those
    not yet adopted in the simulated series (the likelihood conditions on the same series, so data
    and fit agree exactly); negative-binomial counts are drawn from the model's new adoptions."""
    import numpyro.distributions as dist

    d = problem.data
    pop = jnp.asarray(d.population)
    names = [p.name for p in problem.priors]
    kind = problem.observation.kind

    def one(key: Any, vals: dict[str, Any]) -> tuple[Any, Any]:
        expected = problem.observation.expected(problem.simulate({k: vals[k] for k in names}), pop)
        hazard = period_hazard(expected, pop)  # (time, site)
        phi = vals.get("concentration")

        def step(prev: Any, inputs: Any) -> tuple[Any, Any]:
            k, h, mean = inputs
            n_risk = jnp.round(pop - prev)
            if kind == "binomial":
                new = dist.Binomial(total_count=n_risk.astype(int), probs=h).sample(k)
            elif kind == "beta_binomial":
                new = dist.BetaBinomial(h * phi, (1 - h) * phi, total_count=n_risk.astype(int)).sample(k)
            else:
                new = dist.NegativeBinomial2(mean, phi).sample(k)
            new = jnp.asarray(new, prev.dtype)
            return prev + new, new

        mean = jnp.maximum(expected[1:] - expected[:-1], EPS)
        keys = jax.random.split(key, hazard.shape[0])
        _, new = jax.lax.scan(step, jnp.asarray(d.initial), (keys, hazard, mean))
        return new, jnp.asarray(d.initial)[None] + jnp.cumsum(new, axis=0)

    n = next(iter(values.values())).shape[0]
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    latent = {k: jnp.asarray(v) for k, v in values.items() if k in names or k == "concentration"}
    new, cum = jax.jit(jax.vmap(one))(keys, latent)
    return new, cum


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """NUTS settings of :func:`fit_many` and :class:`Refitter`: ``chains`` per data set, ``warmup``
    and ``samples`` per chain."""

    chains: int = 2
    warmup: int = 300
    samples: int = 200
    target_accept: float = 0.9
    max_tree_depth: int = 8


#: Sampler statistics a :class:`Refitter` keeps per draw (those ``calibrate`` keeps).
STAT_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "potential_energy")


def chain_program(problem: CalibrationProblem, settings: BatchSettings, seed: int, names: tuple[str, ...],
                  fields: tuple[str, ...] = ("diverging",)):
    """``one_chain(key, new, cumulative, fit_mask) -> (draws, stats)``: one NUTS chain of
    ``problem``'s model on the given counts (``(time, site)``, the periods where ``fit_mask``
    ``(time,)`` is true), started at the prior median moved by a uniform jitter of +-0.5 on the
    unconstrained scale. ``draws`` holds ``names`` (constrained, ``(samples, ...)``), ``stats``
    the sampler's ``fields`` per draw. Pure: map and compile it as the caller needs."""
    from numpyro.infer import init_to_median
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    s = settings
    d = problem.data
    with jax.numpy_rank_promotion("allow"):  # numpyro's initialisation broadcasts implicitly
        info, potential_gen, postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(seed), data_model(problem),
            model_args=(jnp.asarray(d.new), jnp.asarray(d.cumulative), _full_mask(problem)),
            dynamic_args=True, init_strategy=init_to_median(num_samples=15))
    z0 = info.z

    def one_chain(key: Any, new: Any, cum: Any, fit_mask: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        k_jitter, k_run = jax.random.split(key)
        leaves, tree = jax.tree.flatten(z0)
        jitter_keys = jax.random.split(k_jitter, len(leaves))
        z = jax.tree.unflatten(tree, [v + jax.random.uniform(k, jnp.shape(v), jnp.result_type(v), -0.5, 0.5)
                                      for k, v in zip(jitter_keys, leaves)])
        init_kernel, sample_kernel = hmc(potential_gen(new, cum, fit_mask), algo="NUTS")
        state = init_kernel(z, num_warmup=s.warmup, target_accept_prob=s.target_accept,
                            max_tree_depth=s.max_tree_depth, rng_key=k_run)
        state = jax.lax.fori_loop(0, s.warmup, lambda i, st: sample_kernel(st), state)

        def draw(st: Any, _: Any) -> tuple[Any, tuple[Any, dict[str, Any]]]:
            st = sample_kernel(st)
            return st, (st.z, {f: getattr(st, f) for f in fields})

        _, (zs, stats) = jax.lax.scan(draw, state, None, length=s.samples)
        constrained = jax.vmap(postprocess_gen(new, cum, fit_mask))(zs)
        return {k: constrained[k] for k in names}, stats

    return one_chain


def _full_mask(problem: CalibrationProblem) -> Any:
    d = problem.data
    return jnp.ones(len(d.times), bool) if d.fit_mask is None else jnp.asarray(d.fit_mask)


def fit_many(problem: CalibrationProblem, new: Any, cumulative: Any, settings: BatchSettings,
             seed: int, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """NUTS fits of ``problem``'s model to each of ``r`` data sets ``new``/``cumulative``
    (``(r, time, site)``), all in one compiled program.

    Returns posterior draws of ``names`` (``{name: (r, chain, draw, ...)}``, constrained), the
    divergences ``(r, chain, draw)`` and the seconds spent compiling and sampling."""
    s = settings
    one_chain = chain_program(problem, s, seed, names)
    r = new.shape[0]
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), r * s.chains).reshape(r, s.chains, -1)
    run = jax.jit(jax.vmap(jax.vmap(one_chain, in_axes=(0, None, None, None)), in_axes=(0, 0, 0, None)))
    args = (keys, jnp.asarray(new), jnp.asarray(cumulative), _full_mask(problem))
    started = time.perf_counter()
    with jax.numpy_rank_promotion("allow"):
        compiled = run.lower(*args).compile()
        seconds = {"compile": time.perf_counter() - started}
        draws, stats = jax.device_get(compiled(*args))
    seconds["sample"] = time.perf_counter() - started - seconds["compile"]
    return {k: np.asarray(v) for k, v in draws.items()}, np.asarray(stats["diverging"]), seconds


class Refitter:
    """NUTS fits of one problem's model to the same data scored up to different times (a
    backtest's origins), one after another, from one compiled program: a fit after the first
    costs sampling only. ``names``: the constrained values to keep. Chains run one per device
    when there are enough devices, else vectorised on one."""

    def __init__(self, problem: CalibrationProblem, settings: BatchSettings, seed: int, names: tuple[str, ...]):
        self.problem, self.settings, self.seed = problem, settings, seed
        one_chain = chain_program(problem, settings, seed, names, STAT_FIELDS)
        # chains in parallel when there are as many devices as chains (as run_nuts), else vectorised
        parallel = jax.local_device_count() >= settings.chains > 1
        self._run = (jax.pmap if parallel else lambda f, in_axes: jax.jit(jax.vmap(f, in_axes=in_axes)))(
            one_chain, in_axes=(0, None, None, None))

    def fit(self, until: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
        """Draws ``{name: (chain, draw, ...)}`` and sampler statistics ``{field: (chain, draw)}``
        of the fit to the periods ending at or before ``until`` years, and the seconds it took."""
        d = self.problem.data.mask_after(until)
        keys = jax.random.split(jax.random.PRNGKey(self.seed + 1), self.settings.chains)
        started = time.perf_counter()
        with jax.numpy_rank_promotion("allow"):
            draws, stats = jax.device_get(self._run(keys, jnp.asarray(d.new), jnp.asarray(d.cumulative),
                                                    jnp.asarray(d.fit_mask)))
        return ({k: np.asarray(v) for k, v in draws.items()}, {k: np.asarray(v) for k, v in stats.items()},
                time.perf_counter() - started)
