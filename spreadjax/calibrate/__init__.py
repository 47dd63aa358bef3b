"""Calibration: observed data (counts, individual adoption times, networks), priors, observation
models, inference and diagnostics. Heavier modules load where they are used."""

from ._data import adjacency as adjacency
from ._data import load_counts as load_counts
from ._data import load_edges as load_edges
from ._data import load_individuals as load_individuals
from ._data import medical_innovation_counts as medical_innovation_counts
from ._data import medical_innovation_individuals as medical_innovation_individuals
from ._data import medical_innovation_path as medical_innovation_path

# Network-hazard likelihood (spreadjax.calibrate._hazard), loaded on first use: it imports numpyro,
# which imports scipy, and ``import spreadjax.calibrate`` stays light. Its public names are the
# ones in ``_hazard.__all__``.


def __getattr__(name: str):
    if not name.startswith("_"):
        from . import _hazard

        if name in _hazard.__all__:
            return getattr(_hazard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
