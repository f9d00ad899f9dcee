"""Backtest of the liquidation-pressure hedge boost (see docs/backtest.md).

Pure layers: `rule` (window sums, thresholds, the state machine), `engine` (accounting),
`stats` (metrics), `sweep` (grids and ranking). I/O: `hedgelog` (CSV in), `report` (files
out), `plots` (pictures).

Names are imported on first use, so `liqmap --help` does not pay for numba and pandas.

The package is callable: `liqmap.backtest(data, hedge_log=None, **rule_params)` is
`liqmap.backtest.api.backtest` (the package and the function share the name `liqmap.backtest`,
so the package itself answers the call).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liqmap.backtest.align import (
        Coverage,
        MinuteInputs,
        align_hedge_log,
        hedge_from_matrix,
    )
    from liqmap.backtest.engine import BacktestResult, Ledger, run_backtest
    from liqmap.backtest.hedgelog import read_hedge_log
    from liqmap.backtest.params import OBJECTIVES, SWEEPABLE, BacktestParams, validate_params
    from liqmap.backtest.rule import RuleOutput, run_rule, trailing_quantile, window_sums
    from liqmap.backtest.stats import compute_stats
    from liqmap.backtest.sweep import SweepResult, parse_sweep, run_sweep

_HOME = {
    "Backtest": "api", "Inputs": "api", "load_inputs": "api", "sweep": "api",
    "rule_params": "api", "signal_state": "live",
    "Coverage": "align", "MinuteInputs": "align", "align_hedge_log": "align",
    "hedge_from_matrix": "align", "BacktestResult": "engine", "Ledger": "engine",
    "run_backtest": "engine", "read_hedge_log": "hedgelog", "SWEEPABLE": "params",
    "BacktestParams": "params", "validate_params": "params", "RuleOutput": "rule",
    "run_rule": "rule", "trailing_quantile": "rule", "window_sums": "rule",
    "OBJECTIVES": "params", "compute_stats": "stats", "SweepResult": "sweep",
    "parse_sweep": "sweep", "run_sweep": "sweep",
}

__all__ = [
    "OBJECTIVES",
    "SWEEPABLE",
    "Backtest",
    "BacktestParams",
    "BacktestResult",
    "Coverage",
    "Inputs",
    "Ledger",
    "MinuteInputs",
    "RuleOutput",
    "SweepResult",
    "align_hedge_log",
    "compute_stats",
    "hedge_from_matrix",
    "load_inputs",
    "parse_sweep",
    "read_hedge_log",
    "rule_params",
    "run_backtest",
    "run_rule",
    "run_sweep",
    "signal_state",
    "sweep",
    "trailing_quantile",
    "validate_params",
    "window_sums",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'liqmap.backtest' has no attribute {name!r}")
    return getattr(importlib.import_module(f"liqmap.backtest.{_HOME[name]}"), name)


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`liqmap.backtest(...)`: see `liqmap.backtest.api.backtest`."""
        from liqmap.backtest.api import backtest

        return backtest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
