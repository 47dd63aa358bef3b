"""Calibration figures from tiny hand-built groups (2 chains x 50 draws, 3 times, 2 sites)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from spreadjax.report._calibration_figures import (
    plot_calibration,
    plot_predictive,
    plot_prior_posterior,
    plot_trace_rank,
)

PNG = b"\x89PNG\r\n\x1a\n"
SITES = ["north", "south"]
TIMES = np.array([1, 2, 3]) / 12.0


def _groups(chains: int = 2, draws: int = 50, stats: bool = True, seed: int = 0) -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(seed)
    pop = np.array([40.0, 25.0])
    new = np.array([[3, 2], [5, 3], [4, 2]])
    cum = np.cumsum(new, axis=0)

    def params(c: int, d: int) -> dict:
        p_pop = rng.lognormal(-1.0, 1.0, (c, d))
        p_tau = np.abs(rng.normal(0, 0.5, (c, d)))
        p_z = rng.normal(size=(c, d, 2))
        return {"p_pop": (("chain", "draw"), p_pop), "p_tau": (("chain", "draw"), p_tau),
                "p_z": (("chain", "draw", "site"), p_z),
                "p": (("chain", "draw", "site"), p_pop[..., None] * np.exp(p_tau[..., None] * p_z)),
                "q": (("chain", "draw"), rng.normal(0.4, 0.1, (c, d))),
                "expected_adopters": (("chain", "draw", "time", "site"),
                                      cum[None, None] * rng.lognormal(0, 0.1, (c, d, 3, 2)))}

    def coords(c: int, d: int) -> dict:
        return {"chain": np.arange(c), "draw": np.arange(d), "time": TIMES, "site": SITES}

    def predictive(c: int, d: int) -> xr.Dataset:
        return xr.Dataset({"new_adopters": (("chain", "draw", "time", "site"), rng.poisson(3, (c, d, 3, 2)))},
                          coords=coords(c, d))

    groups = {
        "posterior": xr.Dataset(params(chains, draws), coords=coords(chains, draws), attrs={"method": "nuts"}),
        "prior": xr.Dataset(params(1, 200), coords=coords(1, 200)),
        "prior_predictive": predictive(1, 200),
        "posterior_predictive": predictive(chains, draws),
        "observed_data": xr.Dataset({"new_adopters": (("time", "site"), new), "adopters": (("time", "site"), cum),
                                     "population": (("site",), pop)}, coords={"time": TIMES, "site": SITES}),
    }
    if stats:
        div = np.zeros((chains, draws), bool)
        div[0, 7] = True
        groups["sample_stats"] = xr.Dataset(
            {"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), rng.normal(size=(chains, draws))),
             "lp": (("chain", "draw"), rng.normal(size=(chains, draws)))},
            coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    return groups


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 5_000


def test_plot_predictive(tmp_path):
    out = plot_predictive(_groups(), tmp_path / "predictive.png")
    assert out == tmp_path / "predictive.png"
    _assert_png(out)


def test_plot_predictive_with_dates(tmp_path):
    groups = _groups()
    dates = np.array(["1953-12-01", "1954-01-01", "1954-02-01"], dtype="datetime64[ns]")
    groups["observed_data"] = groups["observed_data"].assign_coords(date=("time", dates))
    _assert_png(plot_predictive(groups, tmp_path / "p.png"))


def test_plot_trace_rank(tmp_path):
    _assert_png(plot_trace_rank(_groups(), tmp_path / "trace.png"))


def test_plot_trace_rank_var_names(tmp_path):
    _assert_png(plot_trace_rank(_groups(), tmp_path / "trace.png", var_names=["q", "p_z"]))
    with pytest.raises(KeyError):
        plot_trace_rank(_groups(), tmp_path / "bad.png", var_names=["nope"])


def test_plot_trace_rank_one_chain_approximate_fit(tmp_path):
    groups = _groups(chains=1, stats=False)
    groups["posterior"].attrs["method"] = "svi"
    _assert_png(plot_trace_rank(groups, tmp_path / "trace.png"))


def test_plot_prior_posterior(tmp_path):
    _assert_png(plot_prior_posterior(_groups(), tmp_path / "pp.png"))


def test_plot_calibration_returns_three_paths(tmp_path):
    paths = plot_calibration(_groups(), tmp_path / "figs")
    assert [p.name for p in paths] == ["predictive.png", "trace_rank.png", "prior_posterior.png"]
    for p in paths:
        assert p.parent == tmp_path / "figs"
        _assert_png(p)


def test_missing_groups_still_plot(tmp_path):
    """SVI-like fits have no sample_stats; predictive and prior/posterior plots need neither it nor the
    prior predictive (nor, for the prior/posterior plot, even the prior when var_names are given)."""
    groups = _groups(stats=False)
    del groups["prior_predictive"]
    _assert_png(plot_predictive(groups, tmp_path / "predictive.png"))
    _assert_png(plot_prior_posterior(groups, tmp_path / "pp.png"))
    no_prior = {k: v for k, v in groups.items() if k != "prior"}
    _assert_png(plot_prior_posterior(no_prior, tmp_path / "post_only.png", var_names=["p", "q"]))
    no_expected = dict(groups, posterior=groups["posterior"].drop_vars("expected_adopters"))
    _assert_png(plot_predictive(no_expected, tmp_path / "obs_pp.png"))
    _assert_png(plot_trace_rank(groups, tmp_path / "trace.png"))
