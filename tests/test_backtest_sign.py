"""One sign convention: the hedge is a short. A hedge log written with negative shorts, one
written with positive shorts, and no log at all give the same P&L per token; boost +1 adds to
the short; carry is paid by the short; the API and the CLI give the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import liqmap
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.cli import main
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix, load_npz

RULE = {"threshold": 80_000.0, "window": 10.0, "release": 3}
EXPOSURE = 2_000.0  # tokens held long


@pytest.fixture(scope="module")
def matrix(real_matrix_path: Path) -> LiqMatrix:
    return load_npz(real_matrix_path)


def _log(tmp: Path, matrix: LiqMatrix, sign: float) -> Path:
    ts = pd.to_datetime(matrix.t_edges_ns[:-1], utc=True)
    keep = ~np.isnan(matrix.spot_usd)
    path = tmp / f"log{sign:+.0f}.csv"
    pd.DataFrame({"timestamp": ts[keep].strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "price": matrix.spot_usd[keep], "position": sign * EXPOSURE,
                  "current_ratio": 1.0, "target_ratio": 1.0}).to_csv(path, index=False)
    return path


def test_three_modes_give_the_same_pnl_per_token(matrix: LiqMatrix, tmp_path: Path) -> None:
    negative = liqmap.backtest(matrix, _log(tmp_path, matrix, -1.0), **RULE)
    positive = liqmap.backtest(matrix, _log(tmp_path, matrix, +1.0), **RULE)
    no_log = liqmap.backtest(matrix, **RULE)  # exposure 1: per token
    per_token = [bt.minutes["pnl_boosted"].to_numpy() / scale
                 for bt, scale in ((negative, EXPOSURE), (positive, EXPOSURE), (no_log, 1.0))]
    assert np.count_nonzero(per_token[2]) > 100
    np.testing.assert_allclose(per_token[0], per_token[1], rtol=1e-12)
    np.testing.assert_allclose(per_token[0], per_token[2], rtol=1e-9, atol=1e-12)
    assert (negative.minutes["position"] == -EXPOSURE).all()
    assert (positive.minutes["position"] == -EXPOSURE).all()
    assert negative.summary_dict["hedge_log_shorts_written_as"] == "negative"
    assert positive.summary_dict["hedge_log_shorts_written_as"] == "positive"


def test_boost_up_adds_to_the_short_and_profits_when_the_price_falls(matrix: LiqMatrix) -> None:
    bt = liqmap.backtest(matrix, exposure=10.0, boost=0.5, **{k: v for k, v in RULE.items()
                                                            if k != "boost"})
    m = bt.minutes
    up = m["direction"] == 1
    assert up.any() and (m["direction"] == -1).any()
    assert (m.loc[up, "boosted_position"] == -15.0).all()  # short 10 → short 15
    assert (m.loc[m["direction"] == -1, "boosted_position"] == -5.0).all()
    move = m["price"].diff().shift(-1)
    gain = (m["boosted_position"] - m["position"]) * move  # the overlay's next-minute P&L
    np.testing.assert_allclose(gain.shift(1).fillna(0), m["pnl_boosted"], atol=1e-9)
    assert (gain[up & (move < 0)] > 0).all()


def test_mixed_signs_in_one_log_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("timestamp,price,position,current_ratio,target_ratio\n"
                    "2025-08-22T10:00:00Z,180,-5,1,1\n2025-08-22T10:01:00Z,180,-5,1,1\n"
                    "2025-08-22T10:02:00Z,180,5,1,1\n")
    with pytest.raises(InputError, match="line 4 has position 5 while 2 other rows have the "
                                         "opposite sign"):
        read_hedge_log(path)


def test_carry_is_paid_by_the_short(matrix: LiqMatrix, tmp_path: Path) -> None:
    bt = liqmap.backtest(matrix, exposure=1.0, carry_apr=0.10, **RULE)
    m = bt.minutes
    held = m["position"].to_numpy()
    dt_years = 60 / (365 * 24 * 3600)
    expected = -held[:-1] * m["price"].to_numpy()[:-1] * 0.10 * np.diff(
        m.index.asi8) / 60e9 * dt_years
    np.testing.assert_allclose(m["carry_raw"].to_numpy()[1:], expected, rtol=1e-9)
    assert bt.summary["Carry plain [USD]"] > 0
    csv = tmp_path / "funding.csv"
    csv.write_text("timestamp,funding_rate\n2025-08-01T00:00:00Z,-0.0000125\n")  # shorts pay
    by_csv = liqmap.backtest(matrix, carry_csv=csv, **RULE)
    np.testing.assert_allclose(by_csv.minutes["carry_raw"], bt.minutes["carry_raw"] * 1.095,
                               rtol=1e-9)


def test_defaults_are_on_for_a_minority_with_baselines(matrix: LiqMatrix) -> None:
    bt = liqmap.backtest(matrix)
    assert 0.05 < bt.summary_dict["metrics"]["boosted_share"] < 0.5
    assert bt.params.fee_bps == 4.5 and bt.params.threshold_quantile == 0.9
    base = bt.summary_dict["baselines"]
    assert base["always_on"]["boosted_share"] == 1.0 and base["never_on"]["n_toggles"] == 0
    assert bt.warnings == []
    mostly_on = liqmap.backtest(matrix, threshold=1.0)
    assert mostly_on.warnings and "compare it with the 'boost always on'" in mostly_on.warnings[0]


def test_cli_output_is_the_api_output(real_matrix_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    try:
        main(["backtest", "--heatmap", str(real_matrix_path), "--window", "0.4%", "--release",
              "3", "--out-dir", str(tmp_path), "--no-plots"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    bt = liqmap.backtest(str(real_matrix_path), window="0.4%", release=3)
    cli = json.loads((tmp_path / "summary.json").read_text())
    assert cli["metrics"] == pytest.approx(
        {k: (None if isinstance(v, float) and np.isnan(v) else v)
         for k, v in bt.summary_dict["metrics"].items()})
    frame = pd.read_csv(tmp_path / "minutes.csv")
    np.testing.assert_allclose(frame["cum_pnl_boosted_net"], bt.minutes["cum_pnl_boosted_net"])
    assert "boost always on (+1)" in out
    series = bt.summary
    assert "Net improvement [USD]" in series and "Time boosted [%]" in series
    from matplotlib.figure import Figure
    assert isinstance(bt.plot(), Figure) and isinstance(bt.plot("ratio"), Figure)


def test_sweep_api_ranks_and_walks_forward(matrix: LiqMatrix) -> None:
    table = liqmap.sweep(matrix, grid={"threshold_quantile": [0.8, 0.9, 0.95],
                                       "window": ["0.25%", "0.5%"]},
                         walk_forward=(720, 360))
    assert len(table) == 6 and (np.diff(table["net_improvement_usd"]) <= 0).all()
    wf = table.attrs["walk_forward"]
    assert len(wf.folds) >= 8
    assert wf.out_of_sample["n_minutes"] == wf.folds["n_minutes"].sum()
    best = liqmap.backtest(matrix, **table.attrs["best_params"])
    assert best.summary_dict["metrics"]["net_improvement_usd"] == pytest.approx(
        table["net_improvement_usd"].iloc[0])


@pytest.mark.parametrize(("market", "price", "bin_usd"), [("ETH", 3_000.0, 1.0),
                                                          ("BTC", 100_000.0, 20.0)])
def test_each_market_in_its_own_units(market: str, price: float, bin_usd: float,
                                      tmp_path: Path) -> None:
    from tests.factories import positions_table, state_table

    from liqmap.store import Store

    store = Store(str(tmp_path))
    t0 = pd.Timestamp("2026-01-05 00:00", tz="UTC")
    books = {}
    for i in range(30):
        ts, p = t0 + pd.Timedelta(minutes=i), price * (1 + 0.002 * np.sin(i / 3))
        books[ts] = (positions_table(ts, 300, seed=i, price_usd=p), p)
        store.write_snapshot(market, books[ts][0], state_table(ts, 300, price_usd=p))
    bt = liqmap.backtest(str(tmp_path), market=market, lookback=10)
    assert bt.summary_dict["units"]["exposure"].startswith(market)
    assert f"Turnover [{market}]" in bt.summary
    m = bt.minutes
    assert (m["liq_below"] > 0).all()
    for ts in m.index[::7]:  # the window is 0.5 % of this market's price, bins are its own
        table, p = books[ts]
        lower = np.floor(np.round(table["liq_price"].to_numpy() / bin_usd, 9)) * bin_usd
        size = table["size_tokens"].to_numpy()
        w = p * 0.005
        assert m.loc[ts, "liq_below"] == pytest.approx(size[(lower >= p - w) & (lower < p)].sum())
        assert m.loc[ts, "liq_above"] == pytest.approx(size[(lower > p) & (lower <= p + w)].sum())


def test_import_liqmap_stays_light_and_backtest_is_callable() -> None:
    import subprocess
    import sys

    code = ("import sys, liqmap; heavy = {'pandas', 'numba', 'matplotlib'} & set(sys.modules); "
            "assert not heavy, heavy; assert callable(liqmap.backtest) and callable(liqmap.sweep)"
            "; import liqmap.backtest.rule; assert callable(liqmap.backtest)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
