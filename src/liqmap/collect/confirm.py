"""Realized liquidations in the collector: detect after each snapshot, confirm off the cycle.

`RealizedLiquidations.after_snapshot` runs on the cycle thread: it compares the stored snapshot
with the previous one (`liquidations.detect`) and stores the rows. A background thread then
confirms each row on chain at most `confirm_rps` requests per second, so it never delays a
snapshot: `getSignaturesForAddress` on the position account (the newest
`CONFIRM_SIGNATURES_LIMIT`), then `getTransaction` (maxSupportedTransactionVersion 0) for each
successful signature in the detection window, and decodes the program's events
(`jupiter.events`). A liquidation event fixes kind, price and fees; a decrease event confirms a
close. Without transaction access the rows stay unconfirmed and `confirm_status` says why.

In stream mode the book reports each position that goes to `sizeUsd = 0` (or whose account is
deleted) as it happens: `position_closed` queues it, and a small thread classifies it at once
with the same `classify_gone` against the last stored snapshot's row and the oracle price the
book held at the close, then stores it. The next snapshot's comparison skips what the stream
already recorded, so each disappearance gives one row.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.collect.liquidations import (
    CLOSED,
    LIQUIDATED,
    NO_TRANSACTIONS,
    PENDING,
    Observation,
    classify_gone,
    detect,
)
from liqmap.collect.rpc import Stopped, Transport
from liqmap.collect.rpc.responses import parse_result
from liqmap.config import Settings
from liqmap.errors import LiqmapError, RpcError
from liqmap.jupiter import events as E
from liqmap.jupiter import perps
from liqmap.jupiter.decode import decode_ag_price_feed, decode_custody
from liqmap.logs import scrub
from liqmap.store import Store
from liqmap.store import schema as S
from liqmap.timeutil import iso_utc

log = logging.getLogger("liqmap.collect")
OFF = "confirmation off"
NOT_FOUND = "no event in the position's transactions"
NOT_COVERED = "window older than the signatures examined"


@dataclass(frozen=True)
class Confirmation:
    """What the chain says about one detection (None fields: not found)."""

    kind: str | None
    signature: str | None = None
    event_price: float | None = None
    fee_usd: float | None = None
    liquidation_fee_usd: float | None = None
    status: str = "confirmed"


@dataclass(frozen=True)
class SeenClose:
    """A position the stream saw close, with the market's accounts as the book held them then.

    `seen_s`: monotonic seconds when the book applied the close; `accounts`: bytes of the
    traded custody (`custody`), the collateral custodies and the oracles, by key.
    """

    market: str
    pubkey: str
    slot: int
    seen_s: float
    custody: str
    collateral: tuple[str, ...]
    accounts: dict[str, bytes | None]


def close_state(seen: SeenClose, now_s: int) -> tuple[float, dict[str, int], perps.FeeParams]:
    """Oracle price (USD), cumulative interest accrued to `now_s` (unix s) per readable
    custody (RATE-9), and the traded custody's fee parameters, from the bytes of a close."""
    custody = decode_custody(seen.accounts[seen.custody] or b"")
    feed = seen.accounts.get(custody.doves_ag_oracle)
    if feed is None:
        raise LiqmapError(f"Doves AgPriceFeed {custody.doves_ag_oracle} not in the book")
    interest = {}
    for key in (seen.custody, *seen.collateral):
        data = seen.accounts.get(key)
        if data is not None:
            interest[key] = perps.accrue_cumulative_interest(decode_custody(data), now_s)
    params = perps.FeeParams(custody.decrease_position_bps, custody.trade_impact_fee_scalar,
                             custody.max_leverage_bps)
    return decode_ag_price_feed(feed).price_usd, interest, params


#: markets -> (schedule time in unix s, time.monotonic() then, accounts by market)
CloseContext = Callable[[set[str]], tuple[float, float, dict[str, dict[str, bytes | None]]]]


def _in_context(closes: list[SeenClose], context: CloseContext
                ) -> list[tuple[SeenClose, pd.Timestamp]]:
    """Each close with the accounts of its market as the book holds them once caught up (a
    close and the price update before it arrive on different subscriptions, in either
    order) and the time the book saw it."""
    now, mono, accounts = context({c.market for c in closes})
    return [(replace(c, accounts=accounts.get(c.market) or c.accounts),
             pd.Timestamp(now - (mono - c.seen_s), unit="s", tz="UTC")) for c in closes]


class RateLimit:
    """At most `rate` acquisitions per second (evenly spaced); `acquire` waits, or returns
    False once `stop` is set."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.step_s = 1.0 / rate
        self.stop = stop
        self.next_at = time.monotonic()

    def acquire(self) -> bool:
        wait = self.next_at - time.monotonic()
        if wait > 0 and self.stop.wait(wait):
            return False
        self.next_at = max(self.next_at, time.monotonic()) + self.step_s
        return not self.stop.is_set()


def confirm_row(call: Any, row: dict[str, Any], *,
                limit: int = C.CONFIRM_SIGNATURES_LIMIT,
                slack_s: float = C.CONFIRM_TIME_SLACK_S) -> Confirmation:
    """Look up one detection (`liquidations` row as a dict) on chain through `call(method,
    params) -> result`. Raises RpcError when the endpoint does not serve the calls."""
    pubkey = row["pubkey"]
    sigs = call("getSignaturesForAddress", [pubkey, {"limit": limit,
                                                      "commitment": "confirmed"}]) or []
    lo = pd.Timestamp(row["ts_before"]).timestamp() - slack_s
    hi = pd.Timestamp(row["ts"]).timestamp() + slack_s
    closes: list[Confirmation] = []
    for sig in sigs:
        when = sig.get("blockTime")
        if sig.get("err") is not None or (when is not None and not lo <= when <= hi):
            continue
        tx = call("getTransaction", [sig["signature"], {
            "encoding": "json", "maxSupportedTransactionVersion": 0,
            "commitment": "confirmed"}])
        found = _from_transaction(tx, pubkey, sig["signature"]) if tx else None
        if found is not None and found.kind == LIQUIDATED:
            return found
        if found is not None:
            closes.append(found)
    if closes:
        return closes[0]
    covered = len(sigs) < limit or any((s.get("blockTime") or hi) < lo for s in sigs)
    return Confirmation(None, status=NOT_FOUND if covered else NOT_COVERED)


def _from_transaction(tx: dict[str, Any], pubkey: str, signature: str) -> Confirmation | None:
    decrease = None
    for event in E.position_events(tx):
        if event.position_key != pubkey:
            continue
        if event.liquidation:
            return Confirmation(LIQUIDATED, signature, event.price_usd, event.fee_usd,
                                event.liquidation_fee_usd)
        decrease = Confirmation(CLOSED, signature, event.price_usd, event.fee_usd, None)
    if pubkey in E.liquidation_instruction_accounts(tx):
        return Confirmation(LIQUIDATED, signature)
    return decrease


def refused(exc: BaseException) -> bool:
    """True when the node refused the call for good (e.g. "method not found"): the error or
    one it was raised from is not retryable."""
    while exc is not None:
        if isinstance(exc, RpcError) and not exc.retryable:
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def apply(row: dict[str, Any], found: Confirmation) -> dict[str, Any]:
    """`row` updated with what the chain said (unchanged kind when nothing was found)."""
    out = dict(row)
    out["confirm_status"] = found.status
    if found.kind is None:
        return out
    out.update(kind=found.kind, confirmed=True, signature=found.signature,
               event_price=found.event_price, fee_usd=found.fee_usd,
               liquidation_fee_usd=found.liquidation_fee_usd)
    return out


class RealizedLiquidations:
    """Detection after each stored snapshot, and (once `start`ed) confirmation in a thread."""

    def __init__(self, store: Store, settings: Settings, stop: threading.Event) -> None:
        self.store = store
        self.settings = settings
        self.stop = stop
        self.last: dict[str, Observation] = {}
        self.queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(C.CONFIRM_QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self.no_access = False
        self._lock = threading.Lock()  # `last` and `_streamed`: cycle and close threads
        #: disappearances the stream recorded, per market: (pubkey, open_time)
        self._streamed: dict[str, set[tuple[str, Any]]] = {}
        self._closes: queue.Queue[SeenClose | None] = queue.Queue(C.CONFIRM_QUEUE_MAX)
        self._close_thread: threading.Thread | None = None
        #: closes handed over by the stream, and of them those recorded (or given up)
        self._closes_in = self._closes_out = 0
        self._closes_done = threading.Condition()

    # ---------------------------------------------------------------- detection (cycle thread)
    def after_snapshot(self, market: str, snapshot: Any, rejected: list[str] | None = None
                       ) -> pa.Table | None:
        """Detect what disappeared since the previous snapshot of `market`; never raises.
        `rejected`: accounts of this snapshot whose bytes did not decode (not gone: unknown)."""
        try:
            current = Observation.from_snapshot(market, snapshot.positions, snapshot.state)
            previous = self.last.get(market) or self._previous_from_store(market, current.ts)
            with self._lock:
                self.last[market] = current
                if previous is None:
                    return None
                rows = self._not_streamed(market, detect(previous, current,
                                                         status=self._status(),
                                                         unknown=rejected), current)
            if rows.num_rows:
                self.store.write_liquidations(market, rows)
                self._enqueue(market, rows)
                n_liq = sum(1 for k in rows.column("kind").to_pylist() if k == LIQUIDATED)
                log.info("%s %s: %d position(s) gone: %d liquidated, %d closed (detected)",
                         market, iso_utc(current.ts), rows.num_rows,
                         n_liq, rows.num_rows - n_liq)
            return rows
        except Exception:  # detection must never cost a snapshot
            log.exception("%s: liquidation detection failed", market)
            return None

    def _not_streamed(self, market: str, rows: pa.Table, current: Observation) -> pa.Table:
        """`rows` without the disappearances the stream already recorded; forgets those no
        longer open in `current` (called with the lock held)."""
        streamed = self._streamed.get(market)
        if not streamed:
            return rows
        keys = pa.array(sorted({k for k, _ in streamed}), pa.string())
        if rows.num_rows:
            rows = rows.filter(pc.invert(pc.is_in(rows.column("pubkey"), value_set=keys)))
        still = current.positions.filter(pc.is_in(current.positions.column("pubkey"),
                                                  value_set=keys))
        open_now = set(zip(still.column("pubkey").to_pylist(),
                           still.column("open_time").to_pylist(), strict=True))
        self._streamed[market] = streamed & open_now
        return rows

    # ---------------------------------------------------------------- stream closes
    def position_closed(self, seen: SeenClose) -> None:
        """Queue a close the stream saw (cheap: called on the WebSocket thread)."""
        try:
            self._closes.put_nowait(seen)
        except queue.Full:
            log.warning("%s: close queue full; %s is left to the next snapshot", seen.market,
                        seen.pubkey)
            return
        self._closes_in += 1

    def closes_seen(self) -> int:
        """How many closes the stream handed over so far (read under the book's lock: the
        closes applied to the books before that instant)."""
        return self._closes_in

    def wait_closes(self, seen: int, timeout_s: float) -> bool:
        """Wait until the first `seen` closes handed over are recorded, so the snapshot's
        comparison does not take over the closes the stream saw before the snapshot's copy
        (False after `timeout_s`, or at once when no close thread runs)."""
        with self._closes_done:
            return self._closes_done.wait_for(
                lambda: self._closes_out >= seen or self._close_thread is None, timeout_s)

    def start_closes(self, context: CloseContext) -> None:
        """Classify queued closes in a thread; `context(markets)` gives the schedule's time
        (unix s), `time.monotonic()` at that instant and each market's accounts once the
        stream delivered every write up to now."""
        if self._close_thread is not None:
            return
        self._close_thread = threading.Thread(target=self._run_closes, args=(context,),
                                              name="liqmap-closes", daemon=True)
        self._close_thread.start()

    def stop_closes(self) -> None:
        if self._close_thread is not None:
            self._closes.put(None)
            self._close_thread.join(timeout=10)
            self._close_thread = None

    def _run_closes(self, context: CloseContext) -> None:
        while not self.stop.is_set():
            try:
                batch = [self._closes.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < C.CLOSE_BATCH_MAX and batch[-1] is not None:
                try:  # a burst (a cascade) is classified and stored in one write
                    batch.append(self._closes.get_nowait())
                except queue.Empty:
                    break
            closes = [c for c in batch if c is not None]
            try:
                if closes:
                    self.record_closes(_in_context(closes, context))
            except Exception:  # the next snapshot's comparison still sees them
                log.exception("classifying %d close(s) seen by the stream failed", len(closes))
            with self._closes_done:
                self._closes_out += len(closes)
                self._closes_done.notify_all()
            if batch[-1] is None:
                return

    def record_close(self, seen: SeenClose, ts: pd.Timestamp) -> pa.Table | None:
        """`record_closes` of one close; None when nothing was recorded."""
        rows = self.record_closes([(seen, ts)])
        return rows if rows.num_rows else None

    def record_closes(self, closes: list[tuple[SeenClose, pd.Timestamp]]) -> pa.Table:
        """Classify and store closes the stream saw (each with the time it saw it), against
        the last stored snapshot. Skipped: positions that snapshot did not hold (nothing was
        predicted), a snapshot too old, disappearances already recorded. Returns the rows."""
        claimed: dict[str, list[tuple[str, Any]]] = {}
        groups: dict[tuple[Any, ...], list[tuple[SeenClose, Observation, pa.Table]]] = {}
        for seen, ts in closes:
            picked = self._claim(seen, ts)
            if picked is None:
                continue
            last, row, key, at = picked
            claimed.setdefault(seen.market, []).append(key)
            # closes seen at one time and slot against one snapshot and one copy of the
            # market's accounts are classified together (a cascade: one table, not one each)
            group = (seen.market, id(last), at, seen.slot, id(seen.accounts))
            groups.setdefault(group, []).append((seen, last, row))
        by_market: dict[str, list[pa.Table]] = {}
        for (market, _, at, slot, _), items in groups.items():
            seen, last, _ = items[0]
            try:
                price, interest, params = close_state(seen, int(at.timestamp()))
                by_market.setdefault(market, []).append(classify_gone(
                    pa.concat_tables([row for _, _, row in items]), ts_before=last.ts,
                    price_before=last.oracle_price, ts=at, slot=slot, price_after=price,
                    interest_now=interest, fee_params=params, status=self._status()))
            except Exception:  # undecodable bytes: left to the next snapshot's comparison
                log.exception("%s: classifying the close of %s failed", market,
                              ", ".join(s.pubkey for s, _, _ in items))
                self._unclaim(market, [_key(s, row) for s, _, row in items])
        out = [S.LIQUIDATIONS.empty_table()]
        for market, parts in by_market.items():
            rows = pa.concat_tables(parts)
            try:
                self.store.write_liquidations(market, rows)
            except BaseException:
                self._unclaim(market, claimed[market])
                raise
            self._enqueue(market, rows)
            n_liq = sum(1 for k in rows.column("kind").to_pylist() if k == LIQUIDATED)
            log.info("%s: %d position(s) closed, seen by the stream: %d liquidated, %d closed",
                     market, rows.num_rows, n_liq, rows.num_rows - n_liq)
            out.append(rows)
        return pa.concat_tables(out)

    def _claim(self, seen: SeenClose, ts: pd.Timestamp
               ) -> tuple[Observation, pa.Table, tuple[str, Any], pd.Timestamp] | None:
        """The last snapshot, its row of the closed position, the disappearance's key and its
        time (at least 1 s after that snapshot), marked recorded; None: nothing to record."""
        market = seen.market
        if market not in self.last:
            loaded = self._previous_from_store(market, ts + pd.Timedelta(microseconds=1))
            with self._lock:
                if loaded is not None:
                    self.last.setdefault(market, loaded)
        with self._lock:
            last = self.last.get(market)
            if last is None:
                return None
            ts = max(ts, last.ts + pd.Timedelta(seconds=1))
            row = last.positions.filter(pc.equal(last.positions.column("pubkey"), seen.pubkey))
            if (ts - last.ts).total_seconds() > C.LIQUIDATION_MAX_GAP_S or row.num_rows == 0:
                return None
            key = _key(seen, row)
            streamed = self._streamed.setdefault(market, set())
            if key in streamed:
                return None
            streamed.add(key)
        return last, row.slice(0, 1), key, ts

    def _unclaim(self, market: str, keys: list[tuple[str, Any]]) -> None:
        with self._lock:
            self._streamed.get(market, set()).difference_update(keys)

    def forget(self, market: str) -> None:
        """Another writer stored this minute: the next comparison starts from the store, so
        two collectors sharing a store detect each disappearance once."""
        self.last.pop(market, None)

    def _previous_from_store(self, market: str, ts: pd.Timestamp) -> Observation | None:
        start = ts - pd.Timedelta(seconds=C.LIQUIDATION_MAX_GAP_S)
        times = self.store.snapshot_times(market, start, ts - pd.Timedelta(microseconds=1))
        if len(times) == 0:
            return None
        state = self.store.read_market_state(market, times[-1], times[-1])
        positions = self.store.read_positions(market, times[-1], times[-1])
        return Observation.from_snapshot(market, positions, state)

    def _status(self) -> str:
        if self.no_access:
            return NO_TRANSACTIONS
        return PENDING if self._thread is not None else OFF

    def _enqueue(self, market: str, rows: pa.Table) -> None:
        if self._thread is None or self.no_access:
            return
        for row in rows.to_pylist():
            try:
                self.queue.put_nowait((market, row))
            except queue.Full:
                log.warning("%s: confirmation queue full; %s stays unconfirmed", market,
                            row["pubkey"])

    # ---------------------------------------------------------------- confirmation thread
    def start(self) -> None:
        """Start confirming in the background (no-op when `confirm_rps` is 0)."""
        if self.settings.confirm_rps <= 0 or self._thread is not None:
            return
        self._transport = Transport(self.settings.rpc_urls, timeout_s=self.settings.timeout_s,
                                    max_retries=1, backoff_s=self.settings.backoff_s,
                                    stop=self.stop)
        self._thread = threading.Thread(target=self._run, name="liqmap-confirm", daemon=True)
        self._thread.start()

    def stop_and_join(self) -> None:
        self.stop_closes()
        if self._thread is not None:
            self.queue.put(("", {}))  # wake the thread
            self._thread.join(timeout=10)
        if self._transport is not None:
            self._transport.close()

    def _run(self) -> None:
        limiter = RateLimit(self.settings.confirm_rps, self.stop)
        assert self._transport is not None
        transport = self._transport

        def call(method: str, params: list[Any]) -> Any:
            if not limiter.acquire():
                raise Stopped
            result, _ = transport.call(method, params, lambda raw: parse_result(raw, method))
            return result

        unsaved = _Unsaved()
        while not self.stop.is_set():
            try:
                market, row = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if market:
                found = self._confirm(call, market, row)
                if found is not None:
                    unsaved.add(market, apply(row, found))
            if unsaved.due(self.queue.empty()):
                self._save(unsaved.take())
        self._save(unsaved.take())  # what was confirmed before the stop

    def _confirm(self, call: Any, market: str, row: dict[str, Any]) -> Confirmation | None:
        """What the chain says about `row` (None: stopped before it answered)."""
        try:
            return (Confirmation(None, status=NO_TRANSACTIONS) if self.no_access
                    else confirm_row(call, row))
        except Stopped:
            return None
        except RpcError as exc:
            if not refused(exc):
                log.warning("%s: cannot confirm %s now: %s", market, row["pubkey"],
                            scrub(str(exc)))
                return Confirmation(None, status=f"rpc error: {scrub(str(exc))[:200]}")
            log.warning("%s: the RPC endpoint serves no transactions (%s); liquidations "
                        "stay unconfirmed", market, scrub(str(exc)))
            self.no_access = True
            return Confirmation(None, status=NO_TRANSACTIONS)

    def _save(self, rows_by_market: dict[str, list[dict[str, Any]]]) -> None:
        """Store confirmed rows, one write per market (one rewrite per file they touch)."""
        for market, rows in rows_by_market.items():
            try:
                self.store.write_liquidations(market, pa.Table.from_pylist(
                    rows, schema=S.LIQUIDATIONS))
            except LiqmapError as exc:
                log.error("%s: could not store the confirmation of %d row(s) (%s ...): %s",
                          market, len(rows), rows[0]["pubkey"], exc)


def _key(seen: SeenClose, row: pa.Table) -> tuple[str, Any]:
    """A disappearance's key: the position and its open time in the stored row."""
    return seen.pubkey, row.column("open_time")[0].as_py()


class _Unsaved:
    """Confirmed rows not stored yet, per market, and when the first of them came."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.count = 0
        self.since = 0.0

    def add(self, market: str, row: dict[str, Any]) -> None:
        if not self.count:
            self.since = time.monotonic()
        self.rows.setdefault(market, []).append(row)
        self.count += 1

    def due(self, queue_empty: bool) -> bool:
        """Store now: nothing else is waiting, or enough rows or seconds piled up."""
        return self.count > 0 and (queue_empty or self.count >= C.CONFIRM_WRITE_BATCH
                                   or time.monotonic() - self.since >= C.CONFIRM_WRITE_AFTER_S)

    def take(self) -> dict[str, list[dict[str, Any]]]:
        taken, self.rows, self.count = self.rows, {}, 0
        return taken
