"""Discrete-time network hazard: person-periods, likelihood, NUTS, Medical Innovation.

Independent truths: a likelihood written out term by term by hand; the Medical Innovation design
rebuilt here with plain loops from the bundled CSV files and fitted by a numpy IRLS, which must
reproduce netdiffuseR's published GLM to the printed precision (README 'Published reference
results' item 3); and a simulation with a known peer effect.
"""

import csv
import math

import jax
import numpy as np
import pytest
import xarray as xr

from spreadjax.calibrate import medical_innovation_path
from spreadjax.calibrate._diagnostics import summarize
from spreadjax.calibrate._hazard import (
    PUBLISHED_MI,
    fit_network_hazard,
    format_peer_effect_table,
    hazard_data,
    hazard_loglik,
    hazard_posterior,
    medical_innovation_design,
    medical_innovation_peer_effect,
    person_periods,
    simulate_network_hazard,
)

# --------------------------------------------------------------------------- hand-computed case


def tiny():
    """2 nodes, 3 periods (ends 1, 2, 3), lag 1. Node 1 names node 0 (A[1, 0] = 1: node 0
    influences node 1); node 0 names nobody. Node 0 adopts in period 2, node 1 never (observed
    to the end of period 3)."""
    ind = xr.Dataset(
        {"adoption_time": ("node", [2.0, np.nan]), "end_time": ("node", [3.0, 3.0])},
        coords={"id": ("node", [10, 11]), "site": ("node", ["A", "B"])},
    )
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    return ind, a


def test_tiny_person_periods():
    ind, a = tiny()
    pp = person_periods(ind, a, [1.0, 2.0, 3.0], lag=1)
    assert pp["at_risk"].dims == ("node", "period")
    np.testing.assert_array_equal(pp["at_risk"].values, [[True, True, False], [True, True, True]])
    np.testing.assert_array_equal(pp["event"].values, [[False, True, False], [False, False, False]])
    # period 1: t - lag = 0, unobserved -> NaN; node 0 has no contacts -> 0; node 1 sees node 0,
    # who adopted in period 2, only from period 3 on (lag 1).
    np.testing.assert_array_equal(pp["exposure"].values, [[np.nan, 0.0, 0.0], [np.nan, 0.0, 1.0]])
    assert pp["adoption_period"].values.tolist() == [2, 0]
    # Transposed ties (the wrong direction) would give node 1 no contacts and exposure 0.
    np.testing.assert_array_equal(person_periods(ind, a.T, [1.0, 2.0, 3.0])["exposure"].values[1, 1:], [0.0, 0.0])
    # lag 0: exposure at the end of the same period.
    np.testing.assert_array_equal(person_periods(ind, a, [1.0, 2.0, 3.0], lag=0)["exposure"].values[1], [0, 1, 1])
    # Observation ending at 2 drops period 3.
    short = person_periods(ind.assign(end_time=("node", [3.0, 2.0])), a, [1.0, 2.0, 3.0])
    assert short["at_risk"].values[1].tolist() == [True, True, False]


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_tiny_loglik_by_hand(link):
    ind, a = tiny()
    pp = person_periods(ind, a, [1.0, 2.0, 3.0], lag=1)
    data = hazard_data(pp, {"x": np.array([0.5, -1.0])})
    assert data.n_rows == 3 and data.period_labels == (2, 3) and data.site_names == ("A", "B")
    params = {"alpha": np.array([-1.0, -2.0]), "gamma": np.array([0.0, 0.3]), "beta_exposure": 1.2,
              "beta_cov": np.array([0.7])}
    if link == "logit":
        h = lambda eta: 1.0 / (1.0 + math.exp(-eta))  # noqa: E731
    else:
        h = lambda eta: 1.0 - math.exp(-math.exp(eta))  # noqa: E731
    # Usable rows: (node 0, period 2) adopts; (node 1, period 2) and (node 1, period 3) do not.
    eta_0_2 = -1.0 + 0.0 + 1.2 * 0.0 + 0.7 * 0.5  # -0.65
    eta_1_2 = -2.0 + 0.0 + 1.2 * 0.0 + 0.7 * -1.0  # -2.7
    eta_1_3 = -2.0 + 0.3 + 1.2 * 1.0 + 0.7 * -1.0  # -1.2
    by_hand = math.log(h(eta_0_2)) + math.log(1.0 - h(eta_1_2)) + math.log(1.0 - h(eta_1_3))
    got = float(hazard_loglik(params, data, link=link))
    assert got == pytest.approx(by_hand, rel=1e-12)
    assert float(jax.jit(lambda p: hazard_loglik(p, data.arrays(), link))(params)) == pytest.approx(by_hand, rel=1e-12)
    # Constant baseline and no peer effect: drop gamma and beta_exposure.
    base = {"alpha": params["alpha"], "beta_cov": params["beta_cov"]}
    by_hand0 = math.log(h(-0.65)) + math.log(1.0 - h(-2.7)) + math.log(1.0 - h(-2.7))
    assert float(hazard_loglik(base, data, link=link)) == pytest.approx(by_hand0, rel=1e-12)


# --------------------------------------------------------------------------- Medical Innovation


def test_mi_exposure_matches_vignette_and_row_count():
    pp, data = medical_innovation_design()
    i = pp["id"].values.tolist().index(1003)
    np.testing.assert_allclose(pp["exposure"].values[i, 2:6], [0.2, 0.4, 0.6, 0.8], atol=1e-12)  # months 3-6
    assert int(pp["at_risk"].sum()) == 826 + 155
    assert data.n_rows == 826 and data.info["dropped"] == 155
    assert np.isnan(pp["exposure"].values[:, 0]).all()  # every month 1 dropped
    assert data.period_labels == tuple(range(2, 18)) and data.site_names == ("city1", "city2", "city3", "city4")


def mi_rows_by_loops():
    """The vignette's person-periods rebuilt with plain loops from nodes.csv and edges.csv."""
    with open(medical_innovation_path("nodes.csv"), newline="") as fh:
        nodes = list(csv.DictReader(fh))
    with open(medical_innovation_path("edges.csv"), newline="") as fh:
        edges = list(csv.DictReader(fh))
    toa = {int(r["node_id"]): int(r["toa_raw"]) for r in nodes}  # 18 = not adopted
    names = {}
    for e in edges:  # binary union of out-ties: respondent -> named
        names.setdefault(int(e["source"]), set()).add(int(e["target"]))
    rows = []
    for r in nodes:
        i = int(r["node_id"])
        for per in range(1, 18):
            if not (per <= toa[i] and per < 18):
                continue
            contacts = names.get(i, set())
            if per == 1:
                continue  # lagged exposure missing
            expo = sum(toa[j] <= per - 1 for j in contacts) / len(contacts) if contacts else 0.0
            if r["belief"] == "" or r["proage"] == "":
                continue
            rows.append(dict(node=i, per=per, city=int(r["city"]), adopted=float(per == toa[i]), expo=expo,
                             belief=float(r["belief"]), proage=float(r["proage"])))
    return rows


def irls(x, y, iters=50):
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        w = p * (1 - p)
        step = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-13:
            break
    p = 1.0 / (1.0 + np.exp(-(x @ beta)))
    cov = np.linalg.inv(x.T @ ((p * (1 - p))[:, None] * x))
    deviance = -2.0 * np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
    return beta, np.sqrt(np.diag(cov)), deviance


def test_mi_maximum_likelihood_reproduces_published_glm():
    rows = mi_rows_by_loops()
    assert len(rows) == 826
    cols = ["intercept", "expo", *[f"per{p}" for p in range(3, 18)], "city2", "city3", "city4", "belief",
            "proage", "proage^2"]
    x = np.array([[1.0, r["expo"], *[float(r["per"] == p) for p in range(3, 18)],
                   *[float(r["city"] == c) for c in (2, 3, 4)], r["belief"], r["proage"], r["proage"] ** 2]
                  for r in rows])
    y = np.array([r["adopted"] for r in rows])
    beta, se, deviance = irls(x, y)
    est = dict(zip(cols, beta, strict=True))
    ses = dict(zip(cols, se, strict=True))
    ours = {"intercept": "intercept", "exposure": "expo", "city2": "city2", "city3": "city3", "city4": "city4",
            "belief": "belief", "proage": "proage", "proage^2": "proage^2"}
    for name, col in ours.items():
        published, published_se = PUBLISHED_MI[name]
        assert est[col] == pytest.approx(published, abs=5.01e-6), name  # printed to 5 decimals
        if not math.isnan(published_se):
            assert ses[col] == pytest.approx(published_se, abs=5.01e-6), name
    assert deviance == pytest.approx(548.47, abs=0.005)
    assert x.shape[0] - x.shape[1] == 803

    # Our arrays hold the same rows, and hazard_loglik at the MLE is -deviance / 2.
    pp, data = medical_innovation_design()
    ids = pp["id"].values
    ours_rows = sorted(zip(ids[data.node].tolist(), np.asarray(data.period_labels)[data.period].tolist(),
                           data.exposure.tolist(), data.event.tolist(), strict=True))
    loop_rows = sorted((r["node"], r["per"], r["expo"], r["adopted"]) for r in rows)
    assert [r[:2] for r in ours_rows] == [r[:2] for r in loop_rows]
    np.testing.assert_allclose([r[2:] for r in ours_rows], [r[2:] for r in loop_rows], atol=1e-12)
    params = {
        "alpha": est["intercept"] + np.array([0.0, est["city2"], est["city3"], est["city4"]]),
        "gamma": np.array([0.0, *[est[f"per{p}"] for p in range(3, 18)]]),
        "beta_exposure": est["expo"],
        "beta_cov": np.array([est["belief"], est["proage"], est["proage^2"]]),
    }
    assert data.covariate_names == ("belief", "proage", "proage^2")
    assert -2.0 * float(hazard_loglik(params, data)) == pytest.approx(deviance, rel=1e-10)


@pytest.mark.slow
def test_mi_bayesian_matches_published_glm():
    table = medical_innovation_peer_effect(seed=0, prior_scale=10.0, chains=2, warmup=400, samples=800)
    print(format_peer_effect_table(table))
    e = table.sel(coefficient="exposure")
    assert abs(float(e["mean"]) - 0.06835) < 0.25 * 0.36290
    assert float(e["sd"]) == pytest.approx(0.36290, rel=0.15)
    assert table.attrs["divergences"] == 0 and table.attrs["n_rows"] == 826
    assert float(table["rhat"].max()) <= 1.01
    for name in ("belief", "proage", "proage^2"):  # the other published SEs, loosely
        r = table.sel(coefficient=name)
        assert abs(float(r["mean"] - r["published"])) < 0.5 * float(r["published_se"]), name
        assert float(r["sd"]) == pytest.approx(float(r["published_se"]), rel=0.2), name


# --------------------------------------------------------------------------- parameter recovery


@pytest.mark.slow
def test_recovers_known_peer_effect():
    rng = np.random.default_rng(42)
    n, per_site, k_out = 600, 300, 6
    site = np.repeat(["s1", "s2"], per_site)
    a = np.zeros((n, n))
    for i in range(n):
        lo = 0 if i < per_site else per_site
        others = np.setdiff1d(np.arange(lo, lo + per_site), [i])
        a[i, rng.choice(others, size=k_out, replace=False)] = 1.0
    x = rng.normal(size=n)
    truth = {"alpha": np.array([-3.0, -2.6]), "beta_exposure": 1.5, "beta_cov": np.array([0.5])}
    periods = np.arange(1.0, 11.0)
    ind = simulate_network_hazard(a, site, periods, alpha=truth["alpha"], beta_exposure=1.5,
                                  covariates=x[:, None], beta_cov=truth["beta_cov"], seed=7)
    pp = person_periods(ind, a, periods, lag=1)
    data = hazard_data(pp, {"x": x})
    assert 100 < data.info["events"] < 500
    fit = fit_network_hazard(data, baseline="constant", chains=2, warmup=500, samples=500, seed=3)
    summary = summarize(hazard_posterior(fit), {"diverging": fit.stats["diverging"]})
    print(summary.to_dataframe()[["mean", "sd", "q5", "q95", "rhat"]])
    b = summary.sel(parameter="beta_exposure")
    assert float(b["q5"]) < 1.5 < float(b["q95"])
    assert float(b["q5"]) > 0  # the peer effect is detected
    assert float(summary["rhat"].max()) <= 1.01
    assert summary.attrs["divergences"] == 0
    for label, value in (("alpha[site=s1]", -3.0), ("alpha[site=s2]", -2.6), ("beta_cov[covariate=x]", 0.5)):
        r = summary.sel(parameter=label)
        assert abs(float(r["mean"]) - value) < 3 * float(r["sd"]), label
