"""Outputs of a backtest: summary dict, printed table, and the files in --out-dir."""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from liqmap import constants as C
from liqmap.backtest.engine import BacktestResult, Ledger
from liqmap.backtest.params import MOSTLY_ON_SHARE, SWEEPABLE, BacktestParams
from liqmap.backtest.plots import (
    default_sweep_axes,
    describe_params,
    render_pnl,
    render_ratio,
    render_sweep,
)
from liqmap.backtest.stats import compute_stats
from liqmap.backtest.sweep import SweepResult, WalkForward
from liqmap.errors import InputError
from liqmap.files import write_bytes

TOP_ROWS: Final = 5
#: Metrics compared in and out of sample in the printed table.
SPLIT_METRICS: Final = ("cum_pnl_raw_usd", "cum_pnl_boosted_net_usd", "net_improvement_usd",
                        "cost_usd", "boosted_share", "n_toggles", "hit_rate", "max_drawdown_usd")


def build_summary(result: BacktestResult, *, market: str, source: str,
                  sweep: SweepResult | None = None, baselines: Mapping[str, Ledger] | None = None,
                  walk_forward: WalkForward | None = None,
                  notes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything summary.json holds: inputs, coverage, parameters, metrics, the two baselines
    (boost never on, always on), warnings, sweep and walk-forward outcomes."""
    times = result.minutes.timestamps()
    metrics = compute_stats(result.ledger)
    summary: dict[str, Any] = {
        "market": market,
        "source": source,
        "t_start": f"{times[0]:{C.ISO_SECONDS_UTC}}",
        "t_end": f"{times[-1]:{C.ISO_SECONDS_UTC}}",
        "units": {"exposure": f"{market} tokens, long, hedged by a short",
                  "pnl": "USD", "window_sums": f"{market} tokens"},
        "coverage": result.minutes.coverage.to_dict(),
        "params": result.params.to_dict(),
        "metrics": metrics,
        "baselines": {k: compute_stats(v) for k, v in (baselines or {}).items()},
        "warnings": warnings_for(metrics),
        **dict(notes or {}),
    }
    if sweep is not None:
        summary["sweep"] = _sweep_summary(sweep, times)
    if walk_forward is not None:
        summary["walk_forward"] = {"folds": walk_forward.folds.to_dict(orient="records"),
                                   "out_of_sample": walk_forward.out_of_sample}
    return summary


def warnings_for(metrics: Mapping[str, float]) -> list[str]:
    """Warnings a risk manager must see next to the numbers."""
    out = []
    share = metrics["boosted_share"]
    if share > MOSTLY_ON_SHARE:
        out.append(f"the boost is on {100 * share:.1f} % of the minutes (more than "
                   f"{100 * MOSTLY_ON_SHARE:.0f} %): this set holds a bigger short rather than "
                   "timing one; compare it with the 'boost always on' baseline")
    return out


def _sweep_summary(sweep: SweepResult, times: pd.DatetimeIndex) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_sets": len(sweep.table),
        "objective": sweep.objective,
        "grid": sweep.grid,
        "best": {name: getattr(sweep.best, attr) for name, attr in SWEEPABLE.items()
                 if name in sweep.grid},
        "ranked_on": "all minutes (in sample)",
    }
    if sweep.split_index is not None:
        out["ranked_on"] = "train part"
        out["test_start"] = f"{times[sweep.split_index]:{C.ISO_SECONDS_UTC}}"
        out["state_at_test_start"] = "carried over from the train part"
        out["in_sample"] = sweep.in_sample
        out["out_of_sample"] = sweep.out_of_sample
    return out


def format_summary(summary: Mapping[str, Any]) -> str:
    """The table printed after a run (plain text, fixed width)."""
    m = summary["metrics"]
    cov = summary["coverage"]
    lines = [
        f"{summary['market']} backtest, {summary['t_start']} .. {summary['t_end']} "
        f"({cov['n_used']:,} minutes, {cov['n_gap']:,} without matrix data)",
        f"rule: {_params_line(summary)}",
        "",
        f"{'':28}{'raw':>14}{'boosted':>14}{'boosted net':>14}",
        f"{'cumulative P&L (USD)':28}{m['cum_pnl_raw_usd']:>14,.2f}"
        f"{m['cum_pnl_boosted_usd']:>14,.2f}{m['cum_pnl_boosted_net_usd']:>14,.2f}",
        f"{'difference vs raw (USD)':28}{'':>14}{m['improvement_usd']:>14,.2f}"
        f"{m['net_improvement_usd']:>14,.2f}",
        f"{'costs (USD)':28}{'':>14}{'':>14}{m['cost_usd']:>14,.2f}",
        f"{'time boosted':28}{m['boosted_minutes']:,.0f} min ({_pct(m['boosted_share'])})",
        f"{'toggles':28}on {m['n_on']:.0f}, off {m['n_off']:.0f}, "
        f"reverse {m['n_reverse']:.0f}",
        f"{'hit rate':28}{_pct(m['hit_rate'])}",
        f"{'turnover':28}{m['turnover_tokens']:,.2f} tokens, {m['turnover_usd']:,.2f} USD",
        f"{'max drawdown, net − raw':28}{m['max_drawdown_usd']:,.2f} USD",
    ]
    if m["carry_raw_usd"] or m["carry_boosted_usd"]:
        lines.insert(7, f"{'carry of the short (USD)':28}{m['carry_raw_usd']:>14,.2f}"
                        f"{'':>14}{m['carry_boosted_usd']:>14,.2f}")
    lines += _format_baselines(summary)
    if cov["n_hedge_outside_matrix"] or cov["n_matrix_without_hedge"]:
        lines.append(f"{'unmatched minutes':28}hedge log only {cov['n_hedge_outside_matrix']:,}"
                     f", matrix only {cov['n_matrix_without_hedge']:,}")
    if "sweep" in summary:
        lines += ["", *_format_sweep(summary["sweep"])]
    if "walk_forward" in summary:
        lines += ["", *_format_walk_forward(summary["walk_forward"])]
    lines += [f"WARNING: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines)


def _format_baselines(summary: Mapping[str, Any]) -> list[str]:
    base = summary.get("baselines") or {}
    if not base:
        return []
    rows = [("this rule", summary["metrics"]), ("boost never on (plain hedge)",
                                                 base["never_on"]),
            ("boost always on (+1)", base["always_on"])]
    lines = ["", f"{'baselines, same costs':28}{'net P&L (USD)':>16}{'time boosted':>14}"]
    for label, m in rows:
        lines.append(f"{label:28}{m['cum_pnl_boosted_net_usd']:>16,.2f}"
                     f"{_pct(m['boosted_share']):>14}")
    return lines


def _format_walk_forward(wf: Mapping[str, Any]) -> list[str]:
    folds, total = wf["folds"], wf["out_of_sample"]
    lines = [f"walk-forward: {len(folds)} folds, each chooses on its train window and is "
             "scored on the next test window"]
    for f in folds:
        lines.append(f"  fold {f['fold']:>2}  test {f['test_start']:%m-%d %H:%M} .. "
                     f"{f['test_end']:%m-%d %H:%M}  net improvement "
                     f"{_num(f.get('net_improvement_usd', float('nan'))):>12} USD, boosted "
                     f"{_pct(f.get('boosted_share', float('nan')))}")
    lines.append(f"  out of sample, all folds: net improvement "
                 f"{_num(total.get('net_improvement_usd', float('nan')))} USD, boosted "
                 f"{_pct(total.get('boosted_share', float('nan')))}")
    return lines


def _params_line(summary: Mapping[str, Any]) -> str:
    return describe_params(BacktestParams(**summary["params"]))


def _format_sweep(sweep: Mapping[str, Any]) -> list[str]:
    best = ", ".join(f"{k}={v:g}" for k, v in sweep["best"].items())
    lines = [f"sweep: {sweep['n_sets']:,} sets ranked by {sweep['objective']} on "
             f"{sweep['ranked_on']}", f"best: {best}"]
    if "out_of_sample" in sweep:
        lines.append(f"{'':28}{'in sample':>14}{'out of sample':>16}   (test from "
                     f"{sweep['test_start']})")
        for key in SPLIT_METRICS:
            lines.append(f"{key:28}{_num(sweep['in_sample'][key]):>14}"
                         f"{_num(sweep['out_of_sample'][key]):>16}")
    else:
        lines.append("(ranked and reported on the same minutes; add --train-frac 0.5 for an "
                     "out-of-sample check)")
    return lines


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f} %"


def _num(x: float) -> str:
    if isinstance(x, int):
        return f"{x:,}"
    return "n/a" if math.isnan(x) else f"{x:,.4g}" if abs(x) < 1 else f"{x:,.2f}"


def render_outputs(result: BacktestResult, summary: Mapping[str, Any], *, plots: bool = True,
                   sweep: SweepResult | None = None,
                   sweep_axes: tuple[str, str | None] | None = None,
                   baselines: Mapping[str, Ledger] | None = None) -> dict[str, bytes]:
    """File name -> content of every output, built in memory so a failure writes nothing."""
    files = {
        "minutes.csv": _csv(result.minutes_frame()),
        "toggles.csv": _csv(result.toggles_frame()),
        "summary.json": (json.dumps(_json_safe(summary), indent=2) + "\n").encode(),
    }
    if sweep is not None:
        files["sweep.csv"] = _csv(sweep.table)
    if "walk_forward" in summary:
        files["walk_forward.csv"] = _csv(pd.DataFrame(summary["walk_forward"]["folds"]))
    if plots:
        market = summary["market"]
        files["ratio.png"] = _png(render_ratio(result, market))
        files["pnl.png"] = _png(render_pnl(result, summary["metrics"], market,
                                           (baselines or {}).get("always_on")))
        axes = sweep_axes or (default_sweep_axes(sweep.grid) if sweep is not None else None)
        if sweep is not None and axes is not None:
            title = f"{market} sweep of {len(sweep.table):,} sets, ranked on " \
                    f"{summary['sweep']['ranked_on']}"
            files["sweep.png"] = _png(render_sweep(sweep.table, sweep.objective, axes, title))
    return files


def check_sweep_axes(text: str | None, grid: Mapping[str, list[float]]
                     ) -> tuple[str, str | None] | None:
    """Parse `--sweep-axes a,b` (or `a`) against the swept names; None when not given."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in grid]
    if not 1 <= len(names) <= 2 or unknown or len(set(names)) != len(names):
        raise InputError(f"--sweep-axes {text!r} must name one or two different swept "
                         f"parameters, from {', '.join(grid)}")
    return names[0], names[1] if len(names) == 2 else None


def write_outputs(out_dir: str | Path, files: Mapping[str, bytes]) -> list[Path]:
    """Create `out_dir` and write each file atomically (temporary file, then rename)."""
    root = Path(out_dir)
    new = [p for p in (root, *root.parents) if not p.exists()]  # folders this call creates
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --out-dir {root}: {exc.strerror}; pick a writable "
                         "directory") from exc
    written: list[Path] = []
    try:
        for name, content in files.items():
            write_bytes(root / name, content)
            written.append(root / name)
    except OSError:  # a full disk: leave nothing half done
        for path in written:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            for folder in new:
                folder.rmdir()
        raise
    return written


def _csv(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime(C.ISO_SECONDS_UTC)
    return out.to_csv(index=False).encode()


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    """NaN/inf -> null, numpy scalars -> Python (JSON has neither)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return f"{value:{C.ISO_SECONDS_UTC}}"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
