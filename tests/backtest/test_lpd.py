"""Leave-future-out scores: the one-step-ahead log predictive density against a hand computation
with scipy.stats, for two draws whose mixture is written out term by term."""

import math

import numpy as np
import pytest
from scipy import stats

from spreadjax import load_config
from spreadjax.backtest._lpd import binomial_lpd_one_ahead, mixture_lpd, model_lpd_one_ahead
from spreadjax.calibrate._run import build_problem

from ..ensemble.test_cli import COUNTS, calibration_toml, write

# two draws of (p, q) per year, and of the concentration where the observation model has one
DRAWS = {"p": np.array([[0.3, 0.8]]), "q": np.array([[0.5, 1.5]]), "concentration": np.array([[4.0, 60.0]])}


def full_problem(tmp_path, observation):
    write(tmp_path, COUNTS, name="counts.csv")
    text = calibration_toml("prior").replace('model = "binomial"', f'model = "{observation}"')
    return build_problem(load_config(write(tmp_path, text, name="c.toml")), fit_until=math.inf)


def by_hand(problem, k, observation):
    """log(0.5 p(y | draw 1) + 0.5 p(y | draw 2)) for the observation after index ``k``, per site."""
    cum = np.asarray(problem.data.cumulative, float)
    pop = np.asarray(problem.data.population, float)
    y, at_risk = cum[k + 1] - cum[k], pop - cum[k]
    dens = []
    for s in range(2):
        e = np.asarray(problem.simulate({"p": DRAWS["p"][0, s], "q": DRAWS["q"][0, s]})["ever_adopted"], float)
        # expected rows: the start, then each observation time; observation k + 1 is row k + 2
        new, before = e[k + 2] - e[k + 1], e[k + 1]
        h = new / (pop - before)
        phi = DRAWS["concentration"][0, s]
        if observation == "binomial":
            dens.append(stats.binom.pmf(y, at_risk, h))
        elif observation == "beta_binomial":
            dens.append(stats.betabinom.pmf(y, at_risk, h * phi, (1 - h) * phi))
        else:  # mean new, concentration phi: scipy's n = phi, p = phi / (phi + mean)
            dens.append(stats.nbinom.pmf(y, phi, phi / (phi + new)))
    return np.log(0.5 * dens[0] + 0.5 * dens[1])


@pytest.mark.parametrize("observation", ["binomial", "beta_binomial", "negative_binomial"])
@pytest.mark.parametrize("k", [0, 2])
def test_model_one_step_lpd_is_the_two_draw_mixture(tmp_path, observation, k):
    problem = full_problem(tmp_path, observation)
    draws = {n: v for n, v in DRAWS.items() if n != "concentration" or observation != "binomial"}
    got = model_lpd_one_ahead(problem, draws, k)
    # float64 simulation; lgamma cancellations in the beta-binomial and negative binomial pmfs
    # lose ~1e-7 relative (see tests/calibrate/test_log_likelihood.py)
    np.testing.assert_allclose(got, by_hand(problem, k, observation), rtol=1e-6)
    assert got.shape == (2,) and np.all(got < 0)


def test_bass_one_step_lpd_is_the_binomial_mixture():
    pop = np.array([40.0, 900.0])
    at_origin, nxt = np.array([10.0, 70.0]), np.array([16.0, 140.0])
    # two sampled curves at the origin and one period on (organisations)
    expected = np.array([[[9.0, 60.0], [14.0, 120.0]], [[11.0, 75.0], [19.0, 160.0]]])
    h = (expected[:, 1] - expected[:, 0]) / (pop - expected[:, 0])
    want = np.log(stats.binom.pmf(nxt - at_origin, pop - at_origin, h).mean(axis=0))
    np.testing.assert_allclose(binomial_lpd_one_ahead(expected, at_origin, nxt, pop), want, rtol=1e-10)


def test_mixture_lpd_is_stable_far_in_the_tail():
    # densities of e^-1000 and e^-1001: the naive log(mean(exp)) underflows to -inf
    got = mixture_lpd(np.array([[-1000.0], [-1001.0]]))
    np.testing.assert_allclose(got, -1000.0 + np.log((1 + math.exp(-1)) / 2), rtol=1e-12)
