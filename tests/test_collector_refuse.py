"""The collector refuses wrong chain answers from a real node (surfnet behind a loopback proxy
that empties or ages its answers): a refused answer is a miss with its reason, never a snapshot."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from liqmap.collect.loop import Collector
from liqmap.config import load_settings
from liqmap.store import Store

from scripted_rpc import proxy
from test_collector_surfnet import BOOK, Chain

T0 = pd.Timestamp("2026-11-24T08:00:00Z")


@pytest.fixture
def fx(mainnet_accounts_path: Path) -> dict[str, bytes]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: base64.b64decode(v["data_b64"]) for k, v in data.items()}


def collector(url: str, tmp_path) -> tuple[Collector, Store]:
    settings = load_settings({"rpc_urls": url, "markets": "SOL", "data_dir": str(tmp_path),
                              "max_retries": 1, "backoff_s": 0.01}, environ={})
    store = Store(str(tmp_path))
    return Collector(settings, store), store


def empty_positions_answer(method: str, answer: dict[str, Any]) -> dict[str, Any]:
    if method == "getProgramAccounts":
        answer["result"]["value"] = []
    return answer


def test_an_empty_answer_is_a_miss_when_the_custody_has_open_interest(surfnet, fx, tmp_path
                                                                      ) -> None:
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    with proxy(surfnet.rpc_url) as node:
        node.rewrite = empty_positions_answer
        col, store = collector(node.url, tmp_path)
        [result] = col.collect_once(T0)
    assert not result.stored and "guaranteedUsd" in (result.error or "")
    assert store.read_market_state("SOL").num_rows == 0
    [miss] = store.read_misses("SOL").to_pylist()
    assert "4 long(s)" not in miss["reason"] and "0 long(s)" in miss["reason"]


def test_a_market_with_no_open_positions_is_stored(surfnet, fx, tmp_path) -> None:
    Chain(surfnet, fx).sync_custody()  # the custody agrees: no open interest at all
    col, store = collector(surfnet.rpc_url, tmp_path)
    [result] = col.collect_once(T0)
    assert result.stored and store.read_market_state("SOL").column("n_positions").to_pylist() == [0]


def test_a_node_far_behind_is_refused_and_minimum_slots_are_asked(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)

    def behind(method: str, answer: dict[str, Any]) -> dict[str, Any]:
        if method == "getProgramAccounts":
            ctx = answer["result"]["context"]
            ctx["slot"] = max(ctx["slot"] - 300_000, 1)
        return answer

    with proxy(surfnet.rpc_url) as node:
        col, store = collector(node.url, tmp_path)
        assert col.collect_once(T0)[0].stored
        node.rewrite = behind
        [result] = col.collect_once(T0 + pd.Timedelta(minutes=1))
    assert not result.stored and "stale" in (result.error or "")
    assert store.read_market_state("SOL").num_rows == 1
    gpa = [r for r in node.requests if r["method"] == "getProgramAccounts"]
    gma = [r for r in node.requests if r["method"] == "getMultipleAccounts"]
    assert all(r["params"][1]["minContextSlot"] > 0 for r in gpa)
    assert gma[-1]["params"][1]["minContextSlot"] > 0  # after the first snapshot


def test_the_same_positions_are_never_stored_under_a_later_minute(surfnet, fx, tmp_path) -> None:
    """A node that fell behind answers older slots than the last snapshot: refused, also by a
    restarted collector (the previous slot comes from the store)."""
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    col, store = collector(surfnet.rpc_url, tmp_path)
    assert col.collect_once(T0)[0].stored
    stored_slot = store.read_market_state("SOL").column("positions_slot")[0].as_py()

    def fell_behind(method: str, answer: dict[str, Any]) -> dict[str, Any]:
        result = answer.get("result")
        if isinstance(result, dict) and "context" in result:
            result["context"]["slot"] = max(stored_slot - 1_000, 1)
        return answer

    with proxy(surfnet.rpc_url) as node:
        node.rewrite = fell_behind
        restarted, _ = collector(node.url, tmp_path)
        [result] = restarted.collect_once(T0 + pd.Timedelta(minutes=1))
    assert not result.stored and "older than the previous snapshot" in (result.error or "")
    assert store.read_market_state("SOL").num_rows == 1


def test_on_the_chain_clock_a_slot_that_went_back_is_not_a_refusal(surfnet, fx, tmp_path
                                                                   ) -> None:
    """Surfnet's time travel can move its slot back (slot arithmetic across epochs; seen in a
    demo run). On `--clock chain` the Clock read with the accounts places the node, so the
    next minute is stored; on the system clock the same slots are refused (test above)."""
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    minute_s = (surfnet.chain_time() // 60 + 2) * 60
    surfnet.time_travel((minute_s + 1) * 1000)
    now = pd.Timestamp(minute_s, unit="s", tz="UTC")
    store = Store(str(tmp_path))

    def chain_clock(url: str) -> Collector:
        return Collector(load_settings({"rpc_urls": url, "markets": "SOL", "clock": "chain",
                                        "data_dir": str(tmp_path), "max_retries": 1,
                                        "backoff_s": 0.01}, environ={}), store)

    assert chain_clock(surfnet.rpc_url).collect_once(now)[0].stored
    stored_slot = store.read_market_state("SOL").column("positions_slot")[0].as_py()

    def slots_back(method: str, answer: dict[str, Any]) -> dict[str, Any]:
        result = answer.get("result")
        if isinstance(result, dict) and "context" in result:
            result["context"]["slot"] = max(stored_slot - 1_000, 1)  # as after the jump back
        return answer

    surfnet.time_travel((minute_s + 61) * 1000)
    with proxy(surfnet.rpc_url) as node:
        node.rewrite = slots_back
        [result] = chain_clock(node.url).collect_once(now + pd.Timedelta(minutes=1))
    assert result.stored, result.error
    assert store.snapshot_times("SOL").tolist() == [now, now + pd.Timedelta(minutes=1)]
