"""The live book of one market: raw account bytes kept current by stream updates and resyncs.

Pure: no I/O and no clock (callers pass `now`, monotonic seconds). Two kinds of writes:

- a stream update `(slot, pubkey, bytes | None)` is kept only if `slot >= ` the slot of the
  previous stream update of that key (notifications of one connection arrive in slot order;
  surfnet even repeats the subscription's slot for every notification, hence `>=`);
- a resync (a scan of the chain at one slot) starts with `begin_resync()`, which returns a
  sequence number, and ends with `finish_resync(seq, ...)`: keys a stream update touched since
  `seq` keep the stream's bytes (they are at least as new), every other key takes the scan's
  bytes, and keys the scan no longer holds are deleted. Whatever the resync had to change is
  counted in `missed` (accounts the stream had missed).

Only open positions are held (sizeUsd > 0): a closed account is removed at once and reported
through `on_close`, so memory follows the open book, not the ~10^6 closed accounts on chain.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from liqmap import constants as C

_SIZE_END = C.POSITION_SIZE_USD_OFFSET + 8


@dataclass
class Entry:
    """One account in the book: bytes, slot they are from, sequence number of the write."""

    data: bytes
    slot: int
    seq: int
    stream_slot: int = 0  # slot of the newest stream update of this key (0: none yet)


@dataclass(frozen=True)
class PositionClosed:
    """A position left the book: `reason` 'closed' (sizeUsd went to 0), 'gone' (the account
    was deleted or changed owner) or 'resync' (a resync found it no longer open)."""

    market: str
    pubkey: str
    slot: int
    last_data: bytes
    reason: str


@dataclass(frozen=True)
class ResyncReport:
    """What one resync changed: accounts added, changed and removed (the stream missed them)."""

    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def missed(self) -> int:
        return self.added + self.changed + self.removed


def is_open_position(data: bytes) -> bool:
    """False only for an account whose sizeUsd (u64 at offset 161) is 0; accounts too short
    to hold it stay in the book so the decoder reports them, as in poll mode."""
    if len(data) < _SIZE_END:
        return True
    return struct.unpack_from("<Q", data, C.POSITION_SIZE_USD_OFFSET)[0] != 0


@dataclass
class Counters:
    """Per-snapshot counters, taken (and reset) when a snapshot is built."""

    updates: int = 0
    missed: int = 0
    rpc_bytes: int = 0


@dataclass
class MarketBook:
    """Open positions and the other accounts (pool, custodies, oracles) of one market."""

    market: str
    on_close: Callable[[PositionClosed], None] | None = None
    positions: dict[str, Entry] = field(default_factory=dict)
    accounts: dict[str, Entry] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    seq: int = 0
    slot: int = 0  # newest slot applied (scan context or notification)
    last_change_s: float | None = None  # monotonic time of the newest update or resync
    loaded: bool = False  # an initial load finished
    #: stream closes not yet confirmed by a complete scan: key -> (slot, seq)
    _closed_at: dict[str, tuple[int, int]] = field(default_factory=dict)

    # ---------------------------------------------------------------- stream updates
    def apply_position(self, pubkey: str, slot: int, data: bytes | None, now: float) -> bool:
        """A Position notification (None: deleted or no longer owned by the program).
        Returns whether the book changed."""
        entry = self.positions.get(pubkey)
        last = entry.stream_slot if entry else self._closed_at.get(pubkey, (0, 0))[0]
        if slot < last:
            return False
        self._touch(slot, now)
        if data is None or not is_open_position(data):
            self._closed_at[pubkey] = (slot, self.seq)
            if entry is not None:
                del self.positions[pubkey]
                self._closed(pubkey, slot, entry.data, "closed" if data is not None else "gone")
            return entry is not None
        self._closed_at.pop(pubkey, None)
        self.positions[pubkey] = Entry(data, slot, self.seq, slot)
        return True

    def apply_account(self, key: str, slot: int, data: bytes | None, now: float) -> bool:
        """A pool/custody/oracle notification (None: the account no longer exists)."""
        entry = self.accounts.get(key)
        if entry is not None and slot < entry.stream_slot:
            return False
        self._touch(slot, now)
        if data is None:
            self.accounts.pop(key, None)
        else:
            self.accounts[key] = Entry(data, slot, self.seq, slot)
        return True

    def _touch(self, slot: int, now: float) -> None:
        self.seq += 1
        self.counters.updates += 1
        self.slot = max(self.slot, slot)
        self.last_change_s = now

    def _closed(self, pubkey: str, slot: int, data: bytes, reason: str) -> None:
        if self.on_close is not None:
            self.on_close(PositionClosed(self.market, pubkey, slot, data, reason))

    # ---------------------------------------------------------------- resyncs
    def begin_resync(self) -> int:
        """Mark the start of a scan; pass the result to `finish_resync`."""
        self.seq += 1
        return self.seq

    def finish_resync(self, seq: int, slot: int, positions: Mapping[str, bytes | None],
                      now: float, *, complete: bool = True) -> ResyncReport:
        """Apply a scan taken at `slot` (started at `seq`): `complete` scans also delete the
        open positions they do not hold; delta scans (changedSinceSlot) only upsert."""
        added = changed = removed = 0
        for key, data in positions.items():
            entry = self.positions.get(key)
            if entry is not None and entry.seq > seq:
                continue  # the stream wrote it during the scan: keep the newer bytes
            if self._closed_at.get(key, (0, 0))[1] > seq:
                continue  # the stream saw it close during the scan
            if data is None or not is_open_position(data):
                if entry is not None:
                    del self.positions[key]
                    self._closed(key, slot, entry.data, "resync")
                    removed += 1
                continue
            if entry is None:
                added += 1
            elif entry.data != data:
                changed += 1
            else:
                continue
            self.positions[key] = Entry(data, slot, seq)
        if complete:
            removed += self._drop_absent(positions, seq, slot)
            self._closed_at = {k: v for k, v in self._closed_at.items() if v[1] > seq}
            self._forget_stream_slots(self.positions, seq)
        report = ResyncReport(added, changed, removed)
        if self.loaded:
            self.counters.missed += report.missed
        self.loaded = True
        self.slot = max(self.slot, slot)
        self.last_change_s = now
        return report

    @staticmethod
    def _forget_stream_slots(entries: dict[str, Entry], seq: int) -> None:
        """After a complete scan, slots of earlier notifications no longer order anything (the
        next connection may be to another node, or a restarted one whose slots start at 0)."""
        for entry in entries.values():
            if entry.seq <= seq:
                entry.stream_slot = 0

    def _drop_absent(self, positions: Mapping[str, bytes | None], seq: int, slot: int) -> int:
        gone = [k for k, e in self.positions.items() if k not in positions and e.seq <= seq]
        for key in gone:
            entry = self.positions.pop(key)
            self._closed(key, slot, entry.data, "resync")
        return len(gone)

    def resync_accounts(self, seq: int, slot: int, accounts: Mapping[str, bytes | None],
                        now: float) -> int:
        """Apply a getMultipleAccounts of the market's other accounts; returns changes."""
        changed = 0
        for key, data in accounts.items():
            entry = self.accounts.get(key)
            if entry is not None and entry.seq > seq:
                continue
            if data is None:
                changed += self.accounts.pop(key, None) is not None
                continue
            if entry is None or entry.data != data:
                changed += entry is not None
                self.accounts[key] = Entry(data, slot, seq)
        self._forget_stream_slots(self.accounts, seq)
        if self.loaded:
            self.counters.missed += changed
        return changed

    # ---------------------------------------------------------------- reading
    def open_positions(self) -> tuple[list[str], list[bytes]]:
        """Open positions sorted by pubkey: (keys, bytes)."""
        keys = sorted(self.positions)
        return keys, [self.positions[k].data for k in keys]

    def account_data(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """Bytes of `keys` (None for keys the book does not hold)."""
        return {k: (self.accounts[k].data if k in self.accounts else None) for k in keys}

    def take_counters(self) -> Counters:
        """The counters since the previous call (reset)."""
        taken, self.counters = self.counters, Counters()
        return taken
