"""``spreadjax identify``: push-versus-pull identifiability of a config, written to a folder.

- With a posterior (``posterior.nc`` of ``spreadjax calibrate``): contraction of push and pull from
  its ``prior`` to its ``posterior`` group, their posterior correlation, and the verdict.
- With ``sbc = N``: simulation-based calibration of the config's structure (``N`` fits of data
  simulated from the prior), rank histograms and z-score/contraction figure.

Writes ``identify.json`` (and ``sbc_ranks.png``, ``sbc_contraction.png`` with SBC), each atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

IDENTIFY_FILES = ("identify.json", "sbc_ranks.png", "sbc_contraction.png")
#: Chains and kept draws per chain of each SBC fit (400 draws, thinned to 100 for the ranks).
SBC_CHAINS = 2
SBC_SAMPLES = 200


def check_identify_request(cfg: Any, posterior: Path | None, sbc: int | None) -> None:
    """Refuse what ``identify`` cannot do, before any work (one :class:`InputError`)."""
    from .._errors import InputError
    from ..calibrate._sbc import check_sbc_request

    cfg.require_model("`spreadjax identify`")
    if cfg.calibration is None or cfg.is_hazard:
        raise InputError(f"{cfg.path}: `spreadjax identify` needs count data and [priors] ([data] counts = ...); "
                         "this config has " + ("individual adoption data (a network hazard)" if cfg.is_hazard
                                                else "no [data] section"))
    if posterior is None and sbc is None:
        raise InputError("give --posterior FILE (a posterior.nc of `spreadjax calibrate`) for contraction and "
                         "correlation, and/or --sbc N for simulation-based calibration")
    if posterior is not None and not posterior.is_file():
        raise InputError(f"--posterior {posterior}: no such posterior file; run `spreadjax calibrate` first")
    if sbc is not None:
        check_sbc_request(sbc)


def run_identify(cfg: Any, out_dir: Path, posterior: Path | None, sbc: int | None,
                 say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Run the checks asked for and write ``identify.json`` (and the SBC figures); returns its content."""
    from .._io import write_atomic
    from ..calibrate._identify import format_identifiability, identifiability

    result: dict[str, Any] = {"config": str(cfg.path), "title": cfg.title}
    if posterior is not None:
        from ..calibrate._identity import check_posterior
        from ..calibrate._run import read_posterior

        groups = read_posterior(posterior)
        check_posterior(groups, cfg, str(posterior))
        prior = groups.get("prior")
        if prior is None:
            from .._errors import InputError

            raise InputError(f"{posterior}: has no 'prior' group (prior draws), needed for the contraction; "
                             "calibrate again with prior_draws > 0")
        ident = identifiability(cfg.calibration.priors, prior, groups["posterior"], tuple(cfg.sites))
        result["posterior"] = str(posterior)
        result["identifiability"] = ident.to_dict()
        say(format_identifiability(ident))
    if sbc is not None:
        from ..calibrate._run import build_problem
        from ..calibrate._sbc import run_sbc
        from ..calibrate._refit import BatchSettings
        from ._identify_figures import rank_histograms, zscore_contraction

        s = cfg.calibration.settings
        problem = build_problem(cfg)
        settings = BatchSettings(SBC_CHAINS, s.warmup, SBC_SAMPLES, s.target_accept, s.max_tree_depth)
        say(f"simulation-based calibration: {sbc} replications x {SBC_CHAINS} chains x ({s.warmup} warm-up + "
            f"{SBC_SAMPLES} draws), compiled once")
        res = run_sbc(problem, sbc, settings=settings, seed=s.seed)
        result["sbc"] = res.to_dict()
        say(f"wrote {rank_histograms(res, out_dir / 'sbc_ranks.png')}, "
            f"{zscore_contraction(res, out_dir / 'sbc_contraction.png')}")
        for f in res.flags:
            say(f"- {f}")
        if not res.flags:
            say("SBC: ranks uniform and every value contracted (identified by data like these)")
    text = json.dumps(result, indent=2, allow_nan=True)
    write_atomic(out_dir / "identify.json", lambda tmp: tmp.write_text(text + "\n"))
    return result
