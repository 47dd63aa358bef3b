"""MCMC diagnostics: ArviZ's numbers wired element by element, and against closed forms.

The estimators are ArviZ's (``arviz.rhat``, ``arviz.ess``, ``arviz.bfmi``); the tests check that
every element of every variable gets ArviZ's value, that the values behave as theory says (the
ESS of an AR(1) chain is n (1 - phi) / (1 + phi); R-hat sees shifted and rescaled chains), and
the summary, flags and table built on them.
"""

import warnings

import numpy as np
import pytest
import xarray as xr

from spreadjax.calibrate._diagnostics import (
    diagnostic_flags,
    ebfmi,
    ess_bulk,
    ess_tail,
    format_table,
    rhat,
    summarize,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    az = pytest.importorskip("arviz")

RTOL = 1e-9


def ar1(rng, chains, draws, phi, shift=0.0):
    x = np.zeros((chains, draws))
    eps = rng.normal(size=(chains, draws))
    x[:, 0] = eps[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return x + shift


def make_cases():
    rng = np.random.default_rng(20240601)
    return {
        "iid": rng.normal(size=(4, 1000)),
        "ar1": ar1(rng, 4, 1000, 0.95),
        "means_differ": rng.normal(size=(4, 500)) + 0.5 * np.arange(4)[:, None],
        "cauchy": rng.standard_cauchy(size=(4, 1000)),
        "t2_ar1_odd": ar1(rng, 3, 801, 0.6) * rng.standard_t(2, size=(3, 801)),
        "antithetic": ar1(rng, 4, 600, -0.7),
        "ties": rng.poisson(2.0, size=(4, 300)).astype(float),
        "short": rng.normal(size=(2, 7)),
    }


CASES = make_cases()
MAIN = ["iid", "ar1", "means_differ", "cauchy"]


def arviz_value(kind, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "rhat":
            return float(az.rhat(x))
        return float(az.ess(x, method=kind))


OURS = {"rhat": rhat, "bulk": ess_bulk, "tail": ess_tail}


@pytest.mark.parametrize("kind", ["rhat", "bulk", "tail"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_arviz(case, kind):
    x = CASES[case]
    ours = OURS[kind](x)
    assert isinstance(ours, float)
    np.testing.assert_allclose(ours, arviz_value(kind, x), rtol=RTOL)


def test_cases_behave_as_designed():
    # (a) iid: mixed, ESS near the number of draws
    assert rhat(CASES["iid"]) < 1.01
    assert ess_bulk(CASES["iid"]) > 3000
    # (b) AR(1) with phi = 0.95: ESS roughly n (1 - phi) / (1 + phi) ~ 100, far below 4000
    assert 40 < ess_bulk(CASES["ar1"]) < 400
    # (c) chains with different means: R-hat well above 1.01
    assert rhat(CASES["means_differ"]) > 1.1
    # (d) Cauchy: rank normalisation keeps ESS finite and sensible despite no variance
    assert 2000 < ess_bulk(CASES["cauchy"]) <= 4000 * np.log10(4000)
    # antithetic chains: ESS above the number of draws, as in ArviZ
    assert ess_bulk(CASES["antithetic"]) > 2400


def test_tail_rhat_sees_scale_differences():
    """Same centre, different spread: the bulk R-hat misses it, the folded one catches it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 1000)) * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    assert rhat(x) > 1.01
    np.testing.assert_allclose(rhat(x), arviz_value("rhat", x), rtol=RTOL)


def test_extra_dims_are_elementwise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 200, 3, 2))
    x[..., 1, 0] += np.arange(4)[:, None]
    for f in (rhat, ess_bulk, ess_tail):
        out = f(x)
        assert out.shape == (3, 2)
        for i in range(3):
            for j in range(2):
                np.testing.assert_allclose(out[i, j], f(x[:, :, i, j]), rtol=1e-12)
    ds = xr.Dataset({"x": (("chain", "draw", "a", "b"), x)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = az.rhat(ds)["x"].values
    np.testing.assert_allclose(rhat(x), truth, rtol=RTOL)


def test_float32_and_lists_accepted():
    x = CASES["ar1"]
    np.testing.assert_allclose(rhat(x.astype(np.float32)), rhat(x.astype(np.float32).astype(float)))
    assert rhat(x.tolist()) == rhat(x)


def test_degenerate_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 100))
    x[2, 5] = np.nan
    assert np.isnan(rhat(x)) and np.isnan(ess_bulk(x)) and np.isnan(ess_tail(x))
    short = rng.normal(size=(4, 3))
    assert np.isnan(rhat(short)) and np.isnan(ess_bulk(short))
    const = np.full((4, 100), 2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ess_bulk(const) == float(az.ess(const, method="bulk")) == 400.0
    assert np.isnan(rhat(const))
    # one chain: its two halves are compared (ArviZ returns NaN here)
    one = rng.normal(size=(1, 400))
    assert 0.99 < rhat(one) < 1.02
    with pytest.raises(ValueError, match="chain, draw"):
        rhat(np.zeros(10))


@pytest.mark.parametrize("phi", [0.0, 0.6, -0.5])
def test_ess_of_an_ar1_chain_is_its_closed_form(phi):
    """For AR(1) draws, ESS / n -> (1 - phi) / (1 + phi) (the integrated autocorrelation time)."""
    rng = np.random.default_rng(11)
    x = ar1(rng, 4, 20000, phi)
    truth = x.size * (1 - phi) / (1 + phi)
    assert abs(ess_bulk(x) / truth - 1) < 0.1, (ess_bulk(x), truth)


def test_ebfmi_matches_arviz():
    rng = np.random.default_rng(5)
    good = rng.normal(size=(4, 1000))
    sticky = np.cumsum(rng.normal(size=(4, 1000)), axis=1)
    for energy in (good, sticky, good[0]):
        ours = ebfmi(energy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_allclose(ours, az.bfmi(np.atleast_2d(energy)), rtol=RTOL)
    assert ebfmi(good).shape == (4,) and (ebfmi(good) > 1.5).all()
    assert (ebfmi(sticky) < 0.3).all()


# --------------------------------------------------------------------------------------------
# summary, flags, table
# --------------------------------------------------------------------------------------------


def make_run(*, bad=False, seed=6, chains=4, draws=1000):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(chains, draws, 3)) * [0.1, 0.2, 0.3] + [0.4, 0.5, 0.6]
    p = rng.normal(size=(chains, draws)) * 0.01 + 0.03
    if bad:
        q[..., 1] += 0.3 * np.arange(chains)[:, None]  # chains disagree on q[site=city2]
        p = ar1(rng, chains, draws, 0.995) * 0.01 + 0.03  # few effective draws
    posterior = xr.Dataset(
        {
            "q": (("chain", "draw", "site"), q),
            "p": (("chain", "draw"), p),
            "fixed": (("chain", "draw"), np.full((chains, draws), 7.0)),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws), "site": ["city1", "city2", "city3"]},
    )
    diverging = np.zeros((chains, draws), bool)
    energy = rng.normal(size=(chains, draws))
    if bad:
        diverging[1, [3, 70, 500]] = True
        energy[2] = np.cumsum(energy[2])
    stats = xr.Dataset(
        {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    return posterior, stats


def test_summarize_values():
    posterior, stats = make_run(bad=True)
    s = summarize(posterior, stats)
    assert list(s["parameter"].values) == [
        "q[site=city1]", "q[site=city2]", "q[site=city3]", "p", "fixed",
    ]  # fmt: skip
    assert list(s["variable"].values) == ["q", "q", "q", "p", "fixed"]
    assert s.attrs["n_chains"] == 4 and s.attrs["n_draws"] == 1000
    assert s.attrs["divergences"] == 3 and s.attrs["n_transitions"] == 4000
    q = posterior["q"].values.reshape(4000, 3)
    np.testing.assert_allclose(s["mean"].values[:3], q.mean(axis=0))
    np.testing.assert_allclose(s["sd"].values[:3], q.std(axis=0, ddof=1))
    np.testing.assert_allclose(s["q5"].values[:3], np.quantile(q, 0.05, axis=0))
    np.testing.assert_allclose(s["q50"].values[:3], np.median(q, axis=0))
    np.testing.assert_allclose(s["q95"].values[:3], np.quantile(q, 0.95, axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = {
            "rhat": az.rhat(posterior[["q", "p"]]),
            "ess_bulk": az.ess(posterior[["q", "p"]], method="bulk"),
            "ess_tail": az.ess(posterior[["q", "p"]], method="tail"),
        }
        bfmi = az.bfmi(stats["energy"].values)
    for key, ds in truth.items():
        expect = np.concatenate([ds["q"].values, [float(ds["p"])]])
        np.testing.assert_allclose(s[key].values[:4], expect, rtol=RTOL)
    np.testing.assert_allclose(s["ebfmi"].values, bfmi, rtol=RTOL)
    assert s["ebfmi"].dims == ("chain",)
    assert s["sd"].values[4] == 0.0 and np.isnan(s["rhat"].values[4])


def test_summarize_mapping_and_without_stats():
    rng = np.random.default_rng(7)
    samples = {"a": rng.normal(size=(2, 300)), "b": rng.normal(size=(2, 300, 2))}
    s = summarize(samples)
    assert list(s["parameter"].values) == ["a", "b[b_dim_0=0]", "b[b_dim_0=1]"]
    assert "divergences" not in s.attrs and "ebfmi" not in s
    s_b = summarize(samples, var_names=["b"])
    assert s_b.sizes["parameter"] == 2
    with pytest.raises(KeyError, match="no variable 'c'"):
        summarize(samples, var_names=["c"])


def test_flags_quiet_on_a_good_run():
    posterior, stats = make_run()
    s = summarize(posterior, stats)
    assert diagnostic_flags(s) == []
    assert diagnostic_flags(summarize(posterior)) == []


def test_flags_fire_on_a_bad_run():
    posterior, stats = make_run(bad=True)
    s = summarize(posterior, stats)
    flags = diagnostic_flags(s)
    text = "\n".join(flags)
    r = float(s["rhat"].sel(parameter="q[site=city2]"))
    assert f"chains disagree: q[site=city2] has R-hat {r:.2f} (above 1.01)" in text
    assert "run longer or reparameterise" in text
    assert any(f.startswith("too few effective draws: p has bulk ESS") and "below 400" in f for f in flags)
    assert "3 divergent transitions (of 4000): the posterior geometry is hard; raise target_accept or reparameterise" in flags
    assert any(f.startswith("low E-BFMI: chain 2 has E-BFMI") for f in flags)
    assert not any("chain 0 has E-BFMI" in f for f in flags)
    assert not any("fixed" in f for f in flags)  # constant parameters are not flagged
    assert not any("q[site=city1]" in f for f in flags)


def test_flag_thresholds():
    rng = np.random.default_rng(8)
    base = rng.normal(size=(4, 1000))
    s = summarize({"x": base + 0.04 * np.arange(4)[:, None]})
    r = float(s["rhat"].values[0])
    assert 1.0 < r
    fired = [f for f in diagnostic_flags(s, rhat_max=r - 1e-6) if "chains disagree" in f]
    shown = float(fired[0].split("R-hat ")[1].split()[0])
    assert len(fired) == 1 and shown > r - 1e-6  # printed with enough digits to exceed it
    assert not any("chains disagree" in f for f in diagnostic_flags(s, rhat_max=r + 1e-6))
    # ESS threshold: 100 per chain by default, or an explicit total
    two = summarize({"x": ar1(rng, 2, 500, 0.6)})
    eb = float(two["ess_bulk"].values[0])
    assert 200 < eb < 400 and 200 < float(two["ess_tail"].values[0])  # passes 100 per chain only
    assert diagnostic_flags(two, rhat_max=1.1) == []
    assert any("bulk ESS" in f for f in diagnostic_flags(two, rhat_max=1.1, min_ess=eb + 1))
    # E-BFMI exactly at the threshold passes
    s2 = summarize({"x": base}, {"energy": rng.normal(size=(4, 1000))})
    lo = float(s2["ebfmi"].min())
    assert diagnostic_flags(s2, ebfmi_min=lo) == []
    assert len(diagnostic_flags(s2, ebfmi_min=lo + 1e-9)) == 1
    # non-finite draws are reported, not ignored
    bad = base.copy()
    bad[0, 0] = np.nan
    assert any("could not be computed" in f for f in diagnostic_flags(summarize({"x": bad})))


def test_format_table(tmp_path):
    posterior, stats = make_run(bad=True)
    s = summarize(posterior, stats)
    table = format_table(s)
    lines = table.splitlines()
    assert table.endswith("\n")
    assert lines[0].split() == ["parameter", "mean", "sd", "5%", "95%", "R-hat", "ESS", "bulk", "ESS", "tail"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    body = lines[2 : 2 + s.sizes["parameter"]]
    assert len({len(line) for line in lines[:2] + body}) == 1  # fixed width
    row = body[1].split()
    assert row[0] == "q[site=city2]"
    assert row[1] == f"{float(s['mean'].values[1]):.4g}"
    assert row[5] == f"{float(s['rhat'].values[1]):.3f}"
    assert row[6] == f"{float(s['ess_bulk'].values[1]):.0f}"
    assert row[7] == f"{float(s['ess_tail'].values[1]):.0f}"
    # columns line up: every number ends where its header ends
    header = lines[0]
    for name in ("mean", "R-hat", "ESS tail"):
        end = header.index(name) + len(name)
        for line in body:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " ")
    assert body[4].split()[5] == "nan"  # constant parameter
    assert "divergences: 3 of 4000" in lines
    assert any(line.startswith("E-BFMI per chain: ") for line in lines)
    assert format_table(s, footer=False).count("\n") == 2 + s.sizes["parameter"]
    path = tmp_path / "summary.txt"
    path.write_text(table)
    assert path.read_text() == table


def test_importing_the_module_does_not_import_arviz():
    import subprocess
    import sys

    code = "import sys, spreadjax.calibrate._diagnostics; print('arviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # ArviZ loads when a diagnostic is computed
