"""The interactive pages in a real headless Chromium with networking off: they must draw from
the embedded plotly.js alone (no CDN) and produce a non-blank picture."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from liqmap.cli import cli

from test_heatmap_helpers import write_store

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--proxy-server=127.0.0.1:9", "--virtual-time-budget=15000"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("LIQMAP_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (LIQMAP_REQUIRE_BROWSER=1); run `make browser`")
    pytest.skip("headless Chromium not installed (`make browser` installs it)")


def _browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                               page.as_uri()], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    snapshots = {f"2025-08-22T12:{m:02d}": (180 + m * 0.1, [("long", 170 + (m % 5), 300.0),
                                                          ("short", 190 - (m % 3), 120.0)])
                 for m in range(30)}
    store = root / "store"
    write_store(store, snapshots)
    out = {"heatmap": root / "heatmap.html", "levels": root / "levels.html"}
    runner = CliRunner()
    for args in (["heatmap", "--data-dir", str(store), "--side", "split", "--bin", "0.5",
                  "--out", str(out["heatmap"])],
                 ["levels", "--data-dir", str(store), "--at", "2025-08-22T12:20",
                  "--out", str(out["levels"])]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("name", ["heatmap", "levels"])
def test_page_renders_offline(chromium: str, pages: dict[str, Path], name: str,
                              tmp_path: Path) -> None:
    page = pages[name]
    assert b"<script src=" not in page.read_bytes()  # plotly.js embedded, no CDN
    dom = _browse(chromium, page, "--dump-dom").stdout.decode(errors="replace")
    assert 'class="main-svg"' in dom  # plotly drew its figure
    shot = tmp_path / f"{name}.png"
    _browse(chromium, page, f"--screenshot={shot}", "--window-size=1400,800")
    pixels = imread(shot)
    assert pixels.shape[:2] == (800, 1400)
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank page


def test_realized_liquidations_are_drawn_as_markers(chromium: str, tmp_path: Path) -> None:
    import pyarrow as pa

    from liqmap.store import Store
    from liqmap.store import schema as S
    from test_score import BOOK, REALIZED, _state, priced_positions

    store = Store(str(tmp_path / "store"))
    for ts, rows in BOOK.items():
        store.write_snapshot("SOL", priced_positions(ts, rows), _state(ts))
    store.write_liquidations("SOL", pa.Table.from_pylist(REALIZED, schema=S.LIQUIDATIONS))
    page = tmp_path / "h.html"
    result = CliRunner().invoke(cli, ["heatmap", "--data-dir", store.root, "--out", str(page)])
    assert result.exit_code == 0, result.output
    dom = _browse(chromium, page, "--dump-dom").stdout.decode(errors="replace")
    assert "Realized liquidations" in dom  # the legend entry
    # the two liquidated positions, drawn as red circles (plus the legend's symbol)
    assert dom.count('class="point plotly-customdata"') == 2
    assert dom.count("fill: rgb(255, 59, 48)") == 3
