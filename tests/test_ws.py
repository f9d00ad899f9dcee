"""PubSub messages (pure): subscribe bodies reuse poll mode's filters, parsers, URL derivation,
reconnect delays, frame sizes and the stall rule."""

from __future__ import annotations

import base64
import json

import pytest

from liqmap import constants as C
from liqmap.collect.rpc.requests import position_filters
from liqmap.collect.rpc.ws import (
    Notification,
    Reply,
    account_subscribe_params,
    derive_ws_url,
    parse_message,
    program_subscribe_params,
    request,
)
from liqmap.collect.rpc.wsconn import frame_bytes, reconnect_delay
from liqmap.collect.stream import stall_reason, ws_urls_for
from liqmap.config import load_settings
from liqmap.errors import ConfigError, RpcError

SOL = C.CUSTODY_BY_ASSET["SOL"]


def test_subscribe_bodies_use_the_poll_filters() -> None:
    body = json.loads(request("programSubscribe", program_subscribe_params(SOL), 7))
    assert body["id"] == 7 and body["method"] == "programSubscribe"
    program, config = body["params"]
    assert program == C.PERPS_PROGRAM_ID and config["encoding"] == "base64"
    assert config["filters"] == position_filters(SOL)
    assert config["filters"][1]["memcmp"]["offset"] == 72
    assert account_subscribe_params("K")[1]["encoding"] == "base64"


def _note(method: str, result: object, sub: int = 3) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method,
                       "params": {"result": result, "subscription": sub}}).encode()


def test_parsers() -> None:
    data = b"\x01\x02\x03"
    account = {"data": [base64.b64encode(data).decode(), "base64"], "owner": "O",
               "lamports": 5, "executable": False, "rentEpoch": 0, "space": 3}
    prog = parse_message(_note("programNotification", {
        "context": {"slot": 31}, "value": {"pubkey": "PK", "account": account}}))
    assert prog == Notification("program", 3, 31, "PK", data, "O")
    acct = parse_message(_note("accountNotification", {"context": {"slot": 9},
                                                       "value": {**account, "lamports": 0}}))
    assert isinstance(acct, Notification) and acct.data is None  # emptied: gone
    gone = parse_message(_note("accountNotification", {"context": {"slot": 9}, "value": None}))
    assert isinstance(gone, Notification) and gone.data is None
    slot = parse_message(_note("slotNotification", {"parent": 1, "root": 0, "slot": 2}, 4))
    assert slot == Notification("slot", 4, 2)
    assert parse_message(b'{"jsonrpc":"2.0","result":5,"id":12}') == Reply(12, 5, None)
    err = parse_message(b'{"jsonrpc":"2.0","error":{"code":-32602,"message":"bad"},"id":2}')
    assert isinstance(err, Reply) and err.error == "-32602: bad"
    assert parse_message(_note("logsNotification", {})) is None
    with pytest.raises(RpcError, match="malformed"):
        parse_message(b'{"method":"programNotification","params":{}}')


def test_ws_url_derivation_keeps_the_key_and_pairs_in_order() -> None:
    assert derive_ws_url("https://h.example/v1/?api-key=K") == "wss://h.example/v1/?api-key=K"
    assert derive_ws_url("http://127.0.0.1:8899") == "ws://127.0.0.1:8899"
    with pytest.raises(ConfigError):
        derive_ws_url("ftp://x")
    s = load_settings({"rpc_urls": ("https://a.example/?k=1", "https://b.example"),
                       "ws_urls": "wss://ws.a.example"}, environ={})
    assert ws_urls_for(s) == ("wss://ws.a.example", "wss://b.example")
    assert "k=1" not in s.describe()
    keyed = load_settings({"ws_urls": "wss://ws.example/?api-key=TOPSECRET"}, environ={})
    assert "TOPSECRET" not in keyed.describe() and "wss://ws.example/***" in keyed.describe()
    env = load_settings(environ={"LIQMAP_WS_URL": "wss://e.example/?key=SECRET",
                                 "LIQMAP_MODE": "poll", "LIQMAP_RESYNC": "60"})
    assert env.ws_urls == ("wss://e.example/?key=SECRET",) and env.mode == "poll"
    assert env.resync_s == 60
    with pytest.raises(ConfigError, match="ws://"):
        load_settings({"ws_urls": "https://x"}, environ={})
    with pytest.raises(ConfigError, match="mode"):
        load_settings({"mode": "push"}, environ={})


def test_reconnect_delay_grows_with_jitter_up_to_the_cap() -> None:
    delays = [reconnect_delay(f, 0.5, 60.0) for f in range(12)]
    assert 0.25 <= delays[0] <= 0.5 and all(d <= 60.0 for d in delays)
    assert delays[10] >= 30.0 and reconnect_delay(3, 0.5, 60) <= 4.0


def test_frame_bytes() -> None:
    assert [frame_bytes(n) for n in (10, 200, 70_000)] == [12, 204, 70_010]


def test_stall_rule() -> None:
    ok = dict(slot_silence_s=20.0, max_silence_s=90.0)
    assert stall_reason(100.0, 99.0, 50.0, 10, **ok) is None
    assert "no message" in stall_reason(100.0, 70.0, 70.0, 0, **ok)
    assert "stalled" in stall_reason(100.0, 99.0, 5.0, 200, **ok)
    assert stall_reason(100.0, 99.0, 5.0, 0, **ok) is None  # slots did not move: quiet chain
