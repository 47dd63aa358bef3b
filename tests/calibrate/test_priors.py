"""Priors: pooling across sites (complete, partial, none) and the refusals of contradictory keys."""

import jax
import numpy as np
import pytest
from numpyro import handlers

from spreadjax import ConfigError
from spreadjax.calibrate._priors import parse_prior, sample_parameter

BETA = {"dist": "Beta", "concentration1": 4.0, "concentration0": 2.0}


def draws(prior, n_sites, n):
    """``n`` prior draws of the parameter, ``(n, ...)``, with their numpyro sample sites."""
    out, sites = [], None
    for i in range(n):
        with handlers.trace() as tr, handlers.seed(rng_seed=i):
            out.append(np.asarray(sample_parameter(prior, n_sites)))
        sites = {k: v["value"].shape for k, v in tr.items() if v["type"] == "sample"}
    return np.stack(out), sites


def test_complete_pooling_gives_every_site_one_value():
    prior = parse_prior("ceiling", BETA, "c.toml", 0.0, 1.0)
    values, sites = draws(prior, 3, 5)
    assert prior.pooling == "complete" and values.shape == (5,) and sites == {"ceiling": ()}


def test_no_pooling_draws_each_site_independently_from_the_prior():
    prior = parse_prior("ceiling", {**BETA, "pooling": "none"}, "c.toml", 0.0, 1.0)
    values, sites = draws(prior, 7, 3000)
    assert sites == {"ceiling": (7,)} and prior.latent_names() == ("ceiling",)
    # each site's marginal is the prior, Beta(4, 2): mean 2/3, variance 4*2/(36*7)
    np.testing.assert_allclose(values.mean(0), 2 / 3, atol=4 * np.sqrt(8 / 252 / 3000))
    np.testing.assert_allclose(values.var(0), 8 / 252, rtol=0.15)
    # and the sites are uncorrelated (partial pooling would correlate them through the shared value)
    corr = np.corrcoef(values.T)[np.triu_indices(7, 1)]
    assert np.max(np.abs(corr)) < 4 / np.sqrt(3000)


def test_partial_pooling_correlates_sites_through_the_shared_value():
    prior = parse_prior("ceiling", {**BETA, "pooling": "partial", "group_scale": 0.3}, "c.toml", 0.0, 1.0)
    values, sites = draws(prior, 4, 1500)
    assert sites == {"ceiling_pop": (), "ceiling_tau": (), "ceiling_z": (4,)}
    assert prior.reported_names() == ("ceiling", "ceiling_pop", "ceiling_tau")
    corr = np.corrcoef(values.T)[np.triu_indices(4, 1)]
    assert np.min(corr) > 0.5


def test_hierarchical_true_is_partial_pooling():
    assert parse_prior("q", {"dist": "LogNormal", "loc": 0.0, "scale": 1.0, "hierarchical": True},
                       "c.toml", 0.0, np.inf).pooling == "partial"


@pytest.mark.parametrize("extra, message", [
    ({"pooling": "some"}, 'pooling = \'some\': expected one of "complete", "partial", "none"'),
    ({"pooling": "none", "hierarchical": True}, "hierarchical = true contradicts pooling = 'none'"),
    ({"pooling": "complete", "group_scale": 0.5}, "group_scale is the between-site scale of partial pooling"),
    ({"group_scale": 0.5}, "this prior has pooling = 'complete'"),
])
def test_contradictory_pooling_keys_are_refused(extra, message):
    with pytest.raises(ConfigError, match="c.toml") as err:
        parse_prior("ceiling", {**BETA, **extra}, "c.toml", 0.0, 1.0)
    assert message in str(err.value)


def test_sampling_is_jittable_for_every_pooling():
    # the numpyro model is traced once: per-site shapes must not depend on Python values
    for pooling in ("complete", "partial", "none"):
        prior = parse_prior("ceiling", {**BETA, "pooling": pooling}, "c.toml", 0.0, 1.0)
        f = jax.jit(lambda key, p=prior: handlers.seed(sample_parameter, key)(p, 3))
        value = np.asarray(f(jax.random.PRNGKey(0)))
        assert value.shape == ((3,) if prior.per_site else ()) and np.all((value > 0) & (value < 1))
