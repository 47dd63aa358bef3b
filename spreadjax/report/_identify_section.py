"""The report's "Can the data tell push from pull?" paragraph, from the ``prior`` and ``posterior``
groups of ``posterior.nc`` (cheap: no refit). Simulation-based calibration is too costly for a run;
the paragraph points to ``spreadjax identify`` for it."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def identify_paragraph(groups: Mapping[str, Any] | None) -> str:
    """HTML: the push/pull verdict in plain words and a small table of contraction and correlation
    per site; ``""`` when the posterior has no push or pull, or no prior draws to compare with."""
    if not groups or "posterior" not in groups or "prior" not in groups:
        return ""
    from ..calibrate._identify import CONTRACTED, RIDGE, UNINFORMED, identifiability

    post = groups["posterior"]
    sites = tuple(str(s) for s in post["site"].values) if "site" in post.coords else ()
    try:
        ident = identifiability(None, groups["prior"], post, sites)
    except (KeyError, ValueError, IndexError) as exc:  # a posterior from another structure: say so, go on
        return (f"<h3>Can the data tell push from pull?</h3><p class=\"missing\">Not computed "
                f"({_esc(type(exc).__name__)}: {_esc(exc)}).</p>")
    if ident.push is None and ident.pull is None:
        return ""
    # green when separated; otherwise a plain box: a limit of the data, not a failed calibration check
    cls = "flag good" if ident.separated else "flag"
    out = ("<h3>Can the data tell push from pull?</h3>"
           f'<div class="{cls}"><p>{_esc(ident.verdict)}</p></div>')
    if ident.push and ident.pull:
        rows = "".join(
            f"<tr><td>{_esc(label)}</td><td>{ident.contraction['push'][label]:.2f}</td>"
            f"<td>{ident.contraction['pull'][label]:.2f}</td><td>{ident.correlation[label]:+.2f}</td></tr>"
            for label in ident.correlation)
        out += ("<table><thead><tr><th></th><th>push (" + _esc(ident.push.parameter) + ") contraction</th>"
                "<th>pull (" + _esc(ident.pull.parameter) + ") contraction</th><th>correlation</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")
    out += (f"<p>Contraction is how much of the prior's uncertainty the data removed (1 - posterior variance / "
            f"prior variance, log scale): {CONTRACTED} or more counts as pinned down, below {UNINFORMED} as "
            f"uninformed. A correlation of {RIDGE} or more in size, with either value not pinned down, means only "
            "a combination of push and pull is learned. Whether the fitting itself is trustworthy for a structure "
            "like this one is checked by simulation-based calibration: <code>spreadjax identify CONFIG "
            "--posterior posterior.nc --sbc 100</code>.</p>")
    return out
