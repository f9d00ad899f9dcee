"""The notebook API (`import liqmap`) against real stores in tmp_path, and the commands that wrap
it: the same matrices, files and one-line errors from both."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import liqmap
from liqmap.errors import DataGapError, InputError, LiqmapError

from test_heatmap_helpers import run_cli as run
from test_heatmap_helpers import write_legacy_csv, write_store

#: 12:00..12:04 with 12:02 missing: per minute one long and one short (liq price USD, tokens).
SNAPSHOTS = {f"2025-08-22T12:0{m}": (180.0 + m, [("long", 170.05 + m, 1.0 + m),
                                                  ("short", 190.0 + m, 2.0)])
             for m in (0, 1, 3, 4)}
WINDOW = ("2025-08-22T12:00", "2025-08-22T12:04")
HEATMAP_ARGS = ["--t-start", WINDOW[0], "--t-end", WINDOW[1], "--bin", "0.5", "--pmin", "160",
                "--pmax", "200"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("LIQMAP_CONFIG", "LIQMAP_DATA_DIR", "LIQMAP_MARKETS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    write_store(tmp_path / "store", SNAPSHOTS)
    return tmp_path / "store"


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ------------------------------------------------------------------ import liqmap
def test_import_liqmap_loads_no_heavy_module() -> None:
    """Deterministic: after `import liqmap` (and touching its errors) none of the heavy
    libraries is in sys.modules; the first use of a lazy name loads them."""
    code = ("import sys, liqmap\n"
            "heavy = ('pandas', 'numba', 'matplotlib', 'pyarrow', 'plotly', 'numpy')\n"
            "assert issubclass(liqmap.InputError, liqmap.LiqmapError)\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n"
            "liqmap.open_store\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    before, after = done.stdout.splitlines()
    assert before == ""
    assert {"pandas", "pyarrow"} <= set(after.split(","))


def test_every_public_name_resolves() -> None:
    lazy = set(liqmap._LAZY)
    assert lazy <= set(liqmap.__all__)
    for name in liqmap.__all__:
        assert getattr(liqmap, name) is not None, name
    assert lazy <= set(dir(liqmap))
    assert liqmap.LiqMatrix is __import__("liqmap.matrix").matrix.LiqMatrix
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        liqmap.nope  # noqa: B018


# ------------------------------------------------------------------ rows as DataFrames
def test_positions_and_market_state_are_frames_with_a_utc_index(store_dir: Path) -> None:
    store = liqmap.open_store(store_dir)
    pos = store.positions("SOL", *WINDOW)
    assert isinstance(pos.index, pd.DatetimeIndex) and str(pos.index.tz) == "UTC"
    assert pos.index.name == "ts" and len(pos) == 8
    first = pos.loc[pd.Timestamp("2025-08-22T12:00Z")]
    assert sorted(first["liq_price"]) == [170.05, 190.0]
    assert set(pos["side"].astype(str)) == {"long", "short"}
    state = store.market_state("sol", columns=["oracle_price"])  # default window: all 4
    assert list(state.columns) == ["oracle_price"]
    assert state["oracle_price"].tolist() == [180.0, 181.0, 183.0, 184.0]
    assert str(state.index.tz) == "UTC"
    only = store.positions("SOL", "2025-08-22T12:03", "2025-08-22T12:03", columns=["size_tokens"])
    assert only["size_tokens"].sort_values().tolist() == [2.0, 4.0]
    assert store.misses("SOL").empty and store.markets() == ["SOL"]


def test_an_object_store_uri_opens_the_same_way() -> None:
    write_store("memory://liqmap-api-test", SNAPSHOTS)
    store = liqmap.open_store("memory://liqmap-api-test")
    assert len(store.positions("SOL", *WINDOW)) == 8
    assert store.heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200).z.sum() == pytest.approx(
        sum(p[2] for _, ps in SNAPSHOTS.values() for p in ps))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda s: s.positions("XRP"), InputError, "unknown market 'XRP'; choose one of SOL, ETH"),
    (lambda s: s.positions("SOL", columns=["liq"]), InputError, "no column(s) liq in positions"),
    (lambda s: s.market_state("SOL", "2025-08-22T12:04", "2025-08-22T12:00"), InputError,
     "is after --t-end"),
    (lambda s: s.heatmap("ETH"), DataGapError, "no ETH snapshots in store"),
    (lambda s: s.heatmap("SOL", side="sideways"), InputError, "--side must be one of"),
    (lambda s: s.levels("SOL", "2025-08-22T11:00"), DataGapError, "no SOL snapshot in the hour"),
    (lambda s: s.heatmap("SOL", *WINDOW).plot(log_color=True, vmin=-1), InputError,
     "--log-color needs --vmin and --vmax > 0"),
    (lambda s: s.heatmap("SOL", *WINDOW).to_frame("long"), InputError,
     "no 'long' layer"),
    (lambda s: s.heatmap("SOL", *WINDOW).save_png("x.jpg"), InputError, "ending in .png"),
])
def test_api_errors_are_liqmap_errors(store_dir: Path, call, error, message: str) -> None:
    with pytest.raises(error) as caught:
        call(liqmap.open_store(store_dir))
    assert isinstance(caught.value, LiqmapError) and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("args", "call"), [
    (["heatmap", "--market", "ETH"], lambda s: s.heatmap("ETH")),
    (["heatmap", "--t-start", "2025-08-22T13:00", "--t-end", "2025-08-22T12:00"],
     lambda s: s.heatmap("SOL", "2025-08-22T13:00", "2025-08-22T12:00")),
    (["heatmap", "--t-start", "2025-08-23T00:00", "--t-end", "2025-08-23T01:00"],
     lambda s: s.heatmap("SOL", "2025-08-23T00:00", "2025-08-23T01:00")),
    (["heatmap", "--pmin", "200", "--pmax", "100"], lambda s: s.heatmap("SOL", pmin=200, pmax=100)),
    (["levels", "--at", "2025-08-22T11:00"], lambda s: s.levels("SOL", "2025-08-22T11:00")),
    (["levels", "--at", "yesterday-ish"], lambda s: s.levels("SOL", "yesterday-ish")),
    (["status", "--t-start", "bad"], lambda s: s.status(start="bad")),
])
def test_the_cli_prints_the_api_error(store_dir: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], call) -> None:
    """Errors past click's own option checks come from the API and read the same."""
    with pytest.raises(LiqmapError) as caught:
        call(liqmap.open_store(store_dir))
    code, _out, err = run([*args, "--data-dir", str(store_dir)], capsys)
    assert code == 1 and err == f"Error: {caught.value}\n"


# ------------------------------------------------------------------ LiqMatrix
def test_to_frame_has_time_rows_price_columns_units_and_nan_gaps(store_dir: Path) -> None:
    m = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200)
    frame = m.to_frame()
    assert frame.shape == (5, 80)
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert frame.index[0] == pd.Timestamp("2025-08-22T12:00Z") and frame.index.name == "time"
    assert frame.columns.name == "liq_price_usd" and frame.columns[0] == 160.0
    assert frame.attrs["unit"] == "SOL" and frame.attrs["bin_usd"] == 0.5
    at = frame.loc[pd.Timestamp("2025-08-22T12:00Z")]
    assert at[170.0] == 1.0 and at[190.0] == 2.0 and at.sum() == 3.0  # [170, 170.5) holds 170.05
    assert frame.loc[pd.Timestamp("2025-08-22T12:03Z"), 173.0] == 4.0
    assert frame.loc[pd.Timestamp("2025-08-22T12:02Z")].isna().all()  # the gap minute
    assert m.spot().tolist()[:2] == [180.0, 181.0] and np.isnan(m.spot().iloc[2])
    usd = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200,
                                               unit="usd").to_frame()
    assert usd.attrs["unit"] == "USD"
    assert usd.loc[pd.Timestamp("2025-08-22T12:00Z"), 170.0] == pytest.approx(170.05)


def test_split_layers_and_xarray(store_dir: Path) -> None:
    xr = pytest.importorskip("xarray")
    m = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200,
                                             side="split")
    longs, shorts = m.to_frame("long"), m.to_frame("short")
    assert longs.loc[pd.Timestamp("2025-08-22T12:00Z"), 170.0] == 1.0
    assert shorts.loc[pd.Timestamp("2025-08-22T12:00Z"), 190.0] == 2.0
    assert np.nansum(longs.to_numpy()) == 1 + 2 + 4 + 5 and np.nansum(shorts.to_numpy()) == 8
    da = m.to_xarray()
    assert isinstance(da, xr.DataArray) and da.dims == ("time", "liq_price_usd")
    np.testing.assert_array_equal(da.to_numpy(), m.to_frame().to_numpy())
    assert da["oracle_price_usd"].values[0] == 180.0 and bool(da["gap"].values[2])
    assert da.sel(liq_price_usd=190.0).sum().item() == 2.0 and da.sum().item() == 20.0


def test_plot_returns_figures_that_notebooks_show(store_dir: Path, tmp_path: Path) -> None:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    m = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200)
    fig = m.plot(log_color=True)
    assert isinstance(fig, Figure)
    png = fig._repr_png_()  # what Jupyter displays, without pyplot
    assert png == (m.save_png(tmp_path / "m.png", log_color=True)).read_bytes()
    assert isinstance(m.plot(interactive=True), go.Figure)
    assert "LiqMatrix SOL" in repr(m) and "5 columns" in repr(m) and "1 gap" in repr(m)


# ------------------------------------------------------------------ CLI = API
def test_heatmap_cli_files_equal_api_files(store_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for extra, stem in (([], "plain"), (["--side", "split", "--unit", "usd", "--freq", "2",
                                          "--agg", "max", "--log-color"], "split")):
        code, _out, err = run(["heatmap", "--data-dir", str(store_dir), *HEATMAP_ARGS, *extra,
                              "--out", f"cli_{stem}.png", "--npz-out", f"cli_{stem}.npz"], capsys)
        assert code == 0, err
        code, _, err = run(["heatmap", "--data-dir", str(store_dir), *HEATMAP_ARGS, *extra,
                            "--out", f"cli_{stem}.html"], capsys)
        assert code == 0, err
        opts = {"side": "both", "unit": "tokens", "freq": 1, "agg": "mean"}
        if stem == "split":
            opts = {"side": "split", "unit": "usd", "freq": 2, "agg": "max"}
        m = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200,
                                                 **opts)
        log = stem == "split"
        m.save_npz(f"api_{stem}.npz")
        m.save_png(f"api_{stem}.png", log_color=log)
        m.save_html(f"api_{stem}.html", log_color=log)
        cli_npz, api_npz = _npz_arrays(tmp_path / f"cli_{stem}.npz"), _npz_arrays(
            tmp_path / f"api_{stem}.npz")
        assert cli_npz.keys() == api_npz.keys()
        for key in cli_npz:
            np.testing.assert_array_equal(cli_npz[key], api_npz[key], err_msg=key)
        assert (tmp_path / f"cli_{stem}.png").read_bytes() == (
            tmp_path / f"api_{stem}.png").read_bytes()
        assert _html_without_ids(tmp_path / f"cli_{stem}.html") == _html_without_ids(
            tmp_path / f"api_{stem}.html")


def _html_without_ids(path: Path) -> str:
    """The page with plotly's random div ids blanked (everything else is deterministic)."""
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return re.sub(uuid, "ID", path.read_text())


def test_legacy_folder_cli_equals_open_legacy(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(170.05, 1.0, "2025-08-22T12:00:00Z"), (185.0, 2.0, "2025-08-22T12:00:00Z"),
            (171.0, 5.0, "2025-08-22T12:03:00Z")]
    folder = write_legacy_csv(tmp_path / "old", rows).parent
    code, _, err = run(["heatmap", "--folder", str(folder), *HEATMAP_ARGS, "--npz-out",
                        "cli.npz"], capsys)
    assert code == 0, err
    m = liqmap.open_legacy(folder).heatmap("SOL", *WINDOW, bin=0.5, pmin=160, pmax=200)
    cli = liqmap.read_npz(tmp_path / "cli.npz")
    np.testing.assert_array_equal(cli.z, m.z)
    np.testing.assert_array_equal(cli.gap_mask, [False, True, True, False, True])
    assert m.to_frame().loc[pd.Timestamp("2025-08-22T12:03Z"), 171.0] == 5.0


def test_npz_round_trip_keeps_what_the_picture_needs(store_dir: Path, tmp_path: Path) -> None:
    m = liqmap.open_store(store_dir).heatmap("SOL", *WINDOW, bin=0.5,
                                             pmin=160, pmax=200, side="split", unit="usd")
    back = liqmap.read_npz(m.save_npz(tmp_path / "m.npz"))
    assert (back.unit, back.market, back.side, back.freq_min) == ("usd", "SOL", "split", 1)
    assert back.info is not None and back.info.t_end == pd.Timestamp("2025-08-22T12:04Z")
    for key in ("Z_long", "Z_short"):
        np.testing.assert_array_equal(back.extra[key], m.extra[key])
    assert back.save_png(tmp_path / "back.png").read_bytes() == m.save_png(
        tmp_path / "m.png").read_bytes()
    assert liqmap.read_npz(tmp_path / "m.npz", market="eth").market == "ETH"


def test_an_old_tool_npz_reads_as_sol_tokens(tmp_path: Path) -> None:
    z = np.zeros((4, 3))
    z[1, 0], z[2, 2] = 5.0, 7.0
    t_edges = np.arange(4, dtype=np.int64) * 60_000_000_000 + 1_755_864_000_000_000_000
    np.savez(tmp_path / "old.npz", Z=z, t_edges=t_edges, y_edges=np.arange(5) + 170.0,
             spot_grid=np.array([171.0, 171.5, 172.0]))
    m = liqmap.read_npz(tmp_path / "old.npz")
    assert (m.market, m.unit, m.side, m.info) == ("SOL", "tokens", "both", None)
    frame = m.to_frame()
    assert frame.index[0] == pd.Timestamp("2025-08-22T12:00Z")
    assert frame.iloc[1].isna().all()  # an all-zero column of the old tool is a gap
    assert frame.iloc[2][172.0] == 7.0
    assert m.save_png(tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"


def test_levels_cli_equals_api(store_dir: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["levels", "--data-dir", str(store_dir), "--at", "2025-08-22T12:02",
                          "--bin", "0.5", "--out", "cli.png"], capsys)
    assert code == 0, err
    levels = liqmap.open_store(store_dir).levels("SOL", "2025-08-22T12:02", bin=0.5)
    assert levels.save_png(tmp_path / "api.png").read_bytes() == (
        tmp_path / "cli.png").read_bytes()
    frame = levels.to_frame()
    assert frame.index.name == "liq_price_usd" and frame.attrs["price_usd"] == 181.0
    assert frame.loc[171.0, "long_tokens"] == 2.0 and frame.loc[191.0, "short_tokens"] == 2.0
    assert frame["long_usd"].sum() == pytest.approx(171.05 * 2.0)
    assert frame.loc[171.0, "cum_long_tokens"] == 2.0 and np.isnan(frame.loc[191.0,
                                                                          "cum_long_tokens"])
    assert "12:01" in repr(levels) and "1 longs" in repr(levels)


def test_status_expects_the_collectors_interval(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A collector set to 120 s (LIQMAP_INTERVAL, liqmap.toml): `status` takes the same
    setting, so its store is whole, not half missing; --interval still wins."""
    from serve_helpers import write_market

    root = tmp_path / "store"
    write_market(root, start="2026-11-23T00:00", minutes=60, n=5, gaps=range(1, 60, 2))
    monkeypatch.setenv("LIQMAP_INTERVAL", "120")
    code, out, err = run(["status", "--data-dir", str(root)], capsys)
    assert code == 0, err
    assert "snapshots 30/30" in out and "gaps: none" in out
    assert liqmap.open_store(root).status().to_frame().loc["SOL", "missing"] == 0  # notebook
    code, out, err = run(["status", "--data-dir", str(root), "--interval", "60"], capsys)
    assert code == 0, err
    assert "snapshots 30/59" in out and "29 missing minute(s)" in out


def test_status_cli_prints_the_api_status(store_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["status", "--data-dir", str(store_dir)], capsys)
    assert code == 0, err
    status = liqmap.open_store(store_dir).status()
    assert out == f"{status}\n"
    frame = status.to_frame()
    assert frame.loc["SOL", "present"] == 4 and frame.loc["SOL", "missing"] == 1
    gaps = status.gaps()
    assert gaps["first"].tolist() == [pd.Timestamp("2025-08-22T12:02Z")]
    assert gaps["minutes"].tolist() == [1]


def test_status_shows_the_collectors_endpoint_counters_redacted(
        store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the collector saved of each RPC endpoint: its counters, the URL without its key,
    and when it was saved (to the second)."""
    from liqmap.collect.rpc.transport import Transport
    from liqmap.store import Store

    transport = Transport(["https://rpc.example.com/v2/SECRETKEY?api-key=SECRET2",
                           "http://127.0.0.1:1"])
    Store(str(store_dir)).write_endpoint_report([vars(r) for r in transport.report()])
    transport.close()
    code, out, err = run(["status", "--data-dir", str(store_dir)], capsys)
    assert code == 0, err
    assert "SECRET" not in out + err
    header = next(line for line in out.splitlines() if line.startswith("rpc endpoints"))
    assert re.fullmatch(r"rpc endpoints \(collector, as of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\):",
                        header), header
    assert "  https://rpc.example.com/***  requests 0  errors 0  retries 0" in out
    assert "  http://127.0.0.1:1  requests 0" in out


def test_export_cli_file_equals_api_file(store_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["export", "--data-dir", str(store_dir), "--out", "cli.csv"], capsys)
    assert code == 0, err
    rows = liqmap.open_store(store_dir).export_legacy_csv(tmp_path / "api.csv")
    assert out == f"wrote {rows:,} rows to cli.csv\n" and rows == 8
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "api.csv").read_bytes()


# ------------------------------------------------------------------ realized liquidations
@pytest.fixture
def liq_store(tmp_path: Path) -> Path:
    import pyarrow as pa

    from liqmap.store import Store
    from liqmap.store import schema as S
    from test_score import BOOK, REALIZED, _state, priced_positions

    store = Store(str(tmp_path / "liq"))
    for ts, rows in BOOK.items():
        store.write_snapshot("SOL", priced_positions(ts, rows), _state(ts))
    store.write_liquidations("SOL", pa.Table.from_pylist(REALIZED, schema=S.LIQUIDATIONS))
    return tmp_path / "liq"


def test_liquidations_frame_and_markers_through_the_api(liq_store: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    store = liqmap.open_store(liq_store)
    gone = store.liquidations("SOL")
    assert isinstance(gone.index, pd.DatetimeIndex) and str(gone.index.tz) == "UTC"
    assert gone["pubkey"].tolist() == ["L1", "L3", "X"]
    liquidated = store.liquidations("SOL", kind="liquidated")
    assert liquidated["pubkey"].tolist() == ["L1", "X"]
    assert liquidated.loc[pd.Timestamp("2026-11-24T08:01Z"), "size_usd"] == 10_000.0
    with pytest.raises(InputError, match="kind must be one of liquidated, closed"):
        store.liquidations("SOL", kind="liq")
    m = store.heatmap("SOL")
    assert m.info is not None and m.info.markers is not None
    assert m.info.markers["pubkey"].tolist() == ["L1", "X"]
    labels = [c.get_label() for c in m.plot().axes[0].collections]
    assert any(str(label).startswith("Realized liquidations (2") for label in labels)
    code, _out, err = run(["heatmap", "--data-dir", str(liq_store), "--out", "cli.png"], capsys)
    assert code == 0, err
    assert m.save_png(tmp_path / "api.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
