"""The backtest on the real 72-hour SOL matrix, with a desk-style hedge log derived from its
price series and written to a CSV: library runs, the CLI end to end, sweeps, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from liqmap.backtest.align import MinuteInputs, align_hedge_log
from liqmap.backtest.engine import run_backtest
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.backtest.params import BacktestParams as _Params
from liqmap.backtest.stats import compute_stats
from liqmap.backtest.sweep import parse_sweep, run_sweep
from liqmap.cli import main
from liqmap.matrix import LiqMatrix, load_npz

HKT = "Asia/Hong_Kong"
FIXED_80K = ["--threshold", "80000", "--window", "10"]
LEGACY_300 = ["--threshold", "300", "--window", "10", "--fee-bps", "0", "--slippage-bps", "0"]


def BacktestParams(**kw: object) -> _Params:
    """The tests below were written for a 10 USD window and no costs unless they say so."""
    return _Params(**{"window_usd": 10.0, "fee_bps": 0.0, "slippage_bps": 0.0, **kw})  # type: ignore[arg-type]
DESK_COLUMNS = {"timestamp": "@timestamp per minute", "price": "SOL_HYPE_perpPrice",
                "position": "SOLCurrentPos", "current": "CurrentSOL_Pct",
                "target": "TargetSOL_Pct", "jlp_amount": "JLP Amount", "jlp_price": "JLP Price"}
MINUTES_COLUMNS = [  # the names, in its order, then the extras
    "timestamp", "price", "liq_above", "liq_below", "trigger", "direction", "ratio",
    "boosted_ratio", "target_ratio", "pnl_raw", "pnl_boosted", "cost", "cum_pnl_raw",
    "cum_pnl_boosted", "cum_pnl_boosted_net", "threshold", "gap", "position",
    "boosted_position", "target_position", "exposure", "carry_raw", "carry_boosted",
    "cum_pnl_raw_net"]


@pytest.fixture(scope="module")
def matrix(real_matrix_path: Path) -> LiqMatrix:
    return load_npz(real_matrix_path)


@pytest.fixture(scope="module")
def desk_csv(tmp_path_factory: pytest.TempPathFactory, matrix: LiqMatrix) -> Path:
    """One row per matrix minute in the desk's export format: Hong Kong wall times, the
    matrix's price, a drifting exposure and ratios, thousands separators."""
    i = np.arange(matrix.n_columns)
    target = np.round(0.9 + 0.1 * np.sin(i / 400), 4)
    current = np.round(target + 0.05 * np.sin(i / 37), 4)
    position = np.round((50_000 + 5_000 * np.sin(i / 700)) * current, 2)
    wall = pd.to_datetime(matrix.t_edges_ns[:-1], utc=True).tz_convert(HKT).tz_localize(None)
    frame = pd.DataFrame({
        DESK_COLUMNS["timestamp"]: wall.strftime("%Y-%m-%d %H:%M:%S"),
        DESK_COLUMNS["price"]: matrix.spot_usd,
        DESK_COLUMNS["position"]: [f"{p:,.2f}" for p in position],
        DESK_COLUMNS["current"]: current, DESK_COLUMNS["target"]: target,
        DESK_COLUMNS["jlp_amount"]: "1,000,000", DESK_COLUMNS["jlp_price"]: 4.5})
    path = tmp_path_factory.mktemp("desk") / "desk_export.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def minutes(matrix: LiqMatrix, desk_csv: Path) -> MinuteInputs:
    return align_hedge_log(matrix, read_hedge_log(desk_csv, tz=HKT))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(["backtest", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- library runs

def test_hedge_log_lines_up_with_every_matrix_minute(minutes: MinuteInputs,
                                                     matrix: LiqMatrix) -> None:
    assert minutes.column.tolist() == list(range(matrix.n_columns))
    assert minutes.coverage.n_gap == 312
    assert np.array_equal(minutes.price_usd, matrix.spot_usd)


@pytest.mark.parametrize("legacy", [False, True])
def test_boost_zero_gives_boosted_equal_to_raw_exactly(matrix: LiqMatrix,
                                                       minutes: MinuteInputs,
                                                       legacy: bool) -> None:
    params = BacktestParams(boost=0.0, threshold_tokens=300.0 if legacy else 80_000.0,
                            legacy_formulas=legacy, reversal=True)
    result = run_backtest(matrix, minutes, params)
    assert np.count_nonzero(result.ledger.direction) > 100  # the rule did switch on
    assert np.array_equal(result.ledger.pnl_boosted_usd, result.ledger.book.pnl_raw_usd)
    frame = result.minutes_frame()
    assert np.array_equal(frame["cum_pnl_boosted"], frame["cum_pnl_raw"])
    assert frame["cum_pnl_raw"].iloc[-1] != 0


@pytest.mark.parametrize("params", [
    BacktestParams(threshold_tokens=70_000.0, release=3, reversal=True, fee_bps=2.0),
    BacktestParams(threshold_quantile=0.8, lookback_min=120, confirm=2, reversal=True),
    BacktestParams(threshold_tokens=300.0, legacy_formulas=True, reversal=True),
], ids=["fixed", "quantile", "legacy"])
def test_decisions_do_not_look_ahead(matrix: LiqMatrix, minutes: MinuteInputs,
                                     params: BacktestParams) -> None:
    cut = 2500
    base = run_backtest(matrix, minutes, params)
    rng = np.random.default_rng(1)
    z = matrix.z.copy()
    z[:, cut + 1:] *= rng.uniform(0.0, 3.0, size=z[:, cut + 1:].shape)
    later = np.arange(minutes.n) > cut
    changed_matrix = replace(matrix, z=z)
    changed_minutes = replace(minutes, price_usd=minutes.price_usd + later * 3.0,
                              position_tokens=minutes.position_tokens * (1 + later))
    changed = run_backtest(changed_matrix, changed_minutes, params)
    assert not np.array_equal(changed.ledger.direction[cut + 1:], base.ledger.direction[cut + 1:])
    for name in ("direction", "boosted_ratio", "pnl_boosted_usd", "cost_usd"):
        assert np.array_equal(getattr(changed.ledger, name)[:cut + 1],
                              getattr(base.ledger, name)[:cut + 1]), name


def test_sweep_rows_equal_single_runs(matrix: LiqMatrix, minutes: MinuteInputs) -> None:
    base = BacktestParams(fee_bps=1.0, slippage_bps=2.0, reversal=True)
    grid = parse_sweep("window=5,10;threshold_quantile=0.7,0.95;lookback=60,240;release=1,3")
    result = run_sweep(matrix, minutes, base, grid)
    assert len(result.table) == 16
    objective = result.table["net_improvement_usd"].to_numpy()
    assert (np.diff(objective) <= 0).all()
    for _, row in result.table.iterrows():
        params = replace(base, window_usd=row["window"], lookback_min=int(row["lookback"]),
                         threshold_quantile=row["threshold_quantile"], release=int(row["release"]))
        single = compute_stats(run_backtest(matrix, minutes, params).ledger)
        assert row["net_improvement_usd"] == single["net_improvement_usd"]
        assert row["n_toggles"] == single["n_toggles"]


def test_train_split_ranks_on_train_only(matrix: LiqMatrix, minutes: MinuteInputs) -> None:
    grid = parse_sweep("threshold_quantile=0.6,0.9;release=2,6")
    result = run_sweep(matrix, minutes, BacktestParams(lookback_min=90), grid,
                       objective="max_drawdown_usd", train_frac=0.4)
    split = result.split_index
    assert split is not None
    ts = minutes.ts_ns
    assert ts[split - 1] < ts[0] + 0.4 * (ts[-1] - ts[0]) <= ts[split]
    assert (np.diff(result.table["max_drawdown_usd"]) >= 0).all()  # smaller is better
    # the state at a minute depends on the past only: a fresh run on the train part agrees
    train = MinuteInputs(**{f: getattr(minutes, f)[:split] for f in (
        "ts_ns", "column", "price_usd", "position_tokens", "current_ratio", "target_ratio",
        "gap")}, coverage=minutes.coverage)
    fresh = compute_stats(run_backtest(matrix, train, result.best).ledger)
    assert result.in_sample == fresh
    assert result.out_of_sample == compute_stats(result.best_result.ledger, split, minutes.n)
    assert result.out_of_sample is not None
    assert result.out_of_sample["n_minutes"] == minutes.n - split


# --------------------------------------------------------------------------- the old script

def old_script(csv_path: Path, npz_path: Path, threshold: float, cooldown: int,
               boost: float) -> pd.DataFrame:
    """The old script's numbers as the issue describes them, row i against matrix column i."""
    df = pd.read_csv(csv_path).rename(columns={v: k for k, v in DESK_COLUMNS.items()})
    for col in ("price", "position", "current", "target"):
        df[col] = df[col].astype(str).str.replace(",", "").astype(float)
    df["timestamp"] = pd.to_datetime(df["timestamp"]).dt.tz_localize(HKT).dt.tz_convert("UTC")
    with np.load(npz_path) as data:
        z, price_bins = data["Z"], data["y_edges"][:-1]
    boosted_on, confirm, release, direction = False, 0, 0, 0
    rows = []
    for i, p in enumerate(df["price"]):
        upper = z[(price_bins > p) & (price_bins <= p + 10), i].sum() / p
        lower = z[(price_bins >= p - 10) & (price_bins < p), i].sum() / p
        new_direction = 1 if lower > upper else -1
        if upper > threshold or lower > threshold:
            confirm += 1
            if boosted_on and release > 0 and new_direction != direction:
                direction, release, confirm = new_direction, 0, 1
            else:
                release = 0
        else:
            confirm, release = 0, release + 1
        if not boosted_on and confirm >= 1:
            boosted_on, direction = True, new_direction
        if boosted_on and release >= cooldown:
            boosted_on, direction = False, 0
        rows.append((upper, lower, direction, df["current"][i] + direction * boost))
    out = pd.DataFrame(rows, columns=["upper", "lower", "direction", "boosted_pct"])
    prev, price_diff = df.shift(1), df["price"].diff()
    prev_boosted = out["boosted_pct"].shift(1)
    raw = (prev["position"] - prev["position"] / prev["current"] * prev["target"]) * price_diff
    boosted = (prev["position"] - prev["position"] / prev_boosted * prev["target"]) * price_diff
    out["loss_raw"] = raw.fillna(0)
    out["loss_boosted"] = boosted.fillna(0)
    out["timestamp"] = df["timestamp"]
    return out


def test_legacy_formulas_match_the_old_script(desk_csv: Path, real_matrix_path: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--heatmap", str(real_matrix_path), "--hedge-log", str(desk_csv),
                            "--tz", HKT, "--legacy-formulas", "--reversal", *LEGACY_300,
                            "--release", "4", "--out-dir", str(tmp_path), "--no-plots"], capsys)
    assert code == 0, err
    ours = pd.read_csv(tmp_path / "minutes.csv")
    old = old_script(desk_csv, real_matrix_path, threshold=300, cooldown=4, boost=0.5)
    assert len(ours) == len(old) == 4095
    assert (ours["timestamp"] == old["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).all()
    assert ours["direction"].tolist() == old["direction"].tolist()
    changes = np.diff(old["direction"].to_numpy())
    assert (changes != 0).sum() > 20 and ((old["direction"] == 1).any() and
                                          (old["direction"] == -1).any())
    toggles = pd.read_csv(tmp_path / "toggles.csv")
    assert set(toggles["event"]) == {"on", "off", "reverse"}
    np.testing.assert_allclose(ours["liq_above"], old["upper"], rtol=1e-12)
    np.testing.assert_allclose(ours["liq_below"], old["lower"], rtol=1e-12)
    np.testing.assert_allclose(ours["boosted_ratio"], old["boosted_pct"], rtol=1e-15)
    np.testing.assert_allclose(ours["pnl_raw"], old["loss_raw"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ours["pnl_boosted"], old["loss_boosted"], rtol=1e-12,
                               atol=1e-9)
    np.testing.assert_allclose(ours["cum_pnl_boosted"], old["loss_boosted"].cumsum(),
                               rtol=1e-9, atol=1e-6)


# --------------------------------------------------------------------------- the CLI

def test_cli_run_writes_every_output(desk_csv: Path, real_matrix_path: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "new" / "run"
    code, out, err = run_cli(["--heatmap", str(real_matrix_path), "--hedge-log", str(desk_csv),
                              "--tz", HKT, *FIXED_80K, "--reversal", "--fee-bps",
                              "2", "--slippage-bps", "3", "--out-dir", str(out_dir)], capsys)
    assert code == 0, err
    for name in ("minutes.csv", "toggles.csv", "summary.json", "ratio.png", "pnl.png"):
        assert (out_dir / name).stat().st_size > 0, name
    for name in ("ratio.png", "pnl.png"):
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    minutes = pd.read_csv(out_dir / "minutes.csv")
    assert list(minutes.columns) == MINUTES_COLUMNS
    net = minutes["cum_pnl_boosted"] - minutes["cost"].cumsum()
    np.testing.assert_allclose(minutes["cum_pnl_boosted_net"], net, rtol=1e-9, atol=1e-9)
    summary = json.loads((out_dir / "summary.json").read_text())
    metrics = summary["metrics"]
    assert metrics["cost_usd"] > 0
    assert metrics["n_toggles"] == len(pd.read_csv(out_dir / "toggles.csv"))
    assert metrics["cum_pnl_raw_usd"] == pytest.approx(minutes["cum_pnl_raw"].iloc[-1])
    assert summary["coverage"]["n_gap"] == 312
    for text in ("cumulative P&L (USD)", "hit rate", "max drawdown", "time boosted",
                 "turnover", "toggles"):
        assert text in out


def test_cli_without_hedge_log_is_per_token(real_matrix_path: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--heatmap", str(real_matrix_path), *FIXED_80K,
                            "--t-start", "2025-08-24T00:00", "--t-end", "2025-08-24T11:59",
                            "--exposure", "3", "--out-dir", str(tmp_path), "--no-plots"], capsys)
    assert code == 0, err
    minutes = pd.read_csv(tmp_path / "minutes.csv")
    assert len(minutes) == 720
    assert (minutes["pnl_raw"] == 0).all()
    held = (minutes["boosted_position"] - minutes["position"]).shift(1)
    expected = (held * minutes["price"].diff()).fillna(0)
    np.testing.assert_allclose(minutes["pnl_boosted"], expected, atol=1e-9)
    assert set(held.dropna().round(12)) <= {0.0, 1.5, -1.5}  # 3 tokens × boost 0.5


def test_cli_sweep_with_train_split(desk_csv: Path, real_matrix_path: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli([
        "--heatmap", str(real_matrix_path), "--hedge-log", str(desk_csv), "--tz", HKT,
        "--sweep", "threshold=40000:100000:20000;window=5,10;release=2,5;boost=0.25,0.5",
        "--sweep-axes", "window,threshold", "--train-frac", "0.5", "--fee-bps", "2",
        "--out-dir", str(tmp_path)], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == 4 * 2 * 2 * 2
    assert table["rank"].tolist() == list(range(1, 33))
    assert (np.diff(table["net_improvement_usd"]) <= 0).all()
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "summary.json").read_text())
    sweep = summary["sweep"]
    assert sweep["best"] == {k: table.iloc[0][k] for k in ("threshold", "window", "release",
                                                           "boost")}
    assert sweep["in_sample"]["net_improvement_usd"] == pytest.approx(
        table.iloc[0]["net_improvement_usd"])
    assert set(sweep["out_of_sample"]) == set(sweep["in_sample"])
    assert "out of sample" in out


def _one_line_error(code: int, err: str) -> str:
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.mark.parametrize(("rows", "message"), [
    ("timestamp,price,position\n2025-08-23 00:00,200,1\n", "lacks column(s) current_ratio"),
    ("timestamp,price,position,current_ratio,target_ratio\nnoon,200,1,1,1\n",
     "cannot parse timestamp 'noon'"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-23 00:00,200,1,0,1\n",
     "has current_ratio 0"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-23 00:00,nan,1,1,1\n",
     "has no price"),
    ("timestamp,price,position,current_ratio,target_ratio\n2024-01-01 00:00,200,1,1,1\n"
     "2024-01-01 00:01,200,1,1,1\n",
     "the hedge log (2024-01-01 00:00 UTC .. 2024-01-01 00:01 UTC) and the matrix "
     "(2025-08-22 04:37 UTC .. 2025-08-25 00:51 UTC) share 0 minute(s)"),
])
def test_bad_hedge_log_is_one_line_and_writes_nothing(
        rows: str, message: str, real_matrix_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.csv"
    log.write_text(rows)
    out_dir = tmp_path / "out"
    code, _, err = run_cli(["--heatmap", str(real_matrix_path), "--hedge-log", str(log),
                            "--out-dir", str(out_dir)], capsys)
    assert message in _one_line_error(code, err)
    assert not out_dir.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--sweep", "window=5;speed=2"], "cannot sweep 'speed'"),
    (["--sweep", "window=5:10"], "sweep values window=5:10 are malformed"),
    (["--sweep", "window=5,10", "--sweep-axes", "boost"], "--sweep-axes 'boost' must name"),
    (["--train-frac", "0.5"], "--train-frac, --walk-forward and --sweep-axes work with --sweep"),
    (["--walk-forward", "1h"], "--walk-forward and --sweep-axes work with --sweep"),
    (["--sweep", "window=5,10", "--walk-forward", "3d,1d"], "does not fit the 4,095 minutes"),
    (["--threshold", "1", "--threshold-quantile", "0.9"], "not both"),
    (["--window", "ten"], "--window 'ten' is not a share of the price"),
    (["--sweep", "window=5,10", "--train-frac", "1.5"], "--train-frac must be between 0 and 1"),
    (["--window", "0"], "window must be > 0"),
    (["--threshold-quantile", "2"], "threshold_quantile must be > 0 and <= 1"),
    (["--target", "0"], "--target 0 must be > 0"),
    (["--legacy-formulas", "--boost", "1", *LEGACY_300],
     "the legacy boosted loss divides by the boosted ratio, which is 0"),
    (["--t-start", "2025-08-30"], "has 0 priced minute(s) in the window"),
    (["--t-start", "someday"], "cannot parse --t-start 'someday'"),
])
def test_bad_options_are_one_line(args: list[str], message: str, real_matrix_path: Path,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--heatmap", str(real_matrix_path), "--out-dir",
                            str(tmp_path / "out"), *args], capsys)
    assert message in _one_line_error(code, err)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the store

def _store_table(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema},
                    schema=schema)


def _write_market_state(root: Path, matrix: LiqMatrix, cols: np.ndarray,
                        delta_tokens: np.ndarray, supply_tokens: float | None = None) -> None:
    from liqmap.store import Store
    from liqmap.store import schema as S

    ts = pa.array(matrix.t_edges_ns[cols] // 1000, pa.int64()).cast(S.TS)
    table = _store_table(S.MARKET_STATE, {
        "ts": ts, "oracle_price": pa.array(matrix.spot_usd[cols]),
        "jlp_net_delta_tokens": pa.array(delta_tokens),
        "jlp_supply_tokens": pa.array(np.full(cols.size, supply_tokens or np.nan))})
    if supply_tokens is None:  # a store written before the column existed
        table = table.drop_columns(["jlp_supply_tokens"])
        root.mkdir(parents=True, exist_ok=True)
        day = pd.Timestamp(int(matrix.t_edges_ns[cols[0]]), tz="UTC")
        part = root / "market_state" / "market=SOL" / f"date={day:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq

        pq.write_table(table, part / f"day-{day:%Y%m%d}.parquet")
        return
    Store(str(root)).write_bulk("market_state", "SOL", table)


def test_jlp_amount_is_the_holders_share_of_the_stored_delta(
        real_matrix_path: Path, matrix: LiqMatrix, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cols = np.arange(3000, 3060)
    delta = 40_000.0 + 100.0 * np.arange(cols.size)
    delta[10:20] = np.nan  # an unreadable stretch keeps the last known delta
    _write_market_state(tmp_path / "store", matrix, cols, delta, supply_tokens=2_000_000.0)
    start = pd.Timestamp(int(matrix.t_edges_ns[3000]), tz="UTC")
    code, _, err = run_cli([
        "--heatmap", str(real_matrix_path), "--data-dir", str(tmp_path / "store"),
        "--jlp-amount", "5000", "--target", "0.5", "--t-start", f"{start:%Y-%m-%dT%H:%M}",
        "--t-end", f"{start + pd.Timedelta(minutes=59):%Y-%m-%dT%H:%M}",
        "--out-dir", str(tmp_path / "out"), "--no-plots"], capsys)
    assert code == 0, err
    minutes = pd.read_csv(tmp_path / "out" / "minutes.csv")
    exposure = 5000 / 2_000_000 * pd.Series(delta).ffill().to_numpy()  # SOL held via JLP
    np.testing.assert_allclose(minutes["exposure"], exposure, rtol=1e-12)
    np.testing.assert_allclose(minutes["position"], -0.5 * exposure, rtol=1e-12)  # the short


def test_jlp_amount_on_a_store_without_the_supply_is_one_line(
        real_matrix_path: Path, matrix: LiqMatrix, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cols = np.arange(3000, 3060)
    _write_market_state(tmp_path / "store", matrix, cols, np.full(cols.size, 4e4))
    start = pd.Timestamp(int(matrix.t_edges_ns[3000]), tz="UTC")
    code, _, err = run_cli([
        "--heatmap", str(real_matrix_path), "--data-dir", str(tmp_path / "store"),
        "--jlp-amount", "5000", "--t-start", f"{start:%Y-%m-%dT%H:%M}",
        "--out-dir", str(tmp_path / "out"), "--no-plots"], capsys)
    assert "has no jlp_supply_tokens" in _one_line_error(code, err)


def test_matrix_from_store_matches_the_npz(real_matrix_path: Path, matrix: LiqMatrix,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # the store path: one position per non-empty matrix cell (liq price at the bin centre) for
    # 30 gap-free minutes must give the npz run's window sums
    from liqmap.store import Store
    from liqmap.store import schema as S

    cols = np.arange(3000, 3030)
    assert not matrix.gap_mask[cols].any()
    root = tmp_path / "store"
    _write_market_state(root, matrix, cols, np.ones(cols.size))
    centres = (matrix.y_edges_usd[:-1] + matrix.y_edges_usd[1:]) / 2
    bins, at = np.nonzero(matrix.z[:, cols])
    ts = pa.array(matrix.t_edges_ns[cols][at] // 1000, pa.int64()).cast(S.TS)
    Store(str(root)).write_bulk("positions", "SOL", _store_table(S.POSITIONS, {
        "ts": ts, "pubkey": pa.array([f"p{b}" for b in bins]),
        "side": pa.array(np.where(centres[bins] < matrix.spot_usd[cols][at], "long", "short"))
        .dictionary_encode().cast(S.SIDE),
        "liq_price": pa.array(centres[bins]), "size_tokens": pa.array(matrix.z[bins, cols[at]])}))
    window = ["--t-start", f"{pd.Timestamp(int(matrix.t_edges_ns[3000]), tz='UTC'):%Y-%m-%dT%H:%M}",
              "--t-end", f"{pd.Timestamp(int(matrix.t_edges_ns[3029]), tz='UTC'):%Y-%m-%dT%H:%M}"]
    common = ["--no-plots", "--threshold", "60000", "--window", "10", *window]
    code, _, err = run_cli(["--data-dir", str(root), "--out-dir", str(tmp_path / "store_out"),
                            *common], capsys)
    assert code == 0, err
    code, _, err = run_cli(["--heatmap", str(real_matrix_path), "--out-dir",
                            str(tmp_path / "npz_out"), *common], capsys)
    assert code == 0, err
    from_store = pd.read_csv(tmp_path / "store_out" / "minutes.csv")
    from_npz = pd.read_csv(tmp_path / "npz_out" / "minutes.csv")
    assert len(from_store) == len(from_npz) == 30
    for col in ("liq_above", "liq_below", "direction"):
        np.testing.assert_allclose(from_store[col], from_npz[col], rtol=1e-9)
