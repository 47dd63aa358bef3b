"""Sparse peer networks at scale: the segment sum equals scipy.sparse, and the flagship model
coupled by a sparse edge list equals the dense one. Correctness only; speed is in
``benchmarks/bench_network.py``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from spreadjax.core import (
    RK4,
    Simulation,
    SparseNetwork,
    compile_model,
    dense_network,
    simulate,
    sparse_network,
)
from spreadjax.models import four_stage_model

N_SITES, N_EDGES, MEMBERS = 10_000, 100_000, 3
# float64 sums of ~10 non-negative terms per site (duplicates and self-loops included) in a
# different order from scipy's: each sum is within ~10 ulp (2e-15) of the other, far below 1e-12.
RTOL_APPLY = 1e-12


@pytest.fixture(scope="module")
def edges():
    """Random edges in random order, with repeated pairs and self-loops; weights in [0, 1)."""
    rng = np.random.default_rng(7)
    src = rng.integers(0, N_SITES, N_EDGES)
    tgt = rng.integers(0, N_SITES, N_EDGES)
    return src, tgt, rng.uniform(0.0, 1.0, N_EDGES)


def _csr(src, tgt, w, n):
    """W[i, j] = summed weight of the edges j -> i (scipy adds duplicates, as the segment sum does)."""
    return scipy.sparse.csr_matrix((w, (tgt, src)), shape=(n, n))


@pytest.mark.parametrize("shape", [(N_SITES,), (N_SITES, MEMBERS)], ids=["site", "site-member"])
def test_sparse_apply_equals_scipy_matvec(edges, shape):
    src, tgt, w = edges
    x = np.random.default_rng(8).uniform(0.5, 2.0, shape)  # positive: no cancellation in the sums
    expected = _csr(src, tgt, w, N_SITES) @ x
    stored = sparse_network(src, tgt, w, N_SITES, jnp.float64)
    direct = SparseNetwork(jnp.asarray(src, jnp.int32), jnp.asarray(tgt, jnp.int32), jnp.asarray(w))
    for net in (stored, direct):  # sparse_network reorders the edges; a direct build keeps them
        got = jax.jit(lambda net, x: net.apply(x))(net, jnp.asarray(x))
        assert got.shape == shape and got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), expected, rtol=RTOL_APPLY)
    np.testing.assert_allclose(direct.apply(x), expected, rtol=RTOL_APPLY)  # numpy path (np.add.at)


def test_sparse_network_stores_edges_in_edge_order(edges):
    src, tgt, w = edges
    net = sparse_network(src, tgt, w, N_SITES, jnp.float64)
    order = SparseNetwork.edge_order(src, tgt)
    np.testing.assert_array_equal(np.asarray(net.source), src[order])
    np.testing.assert_array_equal(np.asarray(net.target), tgt[order])
    np.testing.assert_array_equal(np.asarray(net.weight), w[order])
    assert np.all(np.diff(np.asarray(net.source)) >= 0)
    # New weights given in the caller's edge order are placed with the same permutation.
    scaled = net._replace(weight=jnp.asarray((2.0 * w)[order]))
    x = np.random.default_rng(9).uniform(0.5, 2.0, N_SITES)
    np.testing.assert_allclose(np.asarray(scaled.apply(jnp.asarray(x))), _csr(src, tgt, 2.0 * w, N_SITES) @ x,
                               rtol=RTOL_APPLY)


def test_flagship_sparse_equals_dense_at_two_thousand_sites():
    n, k = 2_000, 10
    rng = np.random.default_rng(10)
    src = rng.integers(0, n, n * k)
    tgt = rng.integers(0, n, n * k)
    keep = src != tgt  # no self-weights (the dense matrix gets a zero diagonal)
    src, tgt = src[keep], tgt[keep]
    w = rng.uniform(0.0, 0.1, src.size)
    weight = _csr(src, tgt, w, n).toarray()  # duplicate pairs summed, as the segment sum does
    pilots = rng.uniform(size=n) < 0.05
    cm = compile_model(four_stage_model())
    # No push (p = 0): sites without pilots can only hear of the practice from their peers.
    params = cm.params(n, jnp.float64, population=rng.uniform(20.0, 200.0, n),
                       initial_adopters=pilots * 1.0, pilot_evidence=pilots * 0.5, p=0.0)
    sim = Simulation(cm, (0.0, 0.5, 1.0), 1 / 52, ("adopted", "recognition", "evidence"), RK4())
    sparse = simulate(sim, params, sparse_network(src, tgt, w, n, jnp.float64))
    dense = simulate(sim, params, dense_network(weight, n, jnp.float64))
    alone = simulate(sim, params)
    for name in sim.outputs:
        # float64: only the order of the network sums differs (~1e-16 relative per sum), through
        # 52 RK4 steps of a smooth, stable system: 1e-11 leaves ~1e4 ulp of margin.
        np.testing.assert_allclose(np.asarray(sparse[name]), np.asarray(dense[name]), rtol=1e-11, atol=1e-12)
    # The comparison exercises the network: without it no site lacking a pilot adopts; with it
    # every one has some adopters after a year (many still far below 1e-6 organisations, so
    # the check above compares those within atol).
    assert np.all(np.asarray(alone["adopted"])[-1, ~pilots] == 0.0)
    assert np.all(np.asarray(sparse["adopted"])[-1, ~pilots] > 0.0)
