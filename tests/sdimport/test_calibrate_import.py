"""An imported Vensim model calibrates: ``[observation] cumulative``/``scale`` map the data's
counts onto a model quantity in shares of a population of 1 (no population parameter, no
``ever_adopted`` stock). The bundled ``bass_adoption.mdl`` is imported with ``spreadjax import``,
then priors, data and the observation are appended, as docs/own_model.md section 3 shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spreadjax._cli import app
from spreadjax._config import load_config
from spreadjax.calibrate._observe import Observation

MDL = Path(__file__).resolve().parents[2] / "spreadjax" / "configs" / "models" / "bass_adoption.mdl"
SITES = ("Ashford", "Leeds", "York", "Bath")
POPULATION = (7, 900, 400, 250)
TIMES = np.arange(1, 18) / 12  # monthly, years
DT = 1 / 48  # the .mdl's TIME STEP (Euler)

ADDED = """
[sites]
names = ["Ashford", "Leeds", "York", "Bath"]

[parameters]
{fixed}

[data]
counts = "counts.csv"

[observation]
cumulative = "adopters"
scale = "fraction"

[priors.push]
dist = "LogNormal"
loc = -1.0
scale = 1.0

{pull_prior}

[calibration]
chains = 1
warmup = {warmup}
samples = {samples}
seed = 3
"""

PULL_PRIOR = """[priors.pull]
dist = "LogNormal"
loc = 0.0
scale = 1.0"""


def write_counts(path: Path, new: np.ndarray) -> None:
    """``new`` ``(time, site)`` as a counts CSV with the populations above."""
    rows = ["site,time,population,new_adopters"]
    for j, site in enumerate(SITES):
        rows += [f"{site},{float(t)!r},{POPULATION[j]},{int(new[i, j])}" for i, t in enumerate(TIMES)]
    path.write_text("\n".join(rows) + "\n")


def imported(tmp_path: Path, fixed: str = "", pull_prior: str = PULL_PRIOR, warmup: int = 150,
             samples: int = 150) -> Path:
    """``spreadjax import`` of the bundled .mdl into ``tmp_path``, with the calibration tables appended."""
    result = CliRunner().invoke(app, ["import", str(MDL), "--out", str(tmp_path / "study.toml")])
    assert result.exit_code == 0, result.output
    config = tmp_path / "study.toml"
    config.write_text(config.read_text() + ADDED.format(fixed=fixed, pull_prior=pull_prior, warmup=warmup,
                                                        samples=samples))
    if not (tmp_path / "counts.csv").exists():
        write_counts(tmp_path / "counts.csv", np.zeros((len(TIMES), len(SITES))))
    return config


def test_a_fraction_is_scaled_by_the_data_population():
    """Hand-computed: expected counts = population x (sum of the named outputs)."""
    out = {"a": np.array([[0.0, 0.5], [0.25, 0.75]]), "d": np.array([[0.0, 0.125], [0.5, 0.0]])}
    pop = np.array([7.0, 900.0])
    share = Observation(cumulative=("a", "d"), scale="fraction").expected(out, pop)
    np.testing.assert_array_equal(np.asarray(share), [[0.0, 562.5], [5.25, 675.0]])
    counts = Observation(cumulative=("a",)).expected(out, pop)  # "count": the quantity as it is
    np.testing.assert_array_equal(np.asarray(counts), out["a"])
    assert Observation().cumulative == ("ever_adopted",) and Observation().scale == "count"


def test_imported_model_expected_counts_are_population_times_share(tmp_path):
    """With no pull, the imported model's Euler share is 1 - (1 - push dt)^k exactly: the
    calibration's expected adopters are the data's populations times it."""
    import numpyro.handlers as h

    from spreadjax.calibrate._run import build_problem

    cfg = load_config(imported(tmp_path, fixed="pull = 0.0", pull_prior=""))
    assert cfg.build_model().population is None
    problem = build_problem(cfg)
    push = 0.4
    tr = h.trace(h.substitute(problem.model, data={"push": np.full(len(SITES), push)})).get_trace()
    got = np.asarray(tr["expected_adopters"]["value"])  # (time, site)
    k = np.round(TIMES / DT)
    share = 1 - (1 - push * DT) ** k
    np.testing.assert_allclose(got, share[:, None] * np.asarray(POPULATION, float)[None], rtol=1e-9)


@pytest.mark.slow
def test_imported_model_recovers_the_parameters_it_simulated(tmp_path):
    """Counts drawn from the imported model at known push and pull (binomial, populations 7 to
    900) are fitted back by `spreadjax calibrate`; the truth lies inside the posterior."""
    import xarray as xr

    from spreadjax.calibrate._run import build_problem
    from spreadjax.calibrate._refit import simulate_counts

    truth = {"push": 0.35, "pull": 2.5}
    cfg = load_config(imported(tmp_path))
    problem = build_problem(cfg)
    new, cum = simulate_counts(problem, {k: np.array([v]) for k, v in truth.items()}, seed=11)
    new = np.asarray(new)[0]
    assert np.all(np.asarray(cum)[0][-1] <= np.asarray(POPULATION))
    write_counts(tmp_path / "counts.csv", new)

    result = CliRunner().invoke(app, ["calibrate", str(tmp_path / "study.toml"), "--out", str(tmp_path / "out"),
                                      "--no-plots"])
    assert result.exit_code == 0, result.output
    post = xr.open_dataset(tmp_path / "out" / "posterior.nc", group="posterior")
    for name, value in truth.items():
        draws = post[name].values.ravel()
        lo, hi = np.quantile(draws, [0.005, 0.995])
        assert lo < value < hi, (name, value, lo, hi)
        assert draws.std() < 0.3 * value, (name, draws.std())  # the data inform it: not the prior's spread
