"""Reference workload S8 (``shared/benchmarks/REFERENCE_MODEL.md``): an 8-stock four-stage
model in fractions of a population of 1, used to compare throughput with other tools."""

from __future__ import annotations

import functools

from ..core import Auxiliary, Delay, Flow, Model, Parameter, Smooth, Stock


@functools.lru_cache(maxsize=None)
def s8_model() -> Model:
    """U, W, I1..I3 (Erlang-3 delay), A, D and recognition R, as in the reference text."""
    P = Parameter
    return Model(
        "s8",
        parameters=(
            P("p", 0.01, "1/yr", "push"), P("q", 0.6, "1/yr", "peer pull"),
            P("rd", 2.0, "1/yr", "decision rate"), P("tau", 1.0, "yr", "implementation delay"),
            P("delta", 0.05, "1/yr", "discontinuation"), P("tau_r", 0.5, "yr", "recognition time"),
            P("r0", 0.2, "1", "initial recognition"), P("K", 0.1, "1", "half-saturation"),
        ),
        stocks=(Stock("U", 0.99), Stock("W", 0.0), Stock("A", 0.01), Stock("D", 0.0)),
        flows=(
            Flow("aware", "U * (p + q * A) * R", "U", "W"),
            Flow("decide", "W * rd * R", "W", "I"),
            Flow("impl", "I_exit", "I", "A"),
            Flow("disc", "delta * A", "A", "D"),
        ),
        auxiliaries=(Auxiliary("R_tgt", "r0 + (1 - r0) * A / (A + K)"),),
        delays=(Delay("I", "tau", 3, 0.0),),
        smooths=(Smooth("R", "R_tgt", "tau_r", 1, "r0"),),
    )
