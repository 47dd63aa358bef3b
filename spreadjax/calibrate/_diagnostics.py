"""MCMC convergence diagnostics as arrays: R-hat, bulk and tail ESS, E-BFMI, a summary and flags.

The definitions follow Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC", Bayesian
Analysis 16(2), and agree with ArviZ (``arviz.rhat``, ``arviz.ess(method="bulk" | "tail")``,
``arviz.bfmi``) to rounding (about 1e-12 relative):

* **split chains**: each chain of ``n`` draws becomes two of ``n // 2`` (first and last halves;
  the middle draw of an odd ``n`` is dropped);
* **rank normalisation**: pooled ranks over all split chains (ties get the average rank), then
  ``z = Phi^-1((r - 3/8) / (S + 1/4))`` with ``S`` the number of draws (Blom's offset);
* **R-hat** = max(bulk, tail): the split R-hat of the rank-normalised draws and of the
  rank-normalised folded draws ``|x - median(x)|``;
* **ESS** from the FFT autocovariance, with Geyer's initial positive sequence truncated at the
  first negative pair sum, then made monotone (Stan's and ArviZ's estimator, including their
  use of the last even lag and the lower bound ``tau >= 1 / log10(S)``);
* **bulk ESS**: ESS of the rank-normalised split chains; **tail ESS**: the smaller ESS of the
  split indicator chains ``I(x <= q05)`` and ``I(x <= q95)`` (quantiles of type 7, the numpy and
  R default, over all draws);
* **E-BFMI** per chain: ``sum(diff(E)^2) / sum((E - mean E)^2)`` (Betancourt 2016).

``numpyro.diagnostics.effective_sample_size`` is *not* used: it has no ``1 / log10(S)`` bound and
drops the last even autocorrelation that Stan and ArviZ add after the truncated sum, so its
numbers differ from ArviZ's by up to a few per cent.

One departure from ArviZ: ``rhat`` of a single chain is computed (its two halves are compared),
where ArviZ returns NaN. Any NaN or infinite draw, or fewer than 4 draws per chain, gives NaN.
A constant parameter has R-hat NaN and ESS equal to the number of (split) draws, as in ArviZ.

Arrays are ``(chain, draw)`` for one scalar, or ``(chain, draw, *extra)`` with a result of shape
``extra``. This module imports only numpy and xarray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "diagnostic_flags",
    "ebfmi",
    "ess_bulk",
    "ess_tail",
    "format_table",
    "rhat",
    "summarize",
]

#: Quantiles reported by :func:`summarize`, as (data variable name, probability).
QUANTILES = (("q5", 0.05), ("q50", 0.50), ("q95", 0.95))
MIN_DRAWS = 4

# --------------------------------------------------------------------------------------------
# array helpers
# --------------------------------------------------------------------------------------------


def _as_elements(x: Any, name: str = "x") -> tuple[np.ndarray, tuple[int, ...]]:
    """``(chain, draw, *extra)`` -> float64 ``(element, chain, draw)`` and ``extra``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(
            f"{name} must have shape (chain, draw, ...); got shape {a.shape}. "
            f"For one chain pass x[None, :]."
        )
    extra = a.shape[2:]
    a = np.moveaxis(a.reshape(a.shape[0], a.shape[1], -1), 2, 0)
    return a, extra


def _valid(a: np.ndarray) -> np.ndarray:
    """Elements with finite draws and at least MIN_DRAWS draws per chain: bool ``(element,)``."""
    ok = np.isfinite(a).all(axis=(1, 2))
    if a.shape[2] < MIN_DRAWS:
        ok[:] = False
    return ok


def _split(a: np.ndarray) -> np.ndarray:
    """``(element, chain, n)`` -> ``(element, 2 chain, n // 2)``: first and last halves."""
    half = a.shape[2] // 2
    return np.concatenate([a[:, :, :half], a[:, :, a.shape[2] - half :]], axis=1)


def _rank_average(flat: np.ndarray) -> np.ndarray:
    """Ranks 1..S along the last axis of ``(element, S)``, ties sharing the average rank."""
    n_el, size = flat.shape
    order = np.argsort(flat, axis=1, kind="stable")
    srt = np.take_along_axis(flat, order, axis=1)
    idx = np.broadcast_to(np.arange(size), (n_el, size))
    differs = srt[:, 1:] != srt[:, :-1]
    first = np.concatenate([np.ones((n_el, 1), bool), differs], axis=1)
    last = np.concatenate([differs, np.ones((n_el, 1), bool)], axis=1)
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, idx, size)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((n_el, size))
    np.put_along_axis(ranks, order, 0.5 * (start + end) + 1.0, axis=1)
    return ranks


def _ndtri(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF, Wichura's AS241 (PPND16, ~1e-16 relative), vectorised."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        num = (((((((2.5090809287301226727e3 * r + 3.3430575583588128105e4) * r
                    + 6.7265770927008700853e4) * r + 4.5921953931549871457e4) * r
                  + 1.3731693765509461125e4) * r + 1.9715909503065514427e3) * r
                + 1.3314166789178437745e2) * r + 3.3871328727963666080e0) * qc  # fmt: skip
        den = (((((((5.2264952788528545610e3 * r + 2.8729085735721942674e4) * r
                    + 3.9307895800092710610e4) * r + 2.1213794301586595867e4) * r
                  + 5.3941960214247511077e3) * r + 6.8718700749205790830e2) * r
                + 4.2313330701600911252e1) * r + 1.0)  # fmt: skip
        out[central] = num / den
    tails = ~central
    if tails.any():
        qt = q[tails]
        pt = p[tails]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.sqrt(-np.log(np.where(qt <= 0.0, pt, 1.0 - pt)))
        x = np.empty_like(r)
        near = r <= 5.0
        rn = r[near] - 1.6
        num = (((((((7.7454501427834140764e-4 * rn + 2.27238449892691845833e-2) * rn
                    + 2.41780725177450611770e-1) * rn + 1.27045825245236838258e0) * rn
                  + 3.64784832476320460504e0) * rn + 5.76949722146069140550e0) * rn
                + 4.63033784615654529590e0) * rn + 1.42343711074968357734e0)  # fmt: skip
        den = (((((((1.05075007164441684324e-9 * rn + 5.47593808499534494600e-4) * rn
                    + 1.51986665636164571966e-2) * rn + 1.48103976427480074590e-1) * rn
                  + 6.89767334985100004550e-1) * rn + 1.67638483018380384940e0) * rn
                + 2.05319162663775882187e0) * rn + 1.0)  # fmt: skip
        x[near] = num / den
        rf = r[~near] - 5.0
        num = (((((((2.01033439929228813265e-7 * rf + 2.71155556874348757815e-5) * rf
                    + 1.24266094738807843860e-3) * rf + 2.65321895265761230930e-2) * rf
                  + 2.96560571828504891230e-1) * rf + 1.78482653991729133580e0) * rf
                + 5.46378491116411436990e0) * rf + 6.65790464350110377720e0)  # fmt: skip
        den = (((((((2.04426310338993978564e-15 * rf + 1.42151175831644588870e-7) * rf
                    + 1.84631831751005468180e-5) * rf + 7.86869131145613259100e-4) * rf
                  + 1.48753612908506148525e-2) * rf + 1.36929880922735805310e-1) * rf
                + 5.99832206555887937690e-1) * rf + 1.0)  # fmt: skip
        x[~near] = num / den
        out[tails] = np.where(qt < 0.0, -x, x)
    out[(p < 0.0) | (p > 1.0) | np.isnan(p)] = np.nan
    return out


def _z_scale(a: np.ndarray) -> np.ndarray:
    """Rank-normalise ``(element, chain, draw)`` over all chains and draws of each element."""
    n_el = a.shape[0]
    size = a.shape[1] * a.shape[2]
    ranks = _rank_average(a.reshape(n_el, size))
    return _ndtri((ranks - 0.375) / (size + 0.25)).reshape(a.shape)


def _rhat_core(a: np.ndarray) -> np.ndarray:
    """Classic R-hat of ``(element, chain, draw)`` (no splitting)."""
    n = a.shape[2]
    within = a.var(axis=2, ddof=1).mean(axis=1)
    between = n * a.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1.0) / n)


def _autocov(a: np.ndarray) -> np.ndarray:
    """Biased FFT autocovariance along the last axis (lags 0..n-1)."""
    n = a.shape[-1]
    m = 1 << int(math.ceil(math.log2(2 * n)))
    c = a - a.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(c, n=m, axis=-1)
    return np.fft.irfft(f * np.conjugate(f), n=m, axis=-1)[..., :n] / n


def _ess_core(a: np.ndarray) -> np.ndarray:
    """ESS of ``(element, chain, draw)`` chains as given (callers split them first).

    Geyer's initial positive then monotone sequence, written to reproduce Stan's and ArviZ's
    loop exactly: pair sums ``P_k = rho_2k + rho_2k+1`` are taken while the previous pair sum is
    positive (and ``2k < n - 2``); the last pair read, ``K``, contributes its even lag
    ``rho_2K`` when that lag is positive or its pair sum is non-negative; the kept pair sums are
    replaced by their running minimum; ``tau = -1 + 2 sum_{k<K} P_k + rho_2K``, bounded below
    by ``1 / log10(chain * draw)``.
    """
    n_el, n_chain, n = a.shape
    total = n_chain * n
    out = np.full(n_el, np.nan)
    finite = np.isfinite(a).all(axis=(1, 2)) & (n >= 2)
    spread = np.zeros(n_el)
    if n_el and a.size:
        spread = a.max(axis=(1, 2)) - a.min(axis=(1, 2))
    constant = finite & (spread < np.finfo(np.float64).resolution)
    out[constant] = float(total)
    todo = finite & ~constant
    if not todo.any():
        return out
    b = a[todo]
    acov = _autocov(b)
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if n_chain > 1:
        var_plus = var_plus + b.mean(axis=2).var(axis=1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0
    k_lim = max((n - 3) // 2, 0)  # pairs k = 1..k_lim are read while 2k - 1 < n - 3
    pairs = rho[:, 0 : 2 * k_lim + 1 : 2] + rho[:, 1 : 2 * k_lim + 2 : 2]  # (el, k_lim + 1)
    nonpos = ~(pairs > 0.0)
    last = np.where(nonpos.any(axis=1), np.argmax(nonpos, axis=1), k_lim)
    last = np.minimum(last, k_lim)
    running = np.minimum.accumulate(pairs, axis=1)
    keep = np.arange(k_lim + 1)[None, :] < last[:, None]
    kept_sum = np.where(keep, running, 0.0).sum(axis=1)
    rows = np.arange(b.shape[0])
    even = rho[rows, 2 * last]
    last_pair = pairs[rows, last]
    even = np.where(last == 0, 1.0, np.where((even > 0.0) | (last_pair >= 0.0), even, 0.0))
    tau = np.where(last == 0, 0.0, -1.0 + 2.0 * kept_sum + even)
    tau = np.maximum(tau, 1.0 / math.log10(total))
    out[todo] = total / tau
    return out


# --------------------------------------------------------------------------------------------
# public diagnostics
# --------------------------------------------------------------------------------------------


def rhat(x: Any) -> np.ndarray | float:
    """Rank-normalised split R-hat: max of the bulk and the folded (tail) versions.

    ``x`` is ``(chain, draw)`` (returns a float) or ``(chain, draw, *extra)`` (returns an array
    of shape ``extra``). Values above 1.01 mean the chains have not mixed.
    """
    a, extra = _as_elements(x)
    out = np.full(a.shape[0], np.nan)
    ok = _valid(a)
    if ok.any():
        s = _split(a[ok])
        bulk = _rhat_core(_z_scale(s))
        med = np.median(s.reshape(s.shape[0], -1), axis=1)
        tail = _rhat_core(_z_scale(np.abs(s - med[:, None, None])))
        out[ok] = np.maximum(bulk, tail)
    return _shape(out, extra)


def ess_bulk(x: Any) -> np.ndarray | float:
    """Bulk effective sample size: ESS of the rank-normalised split chains."""
    a, extra = _as_elements(x)
    out = np.full(a.shape[0], np.nan)
    ok = _valid(a)
    if ok.any():
        out[ok] = _ess_core(_z_scale(_split(a[ok])))
    return _shape(out, extra)


def ess_tail(x: Any, prob: tuple[float, float] = (0.05, 0.95)) -> np.ndarray | float:
    """Tail effective sample size: min ESS of the split indicators ``I(x <= q05)``, ``I(x <= q95)``."""
    a, extra = _as_elements(x)
    out = np.full(a.shape[0], np.nan)
    ok = _valid(a)
    if ok.any():
        b = a[ok]
        qs = np.quantile(b.reshape(b.shape[0], -1), prob, axis=1)  # (2, element)
        lo = _ess_core(_split((b <= qs[0][:, None, None]).astype(np.float64)))
        hi = _ess_core(_split((b <= qs[1][:, None, None]).astype(np.float64)))
        out[ok] = np.minimum(lo, hi)
    return _shape(out, extra)


def ebfmi(energy: Any) -> np.ndarray:
    """Energy Bayesian fraction of missing information, one value per chain.

    ``energy`` is ``(chain, draw)`` (a 1-D array is one chain). Values below 0.3 mean the
    momentum resampling explores the energy distribution poorly (Betancourt 2016).
    """
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2:
        raise ValueError(f"energy must have shape (chain, draw); got shape {e.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.square(np.diff(e, axis=1)).mean(axis=1)
        return num / e.var(axis=1, ddof=1)


def _shape(out: np.ndarray, extra: tuple[int, ...]) -> np.ndarray | float:
    return float(out[0]) if extra == () else out.reshape(extra)


# --------------------------------------------------------------------------------------------
# summary, flags and table
# --------------------------------------------------------------------------------------------


def _label(name: str, dims: Sequence[str], values: Sequence[Any]) -> str:
    if not dims:
        return name
    inner = ", ".join(f"{d}={_plain(v)}" for d, v in zip(dims, values, strict=True))
    return f"{name}[{inner}]"


def _plain(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    return str(v)


def summarize(
    posterior: xr.Dataset | Mapping[str, Any],
    sample_stats: xr.Dataset | Mapping[str, Any] | None = None,
    *,
    var_names: Sequence[str] | None = None,
) -> xr.Dataset:
    """Per-element posterior summary and run-level sampler diagnostics.

    ``posterior`` holds variables with dims ``(chain, draw, ...)`` (as ArviZ's ``posterior``
    group; a mapping of ``(chain, draw, ...)`` arrays, such as
    ``mcmc.get_samples(group_by_chain=True)``, is accepted too). Variables without both ``chain``
    and ``draw`` dims are skipped.

    Returns a Dataset along dim ``parameter`` (labels such as ``q[site=city1]``) with ``mean``,
    ``sd`` (ddof=1), ``q5``, ``q50``, ``q95`` (type-7 quantiles over all draws), ``rhat``,
    ``ess_bulk`` and ``ess_tail``; coords ``variable`` (the variable each row comes from). Attrs
    ``n_chains`` and ``n_draws``; when ``sample_stats`` has ``diverging``, attrs
    ``divergences`` (count) and ``n_transitions``; when it has ``energy``, a data variable
    ``ebfmi`` along dim ``chain``.
    """
    post = _to_dataset(posterior)
    names = list(var_names) if var_names is not None else [str(k) for k in post.data_vars]
    labels: list[str] = []
    variables: list[str] = []
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("mean", "sd", *(q for q, _ in QUANTILES), "rhat", "ess_bulk", "ess_tail")
    }
    n_chains = n_draws = None
    for name in names:
        if name not in post.data_vars:
            raise KeyError(
                f"summarize: no variable {name!r} in the posterior; it has {list(post.data_vars)}"
            )
        da = post[name]
        if "chain" not in da.dims or "draw" not in da.dims:
            if var_names is not None:
                raise ValueError(
                    f"summarize: variable {name!r} has dims {da.dims}; need (chain, draw, ...)"
                )
            continue
        rest = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *rest)
        n_chains, n_draws = da.sizes["chain"], da.sizes["draw"]
        arr = np.asarray(da.values, dtype=np.float64)
        flat = arr.reshape(n_chains, n_draws, -1)
        pooled = flat.reshape(n_chains * n_draws, -1)
        coords = [
            np.asarray(da[d].values) if d in da.coords else np.arange(da.sizes[d]) for d in rest
        ]
        for idx in np.ndindex(*[da.sizes[d] for d in rest]):
            labels.append(_label(name, rest, [c[i] for c, i in zip(coords, idx, strict=True)]))
            variables.append(name)
        cols["mean"].append(pooled.mean(axis=0))
        if pooled.shape[0] > 1:
            cols["sd"].append(pooled.std(axis=0, ddof=1))
        else:
            cols["sd"].append(np.full(pooled.shape[1], np.nan))
        qv = np.quantile(pooled, [p for _, p in QUANTILES], axis=0)
        for (q, _), row in zip(QUANTILES, qv, strict=True):
            cols[q].append(row)
        cols["rhat"].append(np.asarray(rhat(flat)))
        cols["ess_bulk"].append(np.asarray(ess_bulk(flat)))
        cols["ess_tail"].append(np.asarray(ess_tail(flat)))
    data = {
        k: ("parameter", np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()
    }
    attrs: dict[str, Any] = {}
    if n_chains is not None:
        attrs.update(n_chains=int(n_chains), n_draws=int(n_draws))
    out = xr.Dataset(
        data,
        coords={"parameter": np.asarray(labels, dtype=object).astype(str),
                "variable": ("parameter", np.asarray(variables, dtype=object).astype(str))},
        attrs=attrs,
    )
    if sample_stats is not None:
        stats = _to_dataset(sample_stats)
        if "diverging" in stats.data_vars:
            div = np.asarray(stats["diverging"].values)
            out.attrs["divergences"] = int(np.count_nonzero(div))
            out.attrs["n_transitions"] = int(div.size)
        if "energy" in stats.data_vars:
            en = stats["energy"]
            if "chain" in en.dims:
                en = en.transpose("chain", ...)
            values = ebfmi(np.asarray(en.values))
            chain = en["chain"].values if "chain" in en.coords else np.arange(values.size)
            out["ebfmi"] = xr.DataArray(values, dims=("chain",), coords={"chain": chain})
    return out


def _to_dataset(data: xr.Dataset | Mapping[str, Any]) -> xr.Dataset:
    if isinstance(data, xr.Dataset):
        return data
    if isinstance(data, Mapping):
        out = {}
        for k, v in data.items():
            a = np.asarray(v)
            dims = ("chain", "draw", *[f"{k}_dim_{i}" for i in range(a.ndim - 2)])
            out[str(k)] = (dims[: a.ndim], a)
        return xr.Dataset(out)
    raise TypeError(f"expected an xarray.Dataset or a mapping of arrays, got {type(data).__name__}")


def diagnostic_flags(
    summary: xr.Dataset,
    *,
    rhat_max: float = 1.01,
    ess_per_chain: float = 100.0,
    min_ess: float | None = None,
    ebfmi_min: float = 0.3,
) -> list[str]:
    """Plain-words warnings for the diagnostics that fail; an empty list when all pass.

    Thresholds (Vehtari et al. 2021; Betancourt 2016): R-hat above ``rhat_max`` (1.01); bulk or
    tail ESS below ``min_ess``, by default ``ess_per_chain`` (100) times the number of chains
    (400 for 4 chains, or 400 if the chain count is unknown); any divergent transition; E-BFMI
    below ``ebfmi_min`` (0.3) in any chain. Constant parameters (sd 0, e.g. fixed values) are
    not flagged; R-hat that cannot be computed (non-finite draws, fewer than 4 draws) is.
    """
    flags: list[str] = []
    n_chains = summary.attrs.get("n_chains")
    if min_ess is None:
        min_ess = ess_per_chain * n_chains if n_chains else 400.0
    labels = [str(p) for p in summary["parameter"].values] if "parameter" in summary.coords else []
    for i, label in enumerate(labels):
        sd = float(summary["sd"].values[i]) if "sd" in summary else np.nan
        r = float(summary["rhat"].values[i])
        if sd == 0.0:
            continue
        if not np.isfinite(r):
            flags.append(
                f"R-hat of {label} could not be computed (non-finite draws or fewer than "
                f"{MIN_DRAWS} draws per chain); check the sampler output"
            )
        elif r > rhat_max:
            flags.append(
                f"chains disagree: {label} has R-hat {_above(r, rhat_max)} (above {rhat_max:g}); "
                "run longer or reparameterise"
            )
        eb = float(summary["ess_bulk"].values[i])
        et = float(summary["ess_tail"].values[i])
        low = [(kind, v) for kind, v in (("bulk", eb), ("tail", et)) if np.isfinite(v) and v < min_ess]
        if low:
            what = " and ".join(f"{kind} ESS {v:.0f}" for kind, v in low)
            flags.append(
                f"too few effective draws: {label} has {what} (below {min_ess:.0f}); "
                "run more draws or reparameterise"
            )
    n_div = summary.attrs.get("divergences")
    if n_div:
        of = summary.attrs.get("n_transitions")
        where = f" (of {of})" if of else ""
        flags.append(
            f"{n_div} divergent transitions{where}: the posterior geometry is hard; "
            "raise target_accept or reparameterise"
        )
    if "ebfmi" in summary.data_vars:
        eb = summary["ebfmi"]
        for c, v in zip(eb["chain"].values, np.asarray(eb.values, dtype=float), strict=True):
            if not v >= ebfmi_min:
                flags.append(
                    f"low E-BFMI: chain {_plain(c)} has E-BFMI {v:.3g} (below {ebfmi_min:g}); "
                    "momentum resampling explores the energy poorly: reparameterise "
                    "(e.g. non-centred) or lengthen warm-up"
                )
    return flags


def _above(value: float, threshold: float) -> str:
    """``value`` with 2 decimals, or more where 2 would not show it above ``threshold``."""
    digits = 2
    while digits < 6 and float(f"{value:.{digits}f}") <= threshold:
        digits += 1
    return f"{value:.{digits}f}"


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.4g}"


def format_table(summary: xr.Dataset, *, footer: bool = True) -> str:
    """Fixed-width text table: parameter, mean, sd, 5%, 95%, R-hat, ESS bulk, ESS tail.

    Numbers have 4 significant digits, R-hat 3 decimals and ESS whole numbers; columns are
    right-aligned (the parameter left-aligned) and every line has the same width. With
    ``footer``, lines for divergences and E-BFMI follow when the summary has them. The text ends
    with a newline, ready for ``print(..., end="")`` or ``Path.write_text``.
    """
    headers = ["parameter", "mean", "sd", "5%", "95%", "R-hat", "ESS bulk", "ESS tail"]
    rows: list[list[str]] = []
    n = summary.sizes.get("parameter", 0)
    for i in range(n):
        r = float(summary["rhat"].values[i])
        rows.append([
            str(summary["parameter"].values[i]),
            _num(float(summary["mean"].values[i])),
            _num(float(summary["sd"].values[i])),
            _num(float(summary["q5"].values[i])),
            _num(float(summary["q95"].values[i])),
            f"{r:.3f}" if np.isfinite(r) else "nan",
            *(
                f"{v:.0f}" if np.isfinite(v) else "nan"
                for v in (float(summary["ess_bulk"].values[i]), float(summary["ess_tail"].values[i]))
            ),
        ])  # fmt: skip
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if footer:
        if "divergences" in summary.attrs:
            of = summary.attrs.get("n_transitions")
            out.append(f"divergences: {summary.attrs['divergences']}" + (f" of {of}" if of else ""))
        if "ebfmi" in summary.data_vars:
            vals = " ".join(f"{v:.3f}" for v in np.asarray(summary["ebfmi"].values, dtype=float))
            out.append(f"E-BFMI per chain: {vals}")
    return "\n".join(out) + "\n"
