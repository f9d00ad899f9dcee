"""On-chain confirmation of detected liquidations, against a loopback node that serves
`getSignaturesForAddress`/`getTransaction` built from Jupiter's event layouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from solders.pubkey import Pubkey

from liqmap.collect.confirm import (
    NOT_COVERED,
    NOT_FOUND,
    OFF,
    RateLimit,
    RealizedLiquidations,
    confirm_row,
    refused,
)
from liqmap.collect.liquidations import CLOSED, LIQUIDATED, NO_TRANSACTIONS
from liqmap.collect.rpc import Transport
from liqmap.collect.rpc.responses import parse_result
from liqmap.config import Settings
from liqmap.errors import RpcError
from liqmap.jupiter import events as E
from liqmap.store import Store
from liqmap.store import schema as S

from factories import PARAMS, priced_positions, state_table
from scripted_rpc import ChainScript, scripted, transaction

T0 = pd.Timestamp("2026-11-24T08:00:00Z")
T1 = T0 + pd.Timedelta(minutes=1)
IN_WINDOW = int(T0.timestamp()) + 30
POS = str(Pubkey.new_unique())
OTHER = str(Pubkey.new_unique())


def _liq_event(position: str, n_fields: int | None = None, price: int = 142_500_000) -> bytes:
    return E.encode_event(E.LIQUIDATE_FULL_POSITION_EVENT, E.LIQUIDATE_FULL_FIELDS,
                          {"positionKey": position, "price": price, "feeUsd": 7_000_000,
                           "liquidationFeeUsd": 21_000_000}, n_fields)


def _decrease_event(position: str) -> bytes:
    return E.encode_event(E.DECREASE_POSITION_EVENT, E.DECREASE_FIELDS,
                          {"positionKey": position, "price": 149_000_000, "feeUsd": 900_000})


def _row(kind: str = CLOSED) -> dict[str, Any]:
    return {"pubkey": POS, "ts": T1.to_pydatetime(), "ts_before": T0.to_pydatetime(),
            "kind": kind}


def _call(url: str) -> Any:
    transport = Transport([url], max_retries=0)

    def call(method: str, params: list[Any]) -> Any:
        return transport.call(method, params, lambda raw: parse_result(raw, method))[0]
    return call


def test_full_event_confirms_kind_price_and_fees() -> None:
    chain = ChainScript()
    chain.add(POS, "sig-open", transaction([]), IN_WINDOW - 3600)  # outside the window
    chain.add(POS, "sig-liq", transaction([_decrease_event(OTHER), _liq_event(POS)]), IN_WINDOW)
    with scripted([], chain) as server:
        found = confirm_row(_call(server.url), _row(CLOSED))
    assert (found.kind, found.signature) == (LIQUIDATED, "sig-liq")
    assert (found.event_price, found.fee_usd, found.liquidation_fee_usd) == (142.5, 7.0, 21.0)
    tx_calls = [r for r in server.requests if r["method"] == "getTransaction"]
    assert [r["params"][0] for r in tx_calls] == ["sig-liq"]
    assert tx_calls[0]["params"][1]["maxSupportedTransactionVersion"] == 0


def test_short_legacy_payload_confirms() -> None:
    chain = ChainScript()
    chain.add(POS, "sig-old", transaction([_liq_event(POS, n_fields=17)]), IN_WINDOW)
    with scripted([], chain) as server:
        found = confirm_row(_call(server.url), _row())
    assert found.kind == LIQUIDATED and found.event_price == 142.5


def test_failed_transactions_are_skipped() -> None:
    chain = ChainScript()
    failed = transaction([_liq_event(POS)], err={"InstructionError": [0, {"Custom": 6001}]})
    chain.add(POS, "sig-failed", failed, IN_WINDOW + 1)
    # a node that lists the signature as ok but whose transaction meta says it failed
    inconsistent = transaction([_liq_event(POS)], err={"InstructionError": [0, "x"]})
    chain.add(POS, "sig-meta-failed", inconsistent, IN_WINDOW + 2)
    chain.history[POS][-1]["err"] = None
    chain.add(POS, "sig-close", transaction([_decrease_event(POS)]), IN_WINDOW)
    with scripted([], chain) as server:
        found = confirm_row(_call(server.url), _row(LIQUIDATED))
    # the trader's close is what happened: a detected "liquidated" is corrected
    assert (found.kind, found.signature, found.event_price) == (CLOSED, "sig-close", 149.0)
    asked = [r["params"][0] for r in server.requests if r["method"] == "getTransaction"]
    assert "sig-failed" not in asked


def test_unrelated_jupiter_events_confirm_nothing() -> None:
    chain = ChainScript()
    unrelated = [_liq_event(OTHER), _decrease_event(OTHER),
                 E.encode_event(bytes.fromhex("1122334455667788"), E.LIQUIDATE_FULL_FIELDS,
                                {"positionKey": POS})]
    chain.add(POS, "sig-x", transaction(unrelated), IN_WINDOW)
    with scripted([], chain) as server:
        found = confirm_row(_call(server.url), _row(LIQUIDATED))
    assert found.kind is None and found.status == NOT_FOUND


def test_a_window_older_than_the_signatures_examined_is_said_so() -> None:
    chain = ChainScript()
    for i in range(5):
        chain.add(POS, f"sig-{i}", transaction([]), IN_WINDOW + 3600 + i)  # all newer
    with scripted([], chain) as server:
        found = confirm_row(_call(server.url), _row(), limit=5)
    assert found.kind is None and found.status == NOT_COVERED


def test_a_node_without_transactions_raises_for_good() -> None:
    with scripted([], ChainScript(refuse=True)) as server, pytest.raises(RpcError) as err:
        confirm_row(_call(server.url), _row())
    assert refused(err.value)


def test_rate_limit_spaces_requests() -> None:
    limiter = RateLimit(20.0, threading.Event())
    started = time.monotonic()
    for _ in range(5):
        assert limiter.acquire()
    assert time.monotonic() - started >= 4 / 20 - 0.01
    stop = threading.Event()
    stop.set()
    limiter = RateLimit(0.01, stop)
    limiter.acquire()
    assert not limiter.acquire()  # a stopped collector never waits 100 s


# ---------------------------------------------------------------- in the collector
LONG = {"pubkey": POS, "side": "long", "size_usd6": 10_000_000_000, "entry_usd6": 150_000_000,
        "collateral_usd6": 500_000_000, "open_time": T0}
SHORT = {"pubkey": OTHER, "side": "short", "size_usd6": 5_000_000_000,
         "entry_usd6": 150_000_000, "collateral_usd6": 500_000_000, "open_time": T0}


def _snapshot(ts: pd.Timestamp, price: float, rows: list[dict[str, Any]]) -> SimpleNamespace:
    state = state_table(ts, len(rows), price_usd=price).to_pylist()[0]
    state.update(decrease_position_bps=PARAMS.decrease_position_bps,
                 trade_impact_fee_scalar=PARAMS.trade_impact_fee_scalar,
                 max_leverage_bps=PARAMS.max_leverage_bps, cumulative_interest_rate_now=1_000_000,
                 usdc_cumulative_interest_rate_now=1_000_000,
                 usdt_cumulative_interest_rate_now=1_000_000)
    return SimpleNamespace(positions=priced_positions(ts, rows),
                           state=pa.Table.from_pylist([state], schema=S.MARKET_STATE))


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@contextmanager
def _confirming(store: Store, url: str, rps: float) -> Iterator[RealizedLiquidations]:
    """Realized liquidations with their background confirmer running against `url`."""
    stop = threading.Event()
    realized = RealizedLiquidations(store, Settings(rpc_urls=(url,), confirm_rps=rps), stop)
    realized.start()
    try:
        yield realized
    finally:
        stop.set()
        realized.stop_and_join()


def test_collector_detects_then_confirms_in_the_background(tmp_path) -> None:
    chain = ChainScript()
    chain.add(POS, "sig-liq", transaction([_liq_event(POS, price=142_000_000)]), IN_WINDOW)
    chain.add(OTHER, "sig-close", transaction([_decrease_event(OTHER)]), IN_WINDOW)
    store = Store(str(tmp_path))
    with scripted([], chain) as server, _confirming(store, server.url, 10.0) as realized:
        realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
        rows = realized.after_snapshot("SOL", _snapshot(T1, 142.0, []))
        # the cycle's part is done before any transaction was asked for
        assert rows is not None and rows.num_rows == 2
        assert set(rows.column("confirm_status").to_pylist()) == {"pending"}
        _wait_for(lambda: store.read_liquidations("SOL")["confirmed"].all())
    df = store.read_liquidations("SOL").set_index("pubkey")
    assert df.loc[POS, "kind"] == LIQUIDATED and df.loc[POS, "signature"] == "sig-liq"
    assert df.loc[POS, "event_price"] == 142.0 and df.loc[POS, "liquidation_fee_usd"] == 21.0
    assert df.loc[OTHER, "kind"] == CLOSED and df.loc[OTHER, "signature"] == "sig-close"
    # rate-limited to 10/s: four requests span at least three intervals (judged over the span,
    # since one arrival delayed by a loaded machine shortens the next gap without any burst)
    assert len(server.times) == 4
    assert server.times[-1] - server.times[0] >= 3 / 10 - 0.05


def test_confirmations_of_one_detection_are_stored_in_one_write(tmp_path) -> None:
    """The confirmer rewrites a liquidations file once for the rows it confirmed together,
    not once per row (each rewrite reads and writes the whole file)."""
    chain = ChainScript()
    chain.add(POS, "sig-liq", transaction([_liq_event(POS)]), IN_WINDOW)
    chain.add(OTHER, "sig-close", transaction([_decrease_event(OTHER)]), IN_WINDOW)
    store = Store(str(tmp_path))
    writes: list[str] = []
    write_table = store.fs.write_table

    def counted(rel: str, *args: Any, **kwargs: Any) -> bool:
        if rel.startswith("liquidations/"):
            writes.append(rel)
        return write_table(rel, *args, **kwargs)

    store.fs.write_table = counted  # type: ignore[method-assign]
    with scripted([], chain) as server, _confirming(store, server.url, 20.0) as realized:
        realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
        realized.after_snapshot("SOL", _snapshot(T1, 142.0, []))
        _wait_for(lambda: store.read_liquidations("SOL")["confirmed"].all())
    assert len(writes) == 2 and len(set(writes)) == 1  # the detection, then both confirmed
    assert set(store.read_liquidations("SOL")["signature"]) == {"sig-liq", "sig-close"}


def test_without_transaction_access_rows_stay_unconfirmed_and_say_so(tmp_path) -> None:
    store = Store(str(tmp_path))
    with scripted([], ChainScript(refuse=True)) as server:
        with _confirming(store, server.url, 50.0) as realized:
            realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
            realized.after_snapshot("SOL", _snapshot(T1, 142.0, []))
            _wait_for(lambda: set(store.read_liquidations("SOL")["confirm_status"])
                      == {NO_TRANSACTIONS})
        assert len(server.requests) == 1  # once refused, never asked again
    df = store.read_liquidations("SOL")
    assert not df["confirmed"].any() and df["signature"].isna().all()
    assert df.set_index("pubkey").loc[POS, "kind"] == LIQUIDATED  # the detection stands


def test_confirmation_off_is_recorded(tmp_path) -> None:
    store = Store(str(tmp_path))
    realized = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    realized.start()
    realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG]))
    realized.after_snapshot("SOL", _snapshot(T1, 149.0, []))
    assert store.read_liquidations("SOL")["confirm_status"].tolist() == [OFF]


def test_previous_snapshot_comes_from_the_store_after_a_restart(tmp_path) -> None:
    store = Store(str(tmp_path))
    first = _snapshot(T0, 150.0, [LONG, SHORT])
    store.write_snapshot("SOL", first.positions, first.state)
    realized = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    rows = realized.after_snapshot("SOL", _snapshot(T1, 142.0, [SHORT]))
    assert rows is not None and rows.column("pubkey").to_pylist() == [POS]


def test_two_collectors_on_one_store_detect_each_disappearance_once(tmp_path) -> None:
    store = Store(str(tmp_path))
    a = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    b = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    t2 = T1 + pd.Timedelta(minutes=1)
    book = {T0: [LONG, SHORT], T1: [SHORT], t2: []}
    snaps = {ts: _snapshot(ts, 150.0, rows) for ts, rows in book.items()}
    # minute T0 and t2 stored by collector a, T1 by b (a found it already stored)
    for ts, writer in ((T0, a), (T1, b), (t2, a)):
        store.write_snapshot("SOL", snaps[ts].positions, snaps[ts].state)
        writer.after_snapshot("SOL", snaps[ts])
        (b if writer is a else a).forget("SOL")
    rows = store.read_liquidations("SOL")
    assert sorted(zip(rows["pubkey"], rows["ts"], strict=True)) == sorted(
        [(POS, T1), (OTHER, t2)])


# ---------------------------------------------------------------- closes seen by the stream
def _seen(fx_path: Any, pubkey: str, price_usd: float, at: pd.Timestamp) -> Any:
    """A close as the stream hands it over: the SOL custody (no interest accrued since `at`'s
    counter of 1e6, as in the stored rows) and its price feed at `price_usd`."""
    import base64
    import json
    from dataclasses import replace

    from liqmap import constants as C
    from liqmap.collect.confirm import SeenClose
    from liqmap.jupiter.decode import decode_ag_price_feed_account, decode_custody
    from liqmap.jupiter.encode import encode_ag_price_feed, encode_custody

    fx = {k: base64.b64decode(v["data_b64"]) for k, v in json.loads(fx_path.read_text()).items()}
    custody = replace(decode_custody(fx["custody_sol"]), cumulative_interest_rate=1_000_000,
                      funding_last_update=int(at.timestamp()) + 3600)
    feed = replace(decode_ag_price_feed_account(fx["doves_ag_sol"]), price=round(price_usd * 1e8))
    sol = C.CUSTODY_BY_ASSET["SOL"]
    return SeenClose("SOL", pubkey, 7, time.monotonic(), sol, (),
                     {sol: encode_custody(custody),
                      custody.doves_ag_oracle: encode_ag_price_feed(feed)})


def test_stream_closes_are_recorded_once_whatever_the_order(tmp_path, mainnet_accounts_path
                                                            ) -> None:
    store = Store(str(tmp_path))
    realized = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
    at = T0 + pd.Timedelta(seconds=20)
    rows = realized.record_close(_seen(mainnet_accounts_path, POS, 140.0, at), at)
    assert rows is not None and rows.column("kind").to_pylist() == [LIQUIDATED]
    assert rows.column("oracle_price_after").to_pylist() == [140.0]
    assert realized.record_close(_seen(mainnet_accounts_path, POS, 140.0, at), at) is None
    unknown = str(Pubkey.new_unique())  # opened and closed within the minute
    assert realized.record_close(_seen(mainnet_accounts_path, unknown, 140.0, at), at) is None
    # SHORT closes after the copy of T1 (T1 still holds it), seen on a clock behind T0
    late = T0 - pd.Timedelta(seconds=5)
    rows = realized.record_close(_seen(mainnet_accounts_path, OTHER, 140.0, late), late)
    assert rows is not None and rows.column("kind").to_pylist() == [CLOSED]
    assert rows.column("ts").to_pylist()[0] == T0 + pd.Timedelta(seconds=1)
    t1 = realized.after_snapshot("SOL", _snapshot(T1, 140.0, [SHORT]))
    t2 = realized.after_snapshot("SOL", _snapshot(T1 + pd.Timedelta(minutes=1), 140.0, []))
    assert t1 is not None and t2 is not None and t1.num_rows == t2.num_rows == 0
    df = store.read_liquidations("SOL").set_index("pubkey")
    assert dict(df["kind"]) == {POS: LIQUIDATED, OTHER: CLOSED}
    assert df.loc[POS, "ts"] == at and df.loc[POS, "ts_before"] == T0


def test_closes_seen_together_are_classified_in_one_pass(tmp_path, mainnet_accounts_path,
                                                         monkeypatch) -> None:
    """Closes of one market seen at one time and slot (a cascade) become one table in one
    classification, with the rows classifying them one at a time gives."""
    from dataclasses import replace

    from liqmap.collect import confirm
    from liqmap.collect.liquidations import classify_gone

    at = T0 + pd.Timedelta(seconds=20)
    a = _seen(mainnet_accounts_path, POS, 140.0, at)
    b = replace(a, pubkey=OTHER)  # same slot, same copy of the accounts
    alone = []
    for seen in (a, b):
        store = Store(str(tmp_path / f"alone-{seen.pubkey}"))
        one = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
        one.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
        alone.append(one.record_closes([(seen, at)]))
    sizes: list[int] = []

    def counted(gone: pa.Table, **kwargs: Any) -> pa.Table:
        sizes.append(gone.num_rows)
        return classify_gone(gone, **kwargs)

    monkeypatch.setattr(confirm, "classify_gone", counted)
    realized = RealizedLiquidations(Store(str(tmp_path / "together")),
                                    Settings(confirm_rps=0.0), threading.Event())
    realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
    together = realized.record_closes([(a, at), (b, at)])
    assert sizes == [2]
    assert together.sort_by("pubkey").equals(pa.concat_tables(alone).sort_by("pubkey"))
    assert dict(zip(together.column("pubkey").to_pylist(), together.column("kind").to_pylist(),
                    strict=True)) == {POS: LIQUIDATED, OTHER: CLOSED}



def test_a_snapshot_waits_for_the_closes_the_stream_saw_before_its_copy(tmp_path,
                                                                         mainnet_accounts_path
                                                                         ) -> None:
    """The stream collector's snapshot waits until the closes its books applied before the
    copy are recorded as the stream saw them (its time, its price), so its own comparison
    does not take them over and date them to the minute."""
    store = Store(str(tmp_path))
    realized = RealizedLiquidations(store, Settings(confirm_rps=0.0), threading.Event())
    realized.after_snapshot("SOL", _snapshot(T0, 150.0, [LONG, SHORT]))
    at = T0 + pd.Timedelta(seconds=20)
    release = threading.Event()

    def context(markets: set[str]) -> tuple[float, float, dict[str, Any]]:
        release.wait(10)  # a Clock read and a wait for the stream, slow on purpose
        return at.timestamp(), time.monotonic(), {}

    assert realized.wait_closes(0, 0.0)
    realized.start_closes(context)
    try:
        realized.position_closed(_seen(mainnet_accounts_path, POS, 140.0, at))
        seen = realized.closes_seen()
        assert seen == 1
        assert not realized.wait_closes(seen, 0.2)  # still being classified
        release.set()
        assert realized.wait_closes(seen, 10.0)
        assert store.read_liquidations("SOL")["pubkey"].tolist() == [POS]
        rows = realized.after_snapshot("SOL", _snapshot(T1, 140.0, [SHORT]))
        assert rows is not None and rows.num_rows == 0  # recorded once, by the stream
    finally:
        realized.stop_closes()
    assert realized.wait_closes(seen + 1, 5.0)  # no close thread: never waits
