"""Forward-mode sensitivities give reverse mode's gradients, also under vmap, and the finite
differences' ones."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import pytest

from spreadjax.core import RK4, Model, Parameter, Simulation, Stock, compile_model, dense_network
from spreadjax.core import Flow
from spreadjax.core._sensitivity import forward_sensitivities, n_inputs
from spreadjax.models import four_stage_model


def flagship_outputs(coupled=True):
    """``values -> {output: (time, site)}`` for the flagship model over three sites, coupled by a
    network or not: ``values`` holds a scalar ``q`` and per-site ``p`` and ``decision_rate``."""
    cm = compile_model(four_stage_model())
    sim = Simulation(cm, tuple(np.arange(0, 157, 13) / 52), 1 / 52, ("adopted", "ever_adopted"), RK4())
    w = np.array([[0, 0.4, 0.1], [0.4, 0, 0.2], [0.1, 0.3, 0]])
    network = dense_network(w, 3, jnp.float64) if coupled else None

    def run(values):
        params = cm.params(3, jnp.float64, population=[50.0, 80.0, 30.0], initial_adopters=[2.0, 0.0, 0.0],
                           programme={"times": [0.0, 1.5], "values": [1.0, 0.3]}, **values)
        return sim(params, network)

    return run


VALUES = {"q": jnp.asarray(0.8), "p": jnp.asarray([0.05, 0.1, 0.02]), "decision_rate": jnp.asarray([1.5, 1.2, 2.0])}
WEIGHTS = {"adopted": np.linspace(0.5, 1.5, 13)[:, None] * np.array([1.0, -0.5, 2.0]),
           "ever_adopted": np.linspace(1.0, -1.0, 13)[:, None] * np.array([0.3, 0.2, 0.1])}


@functools.cache
def reverse_gradient(coupled):
    """The reverse-mode gradient of the score, compiled once for the module."""
    return jax.jit(jax.grad(score(flagship_outputs(coupled))))


def score(run):
    """A scalar that depends on every output value, so that every Jacobian entry counts."""
    return lambda values: sum(jnp.sum(w * run(values)[k]) for k, w in WEIGHTS.items())


def test_forward_sensitivities_equal_reverse_mode_and_finite_differences():
    run = flagship_outputs()
    assert n_inputs(VALUES) == 7
    forward = jax.jit(jax.value_and_grad(score(forward_sensitivities(run))))
    vf, gf = forward(VALUES)
    gr = reverse_gradient(True)(VALUES)
    f, h = jax.jit(score(run)), 1e-6
    assert float(vf) == float(f(VALUES))  # the primal is the plain function
    for name in VALUES:
        np.testing.assert_allclose(np.asarray(gf[name]), np.asarray(gr[name]), rtol=1e-10, atol=1e-12)
    for name, i in (("q", ()), ("p", (1,)), ("decision_rate", (2,))):
        up = {**VALUES, name: VALUES[name].at[i].add(h)}
        down = {**VALUES, name: VALUES[name].at[i].add(-h)}
        fd = (float(f(up)) - float(f(down))) / (2 * h)
        np.testing.assert_allclose(float(np.asarray(gf[name])[i]), fd, rtol=1e-6)
        assert abs(fd) > 1e-3  # the probe moves the score: the comparison means something


def test_forward_sensitivities_under_vmap_match_each_member():
    run = flagship_outputs()
    batch = {"q": jnp.asarray([0.8, 0.5]), "p": jnp.asarray([[0.05, 0.1, 0.02], [0.2, 0.01, 0.05]]),
             "decision_rate": jnp.asarray([[1.5, 1.2, 2.0], [0.7, 1.0, 3.0]])}
    grads = jax.jit(jax.vmap(jax.grad(score(forward_sensitivities(run)))))(batch)
    for m in range(2):
        expected = reverse_gradient(True)({k: v[m] for k, v in batch.items()})
        for name in batch:
            np.testing.assert_allclose(np.asarray(grads[name][m]), np.asarray(expected[name]), rtol=1e-10, atol=1e-12)


def test_independent_sites_compress_the_jacobian_to_one_tangent_per_input():
    run = flagship_outputs(coupled=False)
    assert not compile_model(four_stage_model()).couples_sites
    compressed = jax.jit(jax.grad(score(forward_sensitivities(run, independent_sites=True))))(VALUES)
    reverse = reverse_gradient(False)(VALUES)
    for name in VALUES:
        assert np.shape(compressed[name]) == np.shape(VALUES[name])
        np.testing.assert_allclose(np.asarray(compressed[name]), np.asarray(reverse[name]), rtol=1e-10, atol=1e-12)
    # with a network the sites are coupled and the compression would be wrong: it must differ
    coupled = flagship_outputs(coupled=True)
    wrong = jax.jit(jax.grad(score(forward_sensitivities(coupled, independent_sites=True))))(VALUES)
    right = reverse_gradient(True)(VALUES)
    assert not np.allclose(np.asarray(wrong["p"]), np.asarray(right["p"]), rtol=1e-6)


@pytest.mark.parametrize("equation, coupled", [("k * x", False), ("k * site_mean(x)", True),
                                               ("k * x + 0 * site_sum(x)", True)])
def test_couples_sites_reads_the_equations(equation, coupled):
    model = Model("m", stocks=(Stock("x", init=1.0),), flows=(Flow("grow", equation, None, "x"),),
                  parameters=(Parameter("k", 0.1),))
    assert compile_model(model).couples_sites is coupled
