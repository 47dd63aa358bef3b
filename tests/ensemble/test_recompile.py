"""No recompilation: new parameter values, scenarios, seeds, network weights or draw counts that fit
one chunk reuse the compiled code (counted with JAX's backend-compile events). Each ensemble
member also equals a direct simulation of its parameters, scenario choices included."""

import contextlib

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np

from spreadjax import parse_config
from spreadjax.core import simulate
from spreadjax.ensemble import ChunkRunner

from .test_run import CONFIG

_COMPILES = [0]


def _listen(event: str, duration: float, **_: object) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_listen)


@contextlib.contextmanager
def compiles():
    """Yields a list whose one item becomes the number of XLA compilations in the block."""
    before, out = _COMPILES[0], [0]
    yield out
    out[0] = _COMPILES[0] - before


def _config(tmp_path, **changes):
    raw = {**CONFIG, "ensemble": {**CONFIG["ensemble"], "chunk_size": 8}}
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    return parse_config(raw, str(tmp_path / "ens.toml"))


def _draws(n, rng):
    return {"q": rng.uniform(0.2, 1.2, (n, 2)), "p": rng.uniform(0.01, 0.2, (n, 2))}


def test_counter_sees_a_compilation():
    with compiles() as n:
        jax.jit(lambda x: x * 3.0 + 1.0)(jnp.ones(7))
    assert n[0] >= 1


def test_new_values_scenarios_seeds_and_draw_counts_do_not_recompile(tmp_path):
    rng = np.random.default_rng(0)
    first = ChunkRunner(_config(tmp_path))
    first.run(0, _draws(8, rng), 8)  # compiles
    changed = _config(
        tmp_path,
        parameters={"population": [70, 30], "initial_adopters": [1, 4], "peer_influence": 0.4},
        scenarios={"strong_peers": {"parameters": {"peer_influence": 2.5}},
                   "withdrawn": {"schedules": {"programme": {"times": [0, 1.5], "values": [1, 0.2]}}}},
        ensemble={"seed": 99, "draws": 30},
    )
    with compiles() as n:
        runner = ChunkRunner(changed)
        out = runner.run(8, _draws(5, rng), 5)  # a short last chunk: padded, same shapes
    assert n[0] == 0
    assert out["adopted"].shape[:2] == (5, 3)


def test_stochastic_seed_change_does_not_recompile(tmp_path):
    stochastic = {"stochastic": {"enabled": True}, "simulation": {**CONFIG["simulation"], "solver": "euler"}}
    rng = np.random.default_rng(1)
    a = ChunkRunner(_config(tmp_path, **stochastic, ensemble={"seed": 1, "replicates": 2}))
    first = a.run(0, _draws(8, rng), 8)["adopted"]
    with compiles() as n:
        b = ChunkRunner(_config(tmp_path, **stochastic, ensemble={"seed": 2, "replicates": 2}))
        draws = _draws(8, np.random.default_rng(1))
        second = b.run(0, draws, 8)["adopted"]
    assert n[0] == 0
    assert not np.array_equal(first, second)  # the seed really changed the streams


def test_simulation_parameter_schedule_and_network_values_do_not_recompile(tmp_path):
    from spreadjax._jobs import build_simulation

    cfg = _config(tmp_path, network={"kind": "dense", "weights": [[0, 0.5], [0.2, 0]]})
    sim, params, network = build_simulation(cfg)
    simulate(sim, params, network)
    variants = []
    for scale in (0.5, 2.0):  # new values made outside the counted block (eager ops compile too)
        p = {**params, "q": jnp.asarray(np.asarray(params["q"]) * scale),
             "programme": {"times": params["programme"]["times"],
                           "values": jnp.asarray(np.asarray(params["programme"]["values"]) * scale)}}
        variants.append((p, network._replace(weight=jnp.asarray(np.asarray(network.weight) * scale))))
    finals = []
    with compiles() as n:
        for p, net in variants:
            finals.append(np.asarray(simulate(sim, p, net)["adopted"])[-1])
    assert n[0] == 0
    assert not np.allclose(finals[0], finals[1])


def test_each_member_equals_its_direct_simulation(tmp_path):
    from spreadjax._jobs import build_simulation

    cfg = _config(tmp_path)
    runner = ChunkRunner(cfg)
    draws = _draws(8, np.random.default_rng(2))
    out = runner.run(0, draws, 8)["adopted"]  # (draw, scenario, replicate, time, site)
    sim, base, network = build_simulation(cfg)
    sim = runner.sim
    for d in (0, 7):
        for s, (name, changes) in enumerate([("baseline", {}), ("strong_peers", {"peer_influence": 1.5}),
                                             ("withdrawn", {"programme": {"times": [0.0, 2.0], "values": [1.0, 0.0]}})]):
            p = {**base, "q": jnp.asarray(draws["q"][d], jnp.float32), "p": jnp.asarray(draws["p"][d], jnp.float32)}
            for k, v in changes.items():
                p[k] = ({"times": jnp.asarray(v["times"], jnp.float32),
                         "values": jnp.broadcast_to(jnp.asarray(v["values"], jnp.float32)[:, None], (2, 2))}
                        if isinstance(v, dict) else jnp.full((2,), v, jnp.float32))
            direct = np.asarray(simulate(sim, p, network)["adopted"])
            np.testing.assert_allclose(out[d, s, 0], direct, rtol=2e-5, atol=1e-4, err_msg=f"{name}, draw {d}")
