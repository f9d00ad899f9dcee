"""RPC fault paths against a scripted HTTP JSON-RPC server on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from liqmap import constants as C
from liqmap.collect.rpc import RpcClient, Transport
from liqmap.collect.rpc import requests as Q
from liqmap.config import load_settings
from liqmap.errors import RpcError

from scripted_rpc import Step, ok, rpc_error, scripted

ACCOUNT = {"data": [base64.b64encode(b"\x01\x02\x03").decode(), "base64"], "owner": "x",
           "lamports": 1, "executable": False, "rentEpoch": 0, "space": 3}
GMA_OK = ok({"context": {"slot": 42}, "value": [ACCOUNT, None]})
GPA_OK = ok({"context": {"slot": 43}, "value": [{"pubkey": "P1", "account": ACCOUNT}]})


def client(*urls: str, retries: int = 4, timeout_s: float = 5.0) -> RpcClient:
    transport = Transport(list(urls), timeout_s=timeout_s, max_retries=retries, backoff_s=0.01,
                          backoff_max_s=0.05)
    return RpcClient(transport, gpa_timeout_s=timeout_s)


def test_request_bodies_are_what_the_node_expects() -> None:
    filters = Q.position_filters(C.CUSTODY_BY_ASSET["SOL"])
    assert filters == [{"memcmp": {"offset": 0, "bytes": "VZMoMoKgZQb"}},
                       {"memcmp": {"offset": 72, "bytes": C.CUSTODY_BY_ASSET["SOL"]}}]
    params = Q.get_program_accounts_params(C.PERPS_PROGRAM_ID, filters)
    assert params[1]["encoding"] == "base64" and params[1]["withContext"] is True
    with pytest.raises(ValueError, match="at most 100"):
        Q.get_multiple_accounts_params(["k"] * 101)


def test_success_parses_slot_and_bytes() -> None:
    with scripted([GMA_OK]) as srv:
        result, stats = client(srv.url).get_multiple_accounts(["A", "B"])
    assert result.slot == 42 and result.data == {"A": b"\x01\x02\x03", "B": None}
    assert stats.retries == 0 and stats.response_bytes > 0


def test_429_retry_after_is_honoured() -> None:
    steps = [Step(status=429, headers={"Retry-After": "1"}, body=b"slow down"), GMA_OK]
    with scripted(steps) as srv:
        started = time.monotonic()
        result, stats = client(srv.url).get_multiple_accounts(["A", "B"])
        waited = time.monotonic() - started
    assert result.slot == 42 and stats.retries == 1
    assert waited >= 0.95


@pytest.mark.parametrize("bad", [
    Step(status=502, body=b"bad gateway"),
    Step(status=503, body=b""),
    Step(body=b'{"jsonrpc":"2.0","id":1,"result":{"context":{"slot":1},"value":[{"da'),
    Step(body=b"<html>not json</html>"),
    Step(body=GMA_OK.body, truncate=True),
    Step(body=GMA_OK.body.replace(b"AQID", b"!!not-base64!!")),
    rpc_error(-32005, "Node is behind by 120 slots"),
    Step(body=b'{"jsonrpc":"2.0","id":1}'),
], ids=["502", "503", "truncated-json", "html", "connection-cut", "bad-base64",
        "node-behind", "no-result"])
def test_transient_faults_are_retried(bad: Step) -> None:
    with scripted([bad, bad, GMA_OK]) as srv:
        result, stats = client(srv.url).get_multiple_accounts(["A", "B"])
    assert result.data["A"] == b"\x01\x02\x03"
    assert stats.retries == 2 and srv.methods() == ["getMultipleAccounts"] * 3


def test_timeouts_are_retried() -> None:
    with scripted([Step(body=GPA_OK.body, delay_s=1.5), GPA_OK]) as srv:
        result, stats = client(srv.url, timeout_s=0.5).get_program_accounts(
            C.PERPS_PROGRAM_ID, [])
    assert result.pubkeys == ["P1"] and result.slot == 43 and stats.retries == 1


def test_rpc_error_object_that_cannot_succeed_is_not_retried() -> None:
    with (scripted([rpc_error(-32602, "Invalid param: too many filters")]) as srv,
          pytest.raises(RpcError, match="-32602: Invalid param") as err):
        client(srv.url).get_program_accounts(C.PERPS_PROGRAM_ID, [])
    assert len(srv.requests) == 1 and err.value.method == "getProgramAccounts"


def test_failover_to_the_next_endpoint() -> None:
    with scripted([Step(status=503)]) as down, scripted([GPA_OK]) as up:
        result, stats = client(down.url, up.url).get_program_accounts(C.PERPS_PROGRAM_ID, [])
    assert result.pubkeys == ["P1"] and stats.attempts == 2
    assert len(down.requests) == 1 and len(up.requests) == 1


def test_bad_api_key_moves_on_to_the_next_endpoint() -> None:
    with scripted([Step(status=401, body=b"invalid api key")]) as bad, scripted([GMA_OK]) as good:
        result, _ = client(bad.url, good.url).get_multiple_accounts(["A", "B"])
    assert result.slot == 42


def test_gives_up_after_max_retries_with_redacted_url() -> None:
    with scripted([Step(status=500)]) as srv:
        url = srv.url + "/?api-key=SECRET123"
        with pytest.raises(RpcError) as err:
            client(url, retries=2).get_multiple_accounts(["A"])
    message = str(err.value)
    assert "after 3 attempts" in message and "HTTP 500" in message
    assert "SECRET123" not in message and "127.0.0.1" in message


def test_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    steps = [Step(status=429, headers={"Retry-After": "30"})]
    with scripted(steps) as srv:
        started = time.monotonic()
        with pytest.raises(RpcError, match="out of time"):
            client(srv.url).get_multiple_accounts(["A"], deadline=time.monotonic() + 2)
    assert time.monotonic() - started < 10  # not the 30 s Retry-After


def test_collector_records_a_miss_and_never_logs_the_key(tmp_path, caplog) -> None:
    from liqmap.collect.loop import Collector
    from liqmap.store import Store

    caplog.set_level(logging.DEBUG, logger="liqmap")
    with scripted([Step(status=500, body=b"boom")]) as srv:
        settings = load_settings({"rpc_urls": srv.url + "/v2/SECRETKEY", "markets": "SOL",
                                  "max_retries": 1, "backoff_s": 0.01},
                                 environ={})
        store = Store(str(tmp_path))
        results = Collector(settings, store).collect_once()
    assert results[0].error and not results[0].stored
    misses = store.read_misses("SOL").to_pylist()
    assert len(misses) == 1 and "HTTP 500" in misses[0]["reason"]
    assert "SECRETKEY" not in misses[0]["reason"]
    assert "SECRETKEY" not in caplog.text and "/***" in misses[0]["reason"]


def test_the_primary_gets_requests_again_once_its_back_off_ends() -> None:
    """After one 429 the first --rpc-url is preferred again as soon as its back-off ends."""
    steps = [Step(status=429, headers={"Retry-After": "0.3"}, body=b"slow down"), GMA_OK]
    with scripted(steps) as primary, scripted([GMA_OK]) as backup:
        rpc = client(primary.url + "/?api-key=KEY1", backup.url)
        rpc.get_multiple_accounts(["A", "B"])  # 429 on the primary, answered by the backup
        assert (len(primary.requests), len(backup.requests)) == (1, 1)
        rpc.get_multiple_accounts(["A", "B"])  # still backing off: the backup again
        assert len(backup.requests) == 2
        time.sleep(0.35)
        for _ in range(3):
            rpc.get_multiple_accounts(["A", "B"])
        assert (len(primary.requests), len(backup.requests)) == (4, 2)
        first, second = rpc.transport.report()
    assert (first.requests, first.errors, first.retries) == (4, 1, 0)
    assert "429" in first.last_error and "KEY1" not in first.endpoint + first.last_error
    assert (second.requests, second.errors, second.retries) == (2, 0, 1)
    assert first.backoff_s == 0 and second.last_error == ""


def test_every_read_asks_for_a_minimum_context_slot() -> None:
    with scripted([GMA_OK, GPA_OK]) as srv:
        rpc = client(srv.url)
        rpc.get_multiple_accounts(["A", "B"], min_context_slot=41)
        rpc.get_program_accounts(C.PERPS_PROGRAM_ID, [], min_context_slot=42)
    assert [r["params"][1]["minContextSlot"] for r in srv.requests] == [41, 42]


def test_a_node_behind_the_minimum_slot_is_retried_elsewhere() -> None:
    behind = rpc_error(-32016, "Minimum context slot has not been reached")
    with scripted([behind]) as lagging, scripted([GPA_OK]) as current:
        result, _ = client(lagging.url, current.url).get_program_accounts(
            C.PERPS_PROGRAM_ID, [], min_context_slot=43)
    assert result.slot == 43 and len(lagging.requests) == 1
