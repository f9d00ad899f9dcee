"""Shared fixtures: the ../shared reference material and a temporary store."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIQMAP_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The reference material (../shared from the project root); CI has it, users do not."""
    if not SHARED.is_dir():
        pytest.skip(f"reference material not found at {SHARED} (set LIQMAP_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def real_matrix_path(shared_dir: Path) -> Path:
    """The real 72-hour 1-minute SOL liquidation matrix (Aug 2025)."""
    return shared_dir / "data" / "liq_matrix_72h_1m.npz"


@pytest.fixture(scope="session")
def mainnet_accounts_path(shared_dir: Path) -> Path:
    """Real mainnet account bytes captured 2026-09-24."""
    return shared_dir / "data" / "jupiter_mainnet_accounts_2026-09-24.json"


def skip_or_fail_without_surfnet() -> None:
    """Skip (locally) or fail (CI sets LIQMAP_REQUIRE_SURFNET=1) when surfnet cannot run."""
    from liqmap.sim.surfnet import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("LIQMAP_REQUIRE_SURFNET") == "1":
        pytest.fail(f"surfnet is required (LIQMAP_REQUIRE_SURFNET=1) but {reason}")
    pytest.skip(f"surfnet tests need Node.js and the surfpool npm package: {reason}")


@pytest.fixture
def surfnet():
    """A fresh local Solana RPC node (surfpool surfnet, offline) for one test."""
    skip_or_fail_without_surfnet()
    from liqmap.sim.surfnet import Surfnet

    with Surfnet() as node:
        yield node


@dataclass(frozen=True)
class DemoRun:
    """One `liqmap demo` run as the README's offline table writes it: `cwd/demo-out`."""

    cwd: Path
    out: Path
    stdout: str
    stderr: str


#: Appended to the README's demo command so the session's demo is quick: 31 snapshots a market.
DEMO_FAST = ("--hours", "0.5", "--positions", "100")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without liqmap's settings (they would change what a command reads)."""
    keep = {"LIQMAP_NODE_MODULES", "LIQMAP_SHARED"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_") or k in keep}
    return {**env, **extra}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The README's offline demo example (`liqmap demo --out-dir demo-out --no-serve`), run
    once per session as a user runs it (a child process) with `DEMO_FAST` appended."""
    skip_or_fail_without_surfnet()
    from readme_examples import demo_command

    cwd = tmp_path_factory.mktemp("readme")
    args = [*shlex.split(demo_command())[1:], *DEMO_FAST]
    done = subprocess.run([sys.executable, "-m", "liqmap", *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return DemoRun(cwd, cwd / "demo-out", done.stdout, done.stderr)
