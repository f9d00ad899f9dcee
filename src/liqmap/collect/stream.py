"""Stream mode: a live book per market, kept current over WebSocket, snapshotted every minute.

`StreamFeed` owns the subscriptions (programSubscribe per market with the poll mode's filters,
accountSubscribe for the pool, custodies and oracles, slotSubscribe for liveness), applies
notifications to the books, and resyncs them over HTTP: after every (re)connect, once the
subscriptions are confirmed, and every `resync_s`. A watchdog drops a connection that goes
silent (no message at all) or stalls (slots advance, no account notification).

`StreamCollector` is the poll `Collector` with a different source: at each boundary it reads
the Clock sysvar over HTTP and builds the snapshot from the book through the same pure
`build_snapshot`, so both modes store identical rows for the same chain state. A book that is
not in sync (connecting, reconnecting, loading) gives a recorded miss, never a stale snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from liqmap import constants as C
from liqmap.collect.book import MarketBook, PositionClosed
from liqmap.collect.confirm import SeenClose
from liqmap.collect.cycle import FeedStats, FetchedMarket, MarketAddresses, _unknown_collateral
from liqmap.collect.loop import Collector, CycleResult
from liqmap.collect.resync import Scanner
from liqmap.collect.rpc import RpcClient, Transport
from liqmap.collect.rpc.ws import (
    Notification,
    account_subscribe_params,
    derive_ws_url,
    program_subscribe_params,
)
from liqmap.collect.rpc.wsconn import WsConnection
from liqmap.config import Settings
from liqmap.errors import LiqmapError
from liqmap.jupiter.decode import decode_clock, decode_custody, decode_positions
from liqmap.logs import scrub
from liqmap.store import Store

log = logging.getLogger("liqmap.collect.stream")


def ws_urls_for(settings: Settings) -> tuple[str, ...]:
    """`--ws-url`s paired with `--rpc-url`s in order; missing ones derived from the HTTP URL."""
    given = settings.ws_urls
    return tuple(given[i] if i < len(given) else derive_ws_url(url)
                 for i, url in enumerate(settings.rpc_urls)) + tuple(given[len(settings.rpc_urls):])


def book_keys(addr: MarketAddresses) -> list[str]:
    """The accounts a market's book holds besides positions (the Clock is read per snapshot:
    it changes every slot on mainnet and sends no notification on surfnet)."""
    keys = addr.keys()
    return [k for k in keys if k != C.CLOCK_SYSVAR]


def stall_reason(now: float, last_message_s: float, last_data_s: float, slots_since_data: int,
                 *, slot_silence_s: float, max_silence_s: float) -> str | None:
    """Why a connection should be dropped (None: it is healthy). Times in monotonic seconds.

    Dead: no message at all for `slot_silence_s` (slot notifications come several per
    second). Stalled: slots advanced but no account notification for `max_silence_s`.
    """
    if now - last_message_s > slot_silence_s:
        return f"no message for {now - last_message_s:.0f}s"
    if now - last_data_s > max_silence_s and slots_since_data > 0:
        return (f"stream stalled: {slots_since_data} slots but no account notification for "
                f"{now - last_data_s:.0f}s")
    return None


@dataclass
class FeedCounters:
    """Whole-feed counters (for logs and tests)."""

    reconnects: int = 0
    resyncs: int = 0
    stalls: int = 0
    missed: int = 0


class StreamFeed:
    """Subscriptions, notifications and resyncs for the books of `addresses`' markets."""

    def __init__(self, addresses: dict[str, MarketAddresses], client: RpcClient,
                 ws_urls: tuple[str, ...], *, resync_s: float = C.DEFAULT_RESYNC_S,
                 max_silence_s: float = C.DEFAULT_MAX_SILENCE_S,
                 slot_silence_s: float = C.SLOT_SILENCE_S,
                 on_close: Callable[[PositionClosed], None] | None = None,
                 scanner: Scanner | None = None, **ws_options: Any) -> None:
        self.addresses = addresses
        self.client = client
        self.scanner = scanner or Scanner(client)
        self.resync_s = resync_s
        self.max_silence_s = max_silence_s
        self.slot_silence_s = slot_silence_s
        self.books = {m: MarketBook(m, on_close=on_close) for m in addresses}
        self._all_markets = list(self.books)
        self.lock = threading.Lock()
        self._slot_moved = threading.Condition(self.lock)  # notified by slot notifications
        #: set when a slot notification skips slots (a simulator's time travel moves the slot
        #: with the clock): the chain clock is worth reading now
        self.slot_jumped = threading.Event()
        self.ready = threading.Event()  # books in sync with the current connection
        self.counters = FeedCounters()
        self.conn = WsConnection(ws_urls, self._on_open, self._on_notification, **ws_options)
        self._subs: dict[int, tuple[str, str]] = {}  # subscription -> (kind, market or key)
        self._subscribed: set[str] = set()
        self._markets_of: dict[str, list[str]] = {}  # account key -> markets reading it
        self._last_slot = 0
        self._slot_at_data = 0
        self._last_data_s = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- connection life
    async def run(self, stop: threading.Event) -> None:
        """Stream until `stop` is set."""
        self._loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self.conn.run()),
                 asyncio.create_task(self._watchdog()),
                 asyncio.create_task(self._periodic_resync())]
        try:
            while not stop.is_set():
                await asyncio.sleep(0.5)
        finally:
            self.conn.stop()
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_open(self, conn: WsConnection) -> None:
        self.ready.clear()
        if conn.connects > 1:
            self.counters.reconnects += 1
        self._subs.clear()
        self._subscribed.clear()
        await self._until_loaded(self._learn_accounts)
        for market, addr in self.addresses.items():
            sid = await conn.request("programSubscribe", program_subscribe_params(addr.custody))
            self._subs[int(sid)] = ("program", market)
        await self._subscribe_accounts(conn)
        sid = await conn.request("slotSubscribe", [])
        self._subs[int(sid)] = ("slot", "")
        await self._until_loaded(lambda: self.resync(full=True))
        await self._subscribe_accounts(conn)  # keys the load revealed (new collateral)
        self._last_data_s = time.monotonic()
        self.ready.set()
        log.info("stream in sync: %s", ", ".join(f"{m} {len(b.positions)} open"
                                                for m, b in self.books.items()))

    async def _until_loaded(self, load: Callable[[], None]) -> None:
        """Run a blocking load until it works (an empty or lagging node: wait, stay
        connected; the subscriptions already buffer what changes meanwhile)."""
        delay = 1.0
        while True:
            try:
                await asyncio.to_thread(load)
                return
            except LiqmapError as exc:
                if not self.conn.connected:
                    raise
                log.warning("loading the book failed (%s); retrying in %.0fs",
                            scrub(str(exc)), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, C.BOOK_LOAD_RETRY_MAX_S)

    async def _subscribe_accounts(self, conn: WsConnection) -> None:
        new = [k for k in self._account_keys() if k not in self._subscribed]
        for key in new:
            sid = await conn.request("accountSubscribe", account_subscribe_params(key))
            self._subs[int(sid)] = ("account", key)
            self._subscribed.add(key)
        if new and self.books and all(b.loaded for b in self.books.values()):
            await asyncio.to_thread(self._load_accounts, new)

    def _account_keys(self) -> list[str]:
        self._markets_of = {}
        for market, addr in self.addresses.items():
            for key in book_keys(addr):
                self._markets_of.setdefault(key, []).append(market)
        return list(self._markets_of)

    def _learn_accounts(self) -> None:
        """Oracle addresses come from the custodies: read them before subscribing."""
        keys = list({a.custody: None for a in self.addresses.values()})
        gma, _ = self.client.get_multiple_accounts(keys)
        for addr in self.addresses.values():
            data = gma.data.get(addr.custody)
            if data is None:
                raise LiqmapError(f"{addr.market} custody account {addr.custody} not found; "
                                  "is the RPC URL a Solana mainnet endpoint?")
            custody = decode_custody(data)
            addr.ag_oracle, addr.pyth_oracle = custody.doves_ag_oracle, custody.oracle_account

    # ---------------------------------------------------------------- notifications
    def _on_notification(self, note: Notification, n_bytes: int) -> None:
        sub = self._subs.get(note.subscription)
        if sub is None:
            return  # before its confirmation was read: the resync that follows covers it
        kind, name = sub
        now = time.monotonic()
        with self.lock:
            if kind == "slot":
                if note.slot > self._last_slot:
                    if self._last_slot and note.slot > self._last_slot + 1:
                        self.slot_jumped.set()
                    self._last_slot = note.slot
                    self._slot_moved.notify_all()
                self._share_bytes(self._all_markets, n_bytes)
                return
            self._last_data_s = now
            self._slot_at_data = self._last_slot
            if kind == "program" and note.pubkey is not None:
                data = note.data if note.owner in ("", C.PERPS_PROGRAM_ID) else None
                book = self.books[name]
                book.apply_position(note.pubkey, note.slot, data, now)
                book.counters.rpc_bytes += n_bytes
            elif kind == "account":
                markets = self._markets_of.get(name, [])
                for market in markets:
                    self.books[market].apply_account(name, note.slot, note.data, now)
                self._share_bytes(markets, n_bytes)

    def _share_bytes(self, markets: list[str], n_bytes: int) -> None:
        """Bytes of a message several markets use, split evenly (remainder to the first)."""
        if not markets:
            return
        each, rest = divmod(n_bytes, len(markets))
        for i, market in enumerate(markets):
            self.books[market].counters.rpc_bytes += each + (rest if i == 0 else 0)

    # ---------------------------------------------------------------- resyncs
    def resync(self, *, full: bool) -> None:
        """Scan every market and fix its book (blocking: run it in a thread)."""
        for market, addr in self.addresses.items():
            book = self.books[market]
            with self.lock:
                seq = book.begin_resync()
            scan = self.scanner.scan(addr.custody, delta=not full)
            gma, stats = self.client.get_multiple_accounts(book_keys(addr))
            now = time.monotonic()
            with self.lock:
                was_loaded = book.loaded
                report = book.finish_resync(seq, scan.slot, scan.positions, now,
                                            complete=scan.complete)
                changed = book.resync_accounts(seq, gma.slot, gma.data, now)
                book.counters.rpc_bytes += scan.rpc_bytes + stats.response_bytes
            self.counters.resyncs += 1
            missed = report.missed + changed
            if was_loaded and missed:
                self.counters.missed += missed
                log.warning("%s resync (%s) found %d account(s) the stream missed "
                            "(%d added, %d changed, %d closed, %d other)", market,
                            scan.method, missed, report.added, report.changed, report.removed,
                            changed)
            self._check_collateral(market, addr)

    def _check_collateral(self, market: str, addr: MarketAddresses) -> None:
        """Collateral custodies used by open positions that are not read yet."""
        with self.lock:
            keys, blobs = self.books[market].open_positions()
        unknown = _unknown_collateral(decode_positions(keys, blobs),
                                      [addr.custody, *addr.collateral])
        if unknown:
            log.info("%s: positions use new collateral custodies %s", market, unknown)
            addr.collateral.extend(unknown)

    def _load_accounts(self, keys: list[str]) -> None:
        gma, stats = self.client.get_multiple_accounts(keys)
        now = time.monotonic()
        with self.lock:
            for key in keys:
                for market in self._markets_of.get(key, []):
                    book = self.books[market]
                    book.resync_accounts(book.begin_resync(), gma.slot, {key: gma.data[key]},
                                         now)
            self._share_bytes(self._all_markets, stats.response_bytes)

    @property
    def last_slot(self) -> int:
        """The newest slot a slot notification reported."""
        return self._last_slot

    def catch_up(self, slot: int, timeout_s: float) -> bool:
        """Wait until a slot notification newer than `slot` arrived (then notifications of
        writes up to `slot` have been delivered); False after `timeout_s`."""
        end = time.monotonic() + timeout_s
        with self.lock:
            while self._last_slot <= slot:
                left = end - time.monotonic()
                if left <= 0 or not self.ready.is_set():
                    log.debug("stream did not pass slot %d within %.1fs", slot, timeout_s)
                    return False
                self._slot_moved.wait(min(left, C.STREAM_READY_CHECK_S))
        return True

    def want(self, keys: list[str]) -> None:
        """Subscribe `keys` too (from another thread; e.g. a rotated oracle)."""
        loop = self._loop
        if loop is not None and self.conn.connected:
            asyncio.run_coroutine_threadsafe(self._subscribe_accounts(self.conn), loop)

    async def _periodic_resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s)
            if not self.ready.is_set():
                continue
            try:
                await asyncio.to_thread(self.resync, full=False)
            except LiqmapError as exc:
                log.warning("periodic resync failed (%s); reconnecting", scrub(str(exc)))
                await self.conn.drop("resync failed")

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.slot_silence_s / 4))
            if not self.conn.connected or not self.ready.is_set():
                continue
            with self.lock:
                slots = self._last_slot - self._slot_at_data
            reason = stall_reason(time.monotonic(), self.conn.last_message_s, self._last_data_s,
                                  slots, slot_silence_s=self.slot_silence_s,
                                  max_silence_s=self.max_silence_s)
            if reason is not None:
                self.counters.stalls += 1
                self.ready.clear()
                await self.conn.drop(reason)


class StreamCollector(Collector):
    """`Collector` whose snapshots come from a live book (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store, client: RpcClient | None = None,
                 stop: threading.Event | None = None, *,
                 on_close: Callable[[PositionClosed], None] | None = None,
                 **feed_options: Any) -> None:
        super().__init__(settings, store, client, stop)
        self._on_close_extra = on_close
        feed_client = RpcClient(
            Transport(settings.rpc_urls, timeout_s=settings.timeout_s,
                      max_retries=settings.max_retries, backoff_s=settings.backoff_s,
                      stop=self.stop),
            gpa_timeout_s=settings.gpa_timeout_s)
        self.feed = StreamFeed(self.addresses, feed_client, ws_urls_for(settings),
                               resync_s=settings.resync_s, on_close=self._position_closed,
                               **feed_options)
        self._thread: threading.Thread | None = None
        self._copies: dict[str, FetchedMarket] | str = {}

    def _position_closed(self, closed: PositionClosed) -> None:
        """A position left a book (WebSocket thread, feed lock held): hand a close seen by
        the stream ('closed': sizeUsd went to 0; 'gone': account deleted) to detection with
        the accounts the book holds now. Resync removals have no time: the next snapshot's
        comparison classifies them."""
        if self._on_close_extra is not None:
            self._on_close_extra(closed)
        if closed.reason not in ("closed", "gone"):
            return
        addr = self.addresses[closed.market]
        accounts = self.feed.books[closed.market].account_data(book_keys(addr))
        self.realized.position_closed(SeenClose(closed.market, closed.pubkey, closed.slot,
                                                time.monotonic(), addr.custody,
                                                tuple(addr.collateral), accounts))

    def _close_context(self, markets: set[str]
                       ) -> tuple[float, float, dict[str, dict[str, bytes | None]]]:
        """For closes seen by the stream: the schedule's time (unix s), `time.monotonic()`
        then, and the markets' accounts once the stream passed the current slot."""
        clock, _ = self.feed.client.get_multiple_accounts([C.CLOCK_SYSVAR])
        data = clock.data.get(C.CLOCK_SYSVAR)
        if data is None:
            raise LiqmapError("the RPC node returned no Clock sysvar")
        now, mono = time.time(), time.monotonic()
        if self.settings.clock == "chain":
            now = float(decode_clock(data).unix_timestamp)
        self.feed.catch_up(clock.slot, C.STREAM_CATCH_UP_S)  # best effort: else as seen
        with self.feed.lock:
            accounts = {m: self.feed.books[m].account_data(book_keys(self.addresses[m]))
                        for m in markets}
        return now, mono, accounts

    def _start(self) -> None:
        self.realized.start_closes(self._close_context)
        self._thread = threading.Thread(target=self._stream_main, name="liqmap-stream",
                                        daemon=True)
        self._thread.start()
        if self.settings.clock == "chain":  # a simulator may still be writing its minute 0
            return
        end = time.monotonic() + C.STREAM_FIRST_LOAD_WAIT_S
        while not self.feed.ready.wait(0.2) and not self.stop.is_set():
            if time.monotonic() > end:
                log.warning("the book is not loaded after %.0fs; collecting anyway (misses "
                            "until it is)", C.STREAM_FIRST_LOAD_WAIT_S)
                break

    def _wait_for_chain_clock(self) -> None:
        """While the stream is in sync, wait for its slots to jump (the clock moved) rather
        than read the Clock four times a second; still read it every
        CHAIN_CLOCK_STREAM_POLL_S (a clock that moves without a slot jump)."""
        if not self.feed.ready.is_set():
            super()._wait_for_chain_clock()
            return
        if self.feed.slot_jumped.wait(C.CHAIN_CLOCK_STREAM_POLL_S):
            self.feed.slot_jumped.clear()

    def _stream_main(self) -> None:
        try:
            asyncio.run(self.feed.run(self.stop))
        except Exception:  # the collector goes on recording misses; say why
            log.exception("the stream stopped")

    def _finish(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.realized.stop_closes()
        self.feed.client.transport.close()

    def collect_once(self, ts: pd.Timestamp | None = None) -> list[CycleResult]:
        """One cycle: every market's book copied at one instant, then built and stored."""
        ts = ts if ts is not None else self.boundary(self._now())
        try:
            copies, closes_seen = self._copy_books(ts, time.monotonic()
                                                   + self.settings.interval_s)
        except LiqmapError as exc:
            self._copies = scrub(str(exc))
        else:  # closes the books applied before the copy: recorded as the stream saw them
            self._copies = copies
            self.realized.wait_closes(closes_seen, C.STREAM_CATCH_UP_S)
        try:
            return super().collect_once(ts)
        finally:
            self._copies = {}

    def _copy_books(self, ts: pd.Timestamp, deadline: float
                    ) -> tuple[dict[str, FetchedMarket], int]:
        """Read the Clock, wait until the stream passed its slot, copy every book; on a chain
        clock, read it again after the copy: both reads must be in `ts`'s interval (the first
        is checked with each market's accounts, as in poll mode, by `_collect_market`).
        Returns the copies and how many closes the stream had seen at the copy."""
        if not self.feed.ready.is_set():
            raise LiqmapError("stream not in sync (connecting, reconnecting or loading the "
                              "book); no snapshot from a book that may be stale")
        clock, stats = self.client.get_multiple_accounts([C.CLOCK_SYSVAR], deadline=deadline)
        if not self.feed.catch_up(clock.slot, C.STREAM_CATCH_UP_S):
            raise LiqmapError(f"the stream is behind: no notification past slot {clock.slot} "
                              f"within {C.STREAM_CATCH_UP_S:g}s; no snapshot from a lagging book")
        clock_data = clock.data.get(C.CLOCK_SYSVAR)
        copies = {}
        with self.feed.lock:
            passed = self.feed.last_slot  # every notification up to here is in the books
            closes_seen = self.realized.closes_seen()
            for market, addr in self.addresses.items():
                copies[market] = self._copy(self.feed.books[market], addr, clock_data,
                                            clock.slot, passed)
        if self.settings.clock == "chain":  # a simulator writes a minute, then moves the clock
            after, more = self.client.get_multiple_accounts([C.CLOCK_SYSVAR], deadline=deadline)
            stats.response_bytes += more.response_bytes
            self.check_chain_interval(ts, after.data.get(C.CLOCK_SYSVAR))
        first = next(iter(copies.values()), None)
        if first is not None:  # the Clock reads are shared: counted once, on the first market
            first.stats.append(stats)
            feed = first.feed or FeedStats("stream")
            first.feed = replace(feed, rpc_bytes=feed.rpc_bytes + stats.response_bytes)
        return copies, closes_seen

    @staticmethod
    def _copy(book: MarketBook, addr: MarketAddresses, clock: bytes | None, clock_slot: int,
              passed_slot: int) -> FetchedMarket:
        """One market's book as a FetchedMarket. Its positions slot is the slot the stream had
        passed (the book holds every write up to it; surfnet freezes notification slots)."""
        keys, blobs = book.open_positions()
        accounts = book.account_data(book_keys(addr))
        accounts[C.CLOCK_SYSVAR] = clock
        counters = book.take_counters()
        age_s = time.monotonic() - (book.last_change_s or time.monotonic())
        feed = FeedStats("stream", counters.rpc_bytes, counters.updates, age_s * 1000.0,
                         counters.missed)
        return FetchedMarket(addr.market, accounts, clock_slot, decode_positions(keys, blobs),
                             max(book.slot, passed_slot), [], feed)

    def _fetch(self, addr: MarketAddresses, ts: pd.Timestamp, deadline: float,
               min_slot: int | None = None) -> FetchedMarket:
        """This cycle's copy of the book (`min_slot` is checked on the snapshot, as in poll
        mode, by `build_snapshot`)."""
        copies = self._copies
        if isinstance(copies, str):
            raise LiqmapError(copies)
        fetched = copies[addr.market]
        self._check_rotation(addr, fetched.accounts)
        return fetched

    def _check_rotation(self, addr: MarketAddresses, accounts: dict[str, bytes | None]) -> None:
        """An oracle address that rotated: read the new one now and subscribe to it."""
        data = accounts.get(addr.custody)
        if data is None:
            return
        custody = decode_custody(data)
        if (custody.doves_ag_oracle, custody.oracle_account) == (addr.ag_oracle,
                                                                 addr.pyth_oracle):
            return
        log.warning("%s oracle accounts changed to %s / %s", addr.market,
                    custody.doves_ag_oracle, custody.oracle_account)
        addr.ag_oracle, addr.pyth_oracle = custody.doves_ag_oracle, custody.oracle_account
        gma, _ = self.client.get_multiple_accounts([addr.ag_oracle, addr.pyth_oracle])
        accounts.update(gma.data)
        self.feed.want([addr.ag_oracle, addr.pyth_oracle])


def make_collector(settings: Settings, store: Store, stop: threading.Event | None = None
                   ) -> Collector:
    """The collector of `settings.mode`: 'stream' (default) or 'poll'."""
    if settings.mode == "poll":
        return Collector(settings, store, stop=stop)
    return StreamCollector(settings, store, stop=stop)
