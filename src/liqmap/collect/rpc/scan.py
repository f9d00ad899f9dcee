"""Pure request bodies and parsers of the cheaper scans used to (re)load the live book.

- `getProgramAccountsV2` (Helius, Alchemy, ...): pages of at most `limit` accounts, walked with
  `paginationKey` until it is null; `changedSinceSlot` returns only accounts written since.
- a key-only `getProgramAccounts` (`dataSlice` of Position.sizeUsd, 8 bytes per account), to
  find the open positions without downloading ~10^6 closed ones in full.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgspec

from liqmap import constants as C
from liqmap.collect.rpc.responses import _decode, _ErrorObj, check_error
from liqmap.errors import RpcError

#: JSON-RPC "method not found"/"invalid params": the node does not offer the call (or option)
UNSUPPORTED_CODES = {-32601, -32602}


def v2_params(program: str, filters: list[dict[str, Any]], *, limit: int,
              pagination_key: str | None = None, changed_since_slot: int | None = None,
              commitment: str = "confirmed") -> list[Any]:
    config: dict[str, Any] = {"encoding": "base64", "commitment": commitment,
                              "withContext": True, "filters": filters, "limit": limit}
    if pagination_key is not None:
        config["paginationKey"] = pagination_key
    if changed_since_slot is not None:
        config["changedSinceSlot"] = changed_since_slot
    return [program, config]


def size_slice_params(program: str, filters: list[dict[str, Any]],
                      commitment: str = "confirmed") -> list[Any]:
    """getProgramAccounts returning only the 8 bytes of sizeUsd of each account."""
    return [program, {"encoding": "base64", "commitment": commitment, "withContext": True,
                      "filters": filters,
                      "dataSlice": {"offset": C.POSITION_SIZE_USD_OFFSET, "length": 8}}]


class _Ctx(msgspec.Struct, gc=False):
    slot: int


class _Account(msgspec.Struct, gc=False):
    data: tuple[bytes, str]


class _Keyed(msgspec.Struct, gc=False):
    pubkey: str
    account: _Account


class _Page(msgspec.Struct, gc=False):
    accounts: list[_Keyed]
    paginationKey: str | None = None


class _V2Result(msgspec.Struct, gc=False):
    """Either shape: `{context, value: {accounts, paginationKey}}` or the page itself."""

    context: _Ctx | None = None
    value: _Page | None = None
    accounts: list[_Keyed] | None = None
    paginationKey: str | None = None  # the wire name


class _V2Response(msgspec.Struct, gc=False):
    result: _V2Result | None = None
    error: _ErrorObj | None = None


class _GpaResult(msgspec.Struct, gc=False):
    context: _Ctx
    value: list[_Keyed]


class _SliceResponse(msgspec.Struct, gc=False):
    result: _GpaResult | None = None
    error: _ErrorObj | None = None


_V2 = msgspec.json.Decoder(_V2Response)
_SLICE = msgspec.json.Decoder(_SliceResponse)


@dataclass(frozen=True)
class Page:
    """One getProgramAccountsV2 page: slot, accounts, cursor of the next page (None: done)."""

    slot: int
    accounts: dict[str, bytes]
    next_key: str | None


def parse_v2_page(raw: bytes, method: str = "getProgramAccountsV2") -> Page:
    resp = _decode(_V2, raw, method)
    check_error(resp.error, method)
    if resp.result is None:
        raise RpcError(f"{method}: response has neither result nor error", method=method)
    result = resp.result
    if result.value is not None:
        page = result.value
    elif result.accounts is not None:
        page = _Page(result.accounts, result.paginationKey)
    else:
        raise RpcError(f"{method}: result holds no accounts", method=method)
    slot = result.context.slot if result.context else 0
    return Page(slot, {k.pubkey: k.account.data[0] for k in page.accounts}, page.paginationKey)


def parse_open_keys(raw: bytes, method: str = "getProgramAccounts") -> tuple[int, list[str]]:
    """(slot, keys of accounts whose sliced sizeUsd is not 0) from a size-slice scan."""
    resp = _decode(_SLICE, raw, method)
    check_error(resp.error, method)
    if resp.result is None:
        raise RpcError(f"{method}: response has neither result nor error", method=method)
    keys = [k.pubkey for k in resp.result.value
            if len(k.account.data[0]) != 8 or struct.unpack("<Q", k.account.data[0])[0] != 0]
    return resp.result.context.slot, keys


def is_unsupported(exc: RpcError) -> bool:
    """Whether `exc` says the node does not offer the method or option at all."""
    text = str(exc)
    return any(f"error {code}" in text for code in UNSUPPORTED_CODES) or "HTTP 40" in text
