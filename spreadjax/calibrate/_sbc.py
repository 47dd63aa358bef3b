"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018) on a config's
own structure, with the posterior z-score and contraction of each replication (Schad, Betancourt &
Vasishth 2021).

Each replication draws parameters from the prior, simulates counts with the config's observation
model (same sites, populations and observation times as the data), fits them with NUTS, and
records the rank of the true value among ``L`` thinned posterior draws. The two checks answer
different questions:

- **Ranks** check the *computation*: if model, simulator and sampler agree, every rank is uniform
  on ``0..L`` whatever the data say. A chi-square test on equal-probability bins of the ranks
  (level :data:`LEVEL`) flags a parameter whose fits are miscalibrated: a sampler stuck on a
  ridge, a bug, a prior the fit does not use.
- **Contraction** (``1 - var_post / var_prior``, median over replications) checks
  *identifiability*: ranks can be perfectly uniform for a parameter the data do not inform at all
  (the posterior is then the prior, which is calibrated too). A parameter whose median contraction
  is below :data:`~spreadjax.calibrate._identify.UNINFORMED` is flagged "not identified by data
  like these".

All replications are fitted by one compiled program (:func:`~._refit.fit_many`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InputError
from ._identify import CONTRACTED, UNINFORMED, identifiability
from ._problem import CalibrationProblem
from ._refit import BatchSettings, fit_many, prior_values, simulate_counts

#: Level of the chi-square uniformity test of each parameter's ranks.
LEVEL = 0.01
#: Posterior draws kept per fit, after thinning, for the ranks (ranks run 0..L; L + 1 = 100
#: splits into 2, 4, 5, 10, 20, 25 or 50 equal-probability bins).
RANK_DRAWS = 99
#: Prior draws for the prior variances of the contraction.
PRIOR_DRAWS = 4000
MAX_REPLICATIONS = 10_000


@dataclass
class SBCResult:
    """Ranks ``(replication, value)`` in ``0..draws`` of each scalar value ``labels``, the
    uniformity test per value, posterior contraction and z-scores per replication and value, the
    share of replications in which the data separated push from pull, and plain-words flags."""

    labels: list[str]
    ranks: np.ndarray
    draws: int
    bins: int
    p_values: np.ndarray
    contraction: np.ndarray
    zscore: np.ndarray
    divergences: int
    separated_share: float | None
    settings: dict[str, Any]
    flags: list[str] = field(default_factory=list)

    @property
    def uniform(self) -> np.ndarray:
        """Per value: the ranks pass the uniformity test."""
        return self.p_values >= LEVEL

    def to_dict(self) -> dict[str, Any]:
        med = np.median(self.contraction, axis=0)
        return {
            "replications": int(self.ranks.shape[0]), "rank_draws": self.draws, "bins": self.bins,
            "level": LEVEL, "divergences": self.divergences, "separated_share": self.separated_share,
            "settings": self.settings,
            "parameters": {lab: {"chi2_p_value": float(self.p_values[i]), "uniform": bool(self.uniform[i]),
                                 "median_contraction": float(med[i]),
                                 "zscore_mean": float(np.mean(self.zscore[:, i])),
                                 "zscore_sd": float(np.std(self.zscore[:, i], ddof=1)),
                                 "identified": bool(med[i] >= UNINFORMED)}
                           for i, lab in enumerate(self.labels)},
            "flags": self.flags,
        }


def rank_bins(draws: int, replications: int) -> int:
    """The most equal-probability bins (of 20, 10, 5, 4, 2) of ranks ``0..draws`` with at least five
    replications expected in each (the chi-square approximation's rule of thumb)."""
    for b in (20, 10, 5, 4, 2):
        if (draws + 1) % b == 0 and replications / b >= 5:
            return b
    return 2 if (draws + 1) % 2 == 0 else 1


def uniformity_p_value(ranks: np.ndarray, draws: int, bins: int) -> float:
    """Chi-square test that ``ranks`` (1-D, in ``0..draws``) are uniform, on ``bins`` equal bins."""
    from scipy.stats import chisquare

    if bins < 2:
        return float("nan")
    counts = np.bincount((np.asarray(ranks) * bins) // (draws + 1), minlength=bins)
    return float(chisquare(counts).pvalue)


def ranks_of(truth: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Rank of each true value among posterior draws: ``truth`` ``(replication, value)``, ``draws``
    ``(replication, draw, value)`` -> the number of draws below the truth, ``(replication, value)``."""
    return np.sum(draws < truth[:, None, :], axis=1)


def _scalars(name: str, arr: np.ndarray, lead: int, sites: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Split ``arr`` ``(*lead dims, ...)`` into scalar values with labels."""
    flat = arr.reshape(arr.shape[:lead] + (-1,))
    k = flat.shape[-1]
    if arr.ndim == lead:
        return [name], flat
    if k == len(sites) and not name.endswith("_z"):
        return [f"{name}[{s}]" for s in sites], flat
    return [f"{name}[{i + 1}]" for i in range(k)], flat


def _names(problem: CalibrationProblem) -> tuple[str, ...]:
    names: list[str] = []
    for p in problem.priors:
        names += [n for n in p.reported_names() if n not in names]
    if problem.observation.kind != "binomial":
        names.append("concentration")
    return tuple(names)


def _positive(problem: CalibrationProblem, name: str) -> bool:
    for p in problem.priors:
        if name == p.name or name == f"{p.name}_pop":
            return p.support_bounds()[0] >= 0
        if name == f"{p.name}_tau":
            return True
    return name == "concentration"


def check_sbc_request(replications: Any, problem: CalibrationProblem | None = None) -> int:
    """A valid number of replications, else one clear :class:`InputError`."""
    if isinstance(replications, bool) or not isinstance(replications, int) or not 10 <= replications <= MAX_REPLICATIONS:
        raise InputError(f"--sbc {replications!r}: expected a whole number of replications from 10 to "
                         f"{MAX_REPLICATIONS:,} (100 or more for a sharp test; each is one NUTS fit)")
    if problem is not None and problem.data.aware is not None:
        raise InputError("--sbc: the data include awareness surveys; simulation-based calibration covers count "
                         "data only (drop the aware column to check the counts' structure)")
    return replications


def run_sbc(problem: CalibrationProblem, replications: int, *, settings: BatchSettings | None = None,
            seed: int = 0) -> SBCResult:
    """Simulation-based calibration of ``problem``'s structure with ``replications`` fits."""
    check_sbc_request(replications, problem)
    s = settings or BatchSettings()
    total = s.chains * s.samples
    if total < RANK_DRAWS + 1:
        raise InputError(f"SBC needs at least {RANK_DRAWS + 1} posterior draws per fit (chains x samples); "
                         f"got {s.chains} x {s.samples}")
    names = _names(problem)
    truth_all = prior_values(problem, replications, seed)
    new, cum = simulate_counts(problem, truth_all, seed + 1)
    draws, diverging, seconds = fit_many(problem, new, cum, s, seed + 2, names)
    prior = prior_values(problem, PRIOR_DRAWS, seed + 3)
    thin = total // (RANK_DRAWS + 1)

    labels: list[str] = []
    truth_cols, post_cols, prior_cols = [], [], []
    for name in names:
        tf = np.log if _positive(problem, name) else (lambda x: x)  # noqa: E731
        lab, t = _scalars(name, np.asarray(truth_all[name], float), 1, problem.data.sites)
        _, d = _scalars(name, np.asarray(draws[name], float), 3, problem.data.sites)  # (rep, chain, draw, k)
        _, pr = _scalars(name, np.asarray(prior[name], float), 1, problem.data.sites)
        d = d[:, :, ::thin].reshape(replications, -1, d.shape[-1])[:, :RANK_DRAWS + 1]
        labels += lab
        truth_cols.append(tf(np.maximum(t, 1e-300)) if tf is np.log else t)
        post_cols.append(tf(np.maximum(d, 1e-300)) if tf is np.log else d)
        prior_cols.append(tf(np.maximum(pr, 1e-300)) if tf is np.log else pr)
    truth = np.concatenate(truth_cols, axis=-1)
    post = np.concatenate(post_cols, axis=-1)
    prior_flat = np.concatenate(prior_cols, axis=-1)
    # ranks among L draws (the first L of L + 1 kept: ranks 0..L)
    ranks = ranks_of(truth, post[:, :RANK_DRAWS])
    bins = rank_bins(RANK_DRAWS, replications)
    p_values = np.array([uniformity_p_value(ranks[:, i], RANK_DRAWS, bins) for i in range(len(labels))])
    var_prior = np.var(prior_flat, axis=0, ddof=1)
    contraction = 1.0 - np.var(post, axis=1, ddof=1) / var_prior
    zscore = (np.mean(post, axis=1) - truth) / np.std(post, axis=1, ddof=1)
    separated = _separated_share(problem, prior, draws)
    result = SBCResult(labels, ranks, RANK_DRAWS, bins, p_values, contraction, zscore, int(diverging.sum()),
                       separated, {"chains": s.chains, "warmup": s.warmup, "samples": s.samples, "thin": thin,
                                   "target_accept": s.target_accept, "max_tree_depth": s.max_tree_depth,
                                   "seed": seed, **{f"seconds_{k}": round(v, 1) for k, v in seconds.items()}})
    result.flags = sbc_flags(result)
    return result


def _separated_share(problem: CalibrationProblem, prior: dict, draws: dict) -> float | None:
    """Share of replications whose fit separated push from pull (the :mod:`._identify` verdict)."""
    r = next(iter(draws.values())).shape[0]
    prior_cd = {k: np.asarray(v)[None] for k, v in prior.items()}
    verdicts = []
    for i in range(r):
        post = {k: np.asarray(v[i]) for k, v in draws.items()}
        ident = identifiability(problem.priors, prior_cd, post, problem.data.sites)
        if ident.separated is None:
            return None
        verdicts.append(ident.separated)
    return float(np.mean(verdicts))


def sbc_flags(res: SBCResult) -> list[str]:
    """Plain-words flags: non-uniform ranks (miscalibrated fits), values the data do not identify,
    divergences."""
    flags = []
    n = res.ranks.shape[0]
    med = np.median(res.contraction, axis=0)
    for i, lab in enumerate(res.labels):
        p = res.p_values[i]
        if math.isfinite(p) and p < LEVEL:
            flags.append(f"{lab}: ranks are not uniform (chi-square p = {p:.2g} < {LEVEL}, {res.bins} bins, "
                         f"{n} replications): the fits are miscalibrated for it (a sampler stuck on a ridge, or "
                         "model and simulator disagree); its posteriors cannot be trusted")
        if med[i] < UNINFORMED:
            flags.append(f"{lab}: not identified by data like these: the posterior keeps "
                         f"{100 * (1 - med[i]):.0f}% of the prior variance (median contraction {med[i]:.2f} over "
                         f"{n} replications), even though the ranks check only the computation")
        elif med[i] < CONTRACTED:
            flags.append(f"{lab}: weakly identified: median contraction {med[i]:.2f} (below {CONTRACTED})")
    if res.divergences:
        total = n * res.settings["chains"] * res.settings["samples"]
        flags.append(f"{res.divergences} divergent transitions in {total:,} draws: the posterior geometry is hard "
                     "for NUTS in some replications")
    return flags


__all__ = ["LEVEL", "RANK_DRAWS", "SBCResult", "check_sbc_request", "rank_bins", "ranks_of", "run_sbc",
           "sbc_flags", "uniformity_p_value"]
