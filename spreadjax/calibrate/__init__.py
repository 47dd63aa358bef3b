"""Calibration: observed data (counts, individual adoption times, networks) and, later, inference."""

from ._data import adjacency as adjacency
from ._data import load_counts as load_counts
from ._data import load_edges as load_edges
from ._data import load_individuals as load_individuals
from ._data import medical_innovation_counts as medical_innovation_counts
from ._data import medical_innovation_individuals as medical_innovation_individuals
from ._data import medical_innovation_path as medical_innovation_path
