"""docs/examples/quickstart.py (the notebook's jupytext twin) runs as written, and the code
shown in docs/notebook.md is the code that runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from liqmap.store import Store

from conftest import SHARED
from factories import positions_table, state_table

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "examples" / "quickstart.py"
NOTEBOOK_MD = ROOT / "docs" / "notebook.md"


def small_store(root: Path, hours: int = 3, positions: int = 120) -> Path:
    """A SOL store like a short demo run: one snapshot a minute on a random-walk price, one
    minute missing (recorded as a miss)."""
    start = pd.Timestamp("2026-11-23T09:00Z")
    prices = 140.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.001, hours * 60)))
    tables, states = [], []
    for i, price in enumerate(prices):
        ts = start + pd.Timedelta(minutes=i)
        if i == 77:
            continue
        tables.append(positions_table(ts, positions, seed=i // 30, price_usd=float(price)))
        states.append(state_table(ts, positions, price_usd=float(price)))
    store = Store(str(root))
    store.write_bulk("positions", "SOL", pa.concat_tables(tables))
    store.write_bulk("market_state", "SOL", pa.concat_tables(states))
    store.write_miss("SOL", (start + pd.Timedelta(minutes=77)).to_pydatetime(),
                     "RPC timeout after 5 retries")
    return root


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    real = SHARED / "data" / "liq_matrix_72h_1m.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    env.update(LIQMAP_EXAMPLE_STORE=str(small_store(tmp_path / "store")),
               LIQMAP_EXAMPLE_OUT=str(tmp_path), LIQMAP_EXAMPLE_NPZ=str(real), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(QUICKSTART)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("['SOL']\nstore ") and "1 missing minute(s)" in out
    assert "<LiqMatrix SOL 2026-11-23T09:00Z..2026-11-23T12:00Z: 36 columns of 5 min" in out
    for name in ("heatmap_SOL.png", "heatmap_SOL.html", "heatmap_SOL.npz"):
        assert f"wrote {tmp_path / name}" in out
        assert (tmp_path / name).stat().st_size > 1000
    if real.exists():
        assert "(4095, 500)" in out and (tmp_path / "real_72h.png").stat().st_size > 10_000
    else:
        assert "the old-matrix cell skipped" in out


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_notebook_doc_shows_the_quickstarts_code() -> None:
    """Every line of the doc's python blocks (outputs shown as `# ->` comments aside) appears
    in the executed quickstart, so the doc cannot drift from code that runs."""
    if not NOTEBOOK_MD.exists():
        pytest.fail("docs/notebook.md is missing")
    code = {line.strip() for line in QUICKSTART.read_text().splitlines()}
    blocks = _python_blocks(NOTEBOOK_MD.read_text())
    assert len(blocks) >= 5
    for block in blocks:
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert line.strip() in code, f"docs/notebook.md line not in quickstart: {line}"


def test_the_readme_notebook_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## In a notebook"):]
    block = _python_blocks(section)[0]
    assert 'open_store("demo-out/store")' in block
    store = small_store(tmp_path / "store", hours=1, positions=40)
    scope: dict[str, object] = {}
    exec(block.replace("demo-out/store", str(store)), scope)
    assert scope["m"].to_frame().shape[0] == 12
