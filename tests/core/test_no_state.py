"""Models without stocks (auxiliaries of time only) or without parameters keep their site axis."""

from __future__ import annotations

import numpy as np
import pytest

from spreadjax.core import RK4, Auxiliary, Euler, Flow, Model, Parameter, Simulation, Stock, compile_model


@pytest.mark.parametrize("solver", [Euler(), RK4()])
def test_a_model_without_stocks_runs_per_site(solver):
    model = Model("clock", parameters=(Parameter("k", 2.0),), auxiliaries=(Auxiliary("a", "k * t * t"),))
    cm = compile_model(model)
    params = cm.params(n_sites=3, k=np.array([7.0, 900.0, 0.5]))
    assert cm.init(params).shape == (0, 3)
    ts = (0.0, 0.5, 1.5, 2.0)
    out = Simulation(cm, ts, 0.25, ("a",), solver=solver)(params)
    want = np.array([7.0, 900.0, 0.5])[None, :] * np.square(ts)[:, None]
    np.testing.assert_allclose(np.asarray(out["a"]), want, rtol=1e-6)


def test_a_model_without_parameters_has_one_site():
    model = Model("decay", stocks=(Stock("s", init="900.0"),), flows=(Flow("out", "0.5 * s", "s", None),))
    cm = compile_model(model)
    ts = tuple(np.arange(0, 2.01, 0.5))
    out = Simulation(cm, ts, 0.5, ("s",), solver=Euler())(cm.params())
    np.testing.assert_allclose(np.asarray(out["s"])[:, 0], 900.0 * 0.75 ** np.arange(5), rtol=1e-6)
    assert np.asarray(out["s"]).shape == (5, 1)
