"""What a posterior was calibrated on, so that every forecast made from it uses the same model,
sites, populations and data.

A posterior file records (in its ``posterior`` group's attrs) the model with its options, the
data file's SHA-256 and a hash of the fixed inputs of the fit (fixed parameters, schedules,
network, priors, observation model); its ``observed_data`` group holds the sites and their
populations. :func:`check_posterior` compares all of them with a config before any draw is used
and refuses a mismatch with one line naming both sides.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .._errors import InputError
from ._observe import CUMULATIVE


def calibration_identity(config: Any) -> dict[str, str]:
    """Attrs for a posterior calibrated from ``config``: ``calibrated_model``, ``data_sha256``,
    ``data_file`` and ``fit_setup_sha256``."""
    ident = {"calibrated_model": _model(config)}
    if config.calibration is not None and config.data is not None:
        ident.update(data_sha256=config.data.sha256, data_file=config.data.file,
                     fit_setup_sha256=_fit_setup(config))
    return ident


def _model(config: Any) -> str:
    # a model file counts by its content (SHA-256), not by the path it was reached through
    options = {k: v for k, v in config.model_options if not (k == "file" and getattr(config, "model_file", None))}
    return json.dumps([config.model, options], sort_keys=True)


def _fit_setup(config: Any) -> str:
    """Hash of the parsed fixed inputs of a fit (formatting and comments of the file do not count)."""
    population = config.build_model().population
    fixed = [(k, v) for k, v in config.parameters if k != population]
    cal = config.calibration
    obs = cal.observation
    # the mapping counts only when it is not the default, so posteriors from before it keep their identity
    mapped = (obs.cumulative, obs.scale) != (CUMULATIVE, "count")
    observation = (f"Observation(kind={obs.kind!r}, concentration={obs.concentration!r}"
                   + (f", cumulative={obs.cumulative!r}, scale={obs.scale!r})" if mapped else ")"))
    text = repr((fixed, config.schedules, config.network, cal.priors)).removesuffix(")") + ", " + observation + ")"
    return hashlib.sha256(text.encode()).hexdigest()


def check_posterior(groups: Mapping[str, xr.Dataset], config: Any, path: Any) -> None:
    """Raise :class:`InputError` unless the posterior at ``path`` was calibrated on ``config``'s
    model, sites, populations, data and fixed inputs."""
    where = f"{path}: this posterior"
    obs = groups.get("observed_data")
    if obs is None or "site" not in obs.coords or "population" not in obs:
        raise InputError(f"{where} records no sites and populations (written by an older spreadjax?); "
                         f"calibrate again: spreadjax calibrate {config.path} --out DIR")
    sites = [str(s) for s in obs["site"].values]
    if sites != list(config.sites):
        raise InputError(f"{where} was calibrated on sites {sites}; {config.path} has sites {list(config.sites)}")
    population = config.build_model().population
    if population is not None:
        ours = np.broadcast_to(np.asarray(dict(config.parameters)[population], float), (config.n_sites,))
        theirs = np.asarray(obs["population"].values, float)
        if not np.array_equal(ours, theirs):
            raise InputError(f"{where} was calibrated with {population} {_list(theirs)}; {config.path} has "
                             f"{_list(ours)}")
    attrs = groups["posterior"].attrs
    for key, ours, what in _expected(config):
        theirs = attrs.get(key)
        if theirs is None:
            raise InputError(f"{where} does not record its {what} (written by an older spreadjax?); calibrate "
                             f"again: spreadjax calibrate {config.path} --out DIR")
        if str(theirs) != ours:
            shown = (theirs, ours) if key == "calibrated_model" else (
                f"{attrs.get('data_file', '?')} (sha256 {str(theirs)[:12]})",
                f"{config.data.file} (sha256 {ours[:12]})") if key == "data_sha256" else ("one set", "another")
            raise InputError(f"{where} was calibrated with a different {what}: {shown[0]}; {config.path} has "
                             f"{shown[1]}; calibrate this config or use its own posterior")


def _expected(config: Any) -> list[tuple[str, str, str]]:
    ident = calibration_identity(config)
    what = {"calibrated_model": "model", "data_sha256": "data file",
            "fit_setup_sha256": "set of fixed parameters, schedules, network, priors or observation model"}
    return [(k, ident[k], what[k]) for k in what if k in ident]


def _list(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
