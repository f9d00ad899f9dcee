"""Jupiter Perps events in transactions: Anchor CPI events decoded from inner instructions.

The program emits each event as a self-invocation (an inner instruction whose program is the
Perps program) with data

    e445a52e51cb9a1d            Anchor's event tag (sha256("anchor:event")[:8], byte-reversed)
    <8-byte discriminator>      sha256("event:<EventName>")[:8]  (instructions:
                                sha256("global:<snake_case_name>")[:8]; checked in the tests)
    <Borsh payload>             fields in declaration order, little-endian, no padding

Liquidation events (docs/liquidations.md gives the public sources):

- `LiquidateFullPositionEvent` (`806547a880485654`): the fields of `LIQUIDATE_FULL_FIELDS`.
  Older program versions emitted the same discriminator with fewer trailing fields, so any
  payload holding at least the fields through `liquidationFeeUsd` is accepted; missing trailing
  fields are None.
- `LiquidatePositionEvent` (`68452084d423bf2f`), legacy: only its leading `positionKey` is read
  (its full layout has no public source); price and fees stay unknown.
- `DecreasePositionEvent` (`409c2b4a6d83107f`): a trader's decrease or close; read up to its
  price and fee.

Instructions: `liquidateFullPosition4` (`40b05833a8bc9caf`) and the older
`liquidateFullPosition2` (`e9a0bb6202ea30f9`). USD amounts and prices carry 6 decimals.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

from liqmap import constants as C

EVENT_TAG = bytes.fromhex("e445a52e51cb9a1d")
LIQUIDATE_FULL_POSITION_EVENT = bytes.fromhex("806547a880485654")
LIQUIDATE_POSITION_EVENT = bytes.fromhex("68452084d423bf2f")
DECREASE_POSITION_EVENT = bytes.fromhex("409c2b4a6d83107f")
LIQUIDATE_FULL_POSITION4 = bytes.fromhex("40b05833a8bc9caf")
LIQUIDATE_FULL_POSITION2 = bytes.fromhex("e9a0bb6202ea30f9")
LIQUIDATE_INSTRUCTIONS = (LIQUIDATE_FULL_POSITION4, LIQUIDATE_FULL_POSITION2)

#: LiquidateFullPositionEvent, in order: (name, Borsh type)
LIQUIDATE_FULL_FIELDS: tuple[tuple[str, str], ...] = (
    ("positionKey", "pubkey"), ("positionSide", "u8"), ("positionCustody", "pubkey"),
    ("positionCollateralCustody", "pubkey"), ("positionCollateralMint", "pubkey"),
    ("positionMint", "pubkey"), ("positionSizeUsd", "u64"), ("hasProfit", "bool"),
    ("pnlDelta", "u64"), ("owner", "pubkey"), ("pool", "pubkey"),
    ("transferAmountUsd", "u64"), ("transferToken", "u64"), ("price", "u64"),
    ("feeUsd", "u64"), ("liquidationFeeUsd", "u64"), ("openTime", "i64"),
    ("positionFeeUsd", "u64"), ("fundingFeeUsd", "u64"), ("priceImpactFeeUsd", "u64"),
    ("originalPositionCollateralUsd", "u64"), ("positionCollateralUsd", "u64"),
    ("positionOpenTime", "i64"), ("positionPrice", "u64"),
)
#: the shortest LiquidateFullPositionEvent accepted: through `liquidationFeeUsd`
MIN_LIQUIDATE_FULL_FIELDS = 16
#: DecreasePositionEvent up to `feeUsd` (Option<T> = 1-byte tag, then T if the tag is 1)
DECREASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("positionKey", "pubkey"), ("positionSide", "u8"), ("positionCustody", "pubkey"),
    ("positionCollateralCustody", "pubkey"), ("positionSizeUsd", "u64"),
    ("positionMint", "pubkey"), ("positionRequestKey", "pubkey"),
    ("positionRequestMint", "pubkey"), ("positionRequestChange", "u8"),
    ("positionRequestType", "u8"), ("hasProfit", "bool"), ("pnlDelta", "u64"),
    ("owner", "pubkey"), ("pool", "pubkey"), ("sizeUsdDelta", "u64"),
    ("transferAmountUsd", "u64"), ("transferToken", "option_u64"), ("price", "u64"),
    ("priceSlippage", "option_u64"), ("feeUsd", "u64"),
)
_SIZES = {"pubkey": 32, "u8": 1, "bool": 1, "u64": 8, "i64": 8}


@dataclass(frozen=True)
class PositionEvent:
    """A decoded event about one position. USD values are floats in USD (6 decimals on chain);
    None where the payload did not carry the field."""

    name: str  # "LiquidateFullPositionEvent" | "LiquidatePositionEvent" | ...
    position_key: str
    liquidation: bool
    price_usd: float | None = None
    fee_usd: float | None = None
    liquidation_fee_usd: float | None = None
    size_usd: float | None = None
    fields: tuple[tuple[str, Any], ...] = ()


def _read(data: bytes, offset: int, kind: str) -> tuple[Any, int]:
    if kind == "option_u64":
        if offset >= len(data):
            raise ValueError("payload ends inside an Option")
        if data[offset] == 0:
            return None, offset + 1
        return _read(data, offset + 1, "u64")
    size = _SIZES[kind]
    if offset + size > len(data):
        raise ValueError("payload too short")
    raw = data[offset:offset + size]
    if kind == "pubkey":
        return str(Pubkey.from_bytes(raw)), offset + size
    if kind in ("u8", "bool"):
        return raw[0] if kind == "u8" else bool(raw[0]), offset + size
    return struct.unpack("<q" if kind == "i64" else "<Q", raw)[0], offset + size


def _read_fields(payload: bytes, layout: tuple[tuple[str, str], ...], minimum: int
                 ) -> dict[str, Any] | None:
    """Fields of `layout` present in `payload`; None if fewer than `minimum` fit."""
    out: dict[str, Any] = {}
    offset = 0
    for name, kind in layout:
        try:
            out[name], offset = _read(payload, offset, kind)
        except ValueError:
            break
    return out if len(out) >= minimum else None


def _usd(value: int | None) -> float | None:
    return None if value is None else value / C.USD_PRECISION


def decode_event(data: bytes) -> PositionEvent | None:
    """The position event in one inner instruction's data; None for anything else (other
    events, other instructions, payloads too short to hold the fields read)."""
    if len(data) < 16 or data[:8] != EVENT_TAG:
        return None
    disc, payload = data[8:16], data[16:]
    if disc == LIQUIDATE_FULL_POSITION_EVENT:
        f = _read_fields(payload, LIQUIDATE_FULL_FIELDS, MIN_LIQUIDATE_FULL_FIELDS)
        if f is None:
            return None
        return PositionEvent("LiquidateFullPositionEvent", f["positionKey"], True,
                             _usd(f["price"]), _usd(f["feeUsd"]), _usd(f["liquidationFeeUsd"]),
                             _usd(f["positionSizeUsd"]), tuple(f.items()))
    if disc == LIQUIDATE_POSITION_EVENT and len(payload) >= 32:
        return PositionEvent("LiquidatePositionEvent", str(Pubkey.from_bytes(payload[:32])),
                             True)
    if disc == DECREASE_POSITION_EVENT:
        f = _read_fields(payload, DECREASE_FIELDS, 1)
        if f is None:
            return None
        return PositionEvent("DecreasePositionEvent", f["positionKey"], False,
                             _usd(f.get("price")), _usd(f.get("feeUsd")), None,
                             _usd(f.get("positionSizeUsd")), tuple(f.items()))
    return None


# ---------------------------------------------------------------- transactions (JSON-RPC)
_B58 = C.BASE58_ALPHABET
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58decode(text: str) -> bytes:
    """Bytes of a base58 string (instruction data in `json`-encoded transactions)."""
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"not base58: {char!r}")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def b58encode(data: bytes) -> str:
    """Base58 text of `data` (for building test transactions)."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58[rem])
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(out))


def account_keys(tx: dict[str, Any]) -> list[str]:
    """Every account of a `getTransaction` result in index order: the message's keys, then
    the address-table keys loaded for a v0 transaction (writable, then readonly)."""
    message = tx.get("transaction", {}).get("message", {})
    keys = [k if isinstance(k, str) else k.get("pubkey", "") for k in
            message.get("accountKeys", [])]
    loaded = (tx.get("meta") or {}).get("loadedAddresses") or {}
    return keys + list(loaded.get("writable", [])) + list(loaded.get("readonly", []))


def _instruction_data(ix: dict[str, Any]) -> bytes | None:
    try:
        return b58decode(ix.get("data", ""))
    except ValueError:
        return None


def position_events(tx: dict[str, Any], program: str = C.PERPS_PROGRAM_ID
                    ) -> Iterator[PositionEvent]:
    """Position events emitted by `program` in a successful transaction (none if it failed)."""
    meta = tx.get("meta") or {}
    if meta.get("err") is not None:
        return
    keys = account_keys(tx)
    for group in meta.get("innerInstructions") or []:
        for ix in group.get("instructions", []):
            index = ix.get("programIdIndex", -1)
            if not 0 <= index < len(keys) or keys[index] != program:
                continue
            data = _instruction_data(ix)
            event = decode_event(data) if data else None
            if event is not None:
                yield event


def liquidation_instruction_accounts(tx: dict[str, Any], program: str = C.PERPS_PROGRAM_ID
                                     ) -> set[str]:
    """Accounts of the top-level `liquidateFullPosition4/2` instructions of a successful
    transaction (an event-less confirmation that a position was liquidated)."""
    meta = tx.get("meta") or {}
    if meta.get("err") is not None:
        return set()
    keys = account_keys(tx)
    out: set[str] = set()
    for ix in tx.get("transaction", {}).get("message", {}).get("instructions", []):
        index = ix.get("programIdIndex", -1)
        if not 0 <= index < len(keys) or keys[index] != program:
            continue
        data = _instruction_data(ix)
        if data and data[:8] in LIQUIDATE_INSTRUCTIONS:
            out.update(keys[i] for i in ix.get("accounts", []) if 0 <= i < len(keys))
    return out


# ---------------------------------------------------------------- encoding (tests, simulator)
def _write(kind: str, value: Any) -> bytes:
    if kind == "option_u64":
        return b"\0" if value is None else b"\1" + struct.pack("<Q", value)
    if kind == "pubkey":
        return bytes(Pubkey.from_string(value))
    if kind in ("u8", "bool"):
        return bytes([int(value)])
    return struct.pack("<q" if kind == "i64" else "<Q", int(value))


def encode_event(discriminator: bytes, layout: tuple[tuple[str, str], ...],
                 values: dict[str, Any], n_fields: int | None = None) -> bytes:
    """Inner-instruction data of an event: tag, discriminator, the first `n_fields` fields of
    `layout` (all by default) from `values` (missing ones 0, a zero key, or None)."""
    zero_key = str(Pubkey.default())
    parts = [EVENT_TAG, discriminator]
    for name, kind in layout[:n_fields]:
        default: Any = zero_key if kind == "pubkey" else (None if kind.startswith("option")
                                                          else 0)
        parts.append(_write(kind, values.get(name, default)))
    return b"".join(parts)
