"""Can the data tell push from pull? Prior-to-posterior contraction, posterior correlation, and a
verdict in plain words.

Push is the central programme's rate (Bass ``p``, the lever ``push_strength``, a free
``programme`` schedule, or a parameter named ``push``); pull is the peer rate (Bass ``q``, the lever
``peer_influence``, or ``pull``).

- **Contraction** of a value is ``1 - var_posterior / var_prior`` (Schad, Betancourt & Vasishth
  2021): 0 when the data taught nothing, 1 when they pinned it down. Variances are taken on the log
  scale for positive parameters (the scale their priors and the sampler work on), over the prior
  and posterior draws.
- **Correlation** is the posterior correlation of log push and log pull, per site and for the
  pooled (population-level or shared) values. Near -1: a ridge, only a combination (such as the
  early adoption rate, ``p + q F``) is pinned down.

The verdict uses the pooled values and the thresholds below; each site is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Contraction at or above which a value counts as pinned down by the data (posterior variance
#: at most half the prior's).
CONTRACTED = 0.5
#: Contraction below which the data say almost nothing about a value (posterior variance at least
#: 90% of the prior's).
UNINFORMED = 0.1
#: Absolute posterior correlation of log push and log pull at or above which, when either is not
#: pinned down (contraction below CONTRACTED), only their combination is identified. (Two values
#: each pinned down may still be correlated: that is precision along a tilted axis, not a ridge.)
RIDGE = 0.7
PUSH = ("p", "push_strength", "programme", "push")
PULL = ("q", "peer_influence", "pull")


def contraction(prior: np.ndarray, posterior: np.ndarray) -> float:
    """``1 - var(posterior) / var(prior)`` of two 1-D samples (can be negative: a posterior wider
    than its prior, as with a prior-data conflict)."""
    vp = float(np.var(np.asarray(prior, float), ddof=1))
    return float(1.0 - np.var(np.asarray(posterior, float), ddof=1) / vp) if vp > 0 else float("nan")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D samples (NaN when either is constant)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Role:
    """Push or pull: the parameter playing it and its draws, on the analysis scale, as
    ``{label: (prior draws, posterior draws)}`` with ``"pooled"`` and one label per site."""

    role: str
    parameter: str
    log: bool
    values: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class Identifiability:
    """Contraction of push and pull and their correlation, per site and pooled, and the verdict."""

    push: Role | None
    pull: Role | None
    contraction: dict[str, dict[str, float]]  # role -> label -> contraction
    correlation: dict[str, float]  # label -> posterior correlation of log push and log pull
    verdict: str
    separated: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"push": None if self.push is None else self.push.parameter,
                "pull": None if self.pull is None else self.pull.parameter,
                "scale": {r.role: "log" if r.log else "natural" for r in (self.push, self.pull) if r},
                "contraction": self.contraction, "correlation": self.correlation,
                "thresholds": {"contracted": CONTRACTED, "uninformed": UNINFORMED, "ridge": RIDGE},
                "separated": self.separated, "verdict": self.verdict}


def _flat(da: Any) -> np.ndarray:
    """Draws ``(chain, draw, ...)`` -> ``(sample, ...)``."""
    v = np.asarray(da.values if hasattr(da, "values") else da, float)
    return v.reshape((-1,) + v.shape[2:])


def _structure(name: str, priors: tuple | None, posterior: Any) -> str:
    """``"breakpoints"`` (a schedule's values), ``"hierarchical"``, ``"per_site"`` or ``"scalar"``:
    from the priors when given, else from the posterior's variables and dims."""
    if priors is not None:
        spec = next(p for p in priors if p.name == name)
        return ("breakpoints" if spec.breakpoints else "hierarchical" if spec.hierarchical
                else "per_site" if spec.per_site else "scalar")
    if f"{name}_pop" in posterior:
        return "hierarchical"
    dims = getattr(posterior[name], "dims", ())
    if any(str(d).endswith("_breakpoint") for d in dims):
        return "breakpoints"
    return "per_site" if "site" in dims else "scalar"


def _role(role: str, names: tuple[str, ...], priors: tuple | None, prior: Any, posterior: Any,
          sites: tuple[str, ...]) -> Role | None:
    free = [p.name for p in priors] if priors is not None else [n for n in names if n in posterior and n in prior]
    name = next((n for n in names if n in free), None)
    if name is None:
        return None
    kind = _structure(name, priors, posterior)
    log = bool(np.all(_flat(prior[name]) > 0))
    tf = (lambda x: np.log(np.maximum(x, 1e-300))) if log else (lambda x: x)  # noqa: E731
    out = Role(role, name, log)

    def pair(n: str) -> tuple[np.ndarray, np.ndarray]:
        return tf(_flat(prior[n])), tf(_flat(posterior[n]))

    if kind == "breakpoints":  # a schedule: its level is the mean over breakpoints, shared by sites
        a, b = pair(name)
        out.values["pooled"] = (a.mean(axis=-1), b.mean(axis=-1))
        out.values.update({s: out.values["pooled"] for s in sites})
        out.values.update({f"breakpoint {i + 1}": (a[:, i], b[:, i]) for i in range(a.shape[-1])})
    elif kind == "scalar":
        out.values["pooled"] = pair(name)
        out.values.update({s: out.values["pooled"] for s in sites})
    else:
        a, b = pair(name)
        # partial pooling: the population value; no pooling: the mean over sites (log scale)
        out.values["pooled"] = pair(f"{name}_pop") if kind == "hierarchical" else (a.mean(-1), b.mean(-1))
        out.values.update({s: (a[:, i], b[:, i]) for i, s in enumerate(sites)})
    return out


def identifiability(priors: tuple | None, prior: Any, posterior: Any, sites: tuple[str, ...]) -> Identifiability:
    """Push/pull contraction, correlation and verdict from prior and posterior draws (datasets or
    mappings of ``(chain, draw, ...)`` arrays, as in ``posterior.nc``'s ``prior`` and ``posterior``
    groups) of a problem with ``priors`` (``None``: read which are free, and how they are pooled,
    from the datasets' variables and dims) and ``sites``."""
    push = _role("push", PUSH, priors, prior, posterior, sites)
    pull = _role("pull", PULL, priors, prior, posterior, sites)
    contr = {r.role: {k: contraction(*v) for k, v in r.values.items()} for r in (push, pull) if r}
    corr: dict[str, float] = {}
    if push and pull:
        for label in ("pooled",) + tuple(sites):
            if label in push.values and label in pull.values:
                corr[label] = correlation(push.values[label][1], pull.values[label][1])
    verdict, separated = _verdict(push, pull, contr, corr)
    return Identifiability(push, pull, contr, corr, verdict, separated)


def _verdict(push: Role | None, pull: Role | None, contr: dict, corr: dict) -> tuple[str, bool | None]:
    if push is None and pull is None:
        return "Neither push (p, push_strength, programme, push) nor pull (q, peer_influence, pull) is free: nothing to separate.", None
    if push is None or pull is None:
        r = push or pull
        c = contr[r.role]["pooled"]
        return (f"Only {r.role} ({r.parameter}) is free; its posterior variance is {100 * (1 - c):.0f}% of the "
                f"prior's (contraction {c:.2f}). The other is fixed, so the split between them is assumed, not "
                "learned from the data."), None
    cp, cq, r = contr["push"]["pooled"], contr["pull"]["pooled"], corr.get("pooled", float("nan"))
    names = f"push ({push.parameter}) and pull ({pull.parameter})"
    numbers = f"contraction {cp:.2f} for push and {cq:.2f} for pull, posterior correlation {r:+.2f}"
    steps = {k: v for k, v in contr["push"].items() if k.startswith("breakpoint ")}
    if steps:  # a time-varying push: judged breakpoint by breakpoint
        pinned = [k.split()[1] for k, v in steps.items() if v >= CONTRACTED]
        cp = max(steps.values())
        numbers = (f"push pinned down at {len(pinned)} of {len(steps)} breakpoints"
                   + (f" ({', '.join(pinned)})" if pinned else "")
                   + f", contraction {cq:.2f} for pull, posterior correlation of pull with the push level {r:+.2f}")
    weak = [x.role + f" ({x.parameter})" for x, c in ((push, cp), (pull, cq)) if c < UNINFORMED]
    if weak:
        return (f"The data cannot separate push from pull: they say almost nothing about {' or '.join(weak)}, "
                f"whose posterior is close to its prior ({numbers}; below {UNINFORMED} counts as uninformed)."), False
    if abs(r) >= RIDGE and min(cp, cq) < CONTRACTED:
        return (f"The data cannot separate push from pull: only their combination is pinned down ({numbers}; "
                f"|correlation| >= {RIDGE} is a ridge). A higher {push.parameter} with a lower {pull.parameter} "
                "fits about as well."), False
    if cp >= CONTRACTED and cq >= CONTRACTED:
        return (f"The data separate push from pull: {names} are each pinned down ({numbers}; contraction "
                f">= {CONTRACTED} for both)."), True
    return (f"The data separate push from pull only partly: {names} are learned, but not well "
            f"({numbers}; {CONTRACTED} or more would count as pinned down)."), False


def format_identifiability(ident: Identifiability) -> str:
    """A short plain-text table: contraction per site and pooled, correlation, then the verdict."""
    lines = []
    if ident.push and ident.pull:
        lines.append(f"{'':14s} {'push (' + ident.push.parameter + ')':>22s} "
                     f"{'pull (' + ident.pull.parameter + ')':>22s} {'correlation':>12s}")
        for label in ident.correlation:
            lines.append(f"{label:14s} {ident.contraction['push'][label]:22.2f} "
                         f"{ident.contraction['pull'][label]:22.2f} {ident.correlation[label]:+12.2f}")
    steps = {k.split()[1]: v for k, v in ident.contraction.get("push", {}).items() if k.startswith("breakpoint ")}
    if steps:  # a time-varying push: its rows above are the mean over breakpoints
        lines.append("push contraction by breakpoint: " + ", ".join(f"{k}: {v:.2f}" for k, v in steps.items()))
    lines.append(ident.verdict)
    return "\n".join(lines)


__all__ = ["CONTRACTED", "PULL", "PUSH", "RIDGE", "UNINFORMED", "Identifiability", "contraction", "correlation",
           "format_identifiability", "identifiability"]
