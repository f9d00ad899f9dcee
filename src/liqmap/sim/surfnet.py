"""A local Solana RPC node (surfpool's surfnet) in a child Node.js process.

Used by the offline demo, the simulator and the tests: the collector reads it through exactly
the code path it uses against mainnet. Accounts are written with surfnet's `surfnet_setAccount`
cheatcode and the chain clock is moved forward with `surfnet_timeTravel`.

Needs Node.js >= 18 and the npm package `@solana/surfpool-linux-x64-gnu` (`npm ci` in the project
root installs the pinned version).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from liqmap import constants as C
from liqmap.errors import LiqmapError
from liqmap.jupiter.decode import decode_clock

ADDON_PACKAGE = "@solana/surfpool-linux-x64-gnu"
ADDON_FILE = "surfpool-sdk.linux-x64-gnu.node"


class SurfnetUnavailable(LiqmapError):
    """Node.js or the surfpool package is missing."""


def find_node_modules() -> Path | None:
    """The node_modules holding the surfpool addon: $LIQMAP_NODE_MODULES, else the current
    directory or the liqmap source checkout and their parents."""
    env = os.environ.get("LIQMAP_NODE_MODULES")
    candidates = [Path(env)] if env else []
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        candidates += [p / "node_modules" for p in (start, *start.parents)]
    for nm in candidates:
        if (nm / ADDON_PACKAGE / ADDON_FILE).is_file():
            return nm
    return None


def unavailable_reason() -> str | None:
    """Why surfnet cannot start here, or None if it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (need node >= 18 on PATH)"
    if os.environ.get("LIQMAP_SURFPOOL_ADDON") or find_node_modules():
        return None
    return (f"the npm package {ADDON_PACKAGE} is not installed; run `npm ci` in the liqmap "
            "project root (or set LIQMAP_NODE_MODULES)")


class _StartTimeout(Exception):
    """A launch printed nothing in time (it is killed and tried again)."""


class Surfnet:
    """Start with `with Surfnet() as node:`; `node.rpc_url` is the JSON-RPC endpoint and
    `node.ws_url` its PubSub (WebSocket) endpoint, on another port."""

    def __init__(self, *, startup_timeout_s: float = 20.0, start_attempts: int = 3) -> None:
        self.startup_timeout_s = startup_timeout_s  # per attempt; a start takes about 1 s
        self.start_attempts = start_attempts
        self.rpc_url = ""
        self.ws_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=30.0)

    def start(self) -> Surfnet:
        """Start the node. A launch that prints nothing within `startup_timeout_s` (rare: the
        addon once hung at start in CI, under full load) is killed and tried again, up to
        `start_attempts` times; a launch that exits with an error is not retried."""
        reason = unavailable_reason()
        if reason:
            raise SurfnetUnavailable(f"cannot start the local Solana node: {reason}")
        env = dict(os.environ)
        nm = find_node_modules()
        if nm is not None:
            env["LIQMAP_NODE_MODULES"] = str(nm)
        for attempt in range(1, self.start_attempts + 1):
            self._proc = subprocess.Popen(self._launch_command(), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env=env)
            try:
                line = self._read_first_line()
                break
            except _StartTimeout:
                if attempt == self.start_attempts:
                    self._http.close()
                    raise SurfnetUnavailable(
                        f"the local Solana node did not start: no answer in "
                        f"{self.start_attempts} tries of {self.startup_timeout_s:g} s") from None
        urls = json.loads(line)
        self.rpc_url, self.ws_url = urls["rpcUrl"], urls.get("wsUrl", "")
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self

    def _read_first_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(self.startup_timeout_s)
        if not result or not result[0].strip():
            timed_out = not result  # before _end_process, whose kill ends the readline
            err = "" if timed_out else self._stderr_tail()
            self._end_process()
            if timed_out:
                raise _StartTimeout
            raise SurfnetUnavailable(f"the local Solana node did not start: {err or 'it exited'}")
        return result[0].decode()

    def _launch_command(self) -> list[str]:
        return ["node", str(resources.files("liqmap.sim") / "node" / "surfnet.js")]

    def _stderr_tail(self) -> str:
        """Last stderr line of a launcher that closed its stdout, so exits ("" if it runs on)."""
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        try:
            proc.wait(timeout=5)  # its stdout is closed: it is on its way out
        except subprocess.TimeoutExpired:
            return ""
        lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        for _ in iter(proc.stderr.readline, b""):
            pass

    def stop(self) -> None:
        self._end_process()
        self._http.close()

    def _end_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.terminate()
                proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> Surfnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- cheatcodes
    def call(self, method: str, params: list[Any]) -> Any:
        response = self._http.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1,
                                                       "method": method, "params": params})
        response.raise_for_status()
        body = response.json()
        if body.get("error"):
            raise LiqmapError(f"surfnet {method} failed: {body['error']}")
        return body.get("result")

    def set_account(self, pubkey: str, data: bytes, owner: str, lamports: int | None = None
                    ) -> None:
        """Create or overwrite an account (rent-exempt lamports by default)."""
        lamports = lamports if lamports is not None else 890_880 + 6_960 * len(data)
        self.call("surfnet_setAccount", [pubkey, {"lamports": lamports, "data": data.hex(),
                                                  "owner": owner}])

    def time_travel(self, unix_ms: int) -> None:
        """Move the chain clock forward to `unix_ms` (surfnet refuses to go back)."""
        self.call("surfnet_timeTravel", [{"absoluteTimestamp": int(unix_ms)}])

    def chain_time(self) -> int:
        """The Clock sysvar's unix_timestamp (s)."""
        result = self.call("getAccountInfo", [C.CLOCK_SYSVAR, {"encoding": "base64"}])
        return decode_clock(base64.b64decode(result["value"]["data"][0])).unix_timestamp
