"""spreadjax: how good practice spreads and is adopted across health and care systems.

The public core: a declarative stock-and-flow vocabulary compiled to pure JAX functions, solvers
(Euler, RK4, adaptive), peer networks, stochastic transitions, and the flagship four-stage model.
Heavier layers (ensembles, reports, the CLI) are imported only where they are used.
"""

from ._config import Config as Config
from ._config import load_config as load_config
from ._config import parse_config as parse_config
from ._errors import ConfigError as ConfigError
from ._errors import DataError as DataError
from ._errors import InputError as InputError
from ._errors import ModelError as ModelError
from ._jobs import simulate_config as simulate_config
from .core import *  # noqa: F403
from .core._dataset import to_dataset as to_dataset
from .models import build_model as build_model
from .models import four_stage_model as four_stage_model
from .models import load_model_file as load_model_file
from .models import s8_model as s8_model

__version__ = "0.1.0"
