"""Calibration: observed data (counts, individual adoption times, networks) and, later, inference."""

from ._data import adjacency as adjacency
from ._data import load_counts as load_counts
from ._data import load_edges as load_edges
from ._data import load_individuals as load_individuals
from ._data import medical_innovation_counts as medical_innovation_counts
from ._data import medical_innovation_individuals as medical_innovation_individuals
from ._data import medical_innovation_path as medical_innovation_path

# Network-hazard likelihood (spreadjax.calibrate._hazard), loaded on first use: it imports numpyro,
# which imports scipy, and ``import spreadjax.calibrate`` stays light.
_HAZARD_NAMES = (
    "HazardData",
    "fit_network_hazard",
    "format_peer_effect_table",
    "hazard_data",
    "hazard_loglik",
    "hazard_model",
    "hazard_posterior",
    "medical_innovation_design",
    "medical_innovation_peer_effect",
    "person_periods",
    "simulate_network_hazard",
)


def __getattr__(name: str):
    if name in _HAZARD_NAMES:
        from . import _hazard

        return getattr(_hazard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
