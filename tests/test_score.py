"""`liqmap score`: the map's predictions against realized liquidations, worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from liqmap.cli import cli
from liqmap.collect.liquidations import LIQUIDATED
from liqmap.heatmap.markers import liquidation_markers, markers_json
from liqmap.score import score_map
from liqmap.store import Store
from liqmap.store import schema as S

from factories import PARAMS, priced_positions, state_table

T0 = pd.Timestamp("2026-11-24T08:00:00Z")
T1, T2 = T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=2)
L1 = {"pubkey": "L1", "side": "long", "size_usd6": 10_000_000_000, "entry_usd6": 150_000_000,
      "collateral_usd6": 500_000_000, "open_time": T0}  # 20x: level ≈ 143.1
L3 = {"pubkey": "L3", "side": "long", "size_usd6": 2_000_000_000, "entry_usd6": 150_000_000,
      "collateral_usd6": 80_000_000, "open_time": T0}  # 25x: level ≈ 144.6
L2 = {"pubkey": "L2", "side": "long", "size_usd6": 4_000_000_000, "entry_usd6": 150_000_000,
      "collateral_usd6": 400_000_000, "open_time": T0}  # 10x: level ≈ 135.9
S1 = {"pubkey": "S1", "side": "short", "size_usd6": 5_000_000_000, "entry_usd6": 150_000_000,
      "collateral_usd6": 500_000_000, "open_time": T0}  # 10x: level ≈ 164.1
PRICES = {T0: 150.0, T1: 142.0, T2: 150.0}
BOOK = {T0: [L1, L3, L2, S1], T1: [L2, S1], T2: [L2, S1]}


def _state(ts: pd.Timestamp) -> pa.Table:
    row = state_table(ts, len(BOOK[ts]), price_usd=PRICES[ts]).to_pylist()[0]
    row.update(decrease_position_bps=PARAMS.decrease_position_bps,
               trade_impact_fee_scalar=PARAMS.trade_impact_fee_scalar,
               max_leverage_bps=PARAMS.max_leverage_bps, cumulative_interest_rate_now=1_000_000,
               usdc_cumulative_interest_rate_now=1_000_000,
               usdt_cumulative_interest_rate_now=1_000_000)
    return pa.Table.from_pylist([row], schema=S.MARKET_STATE)


def _realized(ts: pd.Timestamp, pubkey: str, kind: str, size_usd: float, level: float
              ) -> dict[str, object]:
    row: dict[str, object] = {f.name: None for f in S.LIQUIDATIONS}
    row.update(ts=ts, slot=1, pubkey=pubkey, owner="o", side="long", size_usd=size_usd,
               size_tokens=size_usd / 150, collateral_usd=1.0, predicted_liq_price=level,
               oracle_price_before=150.0, oracle_price_after=PRICES[ts], kind=kind,
               confirmed=False, ts_before=ts - pd.Timedelta(minutes=1), liq_price_now=level,
               confirm_status="confirmation off")
    return row


REALIZED = [
    _realized(T1, "L1", LIQUIDATED, 10_000.0, 143.1),  # predicted: a hit
    _realized(T1, "L3", "closed", 2_000.0, 144.6),  # predicted, but its trader closed it
    _realized(T2, "X", LIQUIDATED, 1_000.0, 151.0),  # never in the map: a miss
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"))
    for ts, rows in BOOK.items():
        store.write_snapshot("SOL", priced_positions(ts, rows), _state(ts))
    store.write_liquidations("SOL", pa.Table.from_pylist(REALIZED, schema=S.LIQUIDATIONS))
    return store


def test_scores_worked_by_hand(store: Store) -> None:
    from liqmap.score.report import score_store

    s = score_store(store, "SOL").summary
    assert s["intervals_scored"] == 2
    assert s["predicted"] == {"positions": 2, "usd": 12_000.0}  # L1 and L3 at T1
    assert s["realized"]["positions"] == 2 and s["realized"]["usd"] == 11_000.0
    assert s["hits"] == {"positions": 1, "usd": 10_000.0}
    assert s["precision"] == {"by_position": 0.5, "by_volume": pytest.approx(10 / 12)}
    assert s["recall"] == {"by_position": 0.5, "by_volume": pytest.approx(10 / 11)}
    assert s["lead_time_min"]["median"] == 1.0  # L1 was in the map from T0
    assert s["misses"]["positions"] == 1 and s["misses"]["not_in_map"] == 1
    cal = {row["distance_pct"]: row for row in s["calibration"]}
    # the maps at T0 and T1 (the start of each interval): L1 (4.6 % away at T0), L3 (3.6 %)
    # and L2 at T1 (4.3 % above 135.9 at 142) in 2-5 %; L2 and S1 at T0, S1 at T1 beyond 5 %
    assert cal["2-5"]["in_map"] == 3 and cal["2-5"]["predicted"] == 2
    assert cal["2-5"]["realized"] == 1 and cal[">= 5"]["in_map"] == 3
    assert sum(row["in_map"] for row in s["calibration"]) == 6


def test_empty_denominators_are_not_numbers(store: Store) -> None:
    states = pa.concat_tables([_state(T0), _state(T0 + pd.Timedelta(minutes=1))])
    states = states.set_column(4, "oracle_price", pa.array([150.0, 150.0]))
    positions = priced_positions(T0, [L2])
    empty = pd.DataFrame(columns=[f.name for f in S.LIQUIDATIONS])
    s = score_map("SOL", positions, states, empty).summary
    assert s["precision"] == {"by_position": None, "by_volume": None}
    assert s["recall"] == {"by_position": None, "by_volume": None}


def test_score_command_writes_json_png_and_prints_the_table(store: Store, tmp_path: Path
                                                            ) -> None:
    out = tmp_path / "score"
    result = CliRunner().invoke(cli, ["score", "--data-dir", store.root, "--market", "SOL",
                                      "--t-start", "2026-11-24T08:00", "--t-end",
                                      "2026-11-24T08:02", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "50.0 %" in result.output
    summary = json.loads((out / "score.json").read_text())
    assert summary["hits"]["positions"] == 1
    assert (out / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--market", "ETH"], "holds no ETH snapshots"),
    (["--t-start", "2026-11-24T08:02", "--t-end", "2026-11-24T08:00"], "is not before"),
    (["--t-start", "2026-11-25T00:00", "--t-end", "2026-11-25T01:00"], "scoring needs two"),
    (["--t-start", "yesterday-ish"], "Error:"),
])
def test_score_bad_input_is_one_line_and_writes_nothing(store: Store, tmp_path: Path,
                                                        args: list[str], message: str) -> None:
    out = tmp_path / "nothing"
    result = CliRunner().invoke(cli, ["score", "--data-dir", store.root, *args,
                                      "--out-dir", str(out)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0]
    assert not out.exists()


def test_markers_for_the_pictures_and_the_api(store: Store) -> None:
    markers = liquidation_markers(store, "SOL", T0, T2)
    assert markers["pubkey"].tolist() == ["L1", "X"]  # the liquidated ones only
    assert markers["price_usd"].tolist() == [143.1, 151.0]
    payload = markers_json(markers)
    assert payload[0] == {"ts": "2026-11-24T08:01:00Z", "price_usd": 143.1, "size_usd": 10_000.0,
                          "side": "long", "confirmed": False,
                          "confirm_status": "confirmation off", "pubkey": "L1", "signature": None}


def test_heatmap_pictures_draw_the_markers(store: Store, tmp_path: Path) -> None:
    from liqmap.heatmap.build import HeatmapRequest, build_heatmap
    from liqmap.heatmap.render_html import heatmap_html_figure
    from liqmap.heatmap.render_png import heatmap_figure
    from liqmap.heatmap.sources import StoreSource

    heatmap = build_heatmap(StoreSource(store.root, "SOL"),
                            HeatmapRequest(t_start="2026-11-24T08:00", t_end="2026-11-24T08:02"))
    assert heatmap.markers is not None and len(heatmap.markers) == 2
    fig = heatmap_figure(heatmap)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("Realized liquidations (2, $11,000") for label in labels)
    html = heatmap_html_figure(heatmap)
    traces = [t for t in html.data if t.name and t.name.startswith("Realized liquidations")]
    assert len(traces) == 1 and list(traces[0].y) == [143.1, 151.0]


def test_a_miss_the_map_held_says_how_far_its_level_was(store: Store) -> None:
    states = store.read_market_state("SOL")
    positions = store.read_positions("SOL")
    realized = store.read_liquidations("SOL")
    extra = pd.DataFrame([_realized(T1, "L2", LIQUIDATED, 4_000.0, 135.9)])
    extra["market"] = "SOL"
    score = score_map("SOL", positions, states, pd.concat([realized, extra], ignore_index=True))
    miss = score.misses.set_index("pubkey").loc["L2"]
    assert bool(miss["in_map"]) and not bool(miss["predicted"])
    level = positions.filter(pa.compute.equal(positions.column("pubkey"), "L2")
                             ).column("liq_price")[0].as_py()
    assert miss["miss_distance_pct"] == pytest.approx((142.0 - level) / 142.0 * 100)
    assert score.summary["misses"]["median_distance_pct"] == pytest.approx(
        (142.0 - level) / 142.0 * 100)


def test_a_stream_row_between_two_snapshots_is_scored_in_their_interval(store: Store) -> None:
    """The stream records a close to the second (T0 < ts < T1): it belongs to (T0, T1]."""
    states = store.read_market_state("SOL")
    positions = store.read_positions("SOL")
    realized = store.read_liquidations("SOL")
    at_minute = score_map("SOL", positions, states, realized).summary
    realized.loc[realized["pubkey"] == "L1", "ts"] = T0 + pd.Timedelta(seconds=17)
    streamed = score_map("SOL", positions, states, realized).summary
    assert streamed["hits"] == at_minute["hits"] == {"positions": 1, "usd": 10_000.0}
    assert streamed["recall"] == at_minute["recall"]
    assert streamed["realized"] == at_minute["realized"]
    assert streamed["realized"]["outside_scored_intervals"] == 0
