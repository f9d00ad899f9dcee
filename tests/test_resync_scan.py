"""The book's loads: getProgramAccountsV2 pages (scripted loopback server: surfnet has no V2),
detection of the cheapest method, and the key-only scan on surfnet."""

from __future__ import annotations

import base64
import logging
import struct

from liqmap import constants as C
from liqmap.collect.resync import Scanner
from liqmap.collect.rpc import RpcClient, Transport

from scripted_rpc import ok, rpc_error, scripted

SOL = C.CUSTODY_BY_ASSET["SOL"]


def _blob(size_usd: int) -> bytes:
    data = bytearray(C.POSITION_ACCOUNT_SIZE)
    struct.pack_into("<Q", data, C.POSITION_SIZE_USD_OFFSET, size_usd)
    return bytes(data)


def _acct(key: str, data: bytes) -> dict[str, object]:
    return {"pubkey": key, "account": {"data": [base64.b64encode(data).decode(), "base64"],
                                       "owner": C.PERPS_PROGRAM_ID, "lamports": 1}}


def _page(slot: int, items: dict[str, bytes], next_key: str | None) -> dict[str, object]:
    return {"context": {"slot": slot},
            "value": {"accounts": [_acct(k, v) for k, v in items.items()],
                      "paginationKey": next_key}}


def _client(url: str) -> RpcClient:
    return RpcClient(Transport([url], max_retries=0, backoff_s=0.01))


def test_v2_pages_until_the_key_is_null_then_deltas(caplog) -> None:
    steps = [ok(_page(500, {"A": _blob(1), "B": _blob(2)}, "cursor-1")),
             ok({"accounts": [_acct("C", _blob(0))], "paginationKey": "cursor-2"}),
             ok(_page(502, {}, None)),  # short or empty pages do not end the walk; null does
             ok(_page(530, {"B": _blob(0)}, None))]
    with scripted(steps) as server, caplog.at_level(logging.INFO):
        scanner = Scanner(_client(server.url), page_limit=2)
        first = scanner.scan(SOL)
        delta = scanner.scan(SOL, delta=True)
    assert scanner.method == "v2" and "getProgramAccountsV2 pages" in caplog.text
    assert first.complete and first.slot == 500 and set(first.positions) == {"A", "B", "C"}
    assert not delta.complete and delta.positions == {"B": _blob(0)}
    configs = [r["params"][1] for r in server.requests]
    assert [c.get("paginationKey") for c in configs] == [None, "cursor-1", "cursor-2", None]
    assert all(c["limit"] == 2 for c in configs)
    assert "changedSinceSlot" not in configs[0] and configs[3]["changedSinceSlot"] == 500
    assert configs[0]["filters"][1]["memcmp"] == {"offset": 72, "bytes": SOL}
    assert first.rpc_bytes > 0


def test_without_v2_the_key_only_scan_then_the_full_scan() -> None:
    slice_open = {"pubkey": "A", "account": {"data": [base64.b64encode(
        struct.pack("<Q", 7)).decode(), "base64"]}}
    slice_closed = {"pubkey": "Z", "account": {"data": [base64.b64encode(
        struct.pack("<Q", 0)).decode(), "base64"]}}
    gma = {"context": {"slot": 41}, "value": [
        {"data": [base64.b64encode(_blob(7)).decode(), "base64"],
         "owner": C.PERPS_PROGRAM_ID, "lamports": 1}]}
    steps = [rpc_error(-32601, "Method not found"),
             ok({"context": {"slot": 40}, "value": [slice_open, slice_closed]}), ok(gma)]
    with scripted(steps) as server:
        scanner = Scanner(_client(server.url))
        scan = scanner.scan(SOL)
    assert scanner.method == "keys" and scan.positions == {"A": _blob(7)} and scan.slot == 41
    assert server.methods() == ["getProgramAccountsV2", "getProgramAccounts",
                                "getMultipleAccounts"]
    assert server.requests[1]["params"][1]["dataSlice"] == {"offset": 161, "length": 8}
    assert server.requests[2]["params"][0] == ["A"]  # only the open account is downloaded

    full = {"context": {"slot": 9}, "value": [_acct("A", _blob(7))]}
    steps = [rpc_error(-32601, "Method not found"), rpc_error(-32602, "dataSlice unsupported"),
             ok(full)]
    with scripted(steps) as server:
        scanner = Scanner(_client(server.url))
        assert scanner.scan(SOL).positions == {"A": _blob(7)}
    assert scanner.method == "full"


def test_key_only_scan_on_surfnet(surfnet) -> None:
    from solders.pubkey import Pubkey

    data = bytearray(_blob(5))
    data[72:104] = bytes(Pubkey.from_string(SOL))
    data[0:8] = C.POSITION_DISCRIMINATOR
    closed = bytearray(data)
    struct.pack_into("<Q", closed, C.POSITION_SIZE_USD_OFFSET, 0)
    surfnet.set_account("11111111111111111111111111111112", bytes(data), C.PERPS_PROGRAM_ID)
    surfnet.set_account("11111111111111111111111111111113", bytes(closed), C.PERPS_PROGRAM_ID)
    scanner = Scanner(_client(surfnet.rpc_url))
    scan = scanner.scan(SOL)
    assert scanner.method == "keys"
    assert scan.positions == {"11111111111111111111111111111112": bytes(data)}
