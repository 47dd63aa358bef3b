"""Programme design under uncertainty: how hard to push, for how long, where, and when to withdraw.

``[design]`` settings (:mod:`._settings`), the problem as pure functions (:mod:`._problem`), the
gradient search and its derivative-free check (:mod:`._optimise`), and the files (:mod:`._result`).
"""

from ._problem import DesignProblem as DesignProblem
from ._problem import Futures as Futures
from ._run import DesignResult as DesignResult
from ._run import run_design as run_design
from ._run import solve_design as solve_design
from ._settings import DesignSettings as DesignSettings
from ._settings import parse_design as parse_design

__all__ = ["DesignProblem", "DesignResult", "DesignSettings", "Futures", "parse_design", "run_design", "solve_design"]
