"""``chunk_size = "auto"``: sized from free memory, the same results as any fixed size, and a
resumed run keeps its store's chunks even when free memory has changed."""

import numpy as np

from spreadjax import parse_config
from spreadjax.ensemble import open_results, run_ensemble
from spreadjax.ensemble import _plan
from spreadjax.ensemble._run import plan_for

from .test_run import CONFIG


def _config(tmp_path, **ensemble):
    raw = {**CONFIG, "ensemble": {**CONFIG["ensemble"], "chunk_size": "auto", **ensemble}}
    return parse_config(raw, str(tmp_path / "ens.toml"))


def test_auto_chunk_size_follows_free_memory(tmp_path):
    cfg = _config(tmp_path, draws=10**7)
    sizes = [_plan.chunk_size_for(cfg, free_bytes=2**k) for k in range(20, 40, 2)]
    assert sizes == sorted(sizes) and sizes[0] == 256 and sizes[-1] == 2**20
    assert all(s & (s - 1) == 0 for s in sizes)  # powers of two
    # outputs of one draw: 3 scenarios x 17 times x 2 sites x 4 bytes, doubled, plus the state bound
    per_draw = 3 * (2 * 17 * 2 * 4 + 64 * 2 * 4)
    mid = _plan.chunk_size_for(cfg, free_bytes=2**30)
    assert mid * per_draw <= 2**30 / 4 < 2 * mid * per_draw
    assert _plan.chunk_size_for(_config(tmp_path, draws=60), free_bytes=2**40) == 60


def test_auto_chunks_give_the_fixed_chunk_results_and_resume_with_the_store_chunks(tmp_path, monkeypatch):
    fixed = parse_config({**CONFIG, "ensemble": {**CONFIG["ensemble"], "chunk_size": 16}}, str(tmp_path / "f.toml"))
    run_ensemble(fixed, tmp_path / "fixed.zarr", workers=0)
    monkeypatch.setattr(_plan, "free_memory_bytes", lambda: 1)  # -> the smallest chunks, 256 draws
    cfg = _config(tmp_path)
    assert plan_for(cfg).chunk_size == 60  # at most the draws
    run_ensemble(cfg, tmp_path / "auto.zarr", workers=0)
    np.testing.assert_array_equal(open_results(tmp_path / "auto.zarr")["adopted"].values,
                                  open_results(tmp_path / "fixed.zarr")["adopted"].values)
    big = _config(tmp_path, draws=600)
    report = run_ensemble(big, tmp_path / "big.zarr", workers=0)
    assert report.plan.chunk_size == 256 and report.plan.n_chunks == 3
    monkeypatch.setattr(_plan, "free_memory_bytes", lambda: 2**40)  # now "auto" alone would say 600
    assert plan_for(big).chunk_size == 600
    assert plan_for(big, tmp_path / "big.zarr").chunk_size == 256  # the store's chunks are kept
    again = run_ensemble(big, tmp_path / "big.zarr", workers=0)
    assert again.skipped == 3 and not again.computed
