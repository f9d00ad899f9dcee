"""Loading a market's Position accounts for the live book, the cheapest way the node allows.

Tried in this order on the first load, and the first that works is kept (logged once):

1. `getProgramAccountsV2` pages; after the first load, periodic resyncs ask only for accounts
   changed since the previous scan (`changedSinceSlot`), and a full walk follows a reconnect;
2. a key-only scan (`dataSlice` of sizeUsd, 8 bytes per account) to find the open positions,
   then `getMultipleAccounts` of those, 100 per request;
3. the full `getProgramAccounts` of poll mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from liqmap import constants as C
from liqmap.collect.rpc import RpcClient
from liqmap.collect.rpc.requests import position_filters
from liqmap.collect.rpc.scan import (
    is_unsupported,
    parse_open_keys,
    parse_v2_page,
    size_slice_params,
    v2_params,
)
from liqmap.collect.rpc.transport import CallStats
from liqmap.errors import RpcError

log = logging.getLogger(__name__)

METHODS = ("v2", "keys", "full")
METHOD_NAMES = {"v2": "getProgramAccountsV2 pages",
                "keys": "key-only scan (sizeUsd slice) + getMultipleAccounts",
                "full": "full getProgramAccounts"}


@dataclass
class Scan:
    """Position accounts of one market at `slot`; `complete`: every open one is in it."""

    slot: int
    positions: dict[str, bytes | None]
    complete: bool
    method: str
    rpc_bytes: int = 0
    stats: list[CallStats] = field(default_factory=list)


class Scanner:
    """Scans through `client`; `method` forces one of METHODS (default: detected once)."""

    def __init__(self, client: RpcClient, *, method: str | None = None,
                 page_limit: int = C.GPA_V2_PAGE_LIMIT) -> None:
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown scan method {method!r}")
        self.client = client
        self.method = method
        self.page_limit = page_limit
        self._since: dict[str, int] = {}  # custody -> slot of its previous V2 scan

    def scan(self, custody: str, *, delta: bool = False) -> Scan:
        """Open Position accounts of `custody` (a delta when `delta` and V2 allows it)."""
        if self.method is not None:
            return self._run(self.method, custody, delta)
        for method in METHODS:
            try:
                result = self._run(method, custody, delta=False)
            except RpcError as exc:
                if method == "full" or not is_unsupported(exc):
                    raise
                log.info("RPC node does not serve the %s (%s); trying the next method",
                         METHOD_NAMES[method], str(exc)[:120])
                continue
            self.method = method
            log.info("book loads use: %s", METHOD_NAMES[method])
            return result
        raise AssertionError("unreachable")

    def _run(self, method: str, custody: str, delta: bool) -> Scan:
        if method == "v2":
            return self._v2(custody, delta)
        if method == "keys":
            return self._keys(custody)
        gpa, stats = self.client.get_program_accounts(C.PERPS_PROGRAM_ID,
                                                      position_filters(custody))
        return Scan(gpa.slot, dict(zip(gpa.pubkeys, gpa.blobs, strict=True)), True, method,
                    stats.response_bytes, [stats])

    def _v2(self, custody: str, delta: bool) -> Scan:
        since = self._since.get(custody) if delta else None
        accounts: dict[str, bytes | None] = {}
        all_stats: list[CallStats] = []
        key: str | None = None
        slot = 0
        while True:
            params = v2_params(C.PERPS_PROGRAM_ID, position_filters(custody),
                               limit=self.page_limit, pagination_key=key,
                               changed_since_slot=since, commitment=self.client.commitment)
            page, stats = self.client.transport.call(
                "getProgramAccountsV2", params, parse_v2_page,
                timeout_s=self.client.gpa_timeout_s)
            all_stats.append(stats)
            accounts.update(page.accounts)
            slot = slot or page.slot  # the walk's first page: changes after it come again
            key = page.next_key
            if key is None:
                break
        self._since[custody] = slot
        return Scan(slot, accounts, since is None, "v2",
                    sum(s.response_bytes for s in all_stats), all_stats)

    def _keys(self, custody: str) -> Scan:
        (slot, keys), stats = self.client.transport.call(
            "getProgramAccounts",
            size_slice_params(C.PERPS_PROGRAM_ID, position_filters(custody),
                              self.client.commitment),
            parse_open_keys, timeout_s=self.client.gpa_timeout_s)
        all_stats = [stats]
        positions: dict[str, bytes | None] = {}
        if keys:
            gma, gma_stats = self.client.get_multiple_accounts(keys)
            all_stats.append(gma_stats)
            slot = max(slot, gma.slot)
            positions = {k: (d if gma.owners.get(k) == C.PERPS_PROGRAM_ID else None)
                         for k, d in gma.data.items()}
        return Scan(slot, positions, True, "keys", sum(s.response_bytes for s in all_stats),
                    all_stats)
