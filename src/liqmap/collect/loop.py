"""The long-running collector: cycles on minute boundaries, never lets one failure stop it.

Each cycle stands for one boundary `ts` (a multiple of the interval on the schedule's clock) and
stores one snapshot per market under that `ts`. The schedule runs on this machine's clock
(`wall`, for mainnet) or on the chain's Clock sysvar (`chain`, for accelerated simulations).
A market whose cycle fails after all retries gets a `misses` record instead of a snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from liqmap import constants as C
from liqmap.collect.confirm import RealizedLiquidations
from liqmap.collect.cycle import (
    FetchedMarket,
    MarketAddresses,
    Snapshot,
    build_snapshot,
    fetch_market,
)
from liqmap.collect.rpc import RpcClient, Stopped, Transport
from liqmap.config import Settings
from liqmap.errors import LiqmapError
from liqmap.jupiter.decode import decode_clock
from liqmap.logs import scrub
from liqmap.store import Store
from liqmap.timeutil import iso_utc

log = logging.getLogger("liqmap.collect")

#: misses kept in memory while the disk refuses them (a day of 3 markets every minute)
MAX_PENDING_MISSES = 3 * 1440


@dataclass(frozen=True)
class CycleResult:
    """Outcome of one market in one cycle."""

    market: str
    ts: pd.Timestamp
    stored: bool
    error: str | None = None
    snapshot: Snapshot | None = None


class Collector:
    """Collect snapshots of `settings.markets` into `store` through `client`."""

    def __init__(self, settings: Settings, store: Store, client: RpcClient | None = None,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.store = store
        self.stop = stop or threading.Event()
        self.client = client or RpcClient(
            Transport(settings.rpc_urls, timeout_s=settings.timeout_s,
                      max_retries=settings.max_retries, backoff_s=settings.backoff_s,
                      stop=self.stop),
            gpa_timeout_s=settings.gpa_timeout_s)
        self.addresses = {m: MarketAddresses.default(m) for m in settings.markets}
        self._last_slot: dict[str, int | None] = {}
        self._pending: list[tuple[str, pd.Timestamp, str]] = []  # misses the disk refused
        self._outage: str | None = None  # why the schedule could not run, for missed minutes
        self._now: Callable[[], float] = (self._chain_now if settings.clock == "chain"
                                          else time.time)
        self.realized = RealizedLiquidations(store, settings, self.stop)

    # ---------------------------------------------------------------- clocks
    def _chain_now(self) -> float:
        accounts, _ = self.client.get_multiple_accounts([C.CLOCK_SYSVAR])
        data = accounts.data.get(C.CLOCK_SYSVAR)
        if data is None:
            raise LiqmapError("the RPC node returned no Clock sysvar; use --clock wall")
        return float(decode_clock(data).unix_timestamp)

    def check_chain_interval(self, ts: pd.Timestamp, clock: bytes | None) -> None:
        """On a chain clock, the accounts of the snapshot of `ts` must have been read while
        the chain was still in `ts`'s interval. A cycle that ran late (a busy machine, a slow
        node) is a miss, never a later chain state stored under an earlier time."""
        if self.settings.clock != "chain" or clock is None:
            return
        read_at = self.boundary(decode_clock(clock).unix_timestamp)
        if read_at != ts:
            raise LiqmapError(f"the chain clock was at {iso_utc(read_at)} when the accounts were "
                              f"read, outside the interval of {iso_utc(ts)} (the cycle ran late); "
                              "not stored under the wrong time")

    def boundary(self, now_s: float) -> pd.Timestamp:
        """The cycle boundary at or before `now_s` (unix seconds)."""
        step = self.settings.interval_s
        return pd.Timestamp(int(now_s // step * step * 1e6), unit="us", tz="UTC")

    # ---------------------------------------------------------------- one cycle
    def collect_once(self, ts: pd.Timestamp | None = None) -> list[CycleResult]:
        """One cycle for every market at boundary `ts` (default: the current one)."""
        ts = ts if ts is not None else self.boundary(self._now())
        deadline = time.monotonic() + self.settings.interval_s
        results = []
        self._flush_pending()
        for market in self.settings.markets:
            if self.stop.is_set():
                break
            results.append(self._collect_market(market, ts, deadline))
        self._save_endpoint_report()
        return results

    def _collect_market(self, market: str, ts: pd.Timestamp, deadline: float) -> CycleResult:
        if self.store.has_snapshot(market, ts):
            log.info("%s %s already stored; skipped", market, iso_utc(ts))
            self.realized.forget(market)
            return CycleResult(market, ts, stored=False)
        addr = self.addresses[market]
        try:
            # On a chain clock the Clock sysvar read with the accounts is the authority on
            # where the node is (`check_chain_interval`: a node behind reads an earlier
            # minute). Slots are not compared there: surfnet's time travel can move them
            # back (its slot arithmetic across epochs), which would refuse every later minute.
            previous = None if self.settings.clock == "chain" else self._previous_slot(market)
            fetched = self._fetch(addr, ts, deadline, previous)
            self.check_chain_interval(ts, fetched.accounts.get(C.CLOCK_SYSVAR))
            snapshot = build_snapshot(fetched, ts.to_pydatetime(), addr, previous)
            stored = self.store.write_snapshot(market, snapshot.positions, snapshot.state)
            self._last_slot[market] = max(previous or 0, fetched.positions_slot)
        except Stopped:
            self._failed(market, ts, "collector was stopped during this cycle")
            return CycleResult(market, ts, stored=False, error="stopped")
        except LiqmapError as exc:
            return self._failed(market, ts, scrub(str(exc)))
        except Exception as exc:  # one bad cycle must never stop a months-long run
            log.exception("%s %s: unexpected error", market, iso_utc(ts))
            return self._failed(market, ts, scrub(f"{type(exc).__name__}: {exc}"))
        _log_snapshot(snapshot, stored)
        if stored:
            rejected = [k for keys in fetched.positions.errors.values() for k in keys]
            self.realized.after_snapshot(market, snapshot, rejected=rejected)
        else:
            self.realized.forget(market)
        return CycleResult(market, ts, stored=stored, snapshot=snapshot)

    def _previous_slot(self, market: str) -> int | None:
        """Positions slot of the market's last stored snapshot (read once from the store)."""
        if market not in self._last_slot:
            self._last_slot[market] = last_positions_slot(self.store, market)
        return self._last_slot[market]

    def _fetch(self, addr: MarketAddresses, ts: pd.Timestamp, deadline: float,
               min_slot: int | None = None) -> FetchedMarket:
        """The market's accounts for the snapshot of `ts`, read at `min_slot` or later (poll
        mode: a full scan now)."""
        return fetch_market(self.client, addr, deadline=deadline, min_slot=min_slot)

    def _start(self) -> None:
        """Called when `run` starts (stream mode: opens the WebSocket)."""

    def _finish(self) -> None:
        """Called when `run` ends, also on errors."""

    def _failed(self, market: str, ts: pd.Timestamp, reason: str) -> CycleResult:
        log.error("%s %s: no snapshot: %s", market, iso_utc(ts), reason)
        if not self._record_miss(market, ts, reason) and len(self._pending) < MAX_PENDING_MISSES:
            self._pending.append((market, ts, reason))
        return CycleResult(market, ts, stored=False, error=reason)

    def _record_miss(self, market: str, ts: pd.Timestamp, reason: str) -> bool:
        try:
            self.store.write_miss(market, ts, reason)
        except (LiqmapError, OSError) as exc:
            log.error("%s %s: could not record the miss either (kept in memory until the "
                      "disk takes it): %s", market, iso_utc(ts), exc)
            return False
        return True

    def _flush_pending(self) -> None:
        """Record the misses an unwritable disk refused, now that it may take them."""
        while self._pending:
            market, ts, reason = self._pending[0]
            if not self._record_miss(market, ts, reason):
                return
            self._pending.pop(0)

    def _save_endpoint_report(self) -> None:
        """Per-endpoint counters for `liqmap status` (best effort: the disk may refuse)."""
        try:
            self.store.write_endpoint_report(
                [asdict(r) for r in self.client.transport.report()])
        except (LiqmapError, OSError) as exc:
            log.debug("endpoint report not saved: %s", exc)

    # ---------------------------------------------------------------- the loop
    def run(self, *, max_cycles: int | None = None) -> int:
        """Cycle until `stop` is set (SIGTERM/SIGINT) or `max_cycles` ran; returns cycles run."""
        self._recover()
        for market in self.settings.markets:  # before the first cycle, not inside it
            self._previous_slot(market)
        compactor = _Compactor(self.store, self.stop)
        compactor.start()
        self.realized.start()
        log.info("collecting: %s", self.settings.describe())
        cycles = 0
        next_ts: pd.Timestamp | None = None
        try:
            self._start()
            while not self.stop.is_set() and (max_cycles is None or cycles < max_cycles):
                now = self._now_or_none()
                if now is None:
                    continue
                current = self.boundary(now)
                if next_ts is not None and current < next_ts:
                    self._sleep_until(next_ts, now)
                    continue
                if next_ts is not None:
                    self._record_overrun(next_ts, current)
                self._note_failures(self.collect_once(current))
                cycles += 1
                next_ts = current + pd.Timedelta(seconds=self.settings.interval_s)
        finally:
            self._finish()
            compactor.stop_and_join()
            self.realized.stop_and_join()
            self.client.transport.close()
        log.info("collector stopped after %d cycle(s)", cycles)
        return cycles

    def _recover(self) -> None:
        try:
            removed = self.store.recover()
        except (LiqmapError, OSError) as exc:  # e.g. a read-only disk: collect, record misses
            log.error("cannot clean up leftovers of interrupted writes: %s", exc)
            return
        if removed:
            log.info("removed %d leftover file(s) of interrupted writes", removed)

    def _now_or_none(self) -> float | None:
        try:
            return self._now()
        except Stopped:
            return None
        except LiqmapError as exc:
            reason = scrub(str(exc))
            log.warning("cannot read the chain clock: %s", reason)
            self._outage = f"cannot read the chain clock: {reason}"
            self._save_endpoint_report()  # no cycle runs: `status` must still see the errors
            self.stop.wait(min(self.settings.interval_s, 5.0))
            return None

    def _sleep_until(self, next_ts: pd.Timestamp, now: float) -> None:
        if self.settings.clock == "chain":  # the chain clock may jump: poll it
            self._wait_for_chain_clock()
        else:
            self.stop.wait(max(next_ts.timestamp() - now, 0.0) + 0.05)

    def _wait_for_chain_clock(self) -> None:
        """Until the chain clock is worth reading again (poll mode: a fixed short wait)."""
        self.stop.wait(min(C.CHAIN_CLOCK_POLL_S, self.settings.interval_s / 20))

    def _note_failures(self, results: list[CycleResult]) -> None:
        """Keep a failed cycle's error as the reason for minutes its retries overran."""
        errors = [r.error for r in results if r.error and r.error != "stopped"]
        if errors:
            self._outage = f"collector was retrying a failed cycle: {errors[-1]}"

    def _record_overrun(self, expected: pd.Timestamp, current: pd.Timestamp) -> None:
        step = pd.Timedelta(seconds=self.settings.interval_s)
        reason = self._outage or "collector was busy or paused (cycle overran)"
        self._outage = None
        missed = expected
        while missed < current:
            for market in self.settings.markets:
                self._failed(market, missed, reason)
            missed += step


class _Compactor(threading.Thread):
    """Compacts closed hours/days in the background, once per hour of wall time."""

    def __init__(self, store: Store, stop: threading.Event) -> None:
        super().__init__(name="liqmap-compactor", daemon=True)
        self.store = store
        self.stop_event = stop
        self._done = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set() and not self._done.is_set():
            try:
                report = self.store.compact()
                if report.hours or report.days:
                    log.info("compacted %d hour(s), %d day(s)", report.hours, report.days)
            except Exception:
                log.exception("compaction failed; will retry in an hour")
            self._done.wait(3600)

    def stop_and_join(self) -> None:
        self._done.set()
        self.join(timeout=120)


def last_positions_slot(store: Store, market: str) -> int | None:
    """`positions_slot` of `market`'s latest stored snapshot, None if none (or unreadable)."""
    try:
        bounds = store.time_bounds(market)
        if bounds is None:
            return None
        row = store.read_market_state(market, bounds[1], bounds[1], ["positions_slot"])
    except LiqmapError as exc:
        log.warning("cannot read %s's last snapshot slot: %s", market, exc)
        return None
    slots = row.column("positions_slot").to_pylist()
    return max((s for s in slots if s is not None), default=None)



def _log_snapshot(snap: Snapshot, stored: bool) -> None:
    state = snap.state.to_pylist()[0]
    errors = sum(snap.decode_errors.values())
    extra = []
    if snap.oracle_age_s > C.ORACLE_STALE_AFTER_S:
        extra.append(f"ORACLE STALE {snap.oracle_age_s}s")
    if snap.pyth_divergence_bps is not None and snap.pyth_divergence_bps > C.PRICE_DIVERGENCE_BPS:
        extra.append(f"pyth diverges {snap.pyth_divergence_bps:.0f}bps")
    log.info(
        "%s %s %s positions=%d (long %d, short %d) price=%.4f slot=%d latency=%.0fms "
        "bytes=%d retries=%d decode_errors=%d mode=%s rpc_bytes=%d updates=%d book_age=%.0fms "
        "missed=%d%s",
        snap.market, iso_utc(pd.Timestamp(snap.ts)), "stored" if stored else "duplicate",
        state["n_positions"], state["n_long"], state["n_short"], state["oracle_price"],
        state["slot"], state["latency_ms"], state["response_bytes"], state["retries"], errors,
        state["mode"], state["rpc_bytes"], state["stream_updates"], state["book_age_ms"],
        state["missed_updates"],
        (" " + "; ".join(extra)) if extra else "")
