"""Backtesting: rolling-origin forecasts of the user's own data, scored against references."""

from ._run import run_backtest
from ._settings import BacktestSettings

__all__ = ["BacktestSettings", "run_backtest"]
