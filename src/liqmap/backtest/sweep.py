"""Parameter sweeps: the spec grammar, the grid, ranking, and the train/test split.

Spec: `name=a:b:step` (a, a + step, ... up to b inclusive when b lands on the grid) or
`name=v1,v2,...`, several separated by `;`. Names: see params.SWEEPABLE; `window` values with
`%` (`window=0.25%,0.5%`) are shares of the price (`window_pct`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import pandas as pd

from liqmap.backtest.align import MinuteInputs
from liqmap.backtest.engine import BacktestResult, Prepared
from liqmap.backtest.params import (
    INTEGER_PARAMS,
    OBJECTIVES,
    SWEEPABLE,
    BacktestParams,
    check_value,
    validate_params,
)
from liqmap.backtest.stats import compute_stats
from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix

MAX_COMBINATIONS: Final = 200_000
_GRID_DIGITS: Final = 10  # a + i × step is rounded to this many decimals (0.1 + 0.2 → 0.3)
_EXAMPLE: Final = "threshold=200:1000:200;window=5,10;release=1,5"

Grid = dict[str, list[float]]


def parse_sweep(spec: str) -> Grid:
    """Parse a sweep spec into {name: values}, in the order given.

    >>> parse_sweep("threshold=100:300:100;window=5,10")
    {'threshold': [100.0, 200.0, 300.0], 'window': [5.0, 10.0]}

    Raises:
        InputError: empty spec, unknown or repeated name, malformed or out-of-range values,
            more than MAX_COMBINATIONS combinations.
    """
    grid: Grid = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        name, sep, values = (s.strip() for s in part.partition("="))
        if not sep or not values:
            raise InputError(f"sweep item {part!r} is not name=values; write e.g. {_EXAMPLE}")
        if name not in SWEEPABLE:
            raise InputError(f"cannot sweep {name!r}; sweepable: {', '.join(SWEEPABLE)}")
        if name == "window" and "%" in values:
            name, values = "window_pct", values.replace("%", "")
        if name in grid:
            raise InputError(f"sweep names {name!r} twice; give each parameter once")
        grid[name] = _parse_values(name, values)
    if not grid:
        raise InputError(f"the sweep spec is empty; write e.g. {_EXAMPLE}")
    _check_grid(grid)
    return grid


def _parse_values(name: str, text: str) -> list[float]:
    try:
        values = _parse_range(text) if ":" in text else [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"sweep values {name}={text} are malformed ({exc}); write a:b:step or "
                         "v1,v2,...") from exc
    for v in values:
        check_value(name, v)
    if len(set(values)) != len(values):
        raise InputError(f"sweep values {name}={text} repeat a value; list each once")
    return values


def _parse_range(text: str) -> list[float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError("a range has three parts, a:b:step")
    start, stop, step = (float(p) for p in parts)
    if not (math.isfinite(start) and math.isfinite(stop) and step > 0 and stop >= start):
        raise ValueError("need finite a <= b and step > 0")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ValueError(f"{count:,} values, more than the {MAX_COMBINATIONS:,} a sweep may run")
    return [round(start + i * step, _GRID_DIGITS) for i in range(count)]


def _check_grid(grid: Grid) -> None:
    if "threshold" in grid and "threshold_quantile" in grid:
        raise InputError("sweep threshold or threshold_quantile, not both (a quantile replaces "
                         "the fixed threshold)")
    if "window" in grid and "window_pct" in grid:
        raise InputError("sweep window in USD or as a share of the price (window=0.25%,0.5%), "
                         "not both")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_COMBINATIONS:
        raise InputError(f"the sweep has {n:,} combinations (limit {MAX_COMBINATIONS:,}); use "
                         "fewer values")


def grid_params(base: BacktestParams, grid: Grid) -> list[BacktestParams]:
    """Every combination of `grid` applied over `base`, first name varying slowest.

    Raises:
        InputError: a swept name has no effect with `base` (threshold with a quantile,
            lookback without one).
    """
    quantile = ("threshold_quantile" in grid or base.threshold_tokens is None) \
        and "threshold" not in grid
    if "lookback" in grid and not quantile:
        raise InputError("--sweep lookback only matters with a quantile threshold; add "
                         "--threshold-quantile or sweep threshold_quantile")
    names = list(grid)
    out = []
    for combo in itertools.product(*grid.values()):
        changes = {SWEEPABLE[n]: _typed(n, v) for n, v in zip(names, combo, strict=True)}
        if "threshold" in grid:
            changes["threshold_quantile"] = None
        if "threshold_quantile" in grid:
            changes["threshold_tokens"] = None
        if "window" in grid:
            changes["window_pct"] = None
        if "window_pct" in grid:
            changes["window_usd"] = None
        out.append(validate_params(replace(base, **changes)))
    return out


def _typed(name: str, value: float) -> Any:
    if name == "reversal":
        return bool(value)
    return int(value) if name in INTEGER_PARAMS else value


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep.

    Attributes:
        table: one row per combination, ranked best first: `rank`, the swept names, then the
            metrics of `compute_stats` on the ranking sample.
        grid: the parsed spec; objective: the ranking metric.
        best: the best parameter set; best_result: its full run over all minutes.
        split_index: first minute of the test part (None without --train-frac).
        in_sample, out_of_sample: the best set's metrics on the train and test parts (both
            None without a split).
    """

    table: pd.DataFrame
    grid: Grid
    objective: str
    best: BacktestParams
    best_result: BacktestResult
    split_index: int | None
    in_sample: dict[str, float] | None
    out_of_sample: dict[str, float] | None


def split_index(ts_ns: np.ndarray, train_frac: float) -> int:
    """First minute of the test part: the first minute at or after t0 + f × (t_end − t0).

    Raises:
        InputError: f outside (0, 1), or a part with fewer than two minutes.
    """
    if not 0 < train_frac < 1:
        raise InputError(f"--train-frac must be between 0 and 1 (exclusive), got {train_frac:g}")
    cut = ts_ns[0] + train_frac * float(ts_ns[-1] - ts_ns[0])
    index = int(np.searchsorted(ts_ns, cut, side="left"))
    if index < 2 or ts_ns.shape[0] - index < 2:
        raise InputError(f"--train-frac {train_frac:g} leaves a part with fewer than two "
                         "minutes; pick a fraction nearer 0.5")
    return index


def run_sweep(matrix: LiqMatrix, minutes: MinuteInputs, base: BacktestParams, grid: Grid, *,
              objective: str = "net_improvement_usd", train_frac: float | None = None,
              progress: Callable[[int], object] | None = None) -> SweepResult:
    """Run every combination of `grid` over `base` and rank them by `objective`.

    With `train_frac`, combinations are ranked on the first part only. The rule runs over all
    minutes once per set and carries its state (counters, trailing quantile history) from the
    train part into the test part, as a live run would; state at any minute depends on earlier
    minutes only, so the train metrics equal those of a run over the train part alone.

    Args:
        progress: called with 1 after each combination (e.g. a progress bar's update).

    Raises:
        InputError: unknown objective, spec problems (see `grid_params`), bad split.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"unknown --objective {objective!r}; choose one of "
                         f"{', '.join(OBJECTIVES)}")
    sets = grid_params(base, grid)
    stop = split_index(minutes.ts_ns, train_frac) if train_frac is not None else minutes.n
    prepared = Prepared.of(matrix, minutes, legacy=base.legacy_formulas)
    rows = []
    for params in sets:
        _, ledger = prepared.simulate(params)
        rows.append(compute_stats(ledger, 0, stop))
        if progress is not None:
            progress(1)
    table = _ranked_table(grid, sets, rows, objective)
    best = sets[int(table["set"].iloc[0])]
    result = prepared.run(best)
    split = stop if train_frac is not None else None
    return SweepResult(
        table=table.drop(columns="set"), grid=grid, objective=objective, best=best,
        best_result=result, split_index=split,
        in_sample=compute_stats(result.ledger, 0, stop) if split is not None else None,
        out_of_sample=(compute_stats(result.ledger, stop, minutes.n) if split is not None
                       else None))


def _ranked_table(grid: Grid, sets: list[BacktestParams], rows: list[dict[str, float]],
                  objective: str) -> pd.DataFrame:
    """Rows ranked best first; NaN objectives (e.g. a legacy division by zero) rank last."""
    table = pd.DataFrame(rows)
    for name in reversed(grid):
        table.insert(0, name, [getattr(p, SWEEPABLE[name]) for p in sets])
    table.insert(0, "set", np.arange(len(sets)))
    score = table[objective].where(np.isfinite(table[objective]))
    order = (score * OBJECTIVES[objective]).sort_values(ascending=False, na_position="last",
                                                        kind="stable").index
    table = table.loc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


#: Metrics that add up over consecutive test windows (the walk-forward's out-of-sample total).
ADDITIVE: Final = ("n_minutes", "cum_pnl_raw_usd", "cum_pnl_boosted_usd", "cost_usd",
                   "carry_raw_usd", "carry_boosted_usd", "cum_pnl_raw_net_usd",
                   "cum_pnl_boosted_net_usd", "improvement_usd", "net_improvement_usd",
                   "boosted_minutes", "n_on", "n_off", "n_reverse", "n_toggles",
                   "turnover_tokens", "turnover_usd")


@dataclass(frozen=True)
class WalkForward:
    """Rolling out-of-sample test: each fold picks the best set on its train window and is
    scored on the test window after it; windows roll forward by the test length.

    Attributes:
        folds: one row per fold: `fold`, `train_start`, `test_start`, `test_end` (UTC), the
            chosen set's swept values, its train objective, then its test metrics.
        out_of_sample: the additive test metrics summed over the folds (plus boosted_share).
    """

    folds: pd.DataFrame
    out_of_sample: dict[str, float]


def fold_bounds(ts_ns: np.ndarray, train_min: int, test_min: int) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) indices of each fold, by time.

    Raises:
        InputError: the window is shorter than one train plus one test part.
    """
    if train_min < 2 or test_min < 2:
        raise InputError("--walk-forward needs train and test windows of 2 minutes or more, "
                         "e.g. --walk-forward 24h,6h")
    minute = NS_PER_MINUTE
    folds = []
    start = int(ts_ns[0])
    while True:
        lo, mid, hi = np.searchsorted(ts_ns, [start, start + train_min * minute,
                                              start + (train_min + test_min) * minute])
        if hi - mid < 2 or mid - lo < 2:
            break
        folds.append((int(lo), int(mid), int(hi)))
        start += test_min * minute
    if not folds:
        span = (int(ts_ns[-1]) - int(ts_ns[0])) // minute + 1
        raise InputError(f"--walk-forward {train_min} + {test_min} minutes does not fit the "
                         f"{span:,} minutes of data; use shorter windows")
    return folds


def run_walk_forward(matrix: LiqMatrix, minutes: MinuteInputs, base: BacktestParams,
                     grid: Grid, *, train_min: int, test_min: int,
                     objective: str = "net_improvement_usd") -> WalkForward:
    """Walk-forward of `grid` over `base` (see `WalkForward`). Each set runs once over all
    minutes, its state carried from one window to the next as in a live run; only the choice
    of set changes per fold, made on train minutes alone."""
    if objective not in OBJECTIVES:
        raise InputError(f"unknown --objective {objective!r}; choose one of "
                         f"{', '.join(OBJECTIVES)}")
    folds = fold_bounds(minutes.ts_ns, train_min, test_min)
    sets = grid_params(base, grid)
    prepared = Prepared.of(matrix, minutes, legacy=base.legacy_formulas)
    sign = OBJECTIVES[objective]
    best: list[tuple[float, int, dict[str, float]]] = [(-math.inf, -1, {})] * len(folds)
    for i, params in enumerate(sets):
        _, ledger = prepared.simulate(params)
        for f, (lo, mid, hi) in enumerate(folds):
            score = compute_stats(ledger, lo, mid)[objective] * sign
            if math.isfinite(score) and score > best[f][0]:
                best[f] = (score, i, compute_stats(ledger, mid, hi))
    times = minutes.timestamps()
    rows = []
    for f, ((lo, mid, hi), (score, i, test)) in enumerate(zip(folds, best, strict=True)):
        chosen = sets[max(i, 0)]
        rows.append({"fold": f + 1, "train_start": times[lo], "test_start": times[mid],
                     "test_end": times[hi - 1],
                     **{n: getattr(chosen, SWEEPABLE[n]) for n in grid},
                     f"train_{objective}": score * sign, **test})
    table = pd.DataFrame(rows)
    total = {k: float(table[k].sum()) for k in ADDITIVE if k in table}
    total["boosted_share"] = (total["boosted_minutes"] / total["n_minutes"]
                              if total.get("n_minutes") else float("nan"))
    return WalkForward(folds=table, out_of_sample=total)
