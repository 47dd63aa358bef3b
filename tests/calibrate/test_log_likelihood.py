"""The pointwise log-likelihood in every posterior: ``log p(y_i | draw)`` at each observed point,
checked against scipy's pmfs of the observation model written out by hand, and read back by
ArviZ (``arviz.from_netcdf``, ``arviz.loo``)."""

import warnings

import numpy as np
import pytest
from scipy import stats

from spreadjax import load_config
from spreadjax.calibrate._run import build_problem, calibrate, write_posterior

from tests.ensemble.test_cli import COUNTS, calibration_toml, write


def fit(tmp_path, observation="binomial"):
    write(tmp_path, COUNTS, name="counts.csv")
    text = calibration_toml("prior").replace('model = "binomial"', f'model = "{observation}"')
    config = load_config(write(tmp_path, text, name="c.toml"))
    problem = build_problem(config)
    return problem, calibrate(problem, config.calibration.settings)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One binomial fit (12 draws) shared by the tests below."""
    return fit(tmp_path_factory.mktemp("binomial"))


def by_hand(groups, observation):
    """log p(new_t | draw) from the draws' expected adopters and the observed counts, with scipy."""
    obs = groups["observed_data"]
    new = obs["new_adopters"].values
    cum = obs["adopters"].values
    pop = obs["population"].values
    expected = groups["posterior"]["expected_adopters"].values  # (chain, draw, time, site)
    zero = np.zeros(expected.shape[:2] + (1, expected.shape[3]))  # the config starts with no adopters
    e = np.concatenate([zero, expected], axis=2)
    eps = 1e-6  # the observation model's clip of the hazard (spreadjax.calibrate._observe.EPS)
    h = np.clip((e[:, :, 1:] - e[:, :, :-1]) / np.maximum(pop - e[:, :, :-1], eps), eps, 1 - eps)
    at_risk = pop - np.concatenate([np.zeros((1, len(pop))), cum[:-1]])
    if observation == "binomial":
        return stats.binom.logpmf(new, at_risk, h)
    phi = groups["posterior"]["concentration"].values[:, :, None, None]
    return stats.betabinom.logpmf(new, at_risk, h * phi, (1 - h) * phi)


@pytest.mark.parametrize("observation", ["binomial", "beta_binomial"])
def test_log_likelihood_is_the_observation_models_pmf(tmp_path, fitted, observation):
    problem, result = fitted if observation == "binomial" else fit(tmp_path, observation)
    ll = result.groups["log_likelihood"]
    assert list(ll.data_vars) == ["new_adopters"]  # no survey data: no aware
    assert ll["new_adopters"].dims == ("chain", "draw", "time", "site")
    assert ll["new_adopters"].shape == result.groups["posterior"]["expected_adopters"].shape
    # float64 fit. Binomial: to rounding (1e-8 relative). Beta-binomial: numpyro and scipy sum
    # log-gamma terms of size phi (tens to hundreds) that cancel to a few units, losing ~1e-7
    np.testing.assert_allclose(ll["new_adopters"].values, by_hand(result.groups, observation),
                               rtol=1e-8 if observation == "binomial" else 1e-6, atol=1e-10)


def test_chunks_give_the_same_values(fitted):
    from spreadjax.calibrate._infer import pointwise_log_likelihood

    problem, result = fitted
    whole = result.groups["log_likelihood"]["new_adopters"].values
    chunked = pointwise_log_likelihood(problem, result.fit.samples, chunk=5)["new_adopters"]  # 12 draws: 5+5+2
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)


def test_posterior_file_is_read_by_arviz_with_its_log_likelihood(tmp_path, fitted):
    import arviz as az

    problem, result = fitted
    path = write_posterior(result.groups, tmp_path / "posterior.nc")
    idata = az.from_netcdf(path)
    assert "log_likelihood" in idata.groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 12 draws: ArviZ warns of few draws / high Pareto k
        loo = az.loo(idata, var_name="new_adopters", pointwise=True)
    assert loo["pareto_k"].shape == (4, 2)  # one k per observed (time, site)
    assert np.isfinite(loo["elpd_loo"])
    # the elpd cannot exceed the in-sample log pointwise predictive density by more than p_loo
    lppd = np.log(np.exp(result.groups["log_likelihood"]["new_adopters"].values).mean(axis=(0, 1))).sum()
    np.testing.assert_allclose(loo["elpd_loo"] + loo["p_loo"], lppd, rtol=1e-9)
