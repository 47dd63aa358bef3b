"""MCMC convergence diagnostics through ArviZ: a summary table, plain-words flags and a text table.

R-hat (rank-normalised split R-hat, the max of bulk and folded), bulk and tail ESS and E-BFMI are
ArviZ's (``arviz.rhat``, ``arviz.ess(method="bulk" | "tail")``, ``arviz.bfmi``: Vehtari, Gelman,
Simpson, Carpenter and Bürkner 2021, Bayesian Analysis 16(2); Betancourt 2016). This module adds
what the product needs around them: one row per scalar element with quantiles, flags in words for
a policy lead's analyst, and a fixed-width table for ``diagnostics.txt``.

One departure from ArviZ: the R-hat of a single chain is that of its two halves (which ArviZ then
splits again), where ArviZ returns NaN; a chain that drifts still shows it. Any NaN or infinite
draw, or fewer than 4 draws per chain, gives NaN.

Arrays are ``(chain, draw)`` for one scalar, or ``(chain, draw, *extra)`` with a result of shape
``extra``. ArviZ is imported when a diagnostic is computed, not with this module.
"""

from __future__ import annotations

import warnings
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


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's own deprecation notices are not the user's business
        import arviz

    return arviz


def _chains(x: Any) -> np.ndarray:
    """``x`` as a float64 ``(chain, draw, ...)`` array, one chain as its two halves."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"expected an array of shape (chain, draw, ...); got shape {a.shape}")
    if a.shape[0] == 1 and a.shape[1] >= 2 * MIN_DRAWS:
        half = a.shape[1] // 2
        a = np.stack([a[0, :half], a[0, a.shape[1] - half:]])
    return a


def _elementwise(fn, x: Any, split_single: bool = True) -> np.ndarray | float:
    """Apply an ArviZ diagnostic to each element of a ``(chain, draw, *extra)`` array."""
    a = _chains(x) if split_single else np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"expected an array of shape (chain, draw, ...); got shape {a.shape}")
    extra = a.shape[2:]
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    out = np.full(flat.shape[2], np.nan)
    ok = np.isfinite(flat).all(axis=(0, 1)) & (a.shape[1] >= MIN_DRAWS)
    if ok.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant element: ArviZ's NaN stands
            values = fn(xr.Dataset({"x": (("chain", "draw", "element"), flat[:, :, ok])}))["x"].values
        out[ok] = values
    return float(out[0]) if extra == () else out.reshape(extra)


def rhat(x: Any) -> np.ndarray | float:
    """Rank-normalised split R-hat (``arviz.rhat``); values above 1.01 mean the chains have not mixed."""
    return _elementwise(lambda ds: _arviz().rhat(ds, method="rank"), x)


def ess_bulk(x: Any) -> np.ndarray | float:
    """Bulk effective sample size (``arviz.ess(method="bulk")``)."""
    return _elementwise(lambda ds: _arviz().ess(ds, method="bulk"), x, split_single=False)


def ess_tail(x: Any) -> np.ndarray | float:
    """Tail effective sample size: the smaller of the 5% and 95% quantiles' (``arviz.ess(method="tail")``)."""
    return _elementwise(lambda ds: _arviz().ess(ds, method="tail"), x, split_single=False)


def ebfmi(energy: Any) -> np.ndarray:
    """Energy Bayesian fraction of missing information per chain (``arviz.bfmi``); ``energy`` is
    ``(chain, draw)`` (1-D: one chain). Below 0.3, momentum resampling explores the energy poorly."""
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2:
        raise ValueError(f"energy must have shape (chain, draw); got shape {e.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.atleast_1d(np.asarray(_arviz().bfmi(e), dtype=np.float64))


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
