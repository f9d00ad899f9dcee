"""Starting the local node: a launch that hangs is killed and tried again; one that fails says
why at once."""

from __future__ import annotations

import sys

import httpx
import pytest

from liqmap.sim.surfnet import Surfnet, SurfnetUnavailable

from conftest import skip_or_fail_without_surfnet


class _HangsFirst(Surfnet):
    """The first `hangs` launches print nothing and sleep; later ones are the real launcher."""

    def __init__(self, hangs: int, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.hangs = hangs
        self.launches: list[list[str]] = []

    def _launch_command(self) -> list[str]:
        cmd = ([sys.executable, "-c", "import time; time.sleep(600)"]
               if len(self.launches) < self.hangs else super()._launch_command())
        self.launches.append(cmd)
        return cmd


def test_a_launch_that_hangs_is_killed_and_the_node_started_again() -> None:
    skip_or_fail_without_surfnet()
    node = _HangsFirst(hangs=2, startup_timeout_s=1.0, start_attempts=3)
    with node:
        assert len(node.launches) == 3
        slot = httpx.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1,
                                              "method": "getSlot"}).json()["result"]
        assert isinstance(slot, int)


def test_a_node_that_never_answers_is_one_error_after_the_last_try() -> None:
    skip_or_fail_without_surfnet()
    node = _HangsFirst(hangs=99, startup_timeout_s=0.5, start_attempts=2)
    with pytest.raises(SurfnetUnavailable, match=r"no answer in 2 tries of 0.5 s"):
        node.start()
    assert len(node.launches) == 2 and node._proc is None


def test_a_launch_that_exits_is_not_retried() -> None:
    skip_or_fail_without_surfnet()

    class Fails(_HangsFirst):
        def _launch_command(self) -> list[str]:
            self.launches.append([])
            return [sys.executable, "-c", "import sys; sys.exit('addon: bad ELF header')"]

    node = Fails(hangs=0, startup_timeout_s=10.0)
    with pytest.raises(SurfnetUnavailable, match="bad ELF header"):
        node.start()
    assert len(node.launches) == 1
