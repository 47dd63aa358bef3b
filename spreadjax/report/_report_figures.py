"""Figures for the one-page uncertainty report (``report.html``), drawn only from the files a run
leaves in its folder (``summary.json``, ``observed.json``, ``sensitivity.json``, ``run.json``).

Matplotlib figures come back as ``data:image/png;base64,...`` URIs (no metadata, no links), and
the stock-and-flow diagram as an inline ``<svg>`` string written by hand (no namespace URL: an
``<svg>`` inside HTML needs none). Colours are Okabe-Ito, and every series also differs in line
style or marker so that nothing depends on colour alone.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._figures import OKABE_ITO, _pyplot

__all__ = [
    "Clock",
    "elasticity_figure",
    "fan_chart_figure",
    "model_diagram_svg",
    "pace_extent_figure",
    "qkey",
    "sobol_figure",
    "stock_flow_svg",
]

DAYS_PER_YEAR = 365.25
_DPI = 110
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def qkey(q: float) -> str:
    """The key ``summary.json`` uses for quantile ``q`` (``0.05`` -> ``'q5'``)."""
    return f"q{100 * float(q):g}"


def num(value: Any) -> float:
    """A JSON number (``None`` for NaN) as a float, NaN for anything missing."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


# ------------------------------------------------------------------------------------ time
class Clock:
    """Converts model time (years) to calendar dates and to words, using the summary's dates.

    Between output times the dates are interpolated; outside them they are extrapolated at
    365.25 days a year. Without dates, times stay in years and the words say "after 3.5 years".
    """

    def __init__(self, times: Sequence[Any], dates: Sequence[Any] | None = None):
        self.t = np.asarray([num(v) for v in times], dtype=float)
        self.d0: _dt.date | None = None
        self.days: np.ndarray | None = None
        if dates and len(dates) == len(times) and all(isinstance(d, str) for d in dates):
            try:
                parsed = [_dt.date.fromisoformat(d[:10]) for d in dates]
            except ValueError:
                parsed = []
            if parsed:
                self.d0 = parsed[0]
                self.days = np.asarray([(d - parsed[0]).days for d in parsed], dtype=float)

    @property
    def has_dates(self) -> bool:
        return self.d0 is not None

    def to_date(self, years: float) -> _dt.date | None:
        if self.d0 is None or self.days is None or not math.isfinite(years):
            return None
        t, days = self.t, self.days
        if t.size > 1 and t[0] <= years <= t[-1]:
            d = float(np.interp(years, t, days))
        elif years < t[0]:
            d = days[0] + (years - t[0]) * DAYS_PER_YEAR
        else:
            d = days[-1] + (years - t[-1]) * DAYS_PER_YEAR
        return self.d0 + _dt.timedelta(days=int(round(d)))

    def x(self, years: Sequence[float] | np.ndarray) -> list[Any] | np.ndarray:
        """Plot x values: datetimes where there are dates, else years."""
        arr = np.asarray(years, dtype=float)
        if not self.has_dates:
            return arr
        out = []
        for y in arr:
            d = self.to_date(float(y))
            out.append(_dt.datetime(d.year, d.month, d.day) if d is not None else None)
        return out

    def x1(self, years: float) -> Any:
        return self.x([years])[0]

    @property
    def xlabel(self) -> str:
        return "" if self.has_dates else "years from the start"

    def month_year(self, years: float, iso: str | None = None) -> str:
        """'March 2028' (or 'year 3.5' without dates)."""
        d = _parse_date(iso) if iso else self.to_date(years)
        if d is None:
            return f"year {years:.3g}"
        return f"{_MONTHS[d.month - 1]} {d.year}"

    def by(self, years: float, iso: str | None = None) -> str:
        """'by March 2028' (or 'within 3.5 years')."""
        d = _parse_date(iso) if iso else self.to_date(years)
        if d is None:
            return f"within {years:.3g} years"
        return f"by {_MONTHS[d.month - 1]} {d.year}"

    def roughly(self, years: float, iso: str | None = None) -> str:
        """As a person would say a date: 'early 2028', 'mid-2028', 'late 2028'
        (or 'after about 3.5 years'); ``iso`` (a date for ``years``) is used when given."""
        d = (_parse_date(iso) if iso else None) or self.to_date(years)
        if d is None:
            half = math.floor(2 * years + 0.5) / 2
            return f"after about {half:g} years"
        return season(d)


def _parse_date(iso: str | None) -> _dt.date | None:
    if not iso:
        return None
    try:
        return _dt.date.fromisoformat(str(iso)[:10])
    except ValueError:
        return None


def season(d: _dt.date) -> str:
    """'early 2028' (January-April), 'mid-2028' (May-August), 'late 2028' (September-December)."""
    if d.month <= 4:
        return f"early {d.year}"
    if d.month <= 8:
        return f"mid-{d.year}"
    return f"late {d.year}"


# --------------------------------------------------------------------------------- helpers
def _png(fig: Any, plt: Any) -> str:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: Any) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _date_axis(ax: Any, clock: Clock) -> None:
    if clock.has_dates:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.set_xlabel(clock.xlabel)


def _series(d: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    values = d.get(key)
    if not isinstance(values, list) or len(values) != n:
        return np.full(n, np.nan)
    return np.asarray([num(v) for v in values], dtype=float)


def pretty(name: str) -> str:
    return str(name).replace("_", " ")


# ------------------------------------------------------------------------------ fan charts
def fan_chart_figure(
    summary: Mapping[str, Any],
    clock: Clock,
    scenarios: Sequence[str],
    *,
    site: str = "all",
    observed: Mapping[str, Any] | None = None,
    observed_for: str | None = None,
    fit_until: float | None = None,
    title_for: Mapping[str, str] | None = None,
    panels: Sequence[tuple[str, str]] | None = None,
) -> str:
    """Adopted fraction over time: one panel per scenario (or per ``(scenario, site)`` in
    ``panels``), median line, 50% and 90% bands, observed points (filled: used for calibration;
    open: held back; on the panels of scenario ``observed_for`` only, if given) and a vertical line at ``fit_until``. Returns a PNG data URI."""
    plt = _pyplot()
    times = clock.t
    n = times.size
    if panels is None:
        panels = [(sc, site) for sc in scenarios]
    k = len(panels)
    ncols = 1 if k == 1 else 2 if k <= 4 else 3
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 0.6, 3.3 * nrows + 0.5), squeeze=False,
                             sharey=True)
    x = clock.x(times)
    obs_t = obs_y = None
    obs_dates: list[Any] = []
    for i, (sc, st) in enumerate(panels):
        ax = axes[i // ncols, i % ncols]
        c = colour(list(scenarios).index(sc) if sc in scenarios else i)
        band = summary["scenarios"][sc]["adoption"].get(st, {})
        q = {p: _series(band, qkey(p), n) for p in (0.05, 0.25, 0.5, 0.75, 0.95)}
        mid = q[0.5] if np.isfinite(q[0.5]).any() else _series(band, "mean", n)
        ax.fill_between(x, q[0.05], q[0.95], color=c, alpha=0.18, linewidth=0, label="90% of futures")
        ax.fill_between(x, q[0.25], q[0.75], color=c, alpha=0.38, linewidth=0, label="50% of futures")
        ax.plot(x, mid, color=c, linewidth=2.0, label="median")
        if observed is not None and observed_for in (None, sc):
            fr = observed.get("adopted_fraction", {})
            if isinstance(fr, Mapping) and st in fr and isinstance(observed.get("time"), list):
                obs_t = np.asarray([num(v) for v in observed["time"]], dtype=float)
                obs_y = np.asarray([num(v) for v in fr[st]], dtype=float)
                raw_dates = observed.get("date") or [None] * obs_t.size
                obs_dates = []
                for j, t in enumerate(obs_t):
                    d = _parse_date(raw_dates[j]) if j < len(raw_dates) else None
                    obs_dates.append(_dt.datetime(d.year, d.month, d.day) if (d and clock.has_dates)
                                     else clock.x1(float(t)))
                inside = np.ones(obs_t.size, bool) if fit_until is None else obs_t <= fit_until + 1e-9
                xs = np.asarray(obs_dates, dtype=object)
                if inside.any():
                    ax.plot(list(xs[inside]), obs_y[inside], "o", color="#000000", markersize=3.5,
                            label="observed (used for calibration)")
                if (~inside).any():
                    ax.plot(list(xs[~inside]), obs_y[~inside], "o", markerfacecolor="white",
                            markeredgecolor="#000000", markersize=4.5, markeredgewidth=1.1,
                            label="observed (held back: out-of-sample)")
        if fit_until is not None and math.isfinite(fit_until):
            xv = clock.x1(float(fit_until))
            ax.axvline(xv, color="#555555", linestyle="--", linewidth=1.0)
            ax.annotate("calibrated up to here", xy=(xv, 0.98), xycoords=("data", "axes fraction"),
                        xytext=(-4, 0), textcoords="offset points", ha="right", va="top", fontsize=8,
                        color="#333333")
        name = (title_for or {}).get(sc, pretty(sc))
        ax.set_title(name if st == "all" else f"{name}: {st}", fontsize=10)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        if i % ncols == 0:
            ax.set_ylabel("organisations adopted")
        _date_axis(ax, clock)
        _style(ax)
    for j in range(k, nrows * ncols):
        axes[j // ncols, j % ncols].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if nrows == 1 else 0.035, 1, 1))
    return _png(fig, plt)


# --------------------------------------------------------------------------- pace and extent
def _interval(ax: Any, y: float, qs: Mapping[float, float], c: str, marker: str, horizon_x: Any = None,
              never: float = 0.0) -> None:
    """One interval: thin 5-95% line, thick 25-75% bar, median marker. An upper end not reached
    by the horizon is drawn as an arrow to the horizon."""
    lo, q25, med, q75, hi = (qs.get(p, math.nan) for p in (0.05, 0.25, 0.5, 0.75, 0.95))
    finite = [v for v in (lo, q25, med, q75, hi) if _ok(v)]
    if not finite:
        return
    right_open = horizon_x is not None and not _ok(hi)
    hi_x = hi if _ok(hi) else (horizon_x if horizon_x is not None else finite[-1])
    if _ok(lo):
        ax.plot([lo, hi_x], [y, y], color=c, linewidth=1.2, solid_capstyle="butt")
    if _ok(q25):
        ax.plot([q25, q75 if _ok(q75) else hi_x], [y, y], color=c, linewidth=6, solid_capstyle="butt", alpha=0.8)
    if _ok(med):
        ax.plot([med], [y], marker=marker, color="white", markeredgecolor="#000000", markersize=7, zorder=5)
    if right_open:
        ax.annotate("", xy=(hi_x, y), xytext=(finite[-1], y),
                    arrowprops={"arrowstyle": "->", "color": c, "linewidth": 1.2})
        if never > 0:
            ax.annotate(f"{never:.0%} not by the horizon", xy=(hi_x, y), xytext=(3, 4), textcoords="offset points",
                        fontsize=7, color="#333333", va="bottom", ha="right")


def _ok(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, float):
        return math.isfinite(v)
    return True


def pace_extent_figure(summary: Mapping[str, Any], clock: Clock, scenarios: Sequence[str],
                       title_for: Mapping[str, str] | None = None) -> str:
    """Left: time to 25/50/75% adopted per scenario (5-95% line, 25-75% bar, median); right:
    adoption at the horizon per scenario. Site 'all'. Returns a PNG data URI."""
    plt = _pyplot()
    first = summary["scenarios"][scenarios[0]]
    thresholds = list(first.get("time_to_threshold", {}).keys())
    k = len(scenarios)
    height = max(2.6, 0.55 * k * max(len(thresholds), 1) + 1.3)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [1.6, 1]})
    horizon = clock.t[-1]
    hx = clock.x1(horizon)
    yticks, ylabels = [], []
    y = 0.0
    for ti, thr in enumerate(thresholds):
        for si, sc in enumerate(scenarios):
            cell = summary["scenarios"][sc].get("time_to_threshold", {}).get(thr, {}).get("all", {})
            qs = {}
            for p in (0.05, 0.25, 0.5, 0.75, 0.95):
                v = num(cell.get(qkey(p)))
                qs[p] = clock.x1(v) if math.isfinite(v) else math.nan
            never = num(cell.get("share_never"))
            _interval(ax1, -y, qs, colour(si), _MARKERS[si % len(_MARKERS)], horizon_x=hx,
                      never=never if math.isfinite(never) else 0.0)
            yticks.append(-y)
            ylabels.append(f"{float(thr):.0%}: {(title_for or {}).get(sc, pretty(sc))}")
            y += 1
        y += 0.6
        if ti < len(thresholds) - 1:
            ax1.axhline(-(y - 0.8), color="#cccccc", linewidth=0.6)
    ax1.axvline(hx, color="#555555", linestyle=":", linewidth=1)
    ax1.annotate("horizon", xy=(hx, 0.01), xycoords=("data", "axes fraction"), fontsize=8, ha="right", va="bottom",
                 rotation=90, color="#333333")
    ax1.set_yticks(yticks, ylabels, fontsize=8)
    ax1.set_title("When will 25%, 50% and 75% of organisations have adopted?", fontsize=10)
    _date_axis(ax1, clock)
    _style(ax1)
    for si, sc in enumerate(scenarios):
        cell = summary["scenarios"][sc].get("extent", {}).get("all", {}).get("final", {})
        qs = {p: num(cell.get(qkey(p))) for p in (0.05, 0.25, 0.5, 0.75, 0.95)}
        _interval(ax2, -si, qs, colour(si), _MARKERS[si % len(_MARKERS)])
        mean = num(cell.get("mean"))
        if math.isfinite(mean):
            ax2.plot([mean], [-si], marker="|", color="#000000", markersize=12)
    ax2.set_yticks([-i for i in range(k)], [(title_for or {}).get(s, pretty(s)) for s in scenarios], fontsize=8)
    ax2.set_xlim(0, 1)
    ax2.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax2.set_xlabel(f"organisations adopted at the horizon ({clock.month_year(horizon)})")
    ax2.set_title("How far will it get?", fontsize=10)
    ax2.set_ylim(-k + 0.4, 0.6)
    _style(ax2)
    fig.text(0.01, 0.005, "line: 90% of futures; bar: 50%; circle etc.: median; '|': mean; "
             "arrow: not reached by the horizon in some futures", fontsize=7.5, color="#333333")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _png(fig, plt)


# --------------------------------------------------------------------------------- levers
def _ranked_bars(ax: Any, names: Sequence[str], rows: Sequence[Mapping[str, Any]], value: str, lo: str, hi: str,
                 c: str, title: str, xlabel: str, labels: Mapping[str, str] | None = None) -> None:
    ys = np.arange(len(names))[::-1]
    v = np.asarray([num(r.get(value)) for r in rows])
    lo_v = np.asarray([num(r.get(lo)) for r in rows])
    hi_v = np.asarray([num(r.get(hi)) for r in rows])
    ax.barh(ys, np.nan_to_num(v), color=c, alpha=0.85, height=0.6)
    ok = np.isfinite(lo_v) & np.isfinite(hi_v) & np.isfinite(v)
    if ok.any():
        ax.errorbar(v[ok], ys[ok], xerr=[np.maximum(v[ok] - lo_v[ok], 0), np.maximum(hi_v[ok] - v[ok], 0)],
                    fmt="none", ecolor="#000000", elinewidth=1, capsize=3)
    for yi, vi in zip(ys, v, strict=True):
        if not math.isfinite(vi):
            ax.annotate("n/a", xy=(0, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_yticks(ys, [(labels or {}).get(nm) or pretty(nm) for nm in names], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    _style(ax)


def lever_order(block: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """Names sorted by |value| (largest first), missing values last."""
    def score(name: str) -> float:
        v = num(block[name].get(key))
        return -abs(v) if math.isfinite(v) else math.inf

    return sorted(block, key=score)


def elasticity_figure(sens: Mapping[str, Any]) -> str | None:
    """Ranked horizontal bars of lever elasticities (mean) with 5-95% whiskers, one panel per
    metric (extent, pace); levers in the order of the first metric, one bar per lever, labelled
    with every parameter it scales (``push strength × p``). Levers not in the model are not in
    ``elasticities`` and get no bar. ``None`` without data."""
    el = sens.get("elasticities") or {}
    metrics = [m for m in ("extent", "pace") if isinstance(el.get(m), Mapping) and el[m]]
    metrics += [m for m in el if m not in metrics and isinstance(el.get(m), Mapping) and el[m]]
    if not metrics:
        return None
    labels = {str(r["name"]): " \u00d7 ".join(pretty(p) for p in r["parameters"])
              for r in sens.get("levers") or [] if isinstance(r, Mapping) and len(r.get("parameters") or []) > 1}
    plt = _pyplot()
    order = lever_order(el[metrics[0]], "mean")
    for m in metrics[1:]:
        order += [n for n in el[m] if n not in order]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.42 * len(order) + 1.5), squeeze=False)
    thr = num(sens.get("threshold"))
    words = {"extent": ("Extent: adoption at the horizon", "% change per 1% more of the lever"),
             "pace": (f"Pace: time to {thr:.0%} adopted" if math.isfinite(thr) else "Pace",
                      "% change in time per 1% more (negative: sooner)")}
    for i, m in enumerate(metrics):
        rows = [el[m].get(n, {}) for n in order]
        title, xlabel = words.get(m, (pretty(m), "elasticity"))
        _ranked_bars(axes[0, i], order, rows, "mean", "q05", "q95", colour(i), title, xlabel, labels)
    fig.tight_layout()
    return _png(fig, plt)


def sobol_figure(sens: Mapping[str, Any]) -> str | None:
    """First-order Sobol indices (S1, share of the variance explained alone) with their
    interval, one panel per metric. ``None`` without data."""
    so = sens.get("sobol") or {}
    metrics = [m for m in so if isinstance(so.get(m), Mapping) and so[m]]
    if not metrics:
        return None
    plt = _pyplot()
    n = max(len(so[m]) for m in metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.42 * n + 1.5), squeeze=False)
    for i, m in enumerate(metrics):
        order = lever_order(so[m], "S1")
        rows = [so[m][p] for p in order]
        _ranked_bars(axes[0, i], order, rows, "S1", "lo", "hi", colour(i + 2),
                     f"{pretty(m).capitalize()}: first-order Sobol index",
                     "share of the outcome's variance explained by this input alone")
        axes[0, i].set_xlim(left=min(0.0, axes[0, i].get_xlim()[0]))
    fig.tight_layout()
    return _png(fig, plt)


# ------------------------------------------------------------------------ stock-and-flow SVG
_STAGE_COLOURS = {"generation": OKABE_ITO[2], "recognition": OKABE_ITO[4], "communication": OKABE_ITO[1],
                  "adoption": OKABE_ITO[0]}


def _t(x: float, y: float, text: str, size: float = 12, anchor: str = "middle", weight: str = "normal",
       fill: str = "#000000", style: str = "") -> str:
    extra = f' font-style="{style}"' if style else ""
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}"{extra}>{html.escape(text)}</text>')


def _stock(x: float, y: float, w: float, h: float, name: str, stage: str, note: str = "") -> str:
    c = _STAGE_COLOURS[stage]
    parts = [f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="3" fill="#ffffff" '
             f'stroke="{c}" stroke-width="2.5"/>',
             _t(x + w / 2, y + h / 2 + (0 if note else 4), name, 13, weight="bold")]
    if note:
        parts.append(_t(x + w / 2, y + h / 2 + 15, note, 9.5, fill="#333333"))
    return "".join(parts)


def _flow(x1: float, y1: float, x2: float, y2: float, label: str = "", above: bool = True,
          label_dx: float = 0) -> str:
    """A material flow: a thick double-line pipe with an arrowhead, and its label."""
    parts = [f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#444444" stroke-width="5"/>',
             f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#ffffff" stroke-width="2" '
             'marker-end="url(#sf-flow)"/>']
    if label:
        mx, my = (x1 + x2) / 2 + label_dx, (y1 + y2) / 2
        parts.append(_t(mx, my - 8 if above else my + 17, label, 10, fill="#222222"))
    return "".join(parts)


def _cloud(x: float, y: float) -> str:
    return (f'<ellipse cx="{x:.0f}" cy="{y:.0f}" rx="18" ry="12" fill="#f2f2f2" stroke="#888888" '
            'stroke-dasharray="3 2"/>')


def _lever(x: float, y: float, name: str, active: bool = True) -> str:
    """A lever tag: a dark-outlined hexagon-ish label with the lever's name."""
    w = 7.0 * len(name) + 18
    fill = "#F0E442" if active else "#eeeeee"
    pts = [(x - w / 2, y), (x - w / 2 + 7, y - 10), (x + w / 2 - 7, y - 10), (x + w / 2, y),
           (x + w / 2 - 7, y + 10), (x - w / 2 + 7, y + 10)]
    poly = " ".join(f"{px:.0f},{py:.0f}" for px, py in pts)
    return (f'<g class="lever"><polygon points="{poly}" fill="{fill}" stroke="#000000" stroke-width="1"/>'
            + _t(x, y + 4, name, 10.5, weight="bold") + "</g>")


def _curve(d: str, label: str = "", lx: float = 0, ly: float = 0, anchor: str = "middle") -> str:
    """An information link along the SVG path ``d``: thin, dashed, with an open arrowhead."""
    out = (f'<path d="{d}" fill="none" stroke="#666666" stroke-width="1.3" stroke-dasharray="5 3" '
           'marker-end="url(#sf-link)"/>')
    if label:
        out += _t(lx, ly, label, 10, anchor=anchor, fill="#444444", style="italic")
    return out


def stock_flow_svg(options: Mapping[str, Any] | None = None, levers: Mapping[str, str] | None = None) -> str:
    """The four-stage model (generation -> recognition -> communication -> adoption) as an
    inline SVG: stocks as boxes, flows as pipes, information links dashed, levers as yellow tags
    where they act. ``options``: ``awareness_stage`` (default True) and
    ``implementation_order`` (default 3; 0 draws no implementing stock). ``levers``: the
    model's levers (name -> description); levers not in it are drawn grey."""
    opts = dict(options or {})
    aware_stage = bool(opts.get("awareness_stage", True))
    pipeline = int(opts.get("implementation_order", 3) or 0) > 0
    known = set(levers) if levers else None

    def lev(x: float, y: float, name: str) -> str:
        return _lever(x, y, name, known is None or name in known)

    W, H = 980, 600
    p: list[str] = [
        f'<svg class="stockflow" viewBox="0 0 {W} {H}" width="100%" role="img" '
        'aria-labelledby="sf-title sf-desc" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">',
        '<title id="sf-title">Stock-and-flow diagram of the four-stage model</title>',
        '<desc id="sf-desc">Evidence is generated by pilots and adopters; recognition follows the evidence; '
        'organisations move from unaware to aware to implementing to adopted, and may discontinue. '
        'Levers are yellow tags where they act.</desc>',
        '<defs>'
        '<marker id="sf-flow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444444"/></marker>'
        '<marker id="sf-link" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,1 L9,5 L0,9" fill="none" stroke="#666666" stroke-width="1.5"/>'
        '</marker></defs>',
    ]
    bands = [("1 Generation", "generation", 10, 10, 470, 190), ("2 Recognition", "recognition", 500, 10, 470, 190),
             ("3 Communication", "communication", 10, 290, 470, 300), ("4 Adoption", "adoption", 500, 290, 470, 300)]
    for label, stage, x, y, w, h in bands:
        c = _STAGE_COLOURS[stage]
        p.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{c}" fill-opacity="0.07" '
                 f'stroke="{c}" stroke-opacity="0.6"/>')
        p.append(_t(x + 10, y + 20, label, 13, anchor="start", weight="bold", fill="#222222"))
    # 1 generation: cloud => evidence => cloud
    p.append(_cloud(50, 115))
    p.append(_flow(68, 115, 168, 115, "generation"))
    p.append(_stock(170, 90, 130, 50, "evidence", "generation", "of benefit"))
    p.append(_flow(300, 115, 402, 115, "goes stale"))
    p.append(_cloud(420, 115))
    p.append(lev(118, 145, "innovation_conditions"))
    # 2 recognition, from own and peers' evidence
    p.append(_stock(770, 90, 140, 50, "recognition", "recognition", "seen as good (0-1)"))
    p.append(_curve("M235,90 C330,30 660,30 768,105", "own and peers' evidence, with a delay", 640, 48))
    p.append(lev(575, 74, "evidence_sharing"))
    p.append(lev(700, 74, "barriers"))
    # 3-4 organisations: unaware => aware => implementing => adopted => discontinued
    y0, h0, w0 = 370, 56, 130
    boxes: list[tuple[str, float, str, str]] = [("unaware", 30, "communication", "not yet aware")]
    if aware_stage:
        boxes.append(("aware", 300, "communication", "not yet decided"))
    if pipeline:
        boxes.append(("implementing", 560, "adoption", "decided, under way"))
    boxes.append(("adopted", 800, "adoption", "using it"))
    pos = {name: x for name, x, _, _ in boxes}
    for name, x, stage, note in boxes:
        p.append(_stock(x, y0, w0, h0, name, stage, note))
    p.append(_stock(800, 510, w0, h0, "discontinued", "adoption", "stopped (no return)"))
    names = [b[0] for b in boxes]
    flow_labels = {"aware": "awareness", "implementing": "decisions",
                   "adopted": "completed" if pipeline else "decisions to adopt"}
    for a, b in zip(names[:-1], names[1:], strict=True):
        label = flow_labels.get(b, "")
        if a == "unaware" and b != "aware":
            label = "awareness and decisions"
        p.append(_flow(pos[a] + w0, y0 + h0 / 2, pos[b] - 2, y0 + h0 / 2, label))
    fx = (pos[names[0]] + w0 + pos[names[1]]) / 2  # the first flow: awareness
    p.append(lev(fx, y0 + h0 / 2 + 28, "push_strength"))
    p.append(lev(fx, y0 + h0 / 2 + 54, "peer_influence"))
    p.append(_t(fx, y0 + h0 / 2 + 80, "push: the central programme", 9.5, fill="#333333"))
    p.append(_t(fx, y0 + h0 / 2 + 93, "pull: peers who already use it", 9.5, fill="#333333"))
    if pipeline:
        p.append(lev(pos["implementing"] + w0 / 2, y0 - 18, "implementation_support"))
    if pipeline:
        p.append(_flow(pos["implementing"] + w0 / 2, y0 + h0, 798, 538, "abandoned", above=False, label_dx=-45))
    else:  # decisions split at the adoption flow: completed (on) or abandoned (down)
        bx = pos["adopted"] - 70
        pts = f"{bx},{y0 + h0 / 2:.0f} {bx},538 798,538"
        p.append(f'<polyline points="{pts}" fill="none" stroke="#444444" stroke-width="5"/>'
                 f'<polyline points="{pts}" fill="none" stroke="#ffffff" stroke-width="2" marker-end="url(#sf-flow)"/>')
        p.append(_t(bx - 6, 500, "abandoned", 10, anchor="end", fill="#222222"))
    p.append(_flow(865, y0 + h0, 865, 508))
    p.append(_t(874, 454, "discontinuation", 10, anchor="start", fill="#222222"))
    p.append(_t(874, 468, "(faster when support", 9, anchor="start", fill="#333333"))
    p.append(_t(874, 480, "is withdrawn)", 9, anchor="start", fill="#333333"))
    # information links that close the loops
    p.append(_curve(f"M772,140 C700,245 {fx + 60:.0f},235 {fx + 4:.0f},{y0 + h0 / 2 - 6:.0f}",
                    "recognition gates awareness and decisions", 520, 226))
    p.append(_curve("M830,368 C780,272 180,280 118,160", "adopters add evidence (R1)", 470, 271))
    p.append(_curve(f"M815,428 C760,585 {fx + 170:.0f},560 {fx + 64:.0f},{y0 + h0 / 2 + 58:.0f}",
                    "word of mouth: pull (R2)", 600, 560))
    p.append(_curve("M932,535 C985,420 985,220 905,142", "disillusionment", 962, 255, anchor="end"))
    # legend
    lx, ly = 24, 575
    p.append(f'<rect x="{lx}" y="{ly - 12}" width="22" height="16" fill="#ffffff" stroke="#333333" stroke-width="2"/>')
    p.append(_t(lx + 28, ly + 1, "stock", 10, anchor="start"))
    p.append(_flow(lx + 70, ly - 4, lx + 112, ly - 4))
    p.append(_t(lx + 118, ly + 1, "flow", 10, anchor="start"))
    p.append(_curve(f"M{lx + 150},{ly - 4} L{lx + 188},{ly - 4}"))
    p.append(_t(lx + 194, ly + 1, "influence", 10, anchor="start"))
    p.append(_lever(lx + 276, ly - 4, "lever"))
    p.append(_cloud(lx + 336, ly - 4))
    p.append(_t(lx + 358, ly + 1, "outside", 10, anchor="start"))
    p.append("</svg>")
    return "".join(p)


def model_diagram_svg(model: Any) -> str:
    """Any :class:`~spreadjax.core.Model` as an inline SVG drawn from its own structure: stocks
    (orange) and delays (blue) as boxes in the order material flows through them, flows as pipes
    between them or from and to clouds outside the model, tally stocks as dashed boxes, and the
    auxiliaries, smooths, lookups and levers listed underneath. Used for user models, where no
    hand-drawn diagram exists."""
    stocks = [s for s in model.stocks if s.tally is None]
    tallies = [s for s in model.stocks if s.tally is not None]
    kind = {s.name: "stock" for s in stocks} | {d.name: "delay" for d in model.delays}
    # order containers along the flows: start where nothing flows in from another container
    inflow = {n: [f for f in model.flows if f.sink == n and f.source in kind] for n in kind}
    order: list[str] = []

    def follow(name: str) -> None:
        if name in order:
            return
        order.append(name)
        for f in model.flows:
            if f.source == name and f.sink in kind:
                follow(f.sink)

    for name in kind:
        if not inflow[name]:
            follow(name)
    for name in kind:
        follow(name)
    per_row, w0, h0, gap, row_h, top = 5, 140, 56, 100, 200, 90
    pos: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(order):
        r, c = divmod(i, per_row)
        pos[name] = (40 + c * (w0 + gap), top + r * row_h)
    rows = max(1, -(-len(order) // per_row))
    tally_y = top + rows * row_h
    for i, s in enumerate(tallies):
        pos[s.name] = (40 + (i % per_row) * (w0 + gap), tally_y + (i // per_row) * 90)
    n_tally_rows = -(-len(tallies) // per_row)
    listing = _diagram_listing(model)
    W = 40 + min(per_row, max(len(order), len(tallies), 1)) * (w0 + gap)
    W = max(W, 640)
    H = tally_y + n_tally_rows * 90 + 24 * len(listing) + 40
    title = f"Stock-and-flow diagram of the model {model.name}"
    p: list[str] = [
        f'<svg class="stockflow" viewBox="0 0 {W:.0f} {H:.0f}" width="100%" role="img" '
        'aria-labelledby="sfm-title sfm-desc" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">',
        f"<title id=\"sfm-title\">{html.escape(title)}</title>",
        f"<desc id=\"sfm-desc\">{html.escape(_diagram_desc(model))}</desc>",
        '<defs>'
        '<marker id="sf-flow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444444"/></marker></defs>',
    ]
    for name in order:
        x, y = pos[name]
        if kind[name] == "stock":
            st = next(s for s in stocks if s.name == name)
            p.append(_stock(x, y, w0, h0, name, "communication", _short(st.units)))
        else:
            d = next(d for d in model.delays if d.name == name)
            p.append(_stock(x, y, w0, h0, name, "adoption", f"delay, order {d.order}"))
    for s in tallies:
        x, y = pos[s.name]
        p.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{w0}" height="{h0}" rx="3" fill="#ffffff" '
                 f'stroke="{_STAGE_COLOURS["communication"]}" stroke-width="2" stroke-dasharray="6 3"/>')
        p.append(_t(x + w0 / 2, y + h0 / 2, s.name, 13, weight="bold"))
        p.append(_t(x + w0 / 2, y + h0 / 2 + 15, f"tally of {s.tally}", 9.5, fill="#333333"))
    clouds_in: dict[str, int] = {}
    clouds_out: dict[str, int] = {}
    channel: dict[float, int] = {}
    for f in model.flows:
        a, b = f.source, f.sink
        if a is None and b is not None:  # from a cloud above the sink
            k = clouds_in[b] = clouds_in.get(b, 0) + 1
            x, y = pos[b]
            cx = x + w0 / 2 - 40 + 30 * (k - 1)
            p.append(_cloud(cx, y - 60))
            p.append(_flow(cx, y - 48, cx, y - 2))
            p.append(_t(cx + 8, y - 26, f.name, 10, anchor="start", fill="#222222"))
        elif b is None and a is not None:  # to a cloud below the source
            k = clouds_out[a] = clouds_out.get(a, 0) + 1
            x, y = pos[a]
            cx = x + w0 / 2 + 40 - 30 * (k - 1)
            p.append(_flow(cx, y + h0, cx, y + h0 + 46))
            p.append(_cloud(cx, y + h0 + 58))
            p.append(_t(cx + 8, y + h0 + 30, f.name, 10, anchor="start", fill="#222222"))
        elif a is not None and b is not None:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            if ya == yb and 0 < xb - xa <= w0 + gap:  # neighbours in a row: a straight pipe
                p.append(_flow(xa + w0, ya + h0 / 2, xb - 2, yb + h0 / 2, f.name))
                continue
            # otherwise through the channel under the source's row
            k = channel[ya] = channel.get(ya, 0) + 1
            cy = ya + h0 + 90 + 12 * (k - 1)
            x1, x2 = xa + w0 / 2 - 20, xb + w0 / 2 + 20
            end = yb - 2 if yb > ya else yb + h0 + 2
            pts = f"{x1:.0f},{ya + h0:.0f} {x1:.0f},{cy:.0f} {x2:.0f},{cy:.0f} {x2:.0f},{end:.0f}"
            p.append(f'<polyline points="{pts}" fill="none" stroke="#444444" stroke-width="5"/>'
                     f'<polyline points="{pts}" fill="none" stroke="#ffffff" stroke-width="2" '
                     'marker-end="url(#sf-flow)"/>')
            p.append(_t((x1 + x2) / 2, cy - 6, f.name, 10, fill="#222222"))
    y = tally_y + n_tally_rows * 90 + 10
    for label, text in listing:
        p.append(_t(40, y, label, 11, anchor="start", weight="bold"))
        p.append(_t(150, y, text, 11, anchor="start", fill="#333333"))
        y += 24
    p.append("</svg>")
    return "".join(p)


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _diagram_listing(model: Any) -> list[tuple[str, str]]:
    """(label, names) lines under a generic diagram: what is computed from the stocks."""
    out = []
    if model.auxiliaries:
        out.append(("Auxiliaries", ", ".join(a.name for a in model.auxiliaries)))
    if model.smooths:
        out.append(("Smooths", ", ".join(f"{s.name} (of {s.input}, order {s.order})" for s in model.smooths)))
    if model.lookups:
        out.append(("Lookups", ", ".join(f"{lk.name} ({len(lk.x)} points, {lk.extrapolation})" for lk in model.lookups)))
    if model.schedules:
        out.append(("Schedules", ", ".join(s.name for s in model.schedules)))
    levers = [p.name for p in model.parameters if p.lever]
    if levers:
        out.append(("Levers", ", ".join(levers)))
    return [(label, _short(text, 110)) for label, text in out]


def _diagram_desc(model: Any) -> str:
    flows = [f"{f.name}: {f.source or 'outside'} to {f.sink or 'outside'}" for f in model.flows]
    return (f"Stocks {', '.join(s.name for s in model.stocks) or 'none'}; delays "
            f"{', '.join(d.name for d in model.delays) or 'none'}; flows " + ("; ".join(flows) or "none") + ".")
