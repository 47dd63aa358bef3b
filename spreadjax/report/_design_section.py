"""The report's "What to do" section, from the ``design.json`` and ``design.nc`` of `spreadjax design`.

It says which programme to run (intensity over time per site, against the baseline, as a figure and
a table), what it gains over the baseline on paired futures, how it compares with a coarse grid of
programmes, how the gradient search and the derivative-free check did, and which levers the gain
relies on, in plain words.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._figures import OKABE_ITO, _pyplot

_OBJECTIVE_WORDS = {
    "expected_adoption": "the expected share adopted",
    "probability_of_target": "the chance of reaching the target",
    "cvar_shortfall": "the mean shortfall below the target in the worst futures",
}


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _pts(x: float) -> str:
    """A change in share adopted, in percentage points."""
    return f"{100 * x:+.1f} points"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _objective_text(o: dict[str, Any], value: float) -> str:
    if o["name"] == "probability_of_target":
        return f"{100 * value:.0f}% chance"
    return _pct(value)


def programme_figure(nc: Path, sites: list[str]) -> str | None:
    """Intensity over time per site (solid), and the baseline (dashed), as a PNG data URI."""
    import base64
    import io

    import xarray as xr

    try:
        with xr.open_dataset(nc, engine="h5netcdf") as ds:
            t = ds["time"].values.astype(float)
            chosen = ds["programme"].values
            base = ds["baseline_programme"].values
    except (OSError, KeyError, ValueError):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 3.4))
    edges = np.append(t, t[-1] + (t[-1] - t[-2] if len(t) > 1 else 1.0))
    for i, site in enumerate(sites):
        ax.stairs(chosen[:, i], edges, color=OKABE_ITO[i % len(OKABE_ITO)], linewidth=2, label=str(site),
                  linestyle=("-", "--", "-.", ":")[i % 4], baseline=None)
    ax.stairs(base[:, 0], edges, color="#000000", linewidth=1.5, linestyle=(0, (2, 2)), label="baseline (every site)",
              baseline=None)
    ax.set_xlabel("years from the start")
    ax.set_ylabel("programme intensity (1 = full)")
    ax.set_ylim(-0.03, 1.05 * max(1.0, float(np.max(chosen)), float(np.max(base))))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _lever_words(rel: dict[str, Any], levers: dict[str, str]) -> list[str]:
    out = []
    ranked = sorted(((k, v) for k, v in (rel.get("levers") or {}).items() if v is not None and math.isfinite(v)
                     and abs(v) > 1e-3 and k not in ("p", "q")), key=lambda kv: -abs(kv[1]))
    for name, e in ranked[:3]:
        what = levers.get(name, name.replace("_", " "))
        out.append(f"<li><strong>{_esc(name.replace('_', ' '))}</strong> ({_esc(what)}): elasticity {e:.2f}, so "
                   f"10% {'weaker' if e > 0 else 'stronger'} than estimated would cost about {10 * abs(e):.1f}% of "
                   "the adopters it reaches.</li>")
    b = rel.get("budget_elasticity")
    if b is not None and math.isfinite(b):
        out.append(f"<li><strong>the budget</strong>: 10% more programme-years would add about {10 * b:.1f}% "
                   "more adopters (elasticity {:.2f}).</li>".format(b))
    m = rel.get("marginal_per_programme_year") or {}
    if m:
        best = max(m, key=m.get)
        worst = min(m, key=m.get)
        out.append(f"<li><strong>where</strong>: one more programme-year adds {_pts(m[best])} in {_esc(best)}"
                   + (f", {_pts(m[worst])} in {_esc(worst)}" if worst != best else "") + ".</li>")
    periods = [(e, row.get("start_date") or f"year {row['start']:.2f}", site)
               for row in rel.get("period_elasticity") or [] for site, e in row["elasticity"].items()
               if e is not None and math.isfinite(e)]
    if periods:
        e, when, site = max(periods)
        out.append(f"<li><strong>which part of the programme</strong>: the push in {_esc(site)} from {_esc(when)} "
                   f"counts most (elasticity {e:.2f}: 10% less of it there would cost about {10 * e:.1f}% of the "
                   "adopters).</li>")
    w = rel.get("withdrawal_per_year")
    if w is not None and math.isfinite(w):
        out.append(f"<li><strong>when to withdraw</strong>: withdrawing a month later on the same budget would "
                   f"change the share adopted by {_pts(w / 12)}.</li>")
    return out


def design_section(run_dir: Path, levers: dict[str, str] | None = None) -> str:
    """HTML of the "What to do" section (a note saying what is missing when design.json is absent
    or cannot be read)."""
    path = Path(run_dir) / "design.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ('<p class="missing">No programme design in this run: add a <code>[design]</code> section to the '
                "config (or run <code>spreadjax design</code>) to see what to do.</p>")
    try:
        return _section(d, Path(run_dir), levers)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return (f'<p class="missing">{_esc(path.name)} could not be read ({_esc(type(exc).__name__)}: {_esc(exc)}); '
                "run <code>spreadjax design</code> again to rewrite it.</p>")


def _section(d: dict[str, Any], run_dir: Path, levers: dict[str, str] | None) -> str:
    o, c, b, g, grid = d["objective"], d["chosen"], d["baseline"], d["gain"], d["grid"]
    sites = list(d.get("sites") or c["spend"])
    k = d["constraints"]
    horizon = o.get("horizon_date") or f"year {o['horizon']:.2f}"
    goal = _OBJECTIVE_WORDS.get(o["name"], o["name"])
    if o.get("target") is not None and o["name"] != "expected_adoption":
        goal += f" ({_pct(o['target'])} adopted by {horizon})"
    when = c.get("withdraw_date") or f"year {c['withdraw']:.2f}"
    b_when = b.get("withdraw_date") or f"year {b['withdraw']:.2f}"
    lo, hi = g["mean_interval90"]
    f_lo, f_hi = g["futures_interval90"]
    parts = [
        f"<p>The programme below makes the most of <strong>{_esc(goal)}</strong> by {_esc(horizon)} with a budget of "
        f"{k['budget']:g} programme-years (intensity &times; years &times; sites). It spends "
        f"{c['total_spend']:.2f} and is withdrawn on {_esc(when)}. The baseline runs at {b['intensity']:.2f} "
        f"everywhere until {_esc(b_when)} (spending {b['total_spend']:.2f}).</p>",
        f"<p class=\"lead\">Expected share adopted: <strong>{_pct(c['mean_share'])}</strong> against "
        f"{_pct(b['mean_share'])} for the baseline: a gain of <strong>{_pts(g['mean'])}</strong> (90% interval "
        f"{_pts(lo)} to {_pts(hi)}). Compared future by future on the same {g['draws']} futures, it does better in "
        f"<strong>{g['p_beats']:.0%}</strong> of them; the gain in one future lies between {_pts(f_lo)} and "
        f"{_pts(f_hi)} (5% to 95%).</p>",
    ]
    ch = d.get("gain_with_chance")
    if ch:
        parts.append(f"<p>With chance in small sites too (each future rolled {ch['replicates']} times, the same "
                     f"rolls for both programmes): {_pct(ch['chosen_mean_share'])} against "
                     f"{_pct(ch['baseline_mean_share'])}, a gain of {_pts(ch['mean'])} (90% interval "
                     f"{_pts(ch['mean_interval90'][0])} to {_pts(ch['mean_interval90'][1])}); it does better in "
                     f"{ch['p_beats']:.0%} of the {ch['draws']} rolled futures (ties count half), and the gain in "
                     f"one of them lies between {_pts(ch['futures_interval90'][0])} and "
                     f"{_pts(ch['futures_interval90'][1])}.</p>")
    if o["name"] != "expected_adoption":
        parts.append(f"<p>On the objective itself: {_objective_text(o, c['objective'])} against "
                     f"{_objective_text(o, b['objective'])} for the baseline.</p>")
    uri = programme_figure(Path(run_dir) / "design.nc", sites)
    if uri:
        parts.append(f'<figure><img src="{uri}" alt="Programme intensity over time per site, and the baseline">'
                     "<figcaption>The chosen programme: intensity over time at each site (solid and broken "
                     "coloured lines) and the baseline (black dashes).</figcaption></figure>")
    head = ["period from"] + [_esc(s) for s in sites]
    rows = [[_esc(pc.get("start_date") or f"{pc['start']:.2f}")] + [f"{pc['intensity'][s]:.2f}" for s in sites]
            for pc in c["pieces"]]
    rows.append(["programme-years spent"] + [f"{c['spend'][s]:.2f}" for s in sites])
    parts.append(_table(head, rows))
    gg = grid["gain_over_best"]
    beat = "beats every one of them" if grid["chosen_beats_all"] else "does <strong>not</strong> beat all of them"
    parts.append(
        f"<p><strong>Against a coarse grid.</strong> Of {grid['points']} simple programmes (every site on the same "
        f"schedule, each period at one of {grid['levels']} intensities, and {grid['levels']} withdrawal dates where "
        f"the date may move), the best reaches {_objective_text(o, grid['best_objective'])}; the chosen programme "
        f"{beat}: {_pts(gg['mean'])} over the best (90% interval {_pts(gg['mean_interval90'][0])} to "
        f"{_pts(gg['mean_interval90'][1])}), better in {gg['p_beats']:.0%} of futures.</p>")
    srows = [[_esc(s["method"]), f"{s['objective']:.4f}", f"{s['seconds']:.1f} s", f"{s['evaluations']:,}"]
             for s in d.get("searches", [])]
    parts.append("<p>How it was found: a gradient search through the compiled model and, as a check, a "
                 "derivative-free search on the same objective and futures (the better one is chosen: "
                 f"{_esc(c['method'])}).</p>" + _table(["search", "objective", "wall time", "evaluations"], srows))
    words = _lever_words(d.get("reliance") or {}, levers or {})
    if words:
        parts.append("<p><strong>What it relies on.</strong></p><ul>" + "".join(words) + "</ul>")
    parts.append('<p class="note">Futures here are posterior draws of the parameters, run with the deterministic '
                 "model and shared by every programme compared (common random numbers): the search and the "
                 "comparisons use them; chance in small sites, where the config simulates it, is shown above on "
                 "the same draws. Constraints hold exactly: intensity within "
                 f"[{k['intensity'][0]:g}, {k['intensity'][1]:g}], at least {k['min_duration']:g} years before "
                 "withdrawal, and no more than the budget. See docs/design.md.</p>")
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'
