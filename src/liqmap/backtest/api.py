"""The notebook surface of the backtest: `liqmap.backtest(...)` and `liqmap.sweep(...)`.

Three lines from a store or a matrix to a result::

    import liqmap
    bt = liqmap.backtest("demo-out/store", market="SOL")      # or an npz path, or a LiqMatrix
    bt.summary, bt.minutes, bt.toggles, bt.plot()

The `liqmap backtest` command calls exactly these functions and writes what they return.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from liqmap.backtest import params as P
from liqmap.backtest.align import MinuteInputs, align_hedge_log, as_of, hedge_from_matrix
from liqmap.backtest.engine import BacktestResult, Ledger, Prepared
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.backtest.stats import compute_stats
from liqmap.backtest.sweep import (
    Grid,
    SweepResult,
    WalkForward,
    parse_sweep,
    run_sweep,
    run_walk_forward,
)
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix, load_npz

#: Read this much market_state before the first minute, so a stored exposure is known there.
EXPOSURE_LEAD_MIN: Final = 60
#: Rule keywords (the sweep's names) -> BacktestParams fields; plus `legacy_formulas`.
RULE_KEYWORDS: Final = {**P.SWEEPABLE, "legacy_formulas": "legacy_formulas"}


@dataclass(frozen=True)
class Inputs:
    """A matrix and the hedge side on one timeline, ready for any number of runs.

    Attributes:
        matrix: the liquidation matrix (tokens of `market`).
        minutes: the timeline (price, hedge position, ratios, gaps, carry).
        market: asset symbol; source: where the matrix came from (for reports).
        notes: facts about the inputs reported in the summary (e.g. how a log wrote shorts).
    """

    matrix: LiqMatrix
    minutes: MinuteInputs
    market: str
    source: str
    notes: dict[str, Any] = field(default_factory=dict)


def load_inputs(data: Any, hedge_log: Any = None, *, market: str | None = None,
                t_start: Any = None, t_end: Any = None, bin_usd: float | None = None,
                tz: str = "UTC", target_ratio: float = P.DEFAULT_TARGET_RATIO,
                exposure: float = P.DEFAULT_EXPOSURE_TOKENS, jlp_amount: float | None = None,
                carry_csv: str | Path | pd.Series | None = None,
                data_dir: str | None = None, data_source: str = "auto") -> Inputs:
    """Resolve `data` (a LiqMatrix, an npz path, a store path/URI or an object with `.root`)
    and the hedge side (a hedge-log path or DataFrame from `read_hedge_log`; else a short of
    `exposure` tokens at `target_ratio`, or of `jlp_amount` JLP tokens' share of the pool's net
    delta, read from the store at `data_dir` or `data`). From a store, `data_source` picks its
    rows: "auto" (collected snapshots, and imported legacy rows at minutes without one),
    "collected" or "legacy".

    Raises:
        InputError: every problem with the inputs, in one line.
    """
    from liqmap.timeutil import parse_window

    given = _given_matrix(data, market)
    start, end = parse_window(t_start, t_end, anchor=lambda: _newest(given, data, market,
                                                                     data_source))
    matrix, source, store_root = (given if given is not None else
                                  _matrix(data, market, start, end, bin_usd, data_source))
    market = matrix.market
    notes: dict[str, Any] = {}
    if hedge_log is not None:
        if jlp_amount is not None:
            raise InputError("--jlp-amount replaces the hedge log's exposure; drop "
                             "--jlp-amount or --hedge-log")
        log = hedge_log if isinstance(hedge_log, pd.DataFrame) else read_hedge_log(
            Path(hedge_log), tz=tz)
        notes["hedge_log_shorts_written_as"] = log.attrs.get("short_written_as", "negative")
        minutes = align_hedge_log(matrix, log, t_start=start, t_end=end)
    else:
        k: float | pd.Series = exposure
        if jlp_amount is not None:
            root = data_dir or store_root
            if root is None:
                raise InputError("--jlp-amount reads the JLP supply and net delta from a store; "
                                 "pass --data-dir")
            k = jlp_exposure(root, market, jlp_amount, matrix, start, end)
            notes["exposure"] = f"{jlp_amount:g} JLP × pool net delta / JLP supply"
        if not target_ratio > 0:
            raise InputError(f"--target {target_ratio:g} must be > 0: it is the share of the "
                             "exposure shorted (1.0 = fully hedged)")
        minutes = hedge_from_matrix(matrix, target_ratio=target_ratio, exposure_tokens=k,
                                    t_start=start, t_end=end)
    if carry_csv is not None:
        from liqmap.backtest.carry import read_carry_csv

        series = carry_csv if isinstance(carry_csv, pd.Series) else read_carry_csv(carry_csv)
        rates = as_of(series, minutes.ts_ns, what="carry rate",
                      fix="give --carry-csv rows from before the first minute")
        minutes = replace(minutes, carry_apr=rates)
        notes["carry"] = "per-hour series" + (f" from {carry_csv}" if isinstance(
            carry_csv, str | Path) else "")
    return Inputs(matrix=matrix, minutes=minutes, market=market, source=source, notes=notes)


def _given_matrix(data: Any, market: str | None) -> tuple[LiqMatrix, str, None] | None:
    """`data` as (matrix, description, None) when it is a LiqMatrix or an npz path, else None
    (a store)."""
    if isinstance(data, LiqMatrix):
        m = data if market is None else replace(data, market=market.upper())
        return m, f"matrix ({m.market})", None
    if isinstance(data, str | Path) and str(data).endswith(".npz"):
        if not Path(data).is_file():
            raise InputError(f"--heatmap {data} does not exist; pass an npz file")
        return load_npz(data, market=(market or "SOL").upper()), str(data), None
    return None


def _newest(given: tuple[LiqMatrix, str, None] | None, data: Any, market: str | None,
            data_source: str) -> pd.Timestamp | None:
    """The newest minute of the data: a matrix's last column, or the store's newest
    snapshot (what relative times such as `-6h` count back from)."""
    if given is not None:
        edges = given[0].t_edges_ns
        return pd.Timestamp(int(edges[-2]), tz="UTC") if len(edges) >= 2 else None
    from liqmap.heatmap.sources import StoreSource, newest_time

    return newest_time(StoreSource(str(getattr(data, "root", data)), (market or "SOL").upper(),
                                   data_source))


def _matrix(data: Any, market: str | None, start: pd.Timestamp | None,
            end: pd.Timestamp | None, bin_usd: float | None, data_source: str = "auto"
            ) -> tuple[LiqMatrix, str, str | None]:
    """The matrix built from the store `data` (a path/URI or an object with `.root`)."""
    root = str(getattr(data, "root", data))
    market = (market or "SOL").upper()
    from liqmap.heatmap import build_matrix_from_store, default_bin_usd

    bin_usd = bin_usd or default_bin_usd(market)
    matrix = build_matrix_from_store(root, market, start, end, bin_usd, unit="tokens",
                                     source=data_source)
    return replace(matrix, market=market), f"store {root}", root


def jlp_exposure(root: str, market: str, jlp_amount: float, matrix: LiqMatrix,
                 t_start: pd.Timestamp | None, t_end: pd.Timestamp | None) -> pd.Series:
    """Tokens of `market` a holder of `jlp_amount` JLP is long, by time:
    jlp_amount / jlp_supply_tokens × jlp_net_delta_tokens, from the store's market_state.

    Raises:
        InputError: non-positive amount, no rows, or a store written before the JLP supply
            was collected.
    """
    from liqmap.store import Store

    if not jlp_amount > 0:
        raise InputError(f"--jlp-amount {jlp_amount:g} must be > 0 (JLP tokens held)")
    first = pd.Timestamp(int(matrix.t_edges_ns[0]), tz="UTC")
    start = max(t_start, first) if t_start is not None else first
    store = Store(root)
    lead = pd.Timedelta(minutes=EXPOSURE_LEAD_MIN)
    cols = ["ts", "jlp_net_delta_tokens", "jlp_supply_tokens"]
    frame = store.read_market_state(market, start - lead, t_end, columns=cols).to_pandas()
    if frame.empty:
        raise InputError(f"the store {root} has no {market} market_state rows for the window, "
                         "so no JLP delta; pass --exposure or collect first")
    if frame["jlp_supply_tokens"].isna().all():  # files written before the column existed
        raise InputError(f"the store {root} has no jlp_supply_tokens for {market} (it was "
                         "written before liqmap stored the JLP supply); collect with this "
                         "version, or pass --exposure TOKENS")
    share = jlp_amount / frame["jlp_supply_tokens"].to_numpy(dtype=float)
    return pd.Series(share * frame["jlp_net_delta_tokens"].to_numpy(dtype=float),
                     index=pd.DatetimeIndex(frame["ts"])).dropna()


def rule_params(**kw: Any) -> P.BacktestParams:
    """BacktestParams from the rule keywords (`threshold`, `threshold_quantile`, `window`
    as USD or "0.5%", `window_pct`, `confirm`, `release`, `boost`, `lookback`, `fee_bps`,
    `slippage_bps`, `reversal`, `carry_apr`, `legacy_formulas`); unset ones keep defaults.

    Raises:
        InputError: an unknown keyword or a value out of range.
    """
    unknown = sorted(set(kw) - set(RULE_KEYWORDS))
    if unknown:
        raise InputError(f"unknown rule parameter(s) {', '.join(unknown)}; use "
                         f"{', '.join(RULE_KEYWORDS)}")
    values = {k: v for k, v in kw.items() if v is not None}
    if "window" in values and isinstance(values["window"], str):
        values.update(parse_window(values.pop("window")))
    changes = {RULE_KEYWORDS[k]: v for k, v in values.items()}
    if "threshold_tokens" in changes and "threshold_quantile" in changes:
        raise InputError("pass --threshold or --threshold-quantile, not both (a quantile "
                         "replaces the fixed threshold)")
    if "threshold_tokens" in changes:
        changes["threshold_quantile"] = None
    if "window_usd" in changes:
        changes["window_pct"] = None
    elif "window_pct" in changes:
        changes["window_usd"] = None
    for key in ("confirm", "release", "lookback_min"):
        if key in changes and float(changes[key]) == int(changes[key]):
            changes[key] = int(changes[key])
    return P.validate_params(replace(P.BacktestParams(), **changes))


def parse_window(text: str) -> dict[str, float]:
    """`--window` text: "0.5%" (share of the price) or "10" / "10usd" (USD).

    >>> parse_window("0.5%"), parse_window("12.5")
    ({'window_pct': 0.5}, {'window': 12.5})
    """
    t = text.strip().lower().replace(" ", "")
    pct = t.endswith("%")
    t = t.rstrip("%").removesuffix("usd")
    try:
        value = float(t)
    except ValueError:
        raise InputError(f"--window {text!r} is not a share of the price (0.5%) or a USD "
                         "amount (10)") from None
    return {"window_pct": value} if pct else {"window": value}


class Backtest:
    """One backtest run, as pandas objects.

    Attributes:
        result: the engine's result (arrays); inputs: what it ran on.
        summary_dict: everything summary.json holds.
        minutes: DataFrame, one row per minute, indexed by UTC time.
        toggles: DataFrame of on/off/reverse events.
        summary: Series of the key figures, units in the keys ("Net improvement [USD]").
    """

    def __init__(self, inputs: Inputs, result: BacktestResult, baselines: dict[str, Ledger],
                 sweep: SweepResult | None = None, walk_forward: WalkForward | None = None
                 ) -> None:
        from liqmap.backtest.report import build_summary

        self.inputs, self.result, self.baselines = inputs, result, baselines
        self.params = result.params
        self.summary_dict = build_summary(result, market=inputs.market, source=inputs.source,
                                          sweep=sweep, baselines=baselines,
                                          walk_forward=walk_forward, notes=inputs.notes)

    @property
    def minutes(self) -> pd.DataFrame:
        return self.result.minutes_frame().set_index("timestamp")

    @property
    def toggles(self) -> pd.DataFrame:
        return self.result.toggles_frame()

    @property
    def summary(self) -> pd.Series:
        return summary_series(self.summary_dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.summary_dict["warnings"])

    def plot(self, kind: str = "pnl") -> Any:
        """A matplotlib Figure: "pnl" (cumulative P&L against the plain hedge) or "ratio"
        (price with toggles, window sums against θ, ratios)."""
        from liqmap.backtest.plots import render_pnl, render_ratio

        if kind == "ratio":
            return render_ratio(self.result, self.inputs.market)
        if kind != "pnl":
            raise InputError(f"plot kind {kind!r} is unknown; use 'pnl' or 'ratio'")
        return render_pnl(self.result, self.summary_dict["metrics"], self.inputs.market,
                          self.baselines.get("always_on"))

    def _repr_html_(self) -> str:
        frame: Any = self.summary.to_frame("value")
        return str(frame.to_html())

    def __repr__(self) -> str:
        return f"<liqmap Backtest {self.inputs.market}>\n{self.summary.to_string()}"


def summary_series(summary: dict[str, Any]) -> pd.Series:
    """The key figures of `summary` with their units in the keys, as backtesting.py does."""
    m, base, market = summary["metrics"], summary["baselines"], summary["market"]
    rows: dict[str, Any] = {
        "Start": pd.Timestamp(summary["t_start"]), "End": pd.Timestamp(summary["t_end"]),
        "Minutes": m["n_minutes"],
        "P&L plain hedge [USD]": m["cum_pnl_raw_usd"],
        "P&L boosted gross [USD]": m["cum_pnl_boosted_usd"],
        "Costs [USD]": m["cost_usd"],
        "Carry plain [USD]": m["carry_raw_usd"],
        "Carry boosted [USD]": m["carry_boosted_usd"],
        "P&L boosted net [USD]": m["cum_pnl_boosted_net_usd"],
        "Net improvement [USD]": m["net_improvement_usd"],
        "Time boosted [%]": 100 * m["boosted_share"],
        "Toggles": m["n_toggles"],
        "Hit rate [%]": 100 * m["hit_rate"],
        f"Turnover [{market}]": m["turnover_tokens"],
        "Turnover [USD]": m["turnover_usd"],
        "Max drawdown vs plain [USD]": m["max_drawdown_usd"],
    }
    if base:
        rows["Baseline never on, P&L net [USD]"] = base["never_on"]["cum_pnl_boosted_net_usd"]
        rows["Baseline always on, P&L net [USD]"] = base["always_on"]["cum_pnl_boosted_net_usd"]
        rows["Baseline always on, net improvement [USD]"] = \
            base["always_on"]["net_improvement_usd"]
    return pd.Series(rows, dtype=object, name=f"{market} backtest")


def _inputs(data: Any, hedge_log: Any, kw: dict[str, Any]) -> Inputs:
    if isinstance(data, Inputs):
        if hedge_log is not None or kw:
            raise InputError("prepared Inputs already hold the hedge side and window; pass "
                             "only rule parameters")
        return data
    return load_inputs(data, hedge_log, **kw)


_INPUT_KEYWORDS: Final = ("market", "t_start", "t_end", "bin_usd", "tz", "target_ratio",
                          "exposure", "jlp_amount", "carry_csv", "data_dir")


def _split(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs = {k: kw.pop(k) for k in list(kw) if k in _INPUT_KEYWORDS}
    return inputs, kw


def backtest(data: Any, hedge_log: Any = None, **kwargs: Any) -> Backtest:
    """Backtest the liquidation-pressure boost of a short hedge.

    Args:
        data: a LiqMatrix, an npz path, a store path/URI (or an object with `.root`), or
            `Inputs` from `load_inputs`.
        hedge_log: a hedge-log CSV path or DataFrame (shorts written negative or positive);
            None: a short of `exposure` tokens (default 1: per token) or of `jlp_amount` JLP.
        **kwargs: inputs (`market`, `t_start`, `t_end`, `bin_usd`, `tz`, `target_ratio`,
            `exposure`, `jlp_amount`, `carry_csv`, `data_dir`) and rule parameters (see
            `rule_params`; e.g. `window="0.5%"`, `threshold_quantile=0.9`, `boost=0.5`).

    Returns:
        `Backtest` with `.minutes`, `.summary`, `.toggles`, `.plot()`.
    """
    input_kw, rule_kw = _split(dict(kwargs))
    inputs = _inputs(data, hedge_log, input_kw)
    params = rule_params(**rule_kw)
    prepared = Prepared.of(inputs.matrix, inputs.minutes, legacy=params.legacy_formulas)
    return Backtest(inputs, prepared.run(params), prepared.baselines(params))


def sweep(data: Any, hedge_log: Any = None, *, grid: Grid | dict[str, Any] | str,
          objective: str = P.DEFAULT_OBJECTIVE, train_frac: float | None = None,
          walk_forward: tuple[int, int] | None = None, progress: Any = None,
          **kwargs: Any) -> pd.DataFrame:
    """Run every combination of `grid` (a dict name -> values, or the CLI's spec string) and
    rank them by `objective`, best first.

    Returns:
        DataFrame: `rank`, the swept names, every metric. `attrs` hold `objective`, `best`
        (the best set's swept values), `best_params` (all its rule keywords), and with
        `train_frac` `in_sample`/`out_of_sample`, with `walk_forward=(train_min, test_min)`
        `walk_forward` (folds DataFrame) and `walk_forward_total`.
    """
    input_kw, rule_kw = _split(dict(kwargs))
    inputs = _inputs(data, hedge_log, input_kw)
    base = rule_params(**rule_kw)
    parsed = parse_sweep(grid) if isinstance(grid, str) else _grid(grid)
    result = run_sweep(inputs.matrix, inputs.minutes, base, parsed, objective=objective,
                       train_frac=train_frac, progress=progress)
    table = result.table.copy()
    table.attrs.update({
        "objective": objective, "best": {n: _plain(table.iloc[0][n]) for n in parsed},
        "best_params": best_keywords(result.best),
        "in_sample": result.in_sample, "out_of_sample": result.out_of_sample,
        "split_index": result.split_index, "grid": parsed})
    if walk_forward is not None:
        wf = run_walk_forward(inputs.matrix, inputs.minutes, base, parsed,
                              train_min=int(walk_forward[0]), test_min=int(walk_forward[1]),
                              objective=objective)
        table.attrs["walk_forward"] = wf
    return table


def best_keywords(best: P.BacktestParams) -> dict[str, Any]:
    """The rule keywords that reproduce `best` through `rule_params` (None values left out)."""
    return {name: getattr(best, attr) for name, attr in RULE_KEYWORDS.items()
            if getattr(best, attr) is not None}


def _grid(grid: dict[str, Any]) -> Grid:
    spec = ";".join(f"{k}={','.join(str(v) for v in vs)}" for k, vs in grid.items())
    return parse_sweep(spec)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def metrics_of(bt: Backtest, start: int = 0, stop: int | None = None) -> dict[str, float]:
    """`compute_stats` of a run's minutes [start, stop)."""
    return compute_stats(bt.result.ledger, start, stop)
