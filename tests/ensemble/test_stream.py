"""Summaries streamed on the device equal the exact summaries of the stored ensemble: the same
variables and coords, counts and shares exactly, means to float rounding, quantiles within one
histogram bin of the order statistics around their rank."""

import numpy as np
import pytest

from spreadjax import parse_config
from spreadjax.ensemble import open_results, run_ensemble
from spreadjax.ensemble._stream import histogram_quantiles, stream_summaries
from spreadjax.ensemble._summary import DEFAULT_Q, summarize_ensemble

from .test_run import CONFIG

TARGETS = [{"fraction": 0.03, "by": 2.0, "label": "3% by year 2"},
           {"fraction": 0.1, "date": "2028-04-01", "label": "10% by April 2028"}]


def _config(tmp_path, **changes):
    raw = {**CONFIG, "ensemble": {**CONFIG["ensemble"], "draws": 45, "chunk_size": 16, "baseline": "baseline",
                                  "targets": TARGETS, **changes}}
    return parse_config(raw, str(tmp_path / "ens.toml"))


def test_histogram_quantiles_match_numpy_within_a_bin():
    rng = np.random.default_rng(0)
    x = rng.beta(2, 5, size=(3, 20000))
    bins = 1000
    hist = np.stack([np.histogram(row, bins=bins, range=(0, 1))[0] for row in x])
    q = np.array([0.05, 0.5, 0.95])
    got = histogram_quantiles(hist, 0.0, 1.0, q)
    np.testing.assert_allclose(got, np.quantile(x, q, axis=1), atol=1.0 / bins)
    # members that never reach: a quantile beyond the reached mass is NaN
    never = np.full(3, 20000)
    got = histogram_quantiles(hist, 0.0, 1.0, q, never)
    assert np.all(np.isnan(got[2])) and np.all(np.isfinite(got[0]))


@pytest.mark.parametrize("stochastic", [False, True], ids=["deterministic", "stochastic"])
def test_streamed_summaries_equal_the_stored_ensemble_summaries(tmp_path, stochastic):
    changes = {"replicates": 2} if stochastic else {}
    cfg = _config(tmp_path, **changes)
    if stochastic:
        raw = {**cfg.raw, "stochastic": {"enabled": True}, "simulation": {**cfg.raw["simulation"], "solver": "euler"}}
        cfg = parse_config(raw, str(tmp_path / "ens.toml"))
    run_ensemble(cfg, tmp_path / "e.zarr", workers=0)
    ds = open_results(tmp_path / "e.zarr")
    targets = [t.as_dict() for t in cfg.ensemble.targets]
    exact, exact_json = summarize_ensemble(ds, targets=targets, baseline="baseline")
    # A histogram quantile lies within one bin of the order statistics around rank q * n: bracket
    # it by the exact quantiles at q -+ 1/n.
    q = np.asarray(DEFAULT_Q)
    n = ds.sizes["draw"] * ds.sizes["replicate"]
    below, _ = summarize_ensemble(ds, targets=targets, q=np.clip(q - 1 / n, 0, 1))
    above, _ = summarize_ensemble(ds, targets=targets, q=np.clip(q + 1 / n, 0, 1))
    done = []
    streamed, streamed_json = stream_summaries(cfg, progress=lambda i, k: done.append((i, k)))
    assert done[-1] == (3, 3)
    assert set(streamed.data_vars) == set(exact.data_vars)
    assert set(streamed_json) == set(exact_json)
    for name in exact.data_vars:
        a, b = streamed[name].transpose(*exact[name].dims), exact[name]
        for dim in b.dims:
            if dim not in ("quantile",):
                np.testing.assert_array_equal(a[dim].values, b[dim].values)
        width = (8.0 if "time" in name else 2.0 if name.startswith("diff") else 1.0) / 4096  # one bin
        if name.endswith("_quantile") and "quantile" in b.dims:
            lo, hi = below[name].values, above[name].values
            got = a.values
            finite = np.isfinite(got)
            assert np.all(got[finite] >= np.nan_to_num(lo, nan=-np.inf)[finite] - width - 1e-6), name
            assert np.all(got[finite] <= np.nan_to_num(hi, nan=np.inf)[finite] + width + 1e-6), name
            assert np.all(np.isnan(hi[~finite])), name  # NaN only where the exact upper bracket is NaN too
        elif name.endswith("_quantile"):  # paired differences (quantiles 5/50/95%): close to exact
            np.testing.assert_allclose(a.values, b.values, atol=0.05, err_msg=name)
        elif name.endswith("_mean"):
            np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6, err_msg=name)
        else:  # probabilities and shares: exact counts
            np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-12, err_msg=name)
    # the summaries say something: the target probability is neither 0 nor 1 everywhere
    p = streamed["target_probability"].values
    assert 0 < p.mean() < 1


def test_design_drawn_by_chunks_equals_the_whole_design(tmp_path):
    from spreadjax.ensemble._plan import design_values, draw_values

    cfg = _config(tmp_path)
    whole = draw_values(cfg)
    parts = [design_values(cfg, a, b) for a, b in ((0, 16), (16, 32), (32, 45))]
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name])


def test_chunks_streamed_in_several_batches_give_the_same_summaries(tmp_path, monkeypatch):
    from spreadjax.ensemble import _batch

    cfg = _config(tmp_path)
    whole, _ = stream_summaries(cfg)
    # 30 member-sites: 5 draws of 3 scenarios x 2 sites -> chunks of 16 draws in 4 batches of 4
    monkeypatch.setattr(_batch, "CPU_MEMBER_SITES_PER_BATCH", 30)
    assert _batch.ChunkRunner(cfg).layout.batch == 4
    split, _ = stream_summaries(cfg)
    for name, var in whole.data_vars.items():
        if np.issubdtype(var.dtype, np.integer):
            np.testing.assert_array_equal(split[name].values, var.values, err_msg=name)
        else:
            np.testing.assert_allclose(split[name].values, var.values, rtol=1e-6, atol=1e-9, err_msg=name)
