"""Ready-made models built with the core stock-and-flow vocabulary."""

from ._four_stage import LEVERS as LEVERS
from ._four_stage import four_stage_model as four_stage_model
from ._registry import MODELS as MODELS
from ._registry import build_model as build_model
from ._reference import s8_model as s8_model
from ._file import dump_model_toml as dump_model_toml
from ._file import load_model_file as load_model_file
from ._file import model_from_dict as model_from_dict
from ._file import model_to_dict as model_to_dict
