"""Encoders: the inverse of `decode`, from the same layout tables (used by the simulator and
the tests to write real Jupiter Perps accounts into a local Solana node)."""

from __future__ import annotations

import struct
from dataclasses import asdict

import numpy as np
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.jupiter import layouts as LY
from liqmap.jupiter.accounts import AgPriceFeed, Custody, Pool
from liqmap.jupiter.layouts import POSITION_DTYPE

POSITION_DISC_U64 = int.from_bytes(C.POSITION_DISCRIMINATOR, "little")


def key_bytes(key: str) -> bytes:
    """32 raw bytes of a base58 public key."""
    return bytes(Pubkey.from_string(key))


def empty_positions(n: int) -> np.ndarray:
    """n zeroed Position records with the discriminator set (fill the rest, then encode)."""
    rec = np.zeros(n, dtype=POSITION_DTYPE)
    rec["discriminator"] = POSITION_DISC_U64
    return rec


def encode_positions(records: np.ndarray) -> list[bytes]:
    """216-byte account data of each Position record (padding bytes are zero).

    Fields are copied one by one into zeroed records: numpy leaves the bytes between fields
    of a copied structured array (the padding) uninitialised.
    """
    clean = np.zeros(len(records), dtype=POSITION_DTYPE)
    for name in POSITION_DTYPE.names or ():
        clean[name] = records[name]
    raw = clean.tobytes()
    size = C.POSITION_ACCOUNT_SIZE
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def encode_custody(custody: Custody) -> bytes:
    """2,000-byte Custody account data (zero padding after the last field)."""
    buf = bytearray(LY.CUSTODY_ACCOUNT_SIZE)
    buf[:8] = C.CUSTODY_DISCRIMINATOR
    LY.write_fields(buf, LY.CUSTODY_FIELDS, asdict(custody))
    return bytes(buf)


def encode_ag_price_feed(feed: AgPriceFeed) -> bytes:
    """394-byte Doves AgPriceFeed account data."""
    buf = bytearray(LY.AG_PRICE_FEED_ACCOUNT_SIZE)
    buf[:8] = C.AG_PRICE_FEED_DISCRIMINATOR
    LY.write_fields(buf, LY.AG_PRICE_FEED_FIELDS, asdict(feed))
    return bytes(buf)


def encode_pool(pool: Pool, size: int = 512) -> bytes:
    """Pool account data: name string, custodies vec, then the fixed fields (spec §4)."""
    name = pool.name.encode()
    head = (C.POOL_DISCRIMINATOR + struct.pack("<I", len(name)) + name
            + struct.pack("<I", len(pool.custodies))
            + b"".join(key_bytes(k) for k in pool.custodies))
    buf = bytearray(max(size, len(head) + LY.POOL_TAIL_SIZE))
    buf[:len(head)] = head
    values = {k: v for k, v in asdict(pool).items() if k not in ("name", "custodies")}
    LY.write_fields(buf, LY.POOL_TAIL_FIELDS, values, base=len(head))
    return bytes(buf)


def encode_spl_mint(supply: int, decimals: int) -> bytes:
    """An initialized SPL Token mint account (82 bytes) without authorities."""
    data = bytearray(C.SPL_MINT_SIZE)
    data[C.SPL_MINT_SUPPLY_OFFSET:C.SPL_MINT_SUPPLY_OFFSET + 8] = supply.to_bytes(8, "little")
    data[C.SPL_MINT_DECIMALS_OFFSET] = decimals
    data[C.SPL_MINT_INITIALIZED_OFFSET] = 1
    return bytes(data)
