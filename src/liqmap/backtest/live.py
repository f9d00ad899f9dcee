"""The hedge signal live: the backtest's rule evaluated on each new stored minute, toggles
posted to webhooks through an outbox in the store.

One rule implementation: `LiveRule.advance` calls the same `window_sums`,
`trailing_quantile` and `run_rule` kernel as the backtest, carrying the `RuleState` and the
trailing θ history from one call to the next, so evaluating minutes one at a time gives the
decisions of one backtest run over them (tested).

Delivery (at least once, deduplicated by key): for each toggle the signal records an
*intent* in the alert log, posts it to every webhook with retries and backoff, then records a
*delivery* per webhook. After a restart the rule is rebuilt from the stored minutes since the
signal's first start, and every toggle is checked against the log: a toggle with no intent
gets one, an intent without a delivery is posted again. Payloads carry an idempotency key
(`market-rule-minute-event`) so a receiver can drop the duplicate a kill between posting and
recording would cause.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from liqmap.backtest.params import DEFAULT_TARGET_RATIO, BacktestParams
from liqmap.backtest.rule import (
    EVENT_NAMES,
    EVENT_NONE,
    RuleState,
    bin_prefix_sums,
    run_rule,
    trailing_quantile,
    window_sums,
    window_usd_of,
)
from liqmap.config import UNPARSABLE, redact_url
from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store import schema as S
from liqmap.timeutil import iso_utc

log = logging.getLogger(__name__)

DATASET: Final = "signal_alerts"
#: Minutes of stored history read per matrix build while rebuilding the state.
CHUNK_MIN: Final = 720
#: The rule's state is recorded this often, so a restart replays at most this many minutes.
CHECKPOINT_EVERY_MIN: Final = 60
RETRY_DELAYS_S: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
POST_TIMEOUT_S: Final = 10.0
FORMATS: Final = ("json", "slack", "discord", "telegram")


@dataclass(frozen=True)
class SignalConfig:
    """What the live signal evaluates: the rule's parameters on one market's store matrix."""

    market: str
    params: BacktestParams
    bin_usd: float
    target_ratio: float = DEFAULT_TARGET_RATIO

    def __post_init__(self) -> None:
        if self.params.legacy_formulas:
            raise InputError("the live signal runs the rule as documented; drop "
                             "--legacy-formulas")

    @property
    def rule_id(self) -> str:
        """12 hex digits naming the market, the parameters that decide toggles, bin and ratio
        (alert keys carry it; fees and carry only change a backtest's accounting)."""
        decides = {k: v for k, v in self.params.to_dict().items()
                   if k not in ("fee_bps", "slippage_bps", "carry_apr")}
        text = json.dumps([self.market, decides, self.bin_usd, self.target_ratio],
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class MinuteSignal:
    """The rule at one minute. Units: tokens (above, below, threshold), USD (price)."""

    ts: pd.Timestamp
    price_usd: float
    above_tokens: float
    below_tokens: float
    threshold_tokens: float
    trigger: bool
    gap: bool
    direction: int
    event: str | None
    suggested_ratio: float

    def line(self, market: str) -> str:
        """The one line printed per minute."""
        state = {1: "ON +1 (add to short)", -1: "ON -1 (cut short)", 0: "off"}[self.direction]
        theta = "warming up" if np.isnan(self.threshold_tokens) else \
            f"{self.threshold_tokens:,.1f}"
        what = "no snapshot (held)" if self.gap else \
            f"above {self.above_tokens:,.1f} below {self.below_tokens:,.1f} θ {theta}"
        toggle = f"  TOGGLE {self.event}" if self.event else ""
        return (f"{self.ts:%Y-%m-%dT%H:%MZ} {market} price {self.price_usd:,.4f} {what} "
                f"state {state} hedge ratio {self.suggested_ratio:g}{toggle}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinuteSignal:
        nan = float("nan")
        return cls(ts=pd.Timestamp(d["ts"]), price_usd=d["price_usd"] or nan,
                   above_tokens=d["above_tokens"] or 0.0, below_tokens=d["below_tokens"] or 0.0,
                   threshold_tokens=nan if d["threshold_tokens"] is None
                   else d["threshold_tokens"], trigger=d["trigger"], gap=d["gap"],
                   direction=d["direction"], event=d["event"],
                   suggested_ratio=d["suggested_ratio"])

    def to_dict(self) -> dict[str, Any]:
        return {"ts": iso_utc(self.ts), "price_usd": _num(self.price_usd),
                "above_tokens": _num(self.above_tokens), "below_tokens": _num(self.below_tokens),
                "threshold_tokens": _num(self.threshold_tokens), "trigger": self.trigger,
                "gap": self.gap, "direction": self.direction, "event": self.event,
                "suggested_ratio": self.suggested_ratio}


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


@dataclass
class LiveRule:
    """The rule's state between minutes: the state machine and the trailing θ history."""

    config: SignalConfig
    state: RuleState = field(default_factory=RuleState)
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_ns: int | None = None

    def advance(self, matrix: LiqMatrix) -> list[MinuteSignal]:
        """Evaluate the columns of `matrix` after the last evaluated minute, in order."""
        p = self.config.params
        starts = matrix.t_edges_ns[:-1]
        cols = np.flatnonzero(starts > (self.last_ns if self.last_ns is not None else -1))
        if cols.size == 0:
            return []
        price = matrix.spot_usd[cols].astype(np.float64)
        frozen = matrix.gap_mask[cols] | ~np.isfinite(price)
        safe = np.where(frozen, 0.0, price)
        prefix = bin_prefix_sums(matrix.z[:, cols])
        above, below = window_sums(prefix, matrix.y_edges_usd[:-1], np.arange(cols.size),
                                   safe, window_usd_of(p, safe))
        values = np.maximum(above, below)
        theta = self._thresholds(values, frozen)
        out = run_rule(above, below, theta, frozen, confirm=p.confirm, release=p.release,
                       reversal=p.reversal, state=self.state)
        self.state = out.final
        keep = p.lookback_min
        self.history = np.concatenate([self.history, values[~frozen]])[-keep:]
        self.last_ns = int(starts[cols[-1]])
        return [MinuteSignal(
            ts=pd.Timestamp(int(starts[c]), tz="UTC"), price_usd=float(price[i]),
            above_tokens=float(above[i]), below_tokens=float(below[i]),
            threshold_tokens=float(theta[i]), trigger=bool(out.trigger[i]), gap=bool(frozen[i]),
            direction=int(out.direction[i]),
            event=EVENT_NAMES.get(int(out.event[i])) if out.event[i] != EVENT_NONE else None,
            suggested_ratio=self.config.target_ratio + int(out.direction[i]) * p.boost)
            for i, c in enumerate(cols)]

    def _thresholds(self, values: np.ndarray, frozen: np.ndarray) -> np.ndarray:
        p = self.config.params
        if p.threshold_tokens is not None or p.threshold_quantile is None:
            return np.full(values.shape[0], float(p.threshold_tokens or 0.0))
        n_old = self.history.shape[0]
        both = np.concatenate([self.history, values])
        both_frozen = np.concatenate([np.zeros(n_old, bool), frozen])
        return trailing_quantile(both, both_frozen, p.threshold_quantile,
                                 p.lookback_min)[n_old:]


# ------------------------------------------------------------------------- the alert log

ALERTS: Final = S.SIGNAL_ALERTS


class AlertLog:
    """The `signal_alerts` dataset of a store: one small Parquet file per record, written
    atomically, never rewritten (`signal_alerts/market=SOL/date=…/alert-<ns>-<kind>.parquet`)."""

    def __init__(self, store: Store, market: str) -> None:
        self.store, self.market = store, market

    def append(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            now = pd.Timestamp.now(tz="UTC")
            full = {name: row.get(name) for name in ALERTS.names}
            full["recorded_at"] = now
            table = pa.Table.from_pylist([full], schema=ALERTS)
            name = f"alert-{now.value}-{row['kind']}.parquet"
            rel = f"{L.partition_dir(DATASET, self.market, now.date())}/{name}"
            while not self.store.fs.write_table(rel, table, overwrite=False):
                now += pd.Timedelta(microseconds=1)
                rel = rel.rsplit("/", 1)[0] + f"/alert-{now.value}-{row['kind']}.parquet"

    def _paths(self, kind: str = "") -> list[str]:
        fs = self.store.fs
        base = L.market_dir(DATASET, self.market)
        return [f"{base}/{d}/{n}" for d in sorted(fs.listdir(base)) if L.parse_date_dir(d)
                for n in sorted(fs.listdir(f"{base}/{d}"))
                if n.startswith("alert-") and n.endswith(f"{kind}.parquet")]

    def _table(self, paths: list[str], columns: list[str]) -> pa.Table:
        fs = self.store.fs
        return pads.dataset([fs.path(p) for p in paths], schema=ALERTS, format="parquet",
                            filesystem=fs.fs).to_table(columns=columns)

    def read(self, rule_id: str | None = None) -> pd.DataFrame:
        """Every record but the checkpoints' history, oldest first."""
        columns = [n for n in ALERTS.names if n != "history"]
        paths = self._paths()
        if not paths:
            return ALERTS.empty_table().select(columns).to_pandas()
        frame = self._table(paths, columns).to_pandas().sort_values("recorded_at",
                                                                    kind="stable")
        if rule_id is not None:
            frame = frame[frame["rule_id"] == rule_id]
        return frame.reset_index(drop=True)

    def checkpoint(self, rule_id: str) -> dict[str, Any] | None:
        """The newest checkpoint of `rule_id` (files read newest first until one matches)."""
        paths = self._paths("-checkpoint")
        for path in sorted(paths, key=lambda p: p.rsplit("/", 1)[1], reverse=True):
            rows = self._table([path], ["ts", "rule_id", "detail", "history"]).to_pylist()
            if rows and rows[0]["rule_id"] == rule_id:
                return dict(rows[0])
        return None


def _undelivered(records: pd.DataFrame, hooks: list[Webhook]) -> pd.DataFrame:
    """Intents with a webhook (of those named when it was decided) not yet delivered to."""
    intents = records[records["kind"] == "intent"]
    done = set(zip(records.loc[records["kind"] == "delivered", "key"],
                   records.loc[records["kind"] == "delivered", "webhook_id"], strict=True))
    owed = [any(h.id in json.loads(d or "[]") and (k, h.id) not in done for h in hooks)
            for k, d in zip(intents["key"], intents["detail"], strict=True)]
    return intents[np.asarray(owed, dtype=bool)] if len(intents) else intents


def _signal_of(row: Any) -> MinuteSignal:
    """The toggle an intent record describes (to post it again after a restart)."""
    return MinuteSignal(ts=pd.Timestamp(row.ts), price_usd=row.price_usd,
                        above_tokens=row.above_tokens, below_tokens=row.below_tokens,
                        threshold_tokens=row.threshold_tokens, trigger=True, gap=False,
                        direction=int(row.direction), event=row.event,
                        suggested_ratio=row.suggested_ratio)


def toggle_key(market: str, rule_id: str, signal: MinuteSignal) -> str:
    return f"{market}-{rule_id}-{signal.ts:%Y%m%dT%H%MZ}-{signal.event}"


def webhook_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------- webhooks

def payload(fmt: str, market: str, signal: dict[str, Any], key: str) -> dict[str, Any]:
    """The body posted for a toggle, in `fmt` (json, slack, discord or telegram)."""
    direction = {1: "+1: add to the short", -1: "-1: reduce the short", 0: "off"}
    text = (f"liqmap {market} hedge boost {signal['event']} at {signal['ts']} "
            f"(price {signal['price_usd']:,.4f} USD): state {direction[signal['direction']]}, "
            f"suggested hedge ratio {signal['suggested_ratio']:g} [key {key}]")
    if fmt == "slack":
        return {"text": text, "idempotency_key": key}
    if fmt == "discord":
        return {"content": text, "nonce": key[-25:], "idempotency_key": key}
    if fmt == "telegram":
        return {"text": text, "disable_web_page_preview": True, "idempotency_key": key}
    return {"type": "liqmap.signal.toggle", "idempotency_key": key, "market": market, **signal}


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)  # chat webhooks hold their secret in the path; see redacted()
    fmt: str = "json"

    @property
    def id(self) -> str:
        return webhook_id(self.url)

    def redacted(self) -> str:
        """The URL as logs show it: scheme, host and port (a webhook's path is its secret)."""
        shown = redact_url(self.url)
        return shown if shown.endswith("/***") or shown == UNPARSABLE else shown + "/***"


def post_with_retries(hook: Webhook, body: dict[str, Any], key: str, *,
                      delays_s: Iterable[float] = RETRY_DELAYS_S,
                      sleep: Callable[[float], object] = time.sleep) -> tuple[bool, int, str]:
    """POST `body` with backoff between attempts; (delivered, attempts, last error)."""
    import httpx

    attempts, error = 0, ""
    for delay in (0.0, *delays_s):
        if delay:
            sleep(delay)
        attempts += 1
        try:
            r = httpx.post(hook.url, json=body, timeout=POST_TIMEOUT_S,
                           headers={"Idempotency-Key": key})
            if r.status_code < 300:
                return True, attempts, ""
            error = f"HTTP {r.status_code}"
            if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                break
        except httpx.HTTPError as exc:
            error = type(exc).__name__
    return False, attempts, f"{error} from {hook.redacted()}"


# ------------------------------------------------------------------------- the runner

class SignalRunner:
    """Rebuilds the rule from the store, then evaluates new minutes and delivers toggles."""

    def __init__(self, root: str, config: SignalConfig, webhooks: list[Webhook], *,
                 echo: Callable[[str], object] = print,
                 delays_s: Iterable[float] = RETRY_DELAYS_S,
                 checkpoint_every_min: int = CHECKPOINT_EVERY_MIN) -> None:
        self.store = Store(root)
        self.config, self.webhooks, self.echo = config, webhooks, echo
        self.delays_s = tuple(delays_s)
        self.checkpoint_every_min = checkpoint_every_min
        self.log = AlertLog(self.store, config.market)
        self.rule = LiveRule(config)
        self.live_from: pd.Timestamp | None = None
        self.last: MinuteSignal | None = None
        self.toggles: list[MinuteSignal] = []
        self._checkpoint_ns: int | None = None
        self.last_state: dict[str, Any] | None = None  # the last minute, from a checkpoint

    def start(self) -> None:
        """Rebuild the state from the signal's first start (recorded in the alert log), then
        deliver what the log says is owed."""
        self.rule, self.toggles, self._checkpoint_ns = LiveRule(self.config), [], None
        records = self.log.read(self.config.rule_id)
        starts = records[records["kind"] == "start"]
        latest = self._latest()
        if starts.empty:
            anchor = latest - pd.Timedelta(minutes=self.config.params.lookback_min + 1)
            self.live_from = latest
            self.log.append([{"ts": anchor, "rule_id": self.config.rule_id, "kind": "start",
                              "event": "", "detail": json.dumps({
                                  "params": self.config.params.to_dict(),
                                  "bin_usd": self.config.bin_usd,
                                  "live_from": iso_utc(latest)})}])
        else:
            first = starts.iloc[0]
            anchor = pd.Timestamp(first["ts"])
            self.live_from = pd.Timestamp(json.loads(first["detail"])["live_from"])
            anchor = self._restore(anchor)
        signals = self._evaluate(anchor, latest)
        self.last = signals[-1] if signals else (
            MinuteSignal.from_dict(self.last_state) if self.last_state else None)
        pending = [_signal_of(r) for r in _undelivered(records, self.webhooks).itertuples()]
        rebuilt = {(s.ts, s.event) for s in self.toggles}
        self._deliver([s for s in pending if (s.ts, s.event) not in rebuilt]
                      + [s for s in self.toggles if s.ts > self.live_from])
        self._checkpoint()

    def _restore(self, anchor: pd.Timestamp) -> pd.Timestamp:
        """Load the newest checkpoint; the first minute still to evaluate."""
        cp = self.log.checkpoint(self.config.rule_id)
        if cp is None:
            return anchor
        state = json.loads(cp["detail"])
        self.rule.state = RuleState(state["direction"], state["confirm"], state["release"])
        self.last_state = state.get("last")
        self.rule.history = np.asarray(cp["history"] or [], dtype=np.float64)
        ts = pd.Timestamp(cp["ts"])
        self.rule.last_ns = self._checkpoint_ns = ts.value
        return ts + pd.Timedelta(minutes=1)

    def _checkpoint(self) -> None:
        last = self.rule.last_ns
        if last is None or (self._checkpoint_ns is not None
                            and last - self._checkpoint_ns
                            < self.checkpoint_every_min * NS_PER_MINUTE):
            return
        st = self.rule.state
        self.log.append([{"ts": pd.Timestamp(last, tz="UTC"), "rule_id": self.config.rule_id,
                          "kind": "checkpoint", "event": "",
                          "detail": json.dumps({"direction": st.direction,
                                                "confirm": st.confirm,
                                                "release": st.release,
                                                "last": self.last.to_dict() if self.last
                                                else None}),
                          "history": self.rule.history.tolist()}])
        self._checkpoint_ns = last

    def poll(self) -> list[MinuteSignal]:
        """Evaluate minutes stored since the last call, print them, deliver their toggles."""
        if self.rule.last_ns is None:
            latest = self._latest()
        else:  # only the files after the last minute are read
            after = pd.Timestamp(self.rule.last_ns, tz="UTC") + pd.Timedelta(minutes=1)
            times = self.store.snapshot_times(self.config.market, after)
            if times.empty:
                return []
            latest = pd.Timestamp(times[-1])
        since = pd.Timestamp(self.rule.last_ns or latest.value, tz="UTC")
        n_before = len(self.toggles)
        short = latest - since <= pd.Timedelta(minutes=CHUNK_MIN)
        signals = self._evaluate(since + pd.Timedelta(minutes=1), latest, known=short)
        for s in signals:
            self.echo(s.line(self.config.market))
        self.last = signals[-1] if signals else self.last
        if len(self.toggles) > n_before:
            self._deliver(self.toggles[n_before:])
        self._checkpoint()
        return signals

    def _latest(self) -> pd.Timestamp:
        bounds = self.store.time_bounds(self.config.market)
        if bounds is None:
            raise InputError(f"the store {self.store.root} holds no {self.config.market} "
                             "snapshots; start `liqmap collect` first")
        return pd.Timestamp(bounds[1])

    def _evaluate(self, start: pd.Timestamp, end: pd.Timestamp, *, known: bool = False
                  ) -> list[MinuteSignal]:
        """Advance the rule over the stored minutes in [start, end] (`known`: the caller has
        seen a snapshot there, and the window is shorter than one chunk)."""
        from liqmap.heatmap import build_matrix_from_store

        out: list[MinuteSignal] = []
        chunk = pd.Timedelta(minutes=CHUNK_MIN)
        t = start
        while t <= end:
            stop = min(t + chunk - pd.Timedelta(minutes=1), end)
            if known or not self.store.snapshot_times(self.config.market, t, stop).empty:
                matrix = build_matrix_from_store(self.store.root, self.config.market, t, stop,
                                                 self.config.bin_usd, unit="tokens")
                out += self.rule.advance(matrix)
            t = stop + pd.Timedelta(minutes=1)
        self.toggles += [s for s in out if s.event]
        return out

    def _deliver(self, toggles: list[MinuteSignal]) -> None:
        """Intent for each toggle the log lacks, then a post per webhook not yet delivered."""
        records = self.log.read(self.config.rule_id)
        intents = set(records.loc[records["kind"] == "intent", "key"])
        done = set(zip(records.loc[records["kind"] == "delivered", "key"],
                       records.loc[records["kind"] == "delivered", "webhook_id"], strict=True))
        market, rule_id = self.config.market, self.config.rule_id
        toggles = list({toggle_key(market, rule_id, s): s for s in toggles}.values())
        owed = dict(zip(records.loc[records["kind"] == "intent", "key"],
                        records.loc[records["kind"] == "intent", "detail"], strict=True))
        for s in toggles:
            key = toggle_key(market, rule_id, s)
            if key not in intents:
                owed[key] = json.dumps([h.id for h in self.webhooks])
                self.log.append([{**self._row(s, key), "kind": "intent", "detail": owed[key]}])
            for hook in self.webhooks:
                if (key, hook.id) in done or hook.id not in json.loads(owed[key] or "[]"):
                    continue
                ok, attempts, error = post_with_retries(
                    hook, payload(hook.fmt, market, s.to_dict(), key), key,
                    delays_s=self.delays_s)
                self.log.append([{**self._row(s, key), "kind": "delivered" if ok else "failed",
                                  "webhook_id": hook.id, "attempts": attempts,
                                  "detail": error}])
                if not ok:
                    log.warning("%s toggle %s not delivered after %d attempts: %s", market,
                                key, attempts, error)

    def _row(self, s: MinuteSignal, key: str) -> dict[str, Any]:
        return {"ts": s.ts, "rule_id": self.config.rule_id, "event": s.event,
                "direction": s.direction, "price_usd": s.price_usd,
                "above_tokens": s.above_tokens, "below_tokens": s.below_tokens,
                "threshold_tokens": s.threshold_tokens, "suggested_ratio": s.suggested_ratio,
                "key": key}


def signal_state(store: Any, market: str = "SOL", **rule_kw: Any) -> dict[str, Any]:
    """The live signal's current state and its history, for `/api/v1/signal` and notebooks.

    Args:
        store: a store path/URI or an object with `.root`.
        market: "SOL", "ETH" or "BTC".
        **rule_kw: rule keywords as for `liqmap.backtest` (defaults: the documented ones),
            plus `bin_usd` and `target_ratio`.

    Returns:
        {"market", "rule_id", "params", "as_of", "live_from", "state": the last minute (window
        sums, θ, direction, suggested ratio), "toggles": every toggle since the signal's first
        start with its delivery status}. Read-only: nothing is posted or recorded.
    """
    runner = SignalRunner(str(getattr(store, "root", store)),
                          config_from(market, **rule_kw), [])
    rule_id = runner.config.rule_id
    records = runner.log.read(rule_id)
    starts = records[records["kind"] == "start"]
    latest = runner._latest()
    if starts.empty:
        anchor = latest - pd.Timedelta(minutes=runner.config.params.lookback_min + 1)
        live_from = None
    else:
        anchor = runner._restore(pd.Timestamp(starts.iloc[0]["ts"]))
        live_from = json.loads(starts.iloc[0]["detail"])["live_from"]
    signals = runner._evaluate(anchor, latest)
    state = signals[-1].to_dict() if signals else runner.last_state
    delivered = records[records["kind"] == "delivered"].groupby("key")["webhook_id"].nunique()
    toggles = {}
    for row in records[records["kind"] == "intent"].itertuples():
        toggles[row.key] = {**_signal_of(row).to_dict(), "key": row.key}
    for s in runner.toggles:
        key = toggle_key(market, rule_id, s)
        if live_from is None or s.ts > pd.Timestamp(live_from):
            toggles.setdefault(key, {**s.to_dict(), "key": key})
    history = [{**t, "delivered_to": int(delivered.get(k, 0))}
               for k, t in sorted(toggles.items(), key=lambda kv: kv[1]["ts"])]
    return {"market": market.upper(), "rule_id": rule_id,
            "params": runner.config.params.to_dict(),
            "as_of": iso_utc(latest), "live_from": live_from,
            "state": state, "toggles": history}


def config_from(market: str, *, bin_usd: float | None = None,
                target_ratio: float = DEFAULT_TARGET_RATIO, **rule_kw: Any) -> SignalConfig:
    """SignalConfig from the rule keywords of `liqmap.backtest`."""
    from liqmap.backtest.api import rule_params
    from liqmap.heatmap.defaults import default_bin_usd

    market = market.upper()
    return SignalConfig(market=market, params=rule_params(**rule_kw),
                        bin_usd=bin_usd or default_bin_usd(market),
                        target_ratio=target_ratio)
