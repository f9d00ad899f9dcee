"""The old tool's command as a process: `liqmap --help` lists every command without importing
them, `heatmap --folder` loads neither the store nor the chain decoders, a PNG is drawn once,
and the snapshot minutes of a legacy CSV window are exactly the minutes holding a row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from liqmap.cli import COMMANDS
from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.render_png import heatmap_figure, png_bytes
from liqmap.heatmap.sources import LegacyCsvSource, minute_of


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True,
                          timeout=120)


def test_help_lists_every_command_without_importing_them() -> None:
    probe = ("import sys, runpy; sys.argv = ['liqmap', '--help']\n"
             "try:\n    runpy.run_module('liqmap', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in "
             "('numba', 'pandas', 'matplotlib', 'pyarrow', 'plotly', 'httpx', 'starlette', "
             "'duckdb') or m.startswith('liqmap.cli.')))")
    out = _run("-c", probe).stdout
    listed = out.split("Commands:")[1]
    for name, (_, short) in COMMANDS.items():
        assert f"  {name} " in listed, name
        assert short.split()[0] in listed
    assert out.rsplit("MODULES", 1)[1].strip() == "['liqmap.cli.options']"


def test_heatmap_folder_imports_neither_the_store_nor_the_chain_decoders() -> None:
    probe = ("import sys, json\nimport liqmap.cli.heatmap, liqmap.heatmap.render_png\n"
             "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(_run("-c", probe).stdout))
    assert not {"pyarrow.dataset", "liqmap.store", "solders", "liqmap.collect.liquidations",
                "liqmap.jupiter.decode"} & loaded


@pytest.fixture(scope="module")
def log_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with rows at some minutes of 12:00-12:59 only (the others are gaps)."""
    folder = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(5)
    minutes = np.sort(rng.choice(60, 40, replace=False))
    lines = ["liq_price,size_sol,t_bin"]
    for m in minutes:
        t = f"2025-08-22T12:{m:02d}:00Z"
        lines += [f"{float(p)!r},{float(s)!r},{t}" for p, s in zip(rng.uniform(170, 190, 7),
                                                     rng.lognormal(1, 1, 7), strict=True)]
    (folder / "sol_positions_log.csv").write_text("\n".join(lines) + "\n")
    (folder / "minutes.json").write_text(json.dumps(minutes.tolist()))
    return folder


@pytest.mark.parametrize(("start", "end"), [("12:00", "12:59"), ("12:10", "12:40"),
                                            ("11:30", "13:30"), ("12:20", "12:20")])
def test_snapshot_minutes_of_a_window_are_the_minutes_holding_rows(
        log_folder: Path, start: str, end: str) -> None:
    lo, hi = (pd.Timestamp(f"2025-08-22T{t}", tz="UTC") for t in (start, end))
    held = np.array(json.loads((log_folder / "minutes.json").read_text()))
    expected = minute_of(pd.Timestamp("2025-08-22T12:00", tz="UTC")) + held
    expected = expected[(expected >= minute_of(lo)) & (expected <= minute_of(hi))]
    got = LegacyCsvSource(log_folder).snapshots(lo, hi).minute
    np.testing.assert_array_equal(got, expected)


def test_a_png_is_drawn_once(log_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """savefig with a layout engine draws twice (a layout pass that still resamples every
    image); the PNG is drawn once, its layout included."""
    heatmap = build_heatmap(LegacyCsvSource(log_folder),
                            HeatmapRequest(t_start="2025-08-22T12:00", t_end="2025-08-22T12:59",
                                           bin_usd=0.5, pmin_usd=170, pmax_usd=190))
    fig = heatmap_figure(heatmap, log_color=True)
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(1),
                                                                original(self, renderer))[1])
    data = png_bytes(fig)
    assert data.startswith(b"\x89PNG") and len(draws) == 1
