"""The one-page uncertainty report for policy leads: ``DIR/report.html``.

Built only from the files a run leaves in its folder ``DIR``, so ``spreadjax report DIR``
rebuilds it without recomputing anything:

* ``summary.json`` (required; :func:`spreadjax.ensemble._summary.summarize_ensemble`) and
  ``summary.nc`` (listed with its hash);
* ``posterior.nc``, ``diagnostics.csv``, ``diagnostics.txt`` and the calibration PNGs
  (``predictive.png``, ``trace_rank.png``, ``prior_posterior.png``), when there was a calibration;
* ``sensitivity.json`` (lever elasticities and Sobol indices), ``observed.json`` (observed series
  to overlay) and ``run.json`` (provenance), when present.

The page is one self-contained HTML file: figures are inline PNG data URIs or inline SVG, the
style sheet and the one small script (open collapsed parts before printing) are inline, and no
address of any network resource appears in it (``://`` in quoted text such as the config is
written as ``&#58;//``, which a browser shows as ``://`` but which is not a link). Missing
optional files leave their section in place, saying what is missing.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import hashlib
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError
from .._io import write_atomic
from ._figures import OKABE_ITO
from ._report_figures import (
    Clock,
    elasticity_figure,
    fan_chart_figure,
    num,
    pace_extent_figure,
    pretty,
    qkey,
    sobol_figure,
    stock_flow_svg,
)

__all__ = ["build_report", "headline"]

REPORT = "report.html"
SUMMARY_SCHEMA = "spreadjax.ensemble.summary/"
BACKTEST_PNG = "backtest.png"
COMPARE_PNG = "compare.png"
CALIBRATION_PNGS = {
    "predictive.png": "Observed adopters against what the calibrated model predicts",
    "trace_rank.png": "Sampler traces and rank plots (chains should overlap and ranks look uniform)",
    "prior_posterior.png": "What the data taught the model: prior (before) against posterior (after)",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
MAX_SITE_PANELS = 12
MAX_COMPARED = 4

STANDARD_ASSUMPTIONS = (
    "The results are simulated futures, not forecasts of a single outcome. Each future is one run of the "
    "model with one plausible set of parameter values (from the calibration where there was one) and one "
    "roll of chance. Bands show the spread across these futures.",
    "Only what is in the model can change. New policies, funding changes, reorganisations or a competing "
    "practice are not represented unless a scenario sets them.",
    "Organisations at a site are treated alike: size, readiness and leadership do not vary within a site. "
    "Sites influence each other through a fixed peer network.",
    "Evidence is one number per site; it does not tell good findings from bad. Visible failure acts only "
    "through disillusionment.",
    "Stopping is permanent in the model: an organisation that discontinues does not adopt again, and no "
    "organisations join or leave.",
    "Central programme support is one dial from 0 (withdrawn) to 1 (full): it drives the push and protects "
    "against dropping out.",
    "Scenarios are compared on the same simulated futures (the same parameter draws and chance), so a "
    "difference between scenarios comes from the scenario, not from luck.",
    "Uncertainty the model does not know about (a different structure, data errors, unprecedented events) "
    "is not in the bands: the real range is wider than shown.",
)


# ====================================================================================== words
def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def n_of_10(p: float) -> str:
    """A probability as a person says it: '8 of 10', 'all', 'none', 'fewer than 1 in 10',
    'more than 9 of 10'."""
    if p <= 0:
        return "none"
    if p >= 1:
        return "all"
    n = _round_half_up(10 * p)
    if n == 0:
        return "fewer than 1 in 10"
    if n == 10:
        return "more than 9 of 10"
    return f"{n} of 10"


def _in_futures(p: float) -> str:
    words = n_of_10(p)
    return "in none of the simulated futures" if words == "none" else f"in {words} simulated futures"


def pct(x: float) -> str:
    """A share as a person says it: nearest 5% from 10% up, nearest 1% below 10%."""
    v = 100 * x
    if not math.isfinite(v):
        return "unknown"
    if v <= 0:
        return "0%"
    if v < 1:
        return "under 1%"
    if 99 < v < 100:
        return "over 99%"
    if v < 10:
        return f"{_round_half_up(v)}%"
    return f"{5 * _round_half_up(v / 5)}%"


def pct_range(lo: float, hi: float) -> tuple[str, str]:
    """Both ends with :func:`pct`, or to the nearest 1% where that rounding would merge them."""
    a, b = pct(lo), pct(hi)
    if a == b and math.isfinite(lo) and math.isfinite(hi) and lo != hi:
        a, b = f"{_round_half_up(100 * lo)}%", f"{_round_half_up(100 * hi)}%"
    return a, b


def points(d: float) -> str:
    """A difference of shares in percentage points, whole points (or 'less than 1')."""
    v = abs(100 * d)
    if v < 0.5:
        return "less than 1 percentage point"
    n = _round_half_up(v)
    return f"{n} percentage point" + ("" if n == 1 else "s")


def share_words(f: float) -> str:
    """A threshold fraction in words: 'half', 'a quarter', 'three quarters', else '60%'."""
    for value, words in ((0.5, "half"), (0.25, "a quarter"), (0.75, "three quarters"), (1.0, "all"),
                         (1 / 3, "a third"), (2 / 3, "two thirds"), (0.1, "a tenth")):
        if abs(f - value) < 1e-9:
            return words
    return f"{100 * f:g}%"


# ================================================================================= summary.json
def _check_summary(summary: Any, where: str) -> None:
    def bad(msg: str) -> InputError:
        return InputError(f"{where}: {msg}; expected the summary.json that `spreadjax ensemble` writes")

    if not isinstance(summary, Mapping):
        raise bad(f"expected a JSON object, got {type(summary).__name__}")
    schema = summary.get("schema")
    if schema is not None and not str(schema).startswith(SUMMARY_SCHEMA):
        raise bad(f"unknown schema {schema!r}")
    scen = summary.get("scenarios")
    if not isinstance(scen, Mapping) or not scen:
        raise bad("no 'scenarios'")
    times = summary.get("time")
    if not isinstance(times, list) or len(times) < 2:
        raise bad("'time' must list at least two output times")
    for name, entry in scen.items():
        adoption = entry.get("adoption") if isinstance(entry, Mapping) else None
        if not isinstance(adoption, Mapping) or not isinstance(adoption.get("all"), Mapping):
            raise bad(f"scenario {name!r} has no adoption bands for site 'all'")
        for key, series in adoption["all"].items():
            if not isinstance(series, list) or len(series) != len(times):
                raise bad(f"scenario {name!r}: adoption '{key}' has {len(series) if isinstance(series, list) else 'no'} "
                          f"values for {len(times)} times")
    baseline = summary.get("baseline")
    if baseline is not None and baseline not in scen:
        raise bad(f"baseline {baseline!r} is not among the scenarios {list(scen)}")
    if "date" in summary and (not isinstance(summary["date"], list) or len(summary["date"]) != len(times)):
        raise bad("'date' must list one date per output time")


def scenario_order(summary: Mapping[str, Any]) -> list[str]:
    """Scenario names, the baseline (if any) first, then the others as in the file."""
    names = list(summary["scenarios"])
    base = summary.get("baseline")
    if base in names:
        names.remove(base)
        names.insert(0, base)
    return names


def _clock(summary: Mapping[str, Any]) -> Clock:
    return Clock(summary["time"], summary.get("date"))


def _horizon(summary: Mapping[str, Any], clock: Clock) -> str:
    h = summary.get("horizon") or {}
    t = num(h.get("time")) if isinstance(h, Mapping) else math.nan
    if not math.isfinite(t):
        t = float(clock.t[-1])
    return clock.month_year(t, h.get("date") if isinstance(h, Mapping) else None)


def headline(summary: Mapping[str, Any]) -> list[str]:
    """The headline in plain words, from a ``summary.json`` dict (site 'all').

    1. Reaching each target (else 50% at some point by the horizon): "In 8 of 10 simulated futures
       at least half of the organisations have adopted by March 2028 under 'status quo'; under
       'programme sustained', in 9 of 10."
    2. Pace: when half have adopted in a typical (median) future, with the 90% range.
    3. How uncertain: adoption at the horizon, median and the 90% range of futures.
    4. Each other scenario against the baseline (mean paired difference, chance it is better).

    Probabilities are said as "n of 10" (nearest tenth), shares as "about 45%" (nearest 5% from
    10% up, nearest 1% below) and dates as "early/mid/late 2028".
    """
    _check_summary(summary, "summary")
    clock = _clock(summary)
    scen = scenario_order(summary)
    ref, others = scen[0], scen[1:MAX_COMPARED + 1]
    S = summary["scenarios"]
    horizon = _horizon(summary, clock)
    named = len(scen) > 1
    is_base = summary.get("baseline") == ref and "baseline" not in pretty(ref).lower()
    under_ref = f" under '{pretty(ref)}'" + (" (the baseline)" if is_base else "")
    lines: list[str] = []

    # 1. targets (or reaching half by the horizon)
    targets = [t for t in (summary.get("targets") or []) if isinstance(t, Mapping)]
    for tg in targets:
        label = str(tg.get("label"))
        p_ref = num((S[ref].get("targets") or {}).get(label, {}).get("all"))
        if not math.isfinite(p_ref):
            continue
        frac = num(tg.get("fraction"))
        when = clock.by(num(tg.get("time")), tg.get("date"))
        s = (f"{_in_futures(p_ref).capitalize()} at least {share_words(frac)} of the organisations have adopted "
             f"{when}{under_ref if named else ''}")
        rest = []
        for sc in others:
            p = num((S[sc].get("targets") or {}).get(label, {}).get("all"))
            if math.isfinite(p):
                rest.append(f"under '{pretty(sc)}', in {n_of_10(p)}")
        lines.append(s + ("; " + "; ".join(rest) if rest else "") + ".")
    if not lines:
        never = num((S[ref].get("time_to_threshold") or {}).get("0.5", {}).get("all", {}).get("share_never"))
        if math.isfinite(never):
            s = (f"{_in_futures(1 - never).capitalize()} at least half of the organisations have adopted at some "
                 f"point by {horizon}{under_ref if named else ''}")
            rest = []
            for sc in others:
                nv = num((S[sc].get("time_to_threshold") or {}).get("0.5", {}).get("all", {}).get("share_never"))
                if math.isfinite(nv):
                    rest.append(f"under '{pretty(sc)}', in {n_of_10(1 - nv)}")
            lines.append(s + ("; " + "; ".join(rest) if rest else "") + ".")

    # 2. pace: half adopted
    cell = (S[ref].get("time_to_threshold") or {}).get("0.5", {}).get("all")
    if isinstance(cell, Mapping):
        mid, lo, hi = (num(cell.get(qkey(q))) for q in (0.5, 0.05, 0.95))
        iso = cell.get("date") if isinstance(cell.get("date"), Mapping) else {}

        def when(q: float, years: float) -> str:
            return clock.roughly(years, iso.get(qkey(q)))

        never = num(cell.get("share_never"))
        by = "by " if clock.has_dates else ""
        if math.isfinite(mid):
            s = f"In a typical (median) future{under_ref if named else ''}, half of the organisations have adopted {by}{when(0.5, mid)}"
            if math.isfinite(lo) and math.isfinite(hi):
                s += f" (90% range: {when(0.05, lo)} to {when(0.95, hi)})"
            elif math.isfinite(lo) and math.isfinite(never) and never > 0:
                s += (f"; as early as {when(0.05, lo)} in some futures, but in {n_of_10(never)} "
                      f"it does not happen by {horizon}")
            lines.append(s + ".")
        elif math.isfinite(never):
            lines.append(f"In a typical (median) future{under_ref if named else ''}, half of the organisations have "
                         f"not adopted by {horizon}; that happens {_in_futures(1 - never)}.")

    # 3. how uncertain: adoption at the horizon
    final = (S[ref].get("extent") or {}).get("all", {}).get("final")
    if isinstance(final, Mapping):
        mid, lo, hi = (num(final.get(qkey(q))) for q in (0.5, 0.05, 0.95))
        if math.isfinite(mid):
            s = (f"By {horizon}, about {pct(mid)} of the organisations are using the practice in a typical "
                 f"future{under_ref if named else ''}")
            if math.isfinite(lo) and math.isfinite(hi):
                a, b = pct_range(lo, hi)
                s += f", but it could be anywhere from {a} to {b} (the 90% range of the simulated futures)"
            members = (summary.get("members") or {}).get("members")
            if isinstance(members, int) and members > 0:
                s += f"; based on {members:,} simulated futures"
            lines.append(s + ".")

    # 4. each other scenario against the baseline
    if summary.get("baseline") == ref:
        for sc in others:
            vs = (S[sc].get("vs_baseline") or {}).get("all", {}).get("final_fraction")
            if not isinstance(vs, Mapping):
                continue
            d, pb = num(vs.get("mean")), num(vs.get("prob_better"))
            if not math.isfinite(d):
                continue
            if abs(100 * d) < 0.5:
                s = f"'{pretty(sc)}' makes little difference to adoption at the horizon compared with '{pretty(ref)}' (on average {points(d)})"
            else:
                more = "more" if d > 0 else "less"
                s = f"'{pretty(sc)}' gives on average about {points(d)} {more} adoption at the horizon than '{pretty(ref)}'"
            if math.isfinite(pb):
                s += f", with more adoption {_in_futures(pb).replace('simulated futures', 'paired futures')}"
            lines.append(s + ".")
    return lines


# ====================================================================================== inputs
@dataclass
class _Inputs:
    dir: Path
    summary: dict[str, Any]
    run: dict[str, Any] | None = None
    observed: dict[str, Any] | None = None
    sensitivity: dict[str, Any] | None = None
    posterior: dict[str, Any] | None = None
    diag_rows: list[dict[str, str]] | None = None
    diag_text: str | None = None
    backtest: dict[str, Any] | None = None  # backtest.json of `spreadjax backtest` / `run --backtest`
    compare: dict[str, Any] | None = None  # compare.json of `spreadjax run --backtest` with [compare]
    pngs: dict[str, bytes] = field(default_factory=dict)
    bad_pngs: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path, required: bool) -> Any:
    if not path.exists():
        if required:
            raise InputError(f"{path}: no such file; run `spreadjax run` (or `spreadjax ensemble`) first")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({exc})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(run_dir: Path) -> _Inputs:
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such folder")
    path = run_dir / "summary.json"
    summary = _read_json(path, required=True)
    _check_summary(summary, str(path))
    inp = _Inputs(run_dir, summary)
    for name, attr in (("run.json", "run"), ("observed.json", "observed"), ("sensitivity.json", "sensitivity"),
                       ("backtest.json", "backtest"), ("compare.json", "compare")):
        value = _read_json(run_dir / name, required=False)
        if value is not None and not isinstance(value, dict):
            raise InputError(f"{run_dir / name}: expected a JSON object, got {type(value).__name__}")
        setattr(inp, attr, value)
    if inp.observed is not None:
        _check_observed(inp.observed, run_dir / "observed.json")
    post = run_dir / "posterior.nc"
    if post.exists():
        from ..calibrate._run import read_posterior

        inp.posterior = read_posterior(post)
    diag = run_dir / "diagnostics.csv"
    if diag.exists():
        try:
            with diag.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{diag}: not a readable CSV file ({exc})") from None
        if rows and "parameter" not in rows[0]:
            raise InputError(f"{diag}: has no 'parameter' column; columns: {', '.join(rows[0])}")
        # one row per parameter: a CSV written from a summary that kept its 'chain' coordinate
        # (from E-BFMI) repeats each parameter once per chain
        seen: set[str] = set()
        inp.diag_rows = [r for r in rows if not (r.get("parameter") in seen or seen.add(r.get("parameter")))]
    txt = run_dir / "diagnostics.txt"
    if txt.exists():
        try:
            inp.diag_text = txt.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{txt}: not a readable text file ({exc})") from None
    if inp.backtest is not None:
        _check_backtest(inp.backtest, run_dir / "backtest.json")
    if inp.compare is not None:
        _check_compare(inp.compare, run_dir / "compare.json")
    for name in (*CALIBRATION_PNGS, BACKTEST_PNG, COMPARE_PNG):
        p = run_dir / name
        if p.exists():
            data = p.read_bytes()
            if data.startswith(PNG_MAGIC):
                inp.pngs[name] = data
            else:
                inp.bad_pngs.append(name)
    for name in ("summary.json", "summary.nc", "posterior.nc", "diagnostics.csv", "diagnostics.txt",
                 "sensitivity.json", "observed.json", "run.json", "backtest.json", BACKTEST_PNG,
                 "compare.json", COMPARE_PNG, *CALIBRATION_PNGS):
        p = run_dir / name
        if p.is_file():
            inp.hashes[name] = _sha256(p)
    return inp


def _check_backtest(bt: Mapping[str, Any], path: Path) -> None:
    pooled = bt.get("pooled")
    if not isinstance(pooled, Mapping) or "model" not in pooled or not isinstance(bt.get("origins"), list):
        raise InputError(f"{path}: not a backtest summary (needs 'origins' and 'pooled' scores of 'model')")


def _check_compare(cmp: Mapping[str, Any], path: Path) -> None:
    rows = cmp.get("rows")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) and "name" in r and "crps" in r
                                                          for r in rows):
        raise InputError(f"{path}: not a comparison (needs 'rows', each with a 'name' and its 'crps')")


def _check_observed(obs: Mapping[str, Any], path: Path) -> None:
    times = obs.get("time")
    fr = obs.get("adopted_fraction")
    if not isinstance(times, list) or not isinstance(fr, Mapping):
        raise InputError(f"{path}: needs 'time' (a list of years) and 'adopted_fraction' ({{site: [...]}})")
    for site, values in fr.items():
        if not isinstance(values, list) or len(values) != len(times):
            raise InputError(f"{path}: adopted_fraction[{site!r}] must have one value per time ({len(times)})")
    dates = obs.get("date")
    if dates is not None and (not isinstance(dates, list) or len(dates) != len(times)):
        raise InputError(f"{path}: 'date' must be null or have one entry per time ({len(times)})")


# ====================================================================================== html
def esc(value: Any) -> str:
    """HTML-escaped text, with '://' written as '&#58;//' so that no network address appears in
    the file (the browser still shows '://')."""
    return html.escape(str(value)).replace("://", "&#58;//")


def _fig(uri: str | None, alt: str, caption: str = "", cls: str = "") -> str:
    if not uri:
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="{cls}"><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _missing(text: str) -> str:
    return f'<p class="missing"><strong>Not available:</strong> {text}</p>'


def _figure_failed(what: str, exc: Exception) -> str:
    return _missing(f"the {esc(what)} could not be drawn from these files ({esc(type(exc).__name__)}: {esc(exc)}).")


def _fmt(v: Any, digits: int = 3) -> str:
    x = num(v)
    if not math.isfinite(x):
        return "&ndash;"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


class _Page:
    def __init__(self, inp: _Inputs):
        self.inp = inp
        self.s = inp.summary
        self.run = inp.run or {}
        self.clock = _clock(self.s)
        self.scen = scenario_order(self.s)
        self.ref = self.scen[0]
        self.base = self.s.get("baseline") if self.s.get("baseline") in self.s["scenarios"] else None
        self.horizon = _horizon(self.s, self.clock)
        self.fit_until = self._fit_until()
        descr = self.run.get("scenarios") if isinstance(self.run.get("scenarios"), Mapping) else {}
        self.scen_descr = {str(k): str(v) for k, v in descr.items() if v}

    # ---------------------------------------------------------------------------- helpers
    def _fit_until(self) -> float | None:
        for source in (self.inp.observed or {}, self.run):
            v = num(source.get("fit_until")) if isinstance(source, Mapping) else math.nan
            if math.isfinite(v):
                return v
        post = (self.inp.posterior or {}).get("posterior")
        if post is not None:
            v = num(post.attrs.get("fit_until"))
            if math.isfinite(v) and v >= 0:
                return v
        obs_data = (self.inp.posterior or {}).get("observed_data")
        if obs_data is not None and "time" in obs_data.coords and self.inp.observed:
            t_fit = float(np.max(obs_data["time"].values))
            t_obs = [num(t) for t in self.inp.observed.get("time", [])]
            if any(math.isfinite(t) and t > t_fit + 1e-9 for t in t_obs):
                return t_fit
        return None

    def name(self, sc: str) -> str:
        return esc(pretty(sc))

    def base_tag(self, sc: str) -> str:
        """' (baseline)' after the baseline's name, unless the name says so already."""
        return " (baseline)" if sc == self.base and "baseline" not in pretty(sc).lower() else ""

    # ---------------------------------------------------------------------------- page
    def render(self) -> str:
        title = str(self.run.get("title") or "How good practice may spread")
        members = (self.s.get("members") or {}).get("members")
        sub = [f"Uncertainty report: {len(self.scen)} scenario{'s' if len(self.scen) != 1 else ''}"]
        if isinstance(members, int):
            sub.append(f"{members:,} simulated futures each")
        sub.append(f"horizon {esc(self.horizon)}")
        if self.run.get("finished"):
            sub.append(f"run finished {esc(self.run['finished'])}")
        from ._design_section import design_section

        sections = [
            ("headline", "What to expect", self.sec_headline()),
            ("backtest", "How well did the model forecast the past?", self.sec_backtest()),
            *([("compare", "Which model structure forecasts best?", self.sec_compare())]
              if self.inp.compare is not None else []),
            ("futures", "How adoption may unfold", self.sec_futures()),
            ("pace", "Pace and extent", self.sec_pace()),
            ("levers", "Which lever matters most", self.sec_levers()),
            *([("design", "What to do", design_section(self.inp.dir, self.model_info.get("levers")))]
              if (self.inp.dir / "design.json").exists() else []),
            ("calibration", "How well the model fits the data", self.sec_calibration()),
            ("model", "The model, its assumptions and limits", self.sec_model()),
            ("reproducibility", "Reproducibility", self.sec_repro()),
        ]
        nav = " ".join(f'<a href="#{sid}">{i}. {esc(h)}</a>' for i, (sid, h, _) in enumerate(sections, 1))
        body = "".join(f'<section id="{sid}"><h2>{i}. {esc(h)}</h2>{content}</section>'
                       for i, (sid, h, content) in enumerate(sections, 1))
        built = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<title>{esc(title)}: uncertainty report</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p class=\"sub\">{' &middot; '.join(sub)}</p>"
            f"<nav aria-label=\"sections\">{nav}</nav></header><main>{body}</main>"
            f"<footer><p>Built by spreadjax on {esc(built)} from the files in the run folder only "
            f"(<code>spreadjax report DIR</code> rebuilds it). Colours are colour-blind safe (Okabe-Ito).</p></footer>"
            f"<script>{_JS}</script></body></html>\n"
        )

    # ------------------------------------------------------------------------- 1 headline
    def sec_headline(self) -> str:
        items = "".join(f"<li>{esc(s)}</li>" for s in headline(self.s))
        out = f'<ul class="headline">{items}</ul>'
        if not self.s.get("targets"):
            out += _missing("no targets were set for this run, so the first line uses reaching half of the "
                            "organisations by the horizon instead.")
        out += ('<p class="note">A <em>simulated future</em> is one run of the model with one plausible set of '
                'parameter values and one roll of chance; "8 of 10" means 80% of them. These are not promises: '
                'see <a href="#model">the assumptions</a>.</p>')
        return out

    # ------------------------------------------------------------------------- backtest
    def sec_backtest(self) -> str:
        bt = self.inp.backtest
        if bt is None:
            return _missing("no backtest in this run folder: before trusting the bands, check how they held on "
                            "the past with <code>spreadjax backtest CONFIG --out DIR</code> (the same folder) or "
                            "<code>spreadjax run --backtest</code>.")
        pooled = bt["pooled"]
        cls = "good" if bt.get("calibrated") else "bad"
        out = (f'<p class="flag {cls}">{esc(bt.get("verdict", ""))}. The model was fitted to the data up to '
               f'each of {len(bt["origins"])} past dates and asked to forecast what came next; '
               f'{bt.get("points", "?")} later observations were then compared with its forecasts.</p>')
        names = {"model": "this model", "bass": "a Bass curve fitted to each site", "no_change": "no change"}
        rows = []
        for f, label in names.items():
            r = pooled.get(f)
            if not isinstance(r, Mapping):
                continue
            share = lambda v: f"{100 * num(v):.0f}%" if math.isfinite(num(v)) else "&ndash;"  # noqa: E731
            rows.append([esc(label), share(r.get("covered50")), share(r.get("covered90")),
                         _fmt(r.get("crps"), 3), _fmt(r.get("bias"), 2)])
        out += _table(["forecast", "inside the 50% band", "inside the 90% band", "mean CRPS (lower is better)",
                       "bias (median - observed)"], rows)
        if BACKTEST_PNG in self.inp.pngs:
            out += _fig(_png_uri(self.inp.pngs[BACKTEST_PNG]), "Backtest coverage, PIT histogram and CRPS by origin",
                        "Left: share of held-out observations inside the bands, by forecast date (red: the 90% "
                        "band held fewer than 85% or more than 95%). Middle: where observations fell within the "
                        "forecast (flat when calibrated). Right: forecast error against the references.", "wide")
        out += ('<p class="note">CRPS is in shares of organisations; a well-calibrated 90% band holds about 90% '
                'of what happens. The references use only the same data up to each date.</p>')
        return out

    # ------------------------------------------------------------------------- compare
    def sec_compare(self) -> str:
        cmp = self.inp.compare
        rows = cmp["rows"]
        ours = self.run.get("config_sha256")
        share = lambda v: f"{100 * num(v):.0f}%" if math.isfinite(num(v)) else "&ndash;"  # noqa: E731
        table = []
        for i, r in enumerate(rows, 1):
            this = ours is not None and r.get("config_sha256") == ours
            name = f"<code>{esc(r['name'])}</code>" + (" <strong>(this report)</strong>" if this else "")
            loo = f"{_fmt(r.get('elpd_loo'), 4)} &plusmn; {_fmt(r.get('loo_se'), 2)}"
            high = r.get("pareto_k_high")
            table.append([str(i), name, _fmt(r.get("crps"), 3), share(r.get("covered90")), share(r.get("covered50")),
                          _fmt(r.get("elpd_lfo"), 4), loo, _fmt(r.get("loo_dse"), 2), _fmt(r.get("loo_weight"), 2),
                          esc(high) if isinstance(high, int) else "&ndash;"])
        best = rows[0]
        out = (f'<p>{len(rows)} model structures were each fitted to the data up to each of '
               f'{len(cmp.get("origins", []))} past dates and scored on what came next ({cmp.get("points", "?")} '
               f'later observations). <strong><code>{esc(best["name"])}</code></strong> forecast best '
               f'(mean CRPS {_fmt(best.get("crps"), 3)}).</p>')
        out += _table(["rank", "config", "mean CRPS (lower is better)", "inside the 90% band", "inside the 50% band",
                       "elpd_lfo (one step ahead, higher is better)", "elpd_loo &plusmn; se (PSIS-LOO)",
                       "dse", "LOO stacking weight", "points with Pareto k &gt; 0.7"], table)
        if COMPARE_PNG in self.inp.pngs:
            out += _fig(_png_uri(self.inp.pngs[COMPARE_PNG]), "Forecast error and coverage by origin, per structure",
                        "Left: mean CRPS at each forecast date, per structure (lower is better). Right: share of "
                        "held-out observations inside each structure's 90% (solid) and 50% (dashed) bands.", "wide")
        out += (f'<p class="note">The ranking is by forecasting the future from the past (leave-future-out), '
                f'the question this report answers. {esc(cmp.get("loo_note", ""))}</p>')
        return out

    # ------------------------------------------------------------------------- 2 futures
    def sec_futures(self) -> str:
        obs = self.inp.observed
        titles = {sc: pretty(sc) + self.base_tag(sc) for sc in self.scen}
        try:
            uri = fan_chart_figure(self.s, self.clock, self.scen, observed=obs, observed_for=self.ref,
                                   fit_until=self.fit_until, title_for=titles)
            out = _fig(uri, "Fan charts of the share of organisations adopted over time, one per scenario",
                       "Share of all organisations using the practice. Line: median future; dark band: the middle "
                       "50% of futures; light band: 90%. Dots: observed (filled: used for calibration; open: held "
                       f"back to check the forecast), drawn on the '{esc(pretty(self.ref))}' panel, the scenario "
                       "closest to what happened.", "wide")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            out = _figure_failed("fan chart", exc)
        if obs is None:
            out += _missing("no observed series in this folder (<code>observed.json</code> not found), so no "
                            "data points are drawn on the charts.")
        if self.fit_until is not None:
            out += (f"<p>The dashed line marks <strong>{esc(self.clock.month_year(self.fit_until))}</strong>: "
                    "the model was calibrated on data up to there; everything after it is projection.</p>")
        if self.scen_descr:
            lis = "".join(f"<li><strong>{self.name(sc)}</strong>{esc(self.base_tag(sc))}: "
                          f"{esc(self.scen_descr.get(sc, ''))}</li>" for sc in self.scen if sc in self.scen_descr)
            out += f"<h3>The scenarios</h3><ul>{lis}</ul>"
        sites = [s for s in self.s.get("sites", []) if s != "all"]
        if sites:
            shown = sites[:MAX_SITE_PANELS]
            try:
                uri = fan_chart_figure(self.s, self.clock, self.scen, observed=obs, fit_until=self.fit_until,
                                       title_for=titles, panels=[(self.ref, st) for st in shown])
                more = f" (first {len(shown)} of {len(sites)})" if len(sites) > len(shown) else ""
                out += (f"<details><summary>Each site under '{self.name(self.ref)}'{more}</summary>"
                        + _fig(uri, f"Fan charts per site under {pretty(self.ref)}") + "</details>")
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                out += _figure_failed("per-site fan chart", exc)
        return out

    # ------------------------------------------------------------------------- 3 pace
    def sec_pace(self) -> str:
        titles = {sc: pretty(sc) for sc in self.scen}
        try:
            out = _fig(pace_extent_figure(self.s, self.clock, self.scen, titles),
                       "Interval plots of the time to 25, 50 and 75 percent adopted and of adoption at the horizon",
                       "Left: when each share of organisations is reached (line: 90% of futures; bar: middle 50%; "
                       "marker: median; an arrow means some futures do not get there by the horizon). Right: the "
                       "share adopted at the horizon.", "wide")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            out = _figure_failed("pace and extent chart", exc)
        out += self._targets_table()
        return out

    def _targets_table(self) -> str:
        S = self.s["scenarios"]
        targets = [t for t in (self.s.get("targets") or []) if isinstance(t, Mapping)]
        head = ["Scenario"]
        for tg in targets:
            when = self.clock.month_year(num(tg.get("time")), tg.get("date"))
            head.append(f"Chance of {esc(share_words(num(tg.get('fraction'))))} adopted by {esc(when)}")
        head += ["Adopted at the horizon: median (90% range)", "Half adopted: median (90% range)"]
        if self.base:
            head += ["Difference at the horizon vs baseline: mean (90% range)",
                     "Chance of more adoption than baseline", "Time to half vs baseline: mean",
                     "Chance of reaching half sooner"]
        rows = []
        for sc in self.scen:
            e = S[sc]
            row = [f"<strong>{self.name(sc)}</strong>" + (f" <small>{esc(self.base_tag(sc).strip())}</small>" if self.base_tag(sc) else "")]
            for tg in targets:
                p = num((e.get("targets") or {}).get(str(tg.get("label")), {}).get("all"))
                row.append(f"{p:.0%} <small>({esc(n_of_10(p))})</small>" if math.isfinite(p) else "&ndash;")
            fin = (e.get("extent") or {}).get("all", {}).get("final", {})
            m, lo, hi = (num(fin.get(qkey(q))) for q in (0.5, 0.05, 0.95))
            row.append(f"{m:.0%} ({lo:.0%} to {hi:.0%})" if all(map(math.isfinite, (m, lo, hi))) else "&ndash;")
            half = (e.get("time_to_threshold") or {}).get("0.5", {}).get("all", {})
            m, lo, hi = (num(half.get(qkey(q))) for q in (0.5, 0.05, 0.95))
            never = num(half.get("share_never"))
            cell = esc(self.clock.month_year(m)) if math.isfinite(m) else "not by the horizon"
            if math.isfinite(lo):
                cell += (f" ({esc(self.clock.month_year(lo))} to "
                         f"{esc(self.clock.month_year(hi)) if math.isfinite(hi) else 'beyond the horizon'})")
            if math.isfinite(never) and never > 0:
                cell += f"<br><small>{never:.0%} of futures: not by the horizon</small>"
            row.append(cell)
            if self.base:
                if sc == self.base:
                    row += ["baseline"] * 4
                else:
                    vs = (e.get("vs_baseline") or {}).get("all", {})
                    ff = vs.get("final_fraction", {})
                    d, dlo, dhi, pb = (num(ff.get(k)) for k in ("mean", "q5", "q95", "prob_better"))
                    row.append(f"{100 * d:+.1f} points ({100 * dlo:+.1f} to {100 * dhi:+.1f})"
                               if all(map(math.isfinite, (d, dlo, dhi))) else "&ndash;")
                    row.append(f"{pb:.0%}" if math.isfinite(pb) else "&ndash;")
                    tt = next((v for k, v in vs.items() if k.startswith("time_to_")), {})
                    dt, ps = num(tt.get("mean_if_both_reach")), num(tt.get("prob_sooner"))
                    if math.isfinite(dt):
                        months = 12 * dt
                        row.append(f"{abs(months):.1f} months {'sooner' if months < 0 else 'later'}"
                                   if abs(months) >= 0.05 else "the same")
                    else:
                        row.append("&ndash;")
                    row.append(f"{ps:.0%}" if math.isfinite(ps) else "&ndash;")
            rows.append(row)
        out = "<h3>Targets and differences between scenarios</h3>" + _table(head, rows, "numbers")
        if not targets:
            out += _missing("no targets were set for this run (<code>[ensemble] targets</code> in the config).")
        if self.base:
            out += ('<p class="note">Differences are paired: each scenario is compared with the baseline in the same '
                    'simulated future (same parameter draw and chance), then averaged. "Chance of more adoption" '
                    'is the share of paired futures in which the scenario has more organisations using the practice '
                    'at the horizon. Time differences use the futures in which both reach half.</p>')
        else:
            out += _missing("no baseline scenario was set, so there are no paired differences.")
        return out

    # ------------------------------------------------------------------------- 4 levers
    def sec_levers(self) -> str:
        sens = self.inp.sensitivity
        if sens is None:
            return _missing("no sensitivity analysis in this folder (<code>sensitivity.json</code> not found), so "
                            "the levers cannot be ranked. <code>spreadjax run</code> writes it.")
        levers = self.model_info.get("levers") or {}
        out = ""
        top = self._top_lever(sens, levers)
        if top:
            out += f'<p class="lead">{top}</p>'
        out += self._lever_table(sens, levers)
        try:
            uri = elasticity_figure(sens)
            out += _fig(uri, "Ranked bar chart of lever elasticities for extent and pace with 5 to 95 percent whiskers",
                        "Elasticity: the percentage change in the outcome for 1% more of the lever, averaged over "
                        "parameter draws (whiskers: 5-95% of draws). Longer bars matter more.", "wide")
            if uri is None:
                out += _missing("<code>sensitivity.json</code> has no elasticities.")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            out += _figure_failed("elasticity chart", exc)
        try:
            uri = sobol_figure(sens)
            out += _fig(uri, "Ranked bar chart of first-order Sobol indices",
                        "First-order Sobol index: the share of the spread of outcomes across futures explained by "
                        "each uncertain input on its own (whiskers: its uncertainty).", "wide")
            if uri is None:
                out += _missing("<code>sensitivity.json</code> has no Sobol indices.")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            out += _figure_failed("Sobol chart", exc)
        notes = []
        n = sens.get("n_draws")
        if isinstance(n, int):
            notes.append(f"Elasticities are computed with automatic differentiation over {n:,} parameter draws.")
        pn = sens.get("pace_never")
        thr = num(sens.get("threshold"))
        if isinstance(pn, int) and pn > 0:
            notes.append(f"In {pn:,} draws {thr:.0%} was not reached, so pace could not be measured there.")
        sm = sens.get("sobol_members")
        if isinstance(sm, int) and sm > 0:
            how = " with SALib's RBD-FAST estimator for given data" if "rbd_fast" in str(sens.get("sobol_estimator")) else ""
            notes.append(f"Sobol indices are estimated{how} from {sm:,} simulated futures.")
        if notes:
            out += f'<p class="note">{esc(" ".join(notes))}</p>'
        ranking = [r for r in (sens.get("ranking") or []) if isinstance(r, Mapping)]
        if ranking:
            rows = [[str(i), esc(pretty(r.get("name", ""))), esc(r.get("kind", "")), esc(r.get("metric", "")),
                     _fmt(r.get("value"))] for i, r in enumerate(ranking[:12], 1)]
            out += "<details><summary>Full ranking</summary>" + _table(
                ["Rank", "Lever or input", "Measure", "Outcome", "Value"], rows, "numbers") + "</details>"
        if levers:
            absent = sens.get("not_in_model") if isinstance(sens.get("not_in_model"), Mapping) else {}
            lis = "".join(f"<li><strong>{esc(pretty(k))}</strong>: {esc(v)}"
                          f"{' <em>(not in this model)</em>' if k in absent else ''}</li>" for k, v in levers.items())
            out += f"<details><summary>What each lever means</summary><ul>{lis}</ul></details>"
        return out

    def _lever_table(self, sens: Mapping[str, Any], levers: Mapping[str, str]) -> str:
        """One row per lever (``sensitivity.json`` ``levers``): the parameters it scales (merged
        when the model reads only their product), its extent and pace elasticities (mean, 5-95%
        of draws), and "not in this model" with the reason for a lever the configured model
        cannot feel. Active levers first, by the size of their extent elasticity."""
        rows_in = [r for r in (sens.get("levers") or []) if isinstance(r, Mapping) and r.get("name")]
        if not rows_in:
            return ""
        el = sens.get("elasticities") or {}

        def cell(metric: str, name: str) -> str:
            v = (el.get(metric) or {}).get(name) or {}
            mean, lo, hi = num(v.get("mean")), num(v.get("q05")), num(v.get("q95"))
            if not math.isfinite(mean):
                return "&ndash;"
            band = f" ({lo:+.2f} to {hi:+.2f})" if math.isfinite(lo) and math.isfinite(hi) else ""
            return f"{mean:+.2f}{band}"

        def size(r: Mapping[str, Any]) -> float:
            v = num(((el.get("extent") or {}).get(str(r["name"])) or {}).get("mean"))
            return -abs(v) if math.isfinite(v) else math.inf

        active = sorted((r for r in rows_in if r.get("status", "active") == "active"), key=size)
        absent = [r for r in rows_in if r.get("status", "active") != "active"]
        rows = []
        for r in active + absent:
            name = str(r["name"])
            params = [str(p) for p in (r.get("parameters") or [name])]
            label = f"<strong>{esc(pretty(name))}</strong>"
            if name in levers:
                label += f"<br><small>{esc(levers[name])}</small>"
            scales = " &times; ".join(f"<code>{esc(p)}</code>" for p in params)
            if r.get("acts_on"):
                scales += f" (the <em>{esc(pretty(str(r['acts_on'])))}</em>)"
            if len(params) > 1:
                scales += "<br><small>the model uses only their product: one lever</small>"
            if r in absent:
                why = esc(str(r.get("reason") or ""))
                rows.append([label, scales, f"<strong>not in this model</strong><br><small>{why}</small>", ""])
            else:
                rows.append([label, scales, cell("extent", name), cell("pace", name)])
        thr = num(sens.get("threshold"))
        pace = f"Pace: time to {thr:.0%} adopted" if math.isfinite(thr) else "Pace"
        out = _table(["Lever", "Parameters it scales", "Extent: adoption at the horizon", pace], rows, "levers")
        note = ("Elasticity: % change in the outcome for 1% more of the lever, mean over parameter draws "
                "(5% to 95% of draws in brackets); for pace, negative means sooner.")
        if absent:
            note += (" A lever marked <strong>not in this model</strong> does not act in the configured structure "
                     "(no chain of equations leads from it to adoption, or the config's fixed values cut every "
                     "chain): it is not ranked, which is not the same as having no effect in a model that has it.")
        return out + f'<p class="note">{note}</p>'

    def _top_lever(self, sens: Mapping[str, Any], levers: Mapping[str, str]) -> str:
        """One sentence naming the lever with the largest elasticity (``ranking`` entries of kind
        'lever', else the elasticities), and one on the uncertain input with the largest
        first-order Sobol index (kind 'parameter')."""
        thr = num(sens.get("threshold"))
        thr_words = share_words(thr) if math.isfinite(thr) else "the threshold"
        outcome = {"extent": "adoption at the horizon", "pace": f"the time until {thr_words} have adopted"}
        ranking = [r for r in (sens.get("ranking") or []) if isinstance(r, Mapping) and r.get("name")]
        lever_rows = [r for r in ranking if str(r.get("kind", "")).lower() in ("lever", "elasticity")
                      and math.isfinite(num(r.get("value")))]
        sobol_rows = [r for r in ranking if str(r.get("kind", "")).lower() in ("parameter", "sobol")
                      and math.isfinite(num(r.get("value")))]
        el = sens.get("elasticities") or {}
        if not lever_rows:
            for metric, block in el.items():
                if isinstance(block, Mapping):
                    lever_rows += [{"name": k, "metric": metric, "value": v.get("mean")} for k, v in block.items()
                                   if isinstance(v, Mapping) and math.isfinite(num(v.get("mean")))]
        if not sobol_rows:
            for metric, block in (sens.get("sobol") or {}).items():
                if isinstance(block, Mapping):
                    sobol_rows += [{"name": k, "metric": metric, "value": v.get("S1")} for k, v in block.items()
                                   if isinstance(v, Mapping) and math.isfinite(num(v.get("S1")))]
        out = []
        if lever_rows:
            r = max(lever_rows, key=lambda row: abs(num(row["value"])))
            name, metric, value = str(r["name"]), str(r.get("metric", "")), num(r["value"])
            what = outcome.get(metric, pretty(metric) or "the outcome")
            descr = f" ({esc(levers[name])})" if name in levers else ""
            merged = next((r.get("parameters") for r in (sens.get("levers") or [])
                           if isinstance(r, Mapping) and r.get("name") == name), None) or [name]
            if len(merged) > 1:
                descr += f", that is {' &times; '.join(f'<code>{esc(p)}</code>' for p in merged)}"
            if metric == "pace":
                direction = "lengthens" if value > 0 else "shortens"
            else:
                direction = "raises" if value > 0 else "lowers"
            out.append(f"The lever that matters most is <strong>{esc(pretty(name))}</strong>{descr}: 10% more of it "
                       f"{direction} {esc(what)} by about {abs(10 * value):.2g}% (elasticity {value:+.2f}).")
        if sobol_rows:
            r = max(sobol_rows, key=lambda row: abs(num(row["value"])))
            what = outcome.get(str(r.get("metric", "")), "the outcome")
            lever_of = (sens.get("sobol_lever") or {}).get(str(r["name"]))
            also = f" (part of the <strong>{esc(pretty(str(lever_of)))}</strong> lever)" if lever_of else ""
            out.append(f"Of the uncertain inputs, <strong>{esc(pretty(str(r['name'])))}</strong>{also} explains most of the "
                       f"spread in {esc(what)} across futures: about {esc(pct(num(r['value'])))} on its own.")
        return " ".join(out)

    # ------------------------------------------------------------------------- 5 calibration
    def sec_calibration(self) -> str:
        inp = self.inp
        if inp.posterior is None and inp.diag_rows is None and not inp.pngs:
            return _missing("no calibration results in this folder (<code>posterior.nc</code> not found). The "
                            "futures use the parameter values and ranges set in the config, which have not been "
                            "checked against data here.")
        out = ""
        if inp.posterior is None:
            out += _missing("<code>posterior.nc</code> not found: only the calibration's tables and figures are shown.")
        flags, checks = self._flags()
        if flags:
            lis = "".join(f"<li>{esc(f)}</li>" for f in flags)
            out += (f'<div class="flag bad" role="alert"><p><strong>&#9888; Warning: {len(flags)} calibration '
                    f"check{'s' if len(flags) != 1 else ''} failed.</strong> Treat the results with caution until this "
                    f"is fixed.</p><ul>{lis}</ul></div>")
        elif checks:
            out += ('<div class="flag good"><p><strong>&#10004; All calibration checks pass:</strong> the chains agree, '
                    "there are enough effective draws and no divergent transitions.</p></div>")
        if checks:
            out += "<ul class=\"checks\">" + "".join(f"<li>{c}</li>" for c in checks) + "</ul>"
        out += self._out_of_sample()
        if "predictive.png" in inp.pngs:
            out += _fig(_png_uri(inp.pngs["predictive.png"]), CALIBRATION_PNGS["predictive.png"],
                        "Observed cumulative adopters (points) against the calibrated model: predictive median and "
                        "bands.", "wide")
        elif inp.posterior is not None and "observed_data" in inp.posterior:
            out += self._predictive_from_posterior()
        else:
            out += _missing("the predictive figure (<code>predictive.png</code>) is not in this folder.")
        out += self._parameter_table()
        from ._identify_section import identify_paragraph

        out += identify_paragraph(inp.posterior)  # can the data tell push from pull?
        extra = [n for n in ("trace_rank.png", "prior_posterior.png") if n in inp.pngs]
        if extra:
            figs = "".join(_fig(_png_uri(inp.pngs[n]), CALIBRATION_PNGS[n], esc(CALIBRATION_PNGS[n])) for n in extra)
            out += f"<details><summary>More calibration figures</summary>{figs}</details>"
        for n in inp.bad_pngs:
            out += _missing(f"<code>{esc(n)}</code> is not a PNG image and is not shown.")
        if inp.diag_text:
            out += f"<details><summary>Diagnostics as written by the run</summary><pre>{esc(inp.diag_text)}</pre></details>"
        return out

    def _predictive_from_posterior(self) -> str:
        import tempfile

        from ._calibration_figures import plot_predictive

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = plot_predictive(self.inp.posterior, Path(tmp) / "predictive.png")
                data = path.read_bytes()
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return _figure_failed("predictive figure", exc)
        return _fig(_png_uri(data), CALIBRATION_PNGS["predictive.png"],
                    "Observed cumulative adopters (points) against the calibrated model (drawn from posterior.nc).",
                    "wide")

    def _flags(self) -> tuple[list[str], list[str]]:
        """(flags, plain-words checks). Flags from diagnostics.txt, else recomputed."""
        inp = self.inp
        flags: list[str] | None = None
        if inp.diag_text and "Flags:" in inp.diag_text:
            block = inp.diag_text.split("Flags:", 1)[1]
            flags = [ln.strip()[2:].strip() for ln in block.splitlines() if ln.strip().startswith("- ")]
            flags = [f for f in flags if f and f != "all diagnostics pass"]
        post = (inp.posterior or {}).get("posterior")
        stats = (inp.posterior or {}).get("sample_stats")
        method = str(post.attrs.get("method", "")) if post is not None else ""
        n_chains = int(post.sizes["chain"]) if post is not None and "chain" in post.sizes else None
        divergences = None
        if stats is not None and "diverging" in stats:
            divergences = (int(np.count_nonzero(stats["diverging"].values)), int(stats["diverging"].size))
        elif inp.diag_text:
            for ln in inp.diag_text.splitlines():
                if ln.startswith("divergences:"):
                    parts = ln.split()
                    try:
                        divergences = (int(parts[1]), int(parts[3]) if len(parts) > 3 else 0)
                    except (IndexError, ValueError):
                        pass
        rows = inp.diag_rows or []
        if flags is None:
            flags = []
            if method and method != "nuts":
                flags.append(f"{method} is an approximation: no convergence diagnostics; use method = \"nuts\" "
                             "for final results")
            min_ess = ESS_PER_CHAIN * (n_chains or 4)
            for r in rows:
                sd = num(r.get("sd"))
                if sd == 0:
                    continue
                rh = num(r.get("rhat"))
                if math.isfinite(rh) and rh > RHAT_MAX:
                    flags.append(f"chains disagree: {r['parameter']} has R-hat {rh:.3f} (above {RHAT_MAX:g})")
                eb, et = num(r.get("ess_bulk")), num(r.get("ess_tail"))
                low = [f"{k} ESS {v:.0f}" for k, v in (("bulk", eb), ("tail", et)) if math.isfinite(v) and v < min_ess]
                if low:
                    flags.append(f"too few effective draws: {r['parameter']} has {' and '.join(low)} (below {min_ess})")
            if divergences and divergences[0]:
                flags.append(f"{divergences[0]} divergent transitions (of {divergences[1]})")
        checks = []
        if method:
            checks.append(f"Method: <strong>{esc(method)}</strong>"
                          + (f", {n_chains} chains of {int(post.sizes['draw'])} draws" if n_chains else "")
                          + ("" if method == "nuts" else " (an approximation: no convergence checks possible)"))
        rh = [(num(r.get("rhat")), r.get("parameter", "")) for r in rows if math.isfinite(num(r.get("rhat")))]
        if rh:
            worst, name = max(rh)
            ok = worst <= RHAT_MAX
            checks.append(f"{'&#10004;' if ok else '&#10008;'} Do independent chains agree? Worst R-hat is "
                          f"{worst:.3f} ({esc(name)}); it should be at most {RHAT_MAX:g}.")
        ess = [(min(num(r.get("ess_bulk")), num(r.get("ess_tail"))), r.get("parameter", "")) for r in rows
               if math.isfinite(num(r.get("ess_bulk"))) and math.isfinite(num(r.get("ess_tail")))]
        if ess:
            low, name = min(ess)
            need = ESS_PER_CHAIN * (n_chains or 4)
            checks.append(f"{'&#10004;' if low >= need else '&#10008;'} Enough effectively independent draws? The "
                          f"smallest effective sample size is {low:,.0f} ({esc(name)}); at least {need:,} is wanted.")
        if divergences is not None:
            d, total = divergences
            checks.append(f"{'&#10004;' if d == 0 else '&#10008;'} Divergent transitions (the sampler failing to "
                          f"follow the posterior): {d:,}" + (f" of {total:,}" if total else "") + ".")
        return flags, checks

    def _out_of_sample(self) -> str:
        obs = self.inp.observed
        if self.fit_until is None:
            if obs is not None:
                return "<p>The calibration used <strong>all the observed data</strong>, so there is no out-of-sample check.</p>"
            return ""
        when = esc(self.clock.month_year(self.fit_until))
        if obs is None:
            return (f"<p>The calibration used only the data up to <strong>{when}</strong>; the observed series is not "
                    "in this folder to compare the rest.</p>")
        t = np.asarray([num(v) for v in obs.get("time", [])], dtype=float)
        y = np.asarray([num(v) for v in (obs.get("adopted_fraction") or {}).get("all", [np.nan] * t.size)], dtype=float)
        late = np.isfinite(t) & (t > self.fit_until + 1e-9) & np.isfinite(y)
        n_in = int(np.sum(np.isfinite(t) & (t <= self.fit_until + 1e-9)))
        if not late.any():
            return (f"<p>The calibration used the data up to <strong>{when}</strong> ({n_in} observations); there are no "
                    "later observations to check the projection against.</p>")
        band = self.s["scenarios"][self.ref]["adoption"]["all"]
        lo = np.asarray([num(v) for v in band.get(qkey(0.05), [])], dtype=float)
        hi = np.asarray([num(v) for v in band.get(qkey(0.95), [])], dtype=float)
        out = (f"<p><strong>Out-of-sample check:</strong> the calibration used only the data up to <strong>{when}</strong> "
               f"({n_in} observations). The {int(late.sum())} later observations were held back and are drawn as open "
               "circles on the fan charts.")
        if lo.size == self.clock.t.size and hi.size == lo.size:
            tt = self.clock.t
            ok = (t[late] >= tt[0]) & (t[late] <= tt[-1])
            if ok.any():
                lo_i = np.interp(t[late][ok], tt, lo)
                hi_i = np.interp(t[late][ok], tt, hi)
                inside = int(np.sum((y[late][ok] >= lo_i - 1e-12) & (y[late][ok] <= hi_i + 1e-12)))
                out += (f" {inside} of {int(ok.sum())} fall inside the 90% band of '{self.name(self.ref)}'"
                        + (" (ideally about 9 in 10)." if ok.sum() >= 5 else "."))
        return out + "</p>"

    def _parameter_table(self) -> str:
        rows = self.inp.diag_rows
        if rows is None and self.inp.posterior is not None:
            rows = self._rows_from_posterior()
        if not rows:
            return _missing("no parameter table (<code>diagnostics.csv</code> not found).")
        body = []
        for r in rows:
            rh = num(r.get("rhat"))
            bad = math.isfinite(rh) and rh > RHAT_MAX
            body.append([f"<code>{esc(r.get('parameter', ''))}</code>", _fmt(r.get("mean")), _fmt(r.get("q50")),
                         f"{_fmt(r.get('q5'))} to {_fmt(r.get('q95'))}",
                         (f'<span class="badval">{rh:.3f} &#10008;</span>' if bad else
                          (f"{rh:.3f}" if math.isfinite(rh) else "&ndash;")),
                         _fmt(r.get("ess_bulk"), 4), _fmt(r.get("ess_tail"), 4)])
        return ("<h3>Calibrated parameters</h3>"
                + _table(["Parameter", "Mean", "Median", "90% credible interval", "R-hat", "ESS bulk", "ESS tail"],
                         body, "numbers")
                + '<p class="note">90% credible interval: given the model and the data, the value lies in this range '
                  "with 90% probability.</p>")

    def _rows_from_posterior(self) -> list[dict[str, str]]:
        from ..calibrate._diagnostics import summarize
        from ._calibration_figures import _default_var_names

        groups = self.inp.posterior or {}
        try:
            summ = summarize(groups["posterior"], groups.get("sample_stats"), var_names=_default_var_names(groups))
        except (KeyError, ValueError):
            return []
        cols = ("mean", "sd", "q5", "q50", "q95", "rhat", "ess_bulk", "ess_tail")
        return [{"parameter": str(p), **{c: str(float(summ[c].values[i])) for c in cols}}
                for i, p in enumerate(summ["parameter"].values)]

    # ------------------------------------------------------------------------- 6 model
    @property
    def model_info(self) -> Mapping:
        """The model this run used, as run.json records it, else summary.json (`spreadjax ensemble`
        writes no run.json); empty when neither does."""
        for record in (self.run.get("model"), self.s.get("model")):
            if isinstance(record, Mapping):
                return record
        return {}

    def sec_model(self) -> str:
        model = self.model_info
        if not model:  # an unknown model is not drawn as the flagship
            return (_missing("<code>run.json</code> not found and <code>summary.json</code> does not record the "
                             "model, so the model this run used is not known and no diagram is drawn.")
                    + "<h3>Assumptions and limitations</h3><ul>"
                    + "".join(f"<li>{esc(a)}</li>" for a in STANDARD_ASSUMPTIONS[:2]) + "</ul>")
        name = str(model.get("name") or "")
        options = model.get("options") if isinstance(model.get("options"), Mapping) else {}
        levers = model.get("levers") if isinstance(model.get("levers"), Mapping) else {}
        if isinstance(model.get("structure"), Mapping):
            return self._sec_user_model(model["structure"], options, str(model.get("adopted") or ""))
        out = ("<p>The model follows a good practice through four stages: evidence that it works is "
               "<strong>generated</strong> by pilots and adopters; the practice is <strong>recognised</strong> as "
               "good as that evidence builds up (with a delay); organisations hear about it (<strong>"
               "communication</strong>) through a central programme (push) and through peers who already use it "
               "(pull); and they <strong>adopt</strong> it after an implementation period, while some stop again. "
               "Yellow tags show where each lever acts.</p>")
        if name and name != "four_stage":
            out += (f'<p class="note">This run used the model <code>{esc(name)}</code>; the diagram shows the '
                    "flagship four-stage structure that it builds on.</p>")
        out += f'<figure class="wide diagram">{stock_flow_svg(options, levers or None)}</figure>'
        if options:
            out += ("<p class=\"note\">Model options: " + ", ".join(f"<code>{esc(k)} = {esc(v)}</code>"
                                                                  for k, v in options.items()) + "</p>")
        run_assumptions = [str(a) for a in (self.run.get("assumptions") or []) if a]
        out += "<h3>Assumptions and limitations</h3>"
        if run_assumptions:
            out += "<p>Set for this run:</p><ul>" + "".join(f"<li>{esc(a)}</li>" for a in run_assumptions) + "</ul>"
            out += "<p>Always true of this model:</p>"
        out += "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in STANDARD_ASSUMPTIONS) + "</ul>"
        return out

    def _sec_user_model(self, structure: Mapping, options: Mapping, adopted: str = "") -> str:
        """A user model (``[model] file``): its own description and a diagram drawn from its structure."""
        from ..models import model_from_dict
        from ._report_figures import model_diagram_svg

        try:
            model = model_from_dict(dict(structure), "run.json model structure")
        except InputError as exc:
            return _missing(f"The model structure recorded in <code>run.json</code> cannot be read ({esc(exc)}).")
        file = options.get("file")
        out = (f"<p>This run used the user model <code>{esc(model.name)}</code>"
               + (f", read from <code>{esc(file)}</code>" if file else "") + ".")
        if model.doc:
            out += f" {esc(model.doc)}"
        out += ("</p><p>The diagram is drawn from the model's own structure: stocks and delays as boxes, "
                "flows as pipes between them or from and to clouds outside the model.</p>")
        out += f'<figure class="wide diagram">{model_diagram_svg(model)}</figure>'
        if adopted:
            out += (f"<p>The forecasts count as adopted <code>{esc(adopted)}</code> "
                    "(<code>[observation] cumulative</code> and <code>scale</code> in the config).</p>")
        if options.get("sha256"):
            out += f'<p class="note">Model file SHA-256: <code>{esc(options["sha256"])}</code></p>'
        run_assumptions = [str(a) for a in (self.run.get("assumptions") or []) if a]
        out += "<h3>Assumptions and limitations</h3>"
        if run_assumptions:
            out += "<p>Set for this run:</p><ul>" + "".join(f"<li>{esc(a)}</li>" for a in run_assumptions) + "</ul>"
        # the first two standard assumptions hold for any model; the rest describe the flagship's structure
        out += "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in STANDARD_ASSUMPTIONS[:2]) + "</ul>"
        return out

    # ------------------------------------------------------------------------- 7 reproducibility
    def sec_repro(self) -> str:
        run = self.run
        out = ""
        if not run:
            out += _missing("<code>run.json</code> not found: the config, seeds, versions and devices of this run "
                            "were not recorded.")
        else:
            rows = []
            for key, label in (("config_path", "Config file"), ("config_sha256", "Config SHA-256"),
                               ("started", "Started"), ("finished", "Finished"), ("horizon_date", "Horizon")):
                if run.get(key) is not None:
                    rows.append([label, f"<code>{esc(run[key])}</code>"])
            seed = run.get("seed")
            if isinstance(seed, Mapping):
                rows.append(["Random seeds", ", ".join(f"{esc(k)}: <code>{esc(v)}</code>" for k, v in seed.items())])
            elif seed is not None:
                rows.append(["Random seed", f"<code>{esc(seed)}</code>"])
            fu = run.get("fit_until")
            rows.append(["Calibrated on data up to", esc(f"{fu:g} years") if isinstance(fu, (int, float)) else "all data"])
            devices = run.get("devices")
            if devices:
                rows.append(["Devices", ", ".join(f"<code>{esc(d)}</code>" for d in devices)])
            out += _table(["", ""], rows, "kv")
            data_files = run.get("data_files")
            if isinstance(data_files, Mapping) and data_files:
                out += "<h3>Data files</h3>" + _table(
                    ["File", "SHA-256"], [[esc(k), f"<code>{esc(v)}</code>"] for k, v in data_files.items()], "hashes")
            versions = run.get("versions")
            if isinstance(versions, Mapping) and versions:
                out += "<h3>Package versions</h3>" + _table(
                    ["Package", "Version"], [[esc(k), f"<code>{esc(v)}</code>"] for k, v in versions.items()])
            text = run.get("config_text")
            if text:
                out += (f"<details><summary>The config used (<code>{esc(run.get('config_path', ''))}</code>)</summary>"
                        f"<pre class=\"config\">{esc(text)}</pre></details>")
        members = self.s.get("members") or {}
        if members:
            out += (f"<p>The summaries pool {members.get('members', '?'):,} simulated futures per scenario: "
                    f"{members.get('draws', '?'):,} parameter draws &times; {members.get('replicates', '?'):,} "
                    "replicate(s) of chance.</p>" if all(isinstance(members.get(k), int)
                                                           for k in ("members", "draws", "replicates")) else "")
        out += "<h3>Files this report was built from</h3>" + _table(
            ["File", "SHA-256"], [[f"<code>{esc(k)}</code>", f"<code>{esc(v)}</code>"] for k, v in self.inp.hashes.items()],
            "hashes")
        return out


_CSS = """
:root{--ink:#1b1b1b;--muted:#555;--rule:#d9d9d9;--bad:@BAD;--good:@GOOD;--accent:@ACCENT}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
background:#fff;max-width:64rem;margin:0 auto;padding:1.2rem 1.4rem 3rem;line-height:1.5;font-size:16px}
h1{font-size:1.8rem;margin:.2rem 0}
h2{font-size:1.35rem;border-bottom:2px solid var(--accent);padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1.08rem;margin-top:1.4rem}
.sub{color:var(--muted);margin:.2rem 0 .6rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem;font-size:.9rem;border-top:1px solid var(--rule);
border-bottom:1px solid var(--rule);padding:.4rem 0}
a{color:var(--accent)}
ul.headline{font-size:1.15rem;padding-left:1.2rem}
ul.headline li{margin:.45rem 0}
p.lead{font-size:1.1rem}
.note{color:var(--muted);font-size:.9rem}
.missing{background:#f4f4f4;border-left:4px solid #999;padding:.5rem .8rem;font-size:.95rem}
figure{margin:1rem 0;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figure.diagram svg{max-width:100%;height:auto}
figcaption{font-size:.88rem;color:var(--muted);text-align:left;margin-top:.3rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border-bottom:1px solid var(--rule);padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}
table.numbers td{font-variant-numeric:tabular-nums}
table.kv thead{display:none}
table.hashes code{font-size:.78rem;word-break:break-all}
.flag{border-radius:6px;padding:.6rem 1rem;margin:1rem 0;border:2px solid}
.flag p{margin:.2rem 0}
.flag.bad{border-color:var(--bad);background:#fcebe2}
.flag.good{border-color:var(--good);background:#e3f4ee}
.badval{color:#a33c00;font-weight:600}
ul.checks{list-style:none;padding-left:.2rem}
details{margin:.8rem 0;border:1px solid var(--rule);border-radius:4px;padding:.3rem .7rem}
summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;font-size:.8rem;background:#f7f7f7;padding:.6rem;overflow-x:auto}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:.88em}
footer{margin-top:3rem;border-top:1px solid var(--rule);color:var(--muted);font-size:.85rem}
@media (max-width:40rem){body{font-size:15px;padding:.8rem}}
@media print{
@page{size:A4;margin:14mm}
body{max-width:none;padding:0;font-size:10.5pt}
nav{display:none}
a{color:inherit;text-decoration:none}
h2{break-after:avoid}
figure,table,.flag,tr{break-inside:avoid}
details{border:none;padding:0}
summary{list-style:none}
pre{background:none;border:1px solid #ccc}
.flag.bad,.flag.good,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""

# the page's colours are the figures' (Okabe-Ito): blue accent, vermillion warning, bluish green pass
_CSS = _CSS.replace("@ACCENT", OKABE_ITO[0]).replace("@BAD", OKABE_ITO[5]).replace("@GOOD", OKABE_ITO[2])

_JS = ("window.addEventListener('beforeprint',function(){document.querySelectorAll('details')"
       ".forEach(function(d){d.setAttribute('open','')})});")


# ===================================================================================== entry
def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` (atomically) from the files in ``run_dir``; returns its path.

    Raises :class:`~spreadjax.InputError` naming the file when ``summary.json`` is missing or not
    a summary, or when an optional file that is present cannot be read.
    """
    d = Path(run_dir)
    page = _Page(_load(d)).render()
    return write_atomic(d / REPORT, lambda tmp: tmp.write_text(page, encoding="utf-8"))


