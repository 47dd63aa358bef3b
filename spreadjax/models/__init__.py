"""Ready-made models built with the core stock-and-flow vocabulary."""

from ._four_stage import LEVERS as LEVERS
from ._four_stage import four_stage_model as four_stage_model
from ._registry import MODELS as MODELS
from ._registry import build_model as build_model
from ._reference import s8_model as s8_model
