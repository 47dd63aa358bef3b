"""Ensemble summaries against numpy computed directly on the same arrays (independent truth).

The ensemble is built by hand: per member (draw, replicate) and scenario, every site follows one
logistic curve scaled by a site cap, and some members fizzle (decline after a discontinuation
time). Crossing times are checked against a plain loop with linear interpolation and, for the
rising part, against the logistic's closed-form inverse. Every function is also run on the
dask-chunked dataset: results must match, and no chunk of ``adopted`` may be read before the
final compute (each is read exactly once there).
"""

import json
import math

import dask
import numpy as np
import pytest
import xarray as xr

from spreadjax._errors import InputError
from spreadjax.ensemble._summary import (
    adopted_fraction,
    adoption_quantiles,
    extent,
    paired_differences,
    probability_of_target,
    summarize_ensemble,
    time_to_thresholds,
)

N_DRAW, N_REP, N_SITE = 200, 2, 3
SCENARIOS = ["status_quo", "support"]
SITES = ["north", "south", "east"]
TIMES = np.round(np.arange(0, 6 * 12 + 1) / 12.0, 12)  # monthly, 6 years
Q = (0.05, 0.25, 0.5, 0.75, 0.95)
THRESHOLDS = (0.25, 0.5, 0.75)
BIG = 1e300


def _params(seed=7):
    rng = np.random.default_rng(seed)
    shape = (N_DRAW, len(SCENARIOS), N_REP)
    rate = rng.uniform(0.8, 2.5, (N_DRAW, 1, N_REP)) * np.array([1.0, 1.3])[None, :, None]
    rate = rate * rng.uniform(0.85, 1.15, shape)  # common random numbers, imperfectly paired
    mid = rng.uniform(1.0, 4.5, (N_DRAW, 1, N_REP)) - np.array([0.0, 0.4])[None, :, None]
    mid = np.broadcast_to(mid, shape) + rng.normal(0, 0.3, shape)
    cap_site = rng.uniform(0.45, 0.95, (N_DRAW, 1, N_REP, N_SITE)) * np.array([1.0, 1.04])[None, :, None, None]
    cap_site = np.minimum(cap_site * rng.uniform(0.97, 1.03, (*shape, N_SITE)), 1.0)
    fizzle_at = np.where(rng.uniform(size=shape) < 0.3, rng.uniform(3.0, 5.5, shape), np.inf)
    decay = rng.uniform(0.1, 0.6, shape)
    pop = rng.integers(20, 200, (N_DRAW, N_SITE)).astype(float)
    return rate, mid, cap_site, fizzle_at, decay, pop


def _logistic(t, rate, mid):
    return 1.0 / (1.0 + np.exp(-rate * (t - mid)))


def make_ensemble(pop_by_draw=True, seed=7):
    rate, mid, cap_site, fizzle_at, decay, pop = _params(seed)
    t = TIMES
    shape = (*rate.shape, t.size)
    L = _logistic(t, rate[..., None], mid[..., None])
    D = np.where(t < fizzle_at[..., None], 1.0, np.exp(-decay[..., None] * (t - fizzle_at[..., None])))
    shape_t = np.broadcast_to(L * D, shape)  # (draw, scenario, replicate, time)
    if not pop_by_draw:
        pop = np.broadcast_to(pop[0], (N_DRAW, N_SITE))
    frac_site = shape_t[..., None] * cap_site[:, :, :, None, :]  # (..., time, site)
    adopted = frac_site * pop[:, None, None, None, :]
    coords = {
        "draw": np.arange(N_DRAW), "scenario": SCENARIOS, "replicate": np.arange(N_REP), "time": t,
        "site": SITES, "date": ("time", np.datetime64("2025-01-01") + np.round(t * 365.25).astype("timedelta64[D]")),
    }
    population = (("draw", "site"), pop) if pop_by_draw else (("site",), pop[0])
    ds = xr.Dataset({"adopted": (("draw", "scenario", "replicate", "time", "site"), adopted),
                     "population": population}, coords=coords)
    return ds, dict(rate=rate, mid=mid, cap_site=cap_site, fizzle_at=fizzle_at, pop=pop)


@pytest.fixture(scope="module")
def ens():
    return make_ensemble()


def fractions_np(ds):
    """(draw, scenario, replicate, time, site+1) with 'all' first, straight from the arrays."""
    a = ds["adopted"].values
    p = ds["population"].values
    p5 = p[:, None, None, None, :] if p.ndim == 2 else p[None, None, None, None, :]
    p5 = np.broadcast_to(p5, a.shape)
    total = a.sum(-1) / p5.sum(-1)
    return np.concatenate([total[..., None], a / p5], axis=-1)


def members(x):
    """Move (draw, replicate) of a (draw, scenario, replicate, ...) array to one last axis."""
    x = np.moveaxis(x, (0, 2), (-2, -1))
    return x.reshape(*x.shape[:-2], -1)


def first_crossing_loop(f, t, c):
    """Plain loop: first time the series reaches c, linear between output times; NaN if never."""
    for k in range(len(f)):
        if f[k] >= c:
            if k == 0:
                return t[0]
            return t[k - 1] + (c - f[k - 1]) * (t[k] - t[k - 1]) / (f[k] - f[k - 1])
    return np.nan


def crossings_np(fr, c):
    out = np.full(fr.shape[:3] + fr.shape[4:], np.nan)
    for idx in np.ndindex(out.shape):
        d, s, r, site = idx
        out[idx] = first_crossing_loop(fr[d, s, r, :, site], TIMES, c)
    return out


def never_quantile(x, q):
    """Quantiles counting NaN (never) as later than the horizon; NaN where a never is involved."""
    v = np.quantile(np.where(np.isnan(x), BIG, x), q, axis=-1)
    return np.where(v > TIMES[-1], np.nan, v)


# ------------------------------------------------------------------------------------ helpers
def counting_chunked(ds, counter):
    """``ds.chunk({'draw': 50})`` whose ``adopted`` chunks append to ``counter`` when read."""
    out = ds.chunk({"draw": 50})
    data = out["adopted"].data

    def read(block):
        counter.append(block.shape)
        return block

    out["adopted"] = out["adopted"].copy(data=data.map_blocks(read, dtype=data.dtype, meta=np.empty((0,) * data.ndim, data.dtype)))
    return out, data.npartitions


def assert_lazy_then_same(fn, ds, **kwargs):
    counter = []
    chunked, n_blocks = counting_chunked(ds, counter)
    with dask.config.set(scheduler="sync"):
        lazy = fn(chunked, **kwargs)
        assert counter == [], "the ensemble was read before the final compute"
        assert all(lazy[v].chunks is not None for v in lazy.data_vars), "a result is not lazy"
        computed = lazy.compute()
    assert len(counter) == n_blocks, f"{len(counter)} chunk reads for {n_blocks} chunks"
    eager = fn(ds, **kwargs)
    assert all(eager[v].chunks is None for v in eager.data_vars)
    xr.testing.assert_allclose(computed, eager, rtol=1e-12, atol=1e-13)
    return eager


# --------------------------------------------------------------------------------------- tests
def test_fraction_all_and_sites(ens):
    ds, _ = ens
    frac = adopted_fraction(ds)
    assert list(frac["site"].values) == ["all", *SITES]
    assert frac.dims == ("draw", "scenario", "replicate", "time", "site")
    np.testing.assert_allclose(frac.values, fractions_np(ds), rtol=1e-14)


def test_adoption_quantiles(ens):
    ds, _ = ens
    res = assert_lazy_then_same(adoption_quantiles, ds, q=Q)
    fr = members(fractions_np(ds))  # (scenario, time, site, member)
    truth = np.quantile(fr, Q, axis=-1)  # (q, scenario, time, site)
    got = res["adopted_fraction_quantile"].transpose("quantile", "scenario", "time", "site").values
    np.testing.assert_allclose(got, truth, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res["adopted_fraction_mean"].transpose("scenario", "time", "site").values,
                               fr.mean(-1), rtol=1e-12)
    assert "date" in res.coords and list(res["quantile"].values) == list(Q)


def test_time_to_thresholds(ens):
    ds, p = ens
    res = assert_lazy_then_same(time_to_thresholds, ds, thresholds=THRESHOLDS, q=Q)
    fr = fractions_np(ds)
    for k, c in enumerate(THRESHOLDS):
        times = crossings_np(fr, c)  # (draw, scenario, replicate, site)
        m = members(times)  # (scenario, site, member)
        sel = {"threshold": c}
        never = np.isnan(m).mean(-1)
        np.testing.assert_allclose(res["threshold_share_never"].sel(sel).transpose("scenario", "site").values, never)
        with np.errstate(invalid="ignore"):
            mean = np.array([[np.nanmean(row) if np.isfinite(row).any() else np.nan for row in sc] for sc in m])
        np.testing.assert_allclose(res["threshold_time_mean"].sel(sel).transpose("scenario", "site").values, mean,
                                   rtol=1e-12)
        got_q = res["threshold_time_quantile"].sel(sel).transpose("quantile", "scenario", "site").values
        np.testing.assert_allclose(got_q, never_quantile(m, Q), rtol=1e-12, atol=1e-12)
        if c == 0.75:
            assert 0.05 < never[:, 0].min() and np.isnan(got_q[-1]).any()  # some quantiles never reached
        # closed form of the continuous logistic, for 'all' while still rising (before fizzling)
        cap_all = (p["cap_site"] * p["pop"][:, None, None, :]).sum(-1) / p["pop"].sum(-1)[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            closed = p["mid"] - np.log(cap_all / c - 1.0) / p["rate"]
        ok = (cap_all > c + 0.02) & (closed > 0.1) & (closed < np.minimum(p["fizzle_at"], TIMES[-1]) - 0.1)
        assert ok.sum() > 100
        np.testing.assert_allclose(times[..., 0][ok], closed[ok], atol=0.01)
        assert np.all(np.isnan(times[..., 0][cap_all < c]))


def test_crossing_edge_cases():
    """Already reached at the first time; crossing after a dip; never; NaN population."""
    t = np.array([0.0, 1.0, 2.0, 3.0])
    series = np.array([[0.3, 0.1, 0.2, 0.2], [0.1, 0.3, 0.2, 0.6], [0.1, 0.2, 0.2, 0.2]])
    adopted = series[:, None, None, :, None] * 10.0  # (draw, scenario, replicate, time, site)
    ds = xr.Dataset({"adopted": (("draw", "scenario", "replicate", "time", "site"), adopted),
                     "population": (("site",), [10.0])},
                    coords={"time": t, "scenario": ["a"], "site": ["x"]})
    res = time_to_thresholds(ds, thresholds=(0.25,), q=(0.0, 0.5, 1.0))
    times = [first_crossing_loop(s, t, 0.25) for s in series]
    assert times[0] == 0.0 and times[1] == 0.75 and np.isnan(times[2])
    got = res["threshold_time_quantile"].sel(site="all", scenario="a", threshold=0.25).values
    np.testing.assert_allclose(got[:2], [0.0, 0.75])
    assert np.isnan(got[2])
    assert float(res["threshold_share_never"].sel(site="all", scenario="a", threshold=0.25)) == pytest.approx(1 / 3)
    assert float(res["threshold_time_mean"].sel(site="x", scenario="a", threshold=0.25)) == pytest.approx(0.375)


def test_extent(ens):
    ds, p = ens
    res = assert_lazy_then_same(extent, ds, q=Q)
    fr = fractions_np(ds)
    final, peak = members(fr[:, :, :, -1, :]), members(fr.max(axis=3))
    for name, arr in {"final": final, "peak": peak, "drop": peak - final}.items():
        np.testing.assert_allclose(res[f"{name}_fraction_mean"].transpose("scenario", "site").values, arr.mean(-1),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res[f"{name}_fraction_quantile"].transpose("quantile", "scenario", "site").values,
                                   np.quantile(arr, Q, axis=-1), rtol=1e-12, atol=1e-15)
    assert np.isfinite(p["fizzle_at"]).mean() > 0.2
    assert float(res["drop_fraction_mean"].sel(site="all").max()) > 0.01  # some futures fizzle


def test_probability_of_target(ens):
    ds, _ = ens
    date_idx = 30  # exactly an output date, so its target time is TIMES[30]
    targets = [(0.5, 3.0), {"fraction": 0.25, "by": 2.2}, {"fraction": 0.4, "date": "2027-07-02", "label": "mid-2027"},
               {"fraction": 0.6, "by": float(TIMES[-1])}, {"fraction": 0.3, "date": str(ds["date"].values[date_idx])[:10]}]
    res = assert_lazy_then_same(probability_of_target, ds, targets=targets)
    fr = fractions_np(ds)
    spec = [(0.5, 3.0), (0.25, 2.2), (0.4, None), (0.6, TIMES[-1]), (0.3, TIMES[date_idx])]
    d0 = ds["date"].values[0]
    days = (ds["date"].values - d0) / np.timedelta64(1, "D")
    spec[2] = (0.4, float(np.interp((np.datetime64("2027-07-02") - d0) / np.timedelta64(1, "D"), days, TIMES)))
    assert list(res["target"].values)[2] == "mid-2027"
    for k, (frac, when) in enumerate(spec):
        value = np.apply_along_axis(lambda f: np.interp(when, TIMES, f), 3, fr)  # (draw, scenario, rep, site)
        truth = members(value >= frac).mean(-1)
        got = res["target_probability"].isel(target=k).transpose("scenario", "site").values
        np.testing.assert_allclose(got, truth, atol=1e-12)
        assert float(res["target_time"][k]) == pytest.approx(when, abs=1e-12)
    assert 0.05 < float(res["target_probability"].isel(target=0).sel(site="all").mean()) < 0.95


def test_target_errors(ens):
    ds, _ = ens
    for bad in ([(0.5, 7.0)], [{"fraction": 0.5}], [{"fraction": 0.5, "by": 1, "date": "2026-01-01"}],
                [{"fraction": 0.5, "date": "2040-01-01"}], [(0.5, 1.0), (0.5, 1.0)], ["half"]):
        with pytest.raises(InputError):
            probability_of_target(ds, bad)
    with pytest.raises(InputError, match="date"):
        probability_of_target(ds.drop_vars("date"), [{"fraction": 0.5, "date": "2026-01-01"}])


def test_paired_differences(ens):
    ds, _ = ens
    res = assert_lazy_then_same(paired_differences, ds, baseline="status_quo")
    assert list(res["contrast"].values) == ["support"]
    fr = fractions_np(ds)
    base, alt = fr[:, 0], fr[:, 1]  # (draw, replicate, time, site)
    diff = (alt[:, :, -1] - base[:, :, -1]).reshape(-1, fr.shape[-1]).T  # (site, member)
    got = res.sel(contrast="support")
    np.testing.assert_allclose(got["diff_final_fraction_mean"].values, diff.mean(-1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["diff_final_fraction_quantile"].transpose("diff_quantile", "site").values,
                               np.quantile(diff, [0.05, 0.5, 0.95], axis=-1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["prob_better_final_fraction"].values, (diff > 0).mean(-1))
    t = crossings_np(fr, 0.5)  # (draw, scenario, replicate, site)
    tb, ta = t[:, 0].reshape(-1, fr.shape[-1]).T, t[:, 1].reshape(-1, fr.shape[-1]).T
    both = ~np.isnan(tb) & ~np.isnan(ta)
    for i in range(fr.shape[-1]):
        d = (ta[i] - tb[i])[both[i]]
        assert got["diff_threshold_time_mean"].values[i] == pytest.approx(d.mean(), rel=1e-12)
        np.testing.assert_allclose(got["diff_threshold_time_quantile"].isel(site=i).values,
                                   np.quantile(d, [0.05, 0.5, 0.95]), rtol=1e-12)
        sooner = [(not math.isnan(a)) and (math.isnan(b) or a < b) for a, b in zip(ta[i], tb[i], strict=True)]
        assert got["prob_sooner_threshold"].values[i] == pytest.approx(np.mean(sooner), abs=1e-12)
        assert got["share_both_reach_threshold"].values[i] == pytest.approx(both[i].mean(), abs=1e-12)
    assert 0.5 < float(got["prob_better_final_fraction"].sel(site="all")) < 1.0  # better, not always
    with pytest.raises(InputError):
        paired_differences(ds, "nope")


def test_population_by_site_and_single_replicate():
    ds, _ = make_ensemble(pop_by_draw=False)
    ds = ds.isel(replicate=[0])
    res = assert_lazy_then_same(adoption_quantiles, ds, q=Q)
    fr = members(fractions_np(ds))
    np.testing.assert_allclose(res["adopted_fraction_quantile"].transpose("quantile", "scenario", "time", "site").values,
                               np.quantile(fr, Q, axis=-1), rtol=1e-12, atol=1e-14)


def _approx_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _approx_equal(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _approx_equal(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1.5e-4)
    else:
        assert a == b


def test_summarize_ensemble(ens, tmp_path):
    ds, _ = ens
    targets = [(0.5, 3.0), {"fraction": 0.4, "date": "2027-07-02", "label": "mid-2027"}]
    summary, as_json = summarize_ensemble(ds, targets=targets, baseline="status_quo")
    text = json.dumps(as_json, allow_nan=False)
    back = json.loads(text)
    assert back == as_json
    assert set(back["scenarios"]) == set(SCENARIOS)
    assert "vs_baseline" in back["scenarios"]["support"] and "vs_baseline" not in back["scenarios"]["status_quo"]
    assert back["horizon"] == {"time": 6.0, "date": str(ds["date"].values[-1])[:10]}
    assert back["members"] == {"draws": N_DRAW, "replicates": N_REP, "members": N_DRAW * N_REP}
    # values agree with the Dataset, rounded; NaN became null; dates are ISO
    sq = back["scenarios"]["status_quo"]
    t75 = sq["time_to_threshold"]["0.75"]["all"]
    q95 = float(summary["threshold_time_quantile"].sel(scenario="status_quo", threshold=0.75, site="all", quantile=0.95))
    assert math.isnan(q95) and t75["q95"] is None and t75["date"]["q95"] is None
    q5 = float(summary["threshold_time_quantile"].sel(scenario="status_quo", threshold=0.75, site="all", quantile=0.05))
    assert t75["q5"] == round(q5, 3) and np.datetime64(t75["date"]["q5"])
    assert sq["extent"]["all"]["final"]["q50"] == round(
        float(summary["final_fraction_quantile"].sel(scenario="status_quo", site="all", quantile=0.5)), 4)
    assert set(sq["targets"]) == {"0.5 by 3y", "mid-2027"}
    assert len(sq["adoption"]["north"]["q50"]) == TIMES.size and back["date"][0] == "2025-01-01"
    # the same from the dask-chunked dataset, with one pass over the chunks
    counter = []
    chunked, n_blocks = counting_chunked(ds, counter)
    with dask.config.set(scheduler="sync"):
        summary_d, json_d = summarize_ensemble(chunked, targets=targets, baseline="status_quo")
    assert len(counter) == n_blocks
    assert all(summary_d[v].chunks is None for v in summary_d.data_vars)
    xr.testing.assert_allclose(summary_d, summary, rtol=1e-12, atol=1e-13)
    _approx_equal(json_d, as_json)
    # summary.nc
    summary.to_netcdf(tmp_path / "summary.nc", engine="h5netcdf", invalid_netcdf=False)
    with xr.open_dataset(tmp_path / "summary.nc", engine="h5netcdf") as back_nc:
        xr.testing.assert_allclose(back_nc.load(), summary)


def test_summarize_without_baseline_or_targets(ens):
    ds, _ = ens
    summary, as_json = summarize_ensemble(ds.isel(draw=slice(0, 20)))
    json.dumps(as_json, allow_nan=False)
    assert "target_probability" not in summary and "diff_final_fraction_mean" not in summary
    assert as_json["baseline"] is None
    summary, as_json = summarize_ensemble(ds.isel(draw=slice(0, 20), scenario=[0]), baseline="status_quo")
    assert "diff_final_fraction_mean" not in summary and "vs_baseline" not in as_json["scenarios"]["status_quo"]
    with pytest.raises(InputError, match="baseline"):
        summarize_ensemble(ds, baseline="nope")


def test_input_checks(ens):
    ds, _ = ens
    with pytest.raises(InputError, match="population"):
        adopted_fraction(ds.drop_vars("population"))
    with pytest.raises(InputError, match="dims"):
        adopted_fraction(ds.isel(replicate=0))
    with pytest.raises(InputError, match="reserved"):
        adopted_fraction(ds.assign_coords(site=["all", "b", "c"]))
