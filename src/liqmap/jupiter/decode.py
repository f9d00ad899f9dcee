"""Pure decoders of Jupiter Perps, Doves, Pyth and sysvar account bytes (spec §2, §3, §4, §7).

Positions are decoded vectorised: all account blobs of one getProgramAccounts response become one
numpy structured array (`POSITION_DTYPE`, packed like the on-chain Borsh layout). Single
accounts (custody, pool, price feeds) are decoded field by field into frozen dataclasses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.errors import DecodeError
from liqmap.jupiter import layouts as LY
from liqmap.jupiter.accounts import AgPriceFeed, ClockSysvar, Custody, OraclePrice, Pool
from liqmap.jupiter.layouts import POSITION_DTYPE

__all__ = [
    "POSITION_DTYPE", "AgPriceFeed", "ClockSysvar", "Custody", "DecodedPositions",
    "OraclePrice", "Pool", "decode_ag_price_feed", "decode_ag_price_feed_account", "decode_clock",
    "decode_custody",
    "decode_doves_price_feed", "decode_pool", "decode_positions", "decode_pyth_price_update",
    "decode_spl_mint", "match_keys", "pubkeys_to_base58",
]

POSITION_DISC_U64 = int.from_bytes(C.POSITION_DISCRIMINATOR, "little")

# error codes of decode_positions, per account
OK, ERR_SIZE, ERR_DISCRIMINATOR, ERR_SIDE, ERR_RANGE = 0, 1, 2, 3, 4
ERROR_NAMES = {ERR_SIZE: "wrong account size", ERR_DISCRIMINATOR: "not a Position account",
               ERR_SIDE: "side byte not 1 (long) or 2 (short)",
               ERR_RANGE: "size, price or interest snapshot out of range"}


@dataclass(frozen=True)
class DecodedPositions:
    """Open positions of one response plus what was rejected.

    `records` holds only open (size_usd > 0), valid accounts; `pubkeys` is aligned with it.
    `errors` maps an error code to the pubkeys rejected for it; `n_closed` counts size 0.
    """

    records: np.ndarray
    pubkeys: list[str]
    errors: dict[int, list[str]]
    n_closed: int

    @property
    def n_errors(self) -> int:
        return sum(len(v) for v in self.errors.values())


def decode_positions(pubkeys: list[str], blobs: list[bytes]) -> DecodedPositions:
    """Decode Position accounts (216-byte blobs) in one pass.

    Accounts of the wrong size or discriminator, and open accounts whose side byte is not
    1 (long) or 2 (short), are rejected and listed in `errors` (never guessed).
    """
    n = len(blobs)
    sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=n)
    good_size = sizes == C.POSITION_ACCOUNT_SIZE
    if good_size.all():
        raw = b"".join(blobs)
    else:
        raw = b"".join(b if ok else bytes(C.POSITION_ACCOUNT_SIZE)
                       for b, ok in zip(blobs, good_size.tolist(), strict=True))
    rec = np.frombuffer(raw, dtype=POSITION_DTYPE, count=n)
    code = np.zeros(n, dtype=np.int8)
    code[~good_size] = ERR_SIZE
    code[(code == OK) & (rec["discriminator"] != POSITION_DISC_U64)] = ERR_DISCRIMINATOR
    is_open = rec["size_usd"] > 0
    code[(code == OK) & is_open & (rec["side"] != C.SIDE_LONG)
         & (rec["side"] != C.SIDE_SHORT)] = ERR_SIDE
    out_of_range = ((rec["size_usd"] >= np.uint64(1 << 50)) | (rec["price"] == 0)
                    | (rec["price"] >= np.uint64(1 << 50))
                    | (rec["cumulative_interest_snapshot_hi"] != 0))
    code[(code == OK) & is_open & out_of_range] = ERR_RANGE
    keep = (code == OK) & is_open
    errors: dict[int, list[str]] = {}
    for c in np.unique(code[code != OK]).tolist():
        errors[int(c)] = [pubkeys[i] for i in np.flatnonzero(code == c).tolist()]
    n_closed = int(((code == OK) & ~is_open).sum())
    if keep.all():
        return DecodedPositions(records=rec, pubkeys=pubkeys, errors=errors, n_closed=n_closed)
    idx = np.flatnonzero(keep)
    return DecodedPositions(records=rec[idx], pubkeys=[pubkeys[i] for i in idx.tolist()],
                            errors=errors, n_closed=n_closed)


def pubkeys_to_base58(keys: np.ndarray) -> list[str]:
    """base58 strings of an array of 32-byte keys (dtype V32), in order."""
    raw = np.ascontiguousarray(keys).tobytes()
    return [str(Pubkey.from_bytes(raw[i:i + 32])) for i in range(0, len(raw), 32)]


def match_keys(keys: np.ndarray, known: list[str]) -> np.ndarray:
    """Index into `known` of each 32-byte key (dtype V32); -1 where the key is not known."""
    words = np.ascontiguousarray(keys).view(np.uint64).reshape(-1, 4)
    table = np.frombuffer(b"".join(bytes(Pubkey.from_string(k)) for k in known),
                          dtype=np.uint64).reshape(-1, 4)
    out = np.full(len(words), -1, dtype=np.int16)
    for i, key in enumerate(table):
        out[words[:, 0] == key[0]] = i  # first word picks the candidate ...
    hit = out >= 0
    exact = (words[hit] == table[out[hit]]).all(axis=1)  # ... all four words confirm it
    out[np.flatnonzero(hit)[~exact]] = -1
    return out


def b58(raw: bytes) -> str:
    return str(Pubkey.from_bytes(raw))


# ---------------------------------------------------------------- single accounts
def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise DecodeError(f"{what} account has {len(data)} bytes, needs at least {size}")


def _check_disc(data: bytes, disc: bytes, what: str) -> None:
    if data[:8] != disc:
        raise DecodeError(f"account is not a {what} (discriminator {data[:8].hex()}, "
                          f"expected {disc.hex()})")


def _u64(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<Q", data, off)[0])


def _i64(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<q", data, off)[0])


def _key(data: bytes, off: int) -> str:
    return b58(data[off:off + 32])


def decode_custody(data: bytes) -> Custody:
    """Decode a Custody account (>= 416 bytes; fields past the end of older layouts read 0)."""
    _need(data, LY.CUSTODY_MIN_SIZE, "Custody")
    _check_disc(data, C.CUSTODY_DISCRIMINATOR, "Custody")
    return Custody(**LY.read_fields(data, LY.CUSTODY_FIELDS))  # type: ignore[arg-type]


def decode_pool(data: bytes) -> Pool:
    """Decode the variable-length Pool account (Borsh string + vec at the head, spec §4)."""
    _check_disc(data, C.POOL_DISCRIMINATOR, "Pool")
    try:
        o = 8
        (name_len,) = struct.unpack_from("<I", data, o)
        name = data[o + 4:o + 4 + name_len].decode("utf-8")
        o += 4 + name_len
        (n,) = struct.unpack_from("<I", data, o)
        custodies = tuple(_key(data, o + 4 + 32 * i) for i in range(n))
        tail = o + 4 + 32 * n
        _need(data, tail + 16, "Pool")
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"Pool account bytes are malformed: {exc}") from exc
    values = LY.read_fields(data, LY.POOL_TAIL_FIELDS, base=tail)
    return Pool(name=name, custodies=custodies, **values)  # type: ignore[arg-type]


def _to_usd6(price: int, expo: int) -> int:
    shift = C.USD_DECIMALS + expo
    return price * 10**shift if shift >= 0 else price // 10**-shift


def decode_ag_price_feed_account(data: bytes) -> AgPriceFeed:
    """Every field of a Doves AgPriceFeed (spec §7.1)."""
    _need(data, LY.AG_PRICE_FEED_MIN_SIZE, "Doves AgPriceFeed")
    _check_disc(data, C.AG_PRICE_FEED_DISCRIMINATOR, "Doves AgPriceFeed")
    return AgPriceFeed(**LY.read_fields(data, LY.AG_PRICE_FEED_FIELDS))  # type: ignore[arg-type]


def decode_ag_price_feed(data: bytes) -> OraclePrice:
    """The price the program uses: AgPriceFeed price x 10^expo, with its timestamp."""
    feed = decode_ag_price_feed_account(data)
    return OraclePrice(_to_usd6(feed.price, feed.expo), feed.timestamp, "doves_ag")


def decode_doves_price_feed(data: bytes) -> OraclePrice:
    """Legacy Doves PriceFeed (spec §7.2): price @73, expo @81, timestamp @82."""
    _need(data, 91, "Doves PriceFeed")
    _check_disc(data, C.DOVES_PRICE_FEED_DISCRIMINATOR, "Doves PriceFeed")
    price, expo, ts = struct.unpack_from("<Qbq", data, 73)
    return OraclePrice(_to_usd6(price, expo), ts, "doves")


def decode_pyth_price_update(data: bytes) -> OraclePrice:
    """Pyth PriceUpdateV2 (spec §7.3); the message offset depends on the verification level."""
    _check_disc(data, C.PYTH_PRICE_UPDATE_DISCRIMINATOR, "Pyth PriceUpdateV2")
    _need(data, 42, "Pyth PriceUpdateV2")
    base = 41 if data[40] == 1 else 42
    _need(data, base + 60, "Pyth PriceUpdateV2")
    price, _conf, expo, publish_time = struct.unpack_from("<qQiq", data, base + 32)
    if price <= 0:
        raise DecodeError(f"Pyth price is not positive ({price})")
    return OraclePrice(_to_usd6(price, expo), publish_time, "pyth")


def decode_clock(data: bytes) -> ClockSysvar:
    """Clock sysvar: slot u64 @0, unix_timestamp i64 @32."""
    _need(data, C.CLOCK_SIZE, "Clock sysvar")
    return ClockSysvar(slot=_u64(data, 0), unix_timestamp=_i64(data, 32))


def decode_spl_mint(data: bytes) -> tuple[int, int]:
    """SPL Token mint: (supply in base units u64 @36, decimals u8 @44); refuses an
    uninitialized or short account."""
    _need(data, C.SPL_MINT_SIZE, "SPL mint")
    if data[C.SPL_MINT_INITIALIZED_OFFSET] != 1:
        raise DecodeError("SPL mint is not initialized")
    return _u64(data, C.SPL_MINT_SUPPLY_OFFSET), data[C.SPL_MINT_DECIMALS_OFFSET]
