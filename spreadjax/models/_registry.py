"""Models by name, with their structural options, for configs and the CLI."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .._errors import ModelError
from ..core import Model
from ._four_stage import four_stage_model
from ._reference import s8_model

MODELS: dict[str, Callable[..., Model]] = {"four_stage": four_stage_model, "s8": s8_model}


def build_model(name: str, **options: Any) -> Model:
    """Build a registered model; options are its structural (static) choices."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    builder = MODELS[name]
    allowed = inspect.signature(builder).parameters
    for key, value in options.items():
        if key not in allowed:
            raise ModelError(f"model {name!r} has no option {key!r}; options: {', '.join(allowed) or 'none'}")
        default = allowed[key].default
        if type(value) is not type(default):
            raise ModelError(
                f"model {name!r}: option {key!r} must be {type(default).__name__}, got {value!r}"
            )
    return builder(**options)
