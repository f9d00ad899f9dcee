"""Pure parsers of JSON-RPC responses (msgspec: typed decoding straight from bytes).

Base64 account data is decoded to `bytes` by msgspec while parsing, so a 100,000-account
getProgramAccounts response never becomes a tree of Python dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

import msgspec

from liqmap.errors import RpcError

#: JSON-RPC error codes after which the same request to the same node may succeed
RETRYABLE_CODES = {-32005, -32603, -32004, -32007, -32014, -32016, 429}


class _Ctx(msgspec.Struct, gc=False):
    slot: int


class _Account(msgspec.Struct, gc=False):
    data: tuple[bytes, str]
    owner: str = ""


class _ProgramAccount(msgspec.Struct, gc=False):
    """An account of a getProgramAccounts result: only its data is read (owner is implied)."""

    data: tuple[bytes, Literal["base64"]]


class _Keyed(msgspec.Struct, gc=False):
    pubkey: str
    account: _ProgramAccount


class _GpaResult(msgspec.Struct, gc=False):
    context: _Ctx
    value: list[_Keyed]


class _GmaResult(msgspec.Struct, gc=False):
    context: _Ctx
    value: list[_Account | None]


class _ErrorObj(msgspec.Struct):
    code: int
    message: str = ""
    data: Any = None


class _GpaResponse(msgspec.Struct, gc=False):
    result: _GpaResult | list[_Keyed] | None = None
    error: _ErrorObj | None = None


class _GmaResponse(msgspec.Struct, gc=False):
    result: _GmaResult | None = None
    error: _ErrorObj | None = None


class _AnyResponse(msgspec.Struct):
    result: Any = None
    error: _ErrorObj | None = None


_GPA = msgspec.json.Decoder(_GpaResponse)
_PUBKEY = attrgetter("pubkey")
_GMA = msgspec.json.Decoder(_GmaResponse)
_ANY = msgspec.json.Decoder(_AnyResponse)


@dataclass(frozen=True)
class ProgramAccounts:
    """getProgramAccounts result: context slot, account keys and raw data, aligned."""

    slot: int
    pubkeys: list[str]
    blobs: list[bytes]


@dataclass(frozen=True)
class MultipleAccounts:
    """getMultipleAccounts result: context slot and data per key (None if no account)."""

    slot: int
    data: dict[str, bytes | None]
    owners: dict[str, str]


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes, method: str) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise RpcError(f"{method}: malformed response ({exc}); the node or a proxy sent "
                       "data that is not a valid JSON-RPC result", method=method) from exc
    except msgspec.DecodeError as exc:
        raise RpcError(f"{method}: response is not valid JSON ({exc}); truncated or "
                       "corrupted by a proxy", method=method) from exc


def check_error(error: _ErrorObj | None, method: str) -> None:
    """Raise RpcError for a JSON-RPC error object (retryable if the code says so)."""
    if error is None:
        return
    raise RpcError(f"{method}: node returned error {error.code}: {error.message[:200]}",
                   method=method, retryable=error.code in RETRYABLE_CODES)


def parse_program_accounts(raw: bytes, method: str = "getProgramAccounts") -> ProgramAccounts:
    """Parse a base64 getProgramAccounts response (with or without `withContext`)."""
    resp = _decode(_GPA, raw, method)
    check_error(resp.error, method)
    if resp.result is None:
        raise RpcError(f"{method}: response has neither result nor error", method=method)
    if isinstance(resp.result, list):
        slot, items = 0, resp.result
    else:
        slot, items = resp.result.context.slot, resp.result.value
    return ProgramAccounts(slot=slot, pubkeys=list(map(_PUBKEY, items)),
                           blobs=[k.account.data[0] for k in items])


def parse_multiple_accounts(raw: bytes, keys: list[str],
                            method: str = "getMultipleAccounts") -> MultipleAccounts:
    """Parse a base64 getMultipleAccounts response for `keys` (same order)."""
    resp = _decode(_GMA, raw, method)
    check_error(resp.error, method)
    if resp.result is None:
        raise RpcError(f"{method}: response has neither result nor error", method=method)
    values = resp.result.value
    if len(values) != len(keys):
        raise RpcError(f"{method}: asked for {len(keys)} accounts, got {len(values)}",
                       method=method)
    data = {k: (v.data[0] if v is not None else None) for k, v in zip(keys, values, strict=True)}
    owners = {k: v.owner for k, v in zip(keys, values, strict=True) if v is not None}
    return MultipleAccounts(slot=resp.result.context.slot, data=data, owners=owners)


def parse_result(raw: bytes, method: str) -> Any:
    """The `result` of any JSON-RPC response, raising RpcError on an error object."""
    resp = _decode(_ANY, raw, method)
    check_error(resp.error, method)
    return resp.result
