"""Fits up to an origin from one compiled program: the masked model scores exactly what the model
cut at the origin scores (counts and surveys), and refits at other origins do not compile again."""

from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

from spreadjax._config import load_config
from spreadjax.calibrate._refit import BatchSettings, Refitter
from spreadjax.calibrate._run import build_problem
from tests._bass import BASS_MODEL, BASS_PARAMETERS

CONFIG = """title = "two towns, Bass"
""" + BASS_MODEL.replace("awareness_stage = false", "awareness_stage = {awareness}") + """[sites]
names = ["small", "large"]
[parameters]
""" + BASS_PARAMETERS + """[data]
counts = "counts.csv"
[observation]
model = "{observation}"
[priors.p]
dist = "LogNormal"
loc = -1.5
scale = 0.5
[priors.q]
dist = "LogNormal"
loc = -0.5
scale = 0.5
hierarchical = true
group_scale = 0.3
[simulation]
start = 0.0
end = 3.0
steps_per_year = 8
outputs_per_year = 4
solver = "rk4"
dtype = "float64"
"""


def _problem(tmp_path: Path, observation: str = "binomial", survey: bool = False):
    """Towns of 7 and 900 organisations, quarterly for three years; with ``survey``, every other
    quarter reports how many are aware (blank otherwise)."""
    rng = np.random.default_rng(4)
    rows = ["site,time,population,new_adopters" + (",aware" if survey else "")]
    for site, pop in (("small", 7), ("large", 900)):
        left, seen = pop, 0
        for k in range(1, 13):
            new = int(rng.binomial(left, 0.12))
            left -= new
            seen = min(pop, seen + new + int(rng.binomial(pop - seen - new, 0.2)) if pop - seen - new > 0 else pop)
            aware = (f",{max(seen, pop - left)}" if k % 2 == 0 else ",") if survey else ""
            rows.append(f"{site},{k / 4},{pop},{new}{aware}")
    (tmp_path / "counts.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "c.toml").write_text(CONFIG.format(awareness="true" if survey else "false", observation=observation))
    return load_config(tmp_path / "c.toml")


@pytest.mark.parametrize("observation,survey", [("binomial", False), ("beta_binomial", False), ("binomial", True)])
def test_the_masked_model_scores_what_the_cut_model_scores(tmp_path, observation, survey):
    config = _problem(tmp_path, observation, survey)
    full = build_problem(config)
    values = _prior_draws(full, 4)  # parameters drawn from the prior, the same for every model
    lp_full = _log_densities(full, values)
    for until in (0.75, 1.5, 2.75):
        lp_cut = _log_densities(build_problem(config, fit_until=until), values)
        lp_masked = _log_densities(replace(full, data=full.data.mask_after(until)), values)
        np.testing.assert_allclose(lp_masked, lp_cut, rtol=1e-12, atol=1e-9)
        assert np.all(np.abs(lp_full - lp_cut) > 1e-3)  # the later periods do count in the full model


def _log_densities(problem, values):
    """The model's joint log density at each of the draws ``values`` (``{name: (n, ...)}``)."""
    return np.asarray(jax.jit(jax.vmap(lambda v: log_density(problem.model, (), {}, v)[0]))(values))


def _prior_draws(problem, n):
    from spreadjax.calibrate._refit import prior_values

    return prior_values(problem, n, seed=5)


def test_refits_at_other_origins_reuse_one_program(tmp_path):
    full = build_problem(_problem(tmp_path))
    names = ("p", "q", "q_pop", "q_tau", "q_z")
    refit = Refitter(full, BatchSettings(chains=2, warmup=60, samples=40, max_tree_depth=5), 3, names)
    early, stats, _ = refit.fit(0.75)
    late, _, _ = refit.fit(2.75)
    assert refit._run._cache_size() == 1  # one trace and compile for both origins
    assert early["p"].shape == (2, 40) and late["q"].shape == (2, 40, 2)
    assert set(stats) >= {"diverging", "energy", "num_steps", "accept_prob", "potential_energy"}
    # three years of data pin p down more tightly than three quarters do
    assert np.std(np.log(late["p"])) < np.std(np.log(early["p"]))
