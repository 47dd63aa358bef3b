"""Config fragments shared by tests: the four-stage model reduced to Bass diffusion (no
awareness stage, adoption straight from the unaware, no evidence, no discontinuation), so that
its results have the Bass closed forms."""

#: ``[model]``: the four-stage model without its awareness stage and implementation delay.
BASS_MODEL = """[model]
name = "four_stage"
[model.options]
awareness_stage = false
implementation_order = 0
"""

#: Lines of ``[parameters]`` that switch off everything but push (p) and pull (q).
BASS_PARAMETERS = """initial_adopters = 0.0
recognition_baseline = 1.0
pilot_evidence = 0.0
adopter_evidence = 0.0
discontinuation_rate = 0.0
"""
