"""Shared builders for core tests."""

import numpy as np

from spreadjax.core import RK4, Simulation, compile_model
from spreadjax.models import four_stage_model

COUNTED = ("unaware", "aware", "implementing", "adopted", "discontinued")


def bass_closed_form(t, p, q):
    """Adopted fraction of the Bass model with F(0) = 0."""
    e = np.exp(-(p + q) * np.asarray(t))
    return (1 - e) / (1 + (q / p) * e)


def flagship_sim(ts=None, dt=1 / 52, outputs=COUNTED, solver=RK4(), **options):
    cm = compile_model(four_stage_model(**options))
    ts = np.arange(0, 521, 13) / 52 if ts is None else ts
    return cm, Simulation(cm, tuple(ts), dt, outputs, solver)


BASS_VALUES = dict(population=1.0, initial_adopters=0.0, p=0.03, q=0.38, recognition_baseline=1.0,
                   pilot_evidence=0.0, adopter_evidence=0.0, discontinuation_rate=0.0)
