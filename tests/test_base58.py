"""The batch base58 encoder against solders, key by key."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from liqmap.jupiter.base58 import encode_keys


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=30))
def test_matches_solders(keys: list[bytes]) -> None:
    array = np.frombuffer(b"".join(keys), dtype="V32")
    assert encode_keys(array).to_pylist() == [str(Pubkey.from_bytes(k)) for k in keys]


def test_edge_keys() -> None:
    keys = [bytes(32), b"\xff" * 32, bytes(31) + b"\x01", bytes(5) + b"\x07" * 27,
            bytes(Pubkey.from_string("PERPHjGBqRHArX4DySjwM6UJHiR3sWAatqfdBS2qQJu"))]
    out = encode_keys(np.frombuffer(b"".join(keys), dtype="V32")).to_pylist()
    assert out == [str(Pubkey.from_bytes(k)) for k in keys]
    assert out[0] == "1" * 32 and out[-1] == "PERPHjGBqRHArX4DySjwM6UJHiR3sWAatqfdBS2qQJu"
    assert encode_keys(np.zeros(0, dtype="V32")).to_pylist() == []


def test_keys_with_zero_leading_and_inner_limbs() -> None:
    """The encoder skips leading zero 32-bit limbs; every count of leading zero bytes, and zero
    limbs after a non-zero one, must still give solders' text."""
    rng = np.random.default_rng(5)
    keys = []
    for lead in range(33):
        body = bytearray(rng.integers(1, 256, size=32, dtype=np.uint8).tobytes())
        body[:lead] = bytes(lead)
        keys.append(bytes(body))
        inner = bytearray(body)
        inner[min(lead + 4, 28):min(lead + 12, 32)] = bytes(len(inner[min(lead + 4, 28):
                                                                      min(lead + 12, 32)]))
        keys.append(bytes(inner))
    out = encode_keys(np.frombuffer(b"".join(keys), dtype="V32")).to_pylist()
    assert out == [str(Pubkey.from_bytes(k)) for k in keys]
