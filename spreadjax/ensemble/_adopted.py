"""Where an ensemble's adopted count comes from: a typed mapping from the model's outputs.

The flagship stores its stock ``adopted`` (organisations) beside its ``population`` parameter.
A model fitted through ``[observation] cumulative``/``scale`` (an imported Vensim or XMILE model
in shares of a population of 1, or a sum ``"a + d"``) is summarised on that quantity instead:
the store then holds an ``adopted`` count computed on the device from the named outputs (the
share times each site's population, or the sum itself when it is already in organisations), and
the populations the share is of. Summaries, sensitivities and the report read ``adopted`` and
``population`` from the store as for the flagship. No JAX here: ``_batch`` does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import ConfigError

ADOPTED = "adopted"  # the store's adopted count (organisations), dims (draw, scenario, replicate, time, site)
SCALES = ("count", "fraction")


@dataclass(frozen=True)
class AdoptedSource:
    """The adopted count (organisations) of a model: the sum of the outputs ``outputs`` (stocks or
    auxiliaries), in organisations (``scale = "count"``) or as a share of each site's population
    (``"fraction"``). ``population``: the model's population parameter (counts; also the store's
    populations); ``populations`` (site,): the data's, which a share is of (None with no data: a
    population of 1 per site, the share itself, as for the S8 reference model)."""

    outputs: tuple[str, ...] = (ADOPTED,)
    scale: str = "count"
    population: str | None = "population"
    populations: tuple[float, ...] | None = None

    @property
    def derived(self) -> bool:
        """Whether the store's ``adopted`` is computed from ``outputs`` rather than being one of them."""
        return self.outputs != (ADOPTED,) or self.scale != "count"

    @property
    def static(self) -> tuple[tuple[str, ...], str] | None:
        """``(outputs, scale)`` when derived (what a compiled chunk needs), else None."""
        return (self.outputs, self.scale) if self.derived else None

    def describe(self) -> str:
        """In words, e.g. ``adopters (a share) x the data's population``."""
        total = " + ".join(self.outputs)
        if self.scale == "count":
            return total if not self.derived else f"{total} (organisations)"
        what = "the data's population" if self.populations is not None else "a population of 1"
        return f"{total} (a share) x {what}"


def adopted_source(model: Any, observation: Any = None, populations: Any = None) -> AdoptedSource:
    """The adopted count of ``model``: ``[observation] cumulative``/``scale`` when they differ from
    the defaults (``ever_adopted`` in organisations), else the stock ``adopted`` over the population
    parameter (the S8 reference model's ``A``, a share of 1). :class:`ConfigError` when the model has
    neither."""
    if observation is not None and (tuple(observation.cumulative), observation.scale) != (("ever_adopted",), "count"):
        share = observation.scale == "fraction"
        pops = tuple(float(p) for p in populations) if share and populations is not None else None
        return AdoptedSource(tuple(observation.cumulative), observation.scale,
                             None if share else model.population, pops)
    names = model.names
    population = model.population or ("population" if names.get("population") == "parameter" else None)
    if names.get(ADOPTED) == "stock" and population is not None:
        return AdoptedSource(population=population)
    if model.name == "s8":
        return AdoptedSource(("A",), "fraction", None)
    raise ConfigError(f"model {model.name!r}: ensembles need an 'adopted' stock and a 'population' parameter "
                      "(the summaries report the adopted fraction), or [data] with [observation] cumulative "
                      "naming the adopted quantity; a model file names them so")


def stored_outputs(outputs: tuple[str, ...], source: AdoptedSource | None) -> tuple[str, ...]:
    """The store's variables of ``(draw, scenario, replicate, time, site)``: the saved outputs, and
    ``adopted`` after them when it is computed from them."""
    return (*outputs, ADOPTED) if source is not None and source.derived else tuple(outputs)


def store_population(source: AdoptedSource, base: dict, n_sites: int) -> np.ndarray:
    """The populations ``(site,)`` (organisations) the store's adopted count is of: the data's for a
    share, else the population parameter's values (1 per site for a share with no data)."""
    if source.populations is not None:
        values: Any = source.populations
    elif source.population is not None:
        values = base[source.population]
    else:
        values = 1.0
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (n_sites,)).copy()
