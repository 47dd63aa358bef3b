"""Backtest scores and forecasts against independent truth: the CRPS's definition, a calibrated
forecast's uniform PIT and nominal coverage, the binomial step's moments, and exact Bass fits."""

import numpy as np
import pytest
from scipy import stats

from spreadjax.backtest._forecast import no_change, sample_counts
from spreadjax.backtest._reference import bass_bootstrap, bass_fraction, fit_bass
from spreadjax.backtest._scores import score_samples


def brute_crps(y, x):
    """E|X - y| - 1/2 E|X - X'| over the ensemble, with the unbiased m(m-1) normalisation."""
    m = len(x)
    return np.abs(x - y).mean() - np.abs(x[:, None] - x[None, :]).sum() / (2 * m * (m - 1))


def test_crps_is_the_definition_and_a_point_forecast_scores_its_error():
    rng = np.random.default_rng(0)
    pop = np.array([7.0, 900.0])
    samples = np.stack([rng.binomial(7, 0.4, size=(50, 3)), rng.binomial(900, 0.3, size=(50, 3))], axis=-1)
    observed = np.array([[3, 260], [2, 280], [5, 300]], float)
    s = score_samples(observed, samples.astype(float), pop, seed=1)
    for t in range(3):
        for j in range(2):
            np.testing.assert_allclose(s["crps"][t, j], brute_crps(observed[t, j] / pop[j], samples[:, t, j] / pop[j]),
                                       rtol=1e-10)
    point = no_change(np.array([3.0, 250.0]), 3)
    p = score_samples(observed, point, pop, seed=1)
    np.testing.assert_allclose(p["crps"], np.abs(observed - [3.0, 250.0]) / pop, rtol=1e-12)


def test_a_calibrated_forecast_has_uniform_pit_and_nominal_coverage():
    """Observations drawn from the forecast's own distribution: PIT ~ U(0, 1) (randomised, so
    counts do not spoil it), coverage near 50% and 90%."""
    rng = np.random.default_rng(2)
    pop = np.array([7.0, 40.0, 900.0])
    p = rng.uniform(0.1, 0.9, size=(400, 3))
    samples = rng.binomial(pop.astype(int), p, size=(2000, 400, 3)).astype(float)
    observed = rng.binomial(pop.astype(int), p).astype(float)
    s = score_samples(observed, samples, pop, seed=3)
    assert stats.kstest(s["pit"].ravel(), "uniform").pvalue > 0.01
    assert 0.46 < s["covered50"].mean() < 0.66  # discrete: boundaries count as inside, so at least nominal
    assert 0.88 < s["covered90"].mean() < 0.96
    shifted = score_samples(np.minimum(observed + 0.3 * pop, pop), samples, pop, seed=3)
    assert shifted["covered90"].mean() < 0.6 and shifted["pit"].mean() > 0.7  # a biased forecast is caught


def test_one_binomial_step_has_the_binomial_moments():
    pop = np.array([7.0, 900.0])
    start = np.array([2.0, 100.0])
    expected = np.broadcast_to(np.array([[2.0, 100.0], [3.0, 180.0]])[None], (40000, 2, 2))  # hazards 1/5, 1/10
    out = sample_counts(expected, start, pop, "binomial", seed=4)[:, 0] - start
    n, h = pop - start, np.array([1 / 5, 80 / 800])
    np.testing.assert_allclose(out.mean(0), n * h, rtol=0.02)
    np.testing.assert_allclose(out.var(0), n * h * (1 - h), rtol=0.05)
    assert (out >= 0).all() and (out + start <= pop).all()
    wide = sample_counts(expected, start, pop, "beta_binomial", seed=4, concentration=np.full(40000, 5.0))[:, 0] - start
    np.testing.assert_allclose(wide.mean(0), n * h, rtol=0.03)
    # beta-binomial variance: n h (1 - h) (phi + n) / (phi + 1)
    np.testing.assert_allclose(wide.var(0), n * h * (1 - h) * (5.0 + n) / 6.0, rtol=0.06)


def test_bass_least_squares_recovers_an_exact_curve():
    t = np.linspace(0.1, 6.0, 30)
    truth = (0.02, 0.9, 0.7)
    share = bass_fraction(t, *truth, 0.01, 0.0)
    np.testing.assert_allclose(fit_bass(t, share, 0.01, 0.0), truth, rtol=1e-4)


def test_bass_bootstrap_brackets_the_truth():
    rng = np.random.default_rng(5)
    pop = np.array([60.0, 900.0])
    times = np.arange(1, 9) / 2.0
    curve = np.stack([bass_fraction(np.concatenate([[0.0], times]), 0.05, 1.2, m, 0.0, 0.0) for m in (0.8, 0.6)], -1)
    cum = np.zeros((len(times), 2))
    c = np.zeros(2)
    for i in range(len(times)):
        h = (curve[i + 1] - curve[i]) / (1 - curve[i])
        c = c + rng.binomial((pop - c).astype(int), h)
        cum[i] = c
    ahead = np.array([5.0, 6.0])
    boot = bass_bootstrap(times, cum, np.zeros(2), pop, 0.0, ahead, 60, seed=6)
    assert boot.shape == (60, 3, 2) and (boot <= pop + 1e-9).all()
    true_ahead = pop * np.stack([bass_fraction(ahead, 0.05, 1.2, m, 0.0, 0.0) for m in (0.8, 0.6)], -1)
    lo, hi = np.quantile(boot[:, 1:], [0.01, 0.99], axis=0)
    assert ((lo <= true_ahead * 1.05) & (true_ahead * 0.95 <= hi)).all()
