"""The calibration's log density has the same gradient with forward sensitivities and reverse mode."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import initialize_model

from spreadjax import load_config
from spreadjax.calibrate._run import build_problem


def test_forward_and_reverse_gradients_of_the_log_density_agree():
    problem = build_problem(load_config("configs/medical_innovation.toml"))  # p, q, ceiling partially pooled
    potentials = {}
    for mode in ("forward", "reverse"):
        p = dataclasses.replace(problem, gradients=mode)
        info = initialize_model(jax.random.PRNGKey(0), p.model)
        potentials[mode] = jax.jit(jax.value_and_grad(info.potential_fn))
    # three points of the unconstrained space (log p, log q, logit ceiling, log tau, z) in the posterior's region
    centre = {"p_pop": -1.0, "q_pop": -0.7, "ceiling_pop": 1.7, "p_tau": -1.6, "q_tau": -1.6, "ceiling_tau": -1.6,
              "p_z": np.zeros(4), "q_z": np.zeros(4), "ceiling_z": np.zeros(4)}
    assert set(centre) == set(info.param_info.z)
    rng = np.random.default_rng(3)
    points = {k: jnp.asarray(np.asarray(v)[None] + 0.5 * rng.normal(size=(3,) + np.shape(v))) for k, v in centre.items()}
    for k in range(3):
        point = {name: v[k] for name, v in points.items()}
        (vf, gf), (vr, gr) = potentials["forward"](point), potentials["reverse"](point)
        assert np.isfinite(float(vr))
        np.testing.assert_allclose(float(vf), float(vr), rtol=1e-12)
        for name in gr:
            assert np.all(np.abs(np.asarray(gr[name])) > 0)
            np.testing.assert_allclose(np.asarray(gf[name]), np.asarray(gr[name]), rtol=1e-8, atol=1e-10)


def test_auto_uses_forward_for_few_free_numbers_and_rejects_unknown_modes(monkeypatch):
    import spreadjax.calibrate._problem as module

    problem = build_problem(load_config("configs/medical_innovation.toml"))
    assert problem.gradients == "auto"
    calls = []
    real = module.forward_sensitivities
    monkeypatch.setattr(module, "forward_sensitivities",
                        lambda fn, independent_sites: calls.append(independent_sites) or real(fn, independent_sites))
    values = {"p": jnp.full(4, 0.3), "q": jnp.full(4, 0.5)}  # 8 free numbers
    problem.simulate(values)
    assert calls == [True]  # forward, compressed: the config has no network and no site_sum
    monkeypatch.setattr(module, "FORWARD_MAX_INPUTS", 7)
    problem.simulate(values)
    dataclasses.replace(problem, gradients="reverse").simulate(values)
    assert calls == [True]  # more free numbers than the limit, or reverse asked for: not forward
    with pytest.raises(ValueError, match="gradients = 'sideways'"):
        dataclasses.replace(problem, gradients="sideways")
