"""Per-market defaults: the bin follows the price on a 1-2-5 grid, the window and the range
come from liqmap.constants, and every command takes them from `default_bin_usd`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from liqmap import constants as C
from liqmap.cli import cli
from liqmap.heatmap import (
    HeatmapRequest,
    StoreSource,
    build_heatmap,
    build_levels,
    default_bin_usd,
    default_price_margin,
)
from liqmap.heatmap.defaults import round_125
from liqmap.store import Store

from factories import minutes, snapshot

PRICES = {"SOL": 150.0, "ETH": 3_500.0, "BTC": 100_000.0}


@pytest.mark.parametrize(("value", "expected"), [
    (0.075, 0.1), (0.0999, 0.1), (0.14, 0.1), (0.15, 0.2), (0.3, 0.2), (0.4, 0.5), (1.75, 2.0),
    (3.0, 2.0), (3.3, 5.0), (50.0, 50.0), (30.0, 20.0), (80.0, 100.0), (7e-5, 5e-5),
])
def test_round_125_is_nearest_on_a_log_scale(value: float, expected: float) -> None:
    assert round_125(value) == expected


@pytest.mark.parametrize(("market", "price", "bin_usd"), [
    ("SOL", 150.0, 0.1), ("SOL", 230.0, 0.1), ("ETH", 3_500.0, 2.0), ("ETH", 2_000.0, 1.0),
    ("BTC", 100_000.0, 50.0), ("BTC", 60_000.0, 20.0),
])
def test_default_bin_is_about_five_hundredths_of_a_percent(market: str, price: float,
                                                           bin_usd: float) -> None:
    assert default_bin_usd(market, price) == bin_usd
    assert 0.3 < bin_usd / (price * C.DEFAULT_BIN_FRACTION) < 3


@pytest.mark.parametrize("price", [None, float("nan"), 0.0, -1.0])
def test_default_bin_without_a_price_is_the_market_constant(price: float | None) -> None:
    for market in C.MARKETS:
        assert default_bin_usd(market, price) == C.DEFAULT_BIN_USD_BY_MARKET[market]


@pytest.fixture(scope="module")
def three_markets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("markets")
    store = Store(str(root))
    for market, price in PRICES.items():
        for i, ts in enumerate(minutes("2026-11-23T12:00", 5)):
            store.write_snapshot(market, *snapshot(ts, 30, seed=i, price_usd=price))
    return root


@pytest.mark.parametrize("market", C.MARKETS)
def test_heatmap_and_levels_use_the_market_default(three_markets: Path, market: str) -> None:
    """The old default was 0.5 USD for every market: 81,527 bins for BTC."""
    source = StoreSource(str(three_markets), market)
    heatmap = build_heatmap(source, HeatmapRequest())
    expected = C.DEFAULT_BIN_USD_BY_MARKET[market]
    assert heatmap.matrix.bin_width_usd == pytest.approx(expected)
    margin = default_price_margin(market)
    assert heatmap.matrix.y_edges_usd[0] == pytest.approx(PRICES[market] * (1 - margin),
                                                          abs=expected)
    n_bins = heatmap.matrix.z.shape[0]
    assert n_bins == pytest.approx(2 * margin / C.DEFAULT_BIN_FRACTION, rel=0.6)
    levels = build_levels(source)
    assert levels.y_edges_usd[1] - levels.y_edges_usd[0] == pytest.approx(expected)


def test_an_explicit_bin_wins(three_markets: Path) -> None:
    heatmap = build_heatmap(StoreSource(str(three_markets), "BTC"), HeatmapRequest(bin_usd=100))
    assert heatmap.matrix.bin_width_usd == pytest.approx(100)


@pytest.mark.parametrize("command", ["heatmap", "levels"])
def test_help_names_each_markets_default(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], prog_name="liqmap")
    text = " ".join(result.output.split())
    assert "SOL 0.1, ETH 2, BTC 50" in text
    # the price range's default margin is per market too (the help said 20 % for all)
    assert "default: SOL 20%, ETH 15%, BTC 10% below" in text
    assert "20% above" not in text


def test_the_apis_docs_name_each_markets_margin() -> None:
    from liqmap.serve.params import PMAX, PMIN

    for param in (PMIN, PMAX):
        assert "SOL 20%, ETH 15%, BTC 10%" in param.description


def test_cli_summary_shows_the_btc_bin(three_markets: Path, tmp_path: Path) -> None:
    out = tmp_path / "btc.png"
    result = CliRunner().invoke(cli, ["heatmap", "--data-dir", str(three_markets), "--market",
                                      "BTC", "--out", str(out)], prog_name="liqmap")
    assert result.exit_code == 0, result.output
    assert "(1 min, 50 USD)" in result.output
    assert out.stat().st_size > 10_000


def test_a_window_of_decades_reads_only_the_days_held(three_markets: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """1970-2100 used to read the store once per calendar day (47,000 reads, minutes)."""
    import pandas as pd

    source = StoreSource(str(three_markets), "SOL")
    calls = []
    read = source.store.read_positions
    monkeypatch.setattr(source.store, "read_positions",
                        lambda *a, **k: calls.append(a) or read(*a, **k))
    start, end = pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")
    rows = sum(batch.time_us.size for batch in source.batches(start, end))
    assert rows == 5 * 30 and len(calls) == 1


def test_a_window_too_long_for_memory_is_refused_before_reading(three_markets: Path) -> None:
    from liqmap.errors import InputError

    request = HeatmapRequest(t_start="1970-01-01", t_end="2100-01-01")
    with pytest.raises(InputError, match="shorter window"):
        build_heatmap(StoreSource(str(three_markets), "SOL"), request)


def test_every_default_window_spans_the_same_minutes(tmp_path: Path) -> None:
    """The heatmap, `status`, `score`'s window and the page's 24h view: 1,440 minutes ending
    at the newest snapshot (status and score took 1,441)."""
    import pandas as pd

    from liqmap.store.status import market_status
    from liqmap.timeutil import default_start

    from serve_helpers import write_market

    store = write_market(tmp_path / "store", start="2026-11-22T00:00", minutes=1500, n=5)
    newest = pd.Timestamp("2026-11-22T00:00Z") + pd.Timedelta(minutes=1499)
    heatmap = build_heatmap(StoreSource(store.root, "SOL"), HeatmapRequest())
    status = market_status(store, "SOL")
    assert heatmap.t_end == status.end == newest
    assert heatmap.t_start == status.start == default_start(newest, "SOL")
    assert heatmap.matrix.n_columns == status.expected == 1440
