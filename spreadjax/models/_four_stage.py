"""The flagship four-stage model of the spread and adoption of good practice.

Generation -> recognition -> communication -> adoption, per site, coupled across sites by a peer
network. Units: organisations (or clinicians) for counted stocks, years for time, per-year rates.
See ``docs/model.md`` for the equations, loops and levers. The Bass model is the exact special
case ``awareness_stage=False, implementation_order=0`` with recognition fixed at 1, no
discontinuation, a constant programme and no network (``configs/bass.toml``).
"""

from __future__ import annotations

import functools

from ..core import Auxiliary, Delay, Flow, Model, Parameter, Schedule, Smooth, Stock

INF = float("inf")

#: The levers: multiplicative enhancers (>1 helps spread) and inhibitors, all 1 by default.
LEVERS = {
    "innovation_conditions": "enhancer of evidence generation (conditions for innovation)",
    "barriers": "inhibitor of recognition (hurdles a practice must clear to be seen as good)",
    "evidence_sharing": "enhancer: weight of peers' evidence in a site's recognition",
    "push_strength": "enhancer: intensity of the central programme's push",
    "peer_influence": "enhancer: strength of word of mouth and peer networks (pull)",
    "implementation_support": "enhancer: speeds the implementation pipeline (delay / support)",
}


def _parameters() -> tuple[Parameter, ...]:
    P = Parameter
    divisors = ("barriers", "implementation_support")  # appear in denominators: must be > 0
    levers = tuple(P(n, 1.0, "1", d, lower=0.0, lever=True, positive=n in divisors) for n, d in LEVERS.items())
    return (
        P("population", 100.0, "organisations", "eligible organisations at the site", lower=0.0, positive=True),
        P("initial_adopters", 1.0, "organisations", "adopters at the start (pilot sites)", lower=0.0),
        P("initial_aware", 0.0, "organisations", "aware non-adopters at the start", lower=0.0),
        # generation
        P("pilot_evidence", 0.5, "evidence/yr", "evidence of benefit produced by pilots", lower=0.0),
        P("adopter_evidence", 2.0, "evidence/yr", "evidence produced when all have adopted", lower=0.0),
        P("evidence_lifetime", 5.0, "yr", "mean time before evidence goes stale", lower=0.0, positive=True),
        P("initial_evidence", 0.0, "evidence", "evidence at the start", lower=0.0),
        # recognition
        P("recognition_baseline", 0.2, "1", "recognition of the practice with no evidence", 0.0, 1.0),
        P("evidence_half_saturation", 1.0, "evidence", "evidence giving half the possible recognition", lower=0.0, positive=True),
        P("recognition_time", 0.5, "yr", "delay before evidence is recognised", lower=0.0, positive=True),
        P("disillusionment", 0.0, "1", "loss of recognition per discontinued share", 0.0),
        # communication
        P("p", 0.03, "1/yr", "push: awareness rate from the central programme (Bass p)", lower=0.0),
        P("q", 0.38, "1/yr", "pull: awareness rate per adopted share of peers (Bass q)", lower=0.0),
        P("reach", 1.0, "1", "share of organisations the programme reaches", 0.0, 1.0),
        P("ceiling", 1.0, "1", "share of the population that will ever adopt (the rest never take it up)", 0.0, 1.0,
          positive=True),
        P("early_pace", 1.0, "1", "pace of communication before take-off, as a share of the pace after", 0.0, 1.0),
        P("takeoff", 0.0, "yr", "take-off date: the middle of the rise from early_pace to full pace"),
        P("takeoff_width", 0.25, "yr", "how long take-off takes (logistic scale)", lower=0.0, positive=True),
        # adoption
        P("decision_rate", 2.0, "1/yr", "rate at which aware organisations decide to adopt", lower=0.0),
        P("capacity", INF, "1/yr", "implementation starts per year as a share of population", lower=0.0, positive=True),
        P("implementation_time", 1.0, "yr", "mean time from decision to adoption", lower=0.0, positive=True),
        P("commitment", 1.0, "1", "share of implementations completed (the rest abandon)", 0.0, 1.0),
        P("discontinuation_rate", 0.05, "1/yr", "de-adoption rate with full support", lower=0.0),
        P("withdrawal_effect", 2.0, "1", "extra de-adoption when support is withdrawn", lower=0.0),
    ) + levers


#: The highest Erlang order of a pipeline or smooth: each order is a stock (and a flow), so an order of
#: a million builds a model no run could compile; 20 stages already make the delay almost fixed.
MAX_ORDER = 50


@functools.lru_cache(maxsize=None)
def four_stage_model(
    awareness_stage: bool = True, implementation_order: int = 3, recognition_order: int = 1
) -> Model:
    """The flagship model. Structural options (static): a separate aware stock or direct
    adoption decisions; the Erlang order of the implementation pipeline (0: none); the order of
    the recognition smooth."""
    from .._errors import ModelError

    if not 0 <= implementation_order <= MAX_ORDER:
        raise ModelError(f"four_stage: implementation_order must be 0 to {MAX_ORDER} (one stock per stage), "
                         f"got {implementation_order}")
    if not 1 <= recognition_order <= MAX_ORDER:
        raise ModelError(f"four_stage: recognition_order must be 1 to {MAX_ORDER} (one stock per stage), "
                         f"got {recognition_order}")
    source = "aware" if awareness_stage else "unaware"
    adopt_from = "implementing" if implementation_order > 0 else source
    adopt_rate = "implementing_exit" if implementation_order > 0 else "decisions"
    unaware_init = "population - initial_adopters" + (" - initial_aware" if awareness_stage else "")
    stocks = [
        Stock("unaware", unaware_init, "organisations", "not yet aware of the practice"),
        Stock("adopted", "initial_adopters", "organisations", "using the practice"),
        Stock("discontinued", 0.0, "organisations", "adopted or started, then stopped"),
        Stock("evidence", "initial_evidence", "evidence", "evidence of benefit (generation stage)", counted=False),
        Stock("ever_adopted", "initial_adopters", "organisations",
              "cumulative adoptions (never decreases; compare with observed cumulative adopters)",
              counted=False, tally="completed"),
    ]
    if awareness_stage:
        stocks.insert(1, Stock("aware", "initial_aware", "organisations", "aware, not yet decided"))
    aux = [
        Auxiliary("visible_evidence", "evidence + evidence_sharing * network(evidence)", "evidence",
                  "own evidence plus peers' evidence seen through the network"),
        Auxiliary("recognition_target",
                  "max(recognition_baseline + (1 - recognition_baseline) * visible_evidence / "
                  "(visible_evidence + evidence_half_saturation * barriers), 0) * "
                  "max(1 - disillusionment * discontinued / population, 0)",
                  "1", "recognition the evidence supports, less disillusionment"),
        Auxiliary("potential", "ceiling * population", "organisations",
                  "organisations that will ever adopt (the ceiling's share of the population)"),
        Auxiliary("susceptible", "max(unaware - (population - potential), 0)", "organisations",
                  "unaware organisations that may still adopt (the others never will)"),
        Auxiliary("exposure", "(adopted + network(adopted)) / (potential + network(potential))",
                  "1", "adopted share of the potential adopters at the site and its peers"),
        Auxiliary("pace", "early_pace + (1 - early_pace) * logistic((t - takeoff) / takeoff_width)", "1",
                  "pace of communication: early_pace before take-off, 1 after"),
        Auxiliary("push", "push_strength * p * reach * programme * pace", "1/yr", "push from the central programme"),
        Auxiliary("pull", "peer_influence * q * exposure * pace", "1/yr", "pull from peers (word of mouth)"),
        Auxiliary("awareness_rate", "susceptible * recognition * (push + pull)", "organisations/yr",
                  "organisations becoming aware (communication stage)"),
        Auxiliary("decision_demand",
                  "aware * decision_rate * recognition" if awareness_stage else "awareness_rate",
                  "organisations/yr", "decisions to adopt before capacity limits"),
        Auxiliary("decisions", "decision_demand / (1 + decision_demand / (capacity * population))",
                  "organisations/yr", "decisions to adopt that start implementation"),
        Auxiliary("adopted_fraction", "adopted / population", "1", "share of organisations using it"),
    ]
    flows = [
        Flow("evidence_generation",
             "innovation_conditions * (pilot_evidence + adopter_evidence * adopted / population)",
             None, "evidence", "evidence/yr", "generation of evidence by pilots and adopters"),
        Flow("evidence_obsolescence", "evidence / evidence_lifetime", "evidence", None, "evidence/yr"),
        Flow("completed", f"commitment * {adopt_rate}", adopt_from, "adopted", "organisations/yr",
             "implementations completed: new adopters"),
        Flow("abandoned", f"(1 - commitment) * {adopt_rate}", adopt_from, "discontinued",
             "organisations/yr", "implementations abandoned"),
        Flow("discontinuation",
             "adopted * discontinuation_rate * (1 + withdrawal_effect * (1 - programme)) * "
             "(1 + disillusionment * (1 - recognition))",
             "adopted", "discontinued", "organisations/yr", "de-adoption, faster without support"),
    ]
    if awareness_stage:
        flows.insert(0, Flow("awareness", "awareness_rate", "unaware", "aware", "organisations/yr",
                             "push and pull make organisations aware"))
    delays = []
    if implementation_order > 0:
        flows.insert(1, Flow("starts", "decisions", source, "implementing", "organisations/yr",
                             "decisions entering the implementation pipeline"))
        delays.append(Delay("implementing", "implementation_time / implementation_support",
                            implementation_order, 0.0, "organisations",
                            "implementation pipeline (Erlang delay)"))
    smooths = (
        Smooth("recognition", "recognition_target", "recognition_time", recognition_order,
               "recognition_baseline + (1 - recognition_baseline) * initial_evidence / "
               "(initial_evidence + evidence_half_saturation * barriers)",
               "1", "recognition of the practice as good (0-1)"),
    )
    schedules = (
        Schedule("programme", (0.0,), (1.0,), "step", "1",
                 "central programme intensity and support (0 = withdrawn, 1 = full)", 0.0, 1.0),
    )
    return Model(
        "four_stage",
        parameters=_parameters(),
        stocks=tuple(stocks),
        flows=tuple(flows),
        auxiliaries=tuple(aux),
        delays=tuple(delays),
        smooths=smooths,
        schedules=schedules,
        doc=__doc__ or "",
        population="population",
    )
