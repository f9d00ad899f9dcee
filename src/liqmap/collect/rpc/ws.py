"""Solana PubSub (WebSocket) messages: pure subscribe bodies and pure parsers.

Subscriptions reuse the collector's getProgramAccounts filters, so stream and poll select the
same Position accounts. Parsers return `(slot, pubkey, bytes | None)`-shaped records; `None`
means the account is gone for us (deleted, emptied, or no longer owned by the program).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from liqmap import constants as C
from liqmap.collect.rpc.requests import position_filters
from liqmap.errors import ConfigError, RpcError

_ENCODER = msgspec.json.Encoder()


def derive_ws_url(http_url: str) -> str:
    """The PubSub URL of an HTTP RPC endpoint: same host, path and query (API keys kept),
    https -> wss, http -> ws.

    >>> derive_ws_url("https://mainnet.helius-rpc.com/?api-key=abc")
    'wss://mainnet.helius-rpc.com/?api-key=abc'
    """
    parts = urlsplit(http_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    if scheme is None:
        raise ConfigError("cannot derive a WebSocket URL from an RPC URL that is not "
                          "http:// or https://; pass --ws-url")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def request(method: str, params: list[Any], request_id: int) -> bytes:
    """One JSON-RPC request frame."""
    return _ENCODER.encode({"jsonrpc": "2.0", "id": request_id, "method": method,
                            "params": params})


def program_subscribe_params(custody: str, commitment: str = "confirmed") -> list[Any]:
    """programSubscribe on the Perps program: Position accounts of one traded custody."""
    return [C.PERPS_PROGRAM_ID, {"encoding": "base64", "commitment": commitment,
                                 "filters": position_filters(custody)}]


def account_subscribe_params(key: str, commitment: str = "confirmed") -> list[Any]:
    return [key, {"encoding": "base64", "commitment": commitment}]


# ------------------------------------------------------------------------- parsing
class _Error(msgspec.Struct):
    code: int
    message: str = ""


class _Head(msgspec.Struct):
    id: int | None = None
    method: str | None = None
    error: _Error | None = None


class _Reply(msgspec.Struct):
    id: int
    result: Any = None
    error: _Error | None = None


class _Ctx(msgspec.Struct):
    slot: int


class _Account(msgspec.Struct):
    data: tuple[bytes, str]
    owner: str = ""
    lamports: int = 0


class _Keyed(msgspec.Struct):
    pubkey: str
    account: _Account


class _ProgResult(msgspec.Struct):
    context: _Ctx
    value: _Keyed


class _AcctResult(msgspec.Struct):
    context: _Ctx
    value: _Account | None = None


class _SlotResult(msgspec.Struct):
    slot: int


class _ProgParams(msgspec.Struct):
    result: _ProgResult
    subscription: int


class _AcctParams(msgspec.Struct):
    result: _AcctResult
    subscription: int


class _SlotParams(msgspec.Struct):
    result: _SlotResult
    subscription: int


class _ProgMsg(msgspec.Struct):
    params: _ProgParams


class _AcctMsg(msgspec.Struct):
    params: _AcctParams


class _SlotMsg(msgspec.Struct):
    params: _SlotParams


_SLOT_METHOD = b'"method":"slotNotification"'
_HEAD = msgspec.json.Decoder(_Head)
_REPLY = msgspec.json.Decoder(_Reply)
_PROG = msgspec.json.Decoder(_ProgMsg)
_ACCT = msgspec.json.Decoder(_AcctMsg)
_SLOT = msgspec.json.Decoder(_SlotMsg)


@dataclass(frozen=True)
class Reply:
    """The answer to a request (subscribe confirmation: `result` is the subscription id)."""

    request_id: int
    result: Any
    error: str | None


@dataclass(frozen=True)
class Notification:
    """A subscription's message: kind 'program' | 'account' | 'slot'.

    `pubkey` is set for program notifications; `data` is None when the account is gone for
    the subscriber (deleted, no lamports, or owned by another program than `owner_expected`).
    """

    kind: str
    subscription: int
    slot: int
    pubkey: str | None = None
    data: bytes | None = None
    owner: str = ""


def _data(account: _Account | None) -> tuple[bytes | None, str]:
    if account is None or account.lamports == 0:
        return None, account.owner if account else ""
    return account.data[0], account.owner


def parse_message(raw: bytes | str) -> Reply | Notification | None:
    """A PubSub message as a Reply or Notification (None: a kind liqmap does not use)."""
    try:
        if _SLOT_METHOD in (raw if isinstance(raw, bytes) else raw.encode()):  # the chatty one
            s = _SLOT.decode(raw).params
            return Notification("slot", s.subscription, s.result.slot)
        head = _HEAD.decode(raw)
        if head.id is not None:
            reply = _REPLY.decode(raw)
            error = f"{reply.error.code}: {reply.error.message[:200]}" if reply.error else None
            return Reply(reply.id, reply.result, error)
        if head.method == "programNotification":
            p = _PROG.decode(raw).params
            data, owner = _data(p.result.value.account)
            return Notification("program", p.subscription, p.result.context.slot,
                                p.result.value.pubkey, data, owner)
        if head.method == "accountNotification":
            a = _ACCT.decode(raw).params
            data, owner = _data(a.result.value)
            return Notification("account", a.subscription, a.result.context.slot, None, data,
                                owner)
        if head.method == "slotNotification":
            s = _SLOT.decode(raw).params
            return Notification("slot", s.subscription, s.result.slot)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RpcError(f"WebSocket: malformed message ({exc})", method="pubsub") from exc
    return None
