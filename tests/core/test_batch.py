"""``Simulation.batch``: members on a trailing state axis give what ``vmap`` gives, exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spreadjax.core import (RK4, Auxiliary, Euler, Flow, Model, Parameter, Schedule, Simulation, Stock,
                            compile_model, dense_network, sparse_network)

from .helpers import flagship_sim

N_SITES, N = 3, 6


def _spread(params, rng, n=N):
    """Per-member copies of ``params`` with every value perturbed (schedule times too)."""
    out = {}
    for name, v in params.items():
        if isinstance(v, dict):
            k = v["times"].shape[0]
            times = v["times"][None] + np.sort(rng.uniform(0, 2, (n, k)), axis=1)
            values = v["values"][None] * rng.uniform(0.5, 1.5, (n, *v["values"].shape))
            out[name] = {"times": jnp.asarray(times), "values": jnp.asarray(values)}
        else:
            out[name] = jnp.asarray(v[None] * np.exp(0.2 * rng.standard_normal((n, v.shape[0]))))
    return out


def _networks(rng):
    w = rng.uniform(0, 0.3, (N_SITES, N_SITES))
    np.fill_diagonal(w, 0)
    tgt, src = np.nonzero(w)
    return dense_network(w, N_SITES, jnp.float64), sparse_network(src, tgt, w[tgt, src], N_SITES, jnp.float64)


@pytest.mark.parametrize("kind", ["none", "dense", "sparse"])
def test_batch_equals_vmap_for_the_flagship_with_networks_and_member_schedules(kind):
    rng = np.random.default_rng(3)
    cm, sim = flagship_sim(outputs=("adopted", "aware", "recognition", "programme"))
    params = _spread(cm.params(N_SITES, jnp.float64), rng)
    network = {"none": None, "dense": _networks(rng)[0], "sparse": _networks(rng)[1]}[kind]
    ref = jax.jit(jax.vmap(sim, in_axes=(0, None, None)))(params, network, None)
    got = jax.jit(sim.batch)(params, network)
    for name in ref:
        assert got[name].shape == (N, len(sim.ts), N_SITES)
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-12)
    last = sim.batch(params, network, member_axis=-1)["adopted"]
    np.testing.assert_allclose(np.moveaxis(np.asarray(last), -1, 0), np.asarray(got["adopted"]), rtol=1e-13)
    if kind != "none":  # the coupling is live: it changes the answer
        alone = jax.vmap(sim, in_axes=(0, None, None))(params, None, None)["adopted"]
        assert float(jnp.max(jnp.abs(alone - ref["adopted"]))) > 1e-3


def test_batch_linear_schedules_site_sums_and_shared_leaves():
    model = Model(
        "mix",
        parameters=(Parameter("r", 0.5), Parameter("n", 10.0)),
        stocks=(Stock("x", "n"), Stock("y", 0.0)),
        flows=(Flow("move", "r * x * (1 + lin) / (1 + site_mean(y))", "x", "y"),),
        schedules=(Schedule("lin", (0.5, 1.5, 3.0), (0.0, 2.0, 0.5), "linear"),),
        auxiliaries=(Auxiliary("total", "site_sum(y)"),),
    )
    cm = compile_model(model)
    sim = Simulation(cm, tuple(np.arange(0, 4.01, 0.25)), 1 / 40, ("x", "y", "total", "lin"), Euler())
    rng = np.random.default_rng(5)
    params = _spread(cm.params(N_SITES, jnp.float64), rng)
    axes = {"r": 0, "n": None, "lin": {"times": 0, "values": None}}
    params["n"] = params["n"][0]
    params["lin"]["values"] = params["lin"]["values"][0]
    ref = jax.vmap(sim, in_axes=(axes, None, None))(params, None, None)
    got = sim.batch(params, axes=axes)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-12)
    # site_sum really sums the sites of each member, not the members
    np.testing.assert_allclose(got["total"][:, :, 0], got["y"].sum(axis=2), rtol=1e-12)


def test_batch_keeps_each_member_stream_in_stochastic_mode():
    cm, _ = flagship_sim()
    sim = Simulation(cm, tuple(np.arange(0, 5.01, 0.5)), 1 / 52, ("adopted",), Euler(), stochastic=True)
    params = _spread(cm.params(N_SITES, jnp.float64), np.random.default_rng(1))
    keys = jax.random.split(jax.random.PRNGKey(0), N)
    got = sim.batch(params, keys=keys)["adopted"]
    for m in (0, N - 1):
        one = sim(jax.tree.map(lambda a: a[m], params), None, keys[m])["adopted"]
        np.testing.assert_array_equal(got[m], one)


def test_batch_gradient_equals_vmap_gradient():
    cm, sim = flagship_sim(outputs=("adopted",))
    params = _spread(cm.params(N_SITES, jnp.float64), np.random.default_rng(2))

    def loss(run, q):
        return jnp.sum(run({**params, "q": q})["adopted"][:, -1] ** 2)

    g_batch = jax.grad(lambda q: loss(sim.batch, q))(params["q"])
    g_vmap = jax.grad(lambda q: loss(jax.vmap(sim), q))(params["q"])
    np.testing.assert_allclose(g_batch, g_vmap, rtol=1e-10)
    assert float(jnp.min(jnp.abs(g_batch))) > 0


def test_batch_rejects_mismatched_member_counts():
    cm, sim = flagship_sim(solver=RK4())
    params = _spread(cm.params(N_SITES, jnp.float64), np.random.default_rng(0))
    params["q"] = params["q"][:2]
    with pytest.raises(Exception, match="one member count"):
        sim.batch(params)
