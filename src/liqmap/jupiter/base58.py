"""Base58 text of many 32-byte Solana keys at once, straight into an Arrow string column.

A snapshot of a busy market holds ~100,000 owner keys. solders encodes one key per Python call
(~0.4 µs each plus the Python `str` it creates); this compiled kernel encodes them all in one
pass, on every core, into one byte buffer, and no Python string is ever made. Its output is
checked against solders key by key in the tests.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from liqmap import constants as C

ALPHABET = np.frombuffer(C.BASE58_ALPHABET.encode("ascii"), dtype=np.uint8)
MAX_CHARS = 45  # 58**45 > 256**32: 45 digits always hold a 32-byte number
_GROUP = 58**5  # five base58 digits per division pass (< 2**32, so 64-bit arithmetic holds)


@numba.njit(cache=True, parallel=True)
def _encode(keys: np.ndarray, alphabet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = keys.shape[0]
    chars = np.empty((n, MAX_CHARS), dtype=np.uint8)
    lengths = np.empty(n, dtype=np.int32)
    limbs = np.empty((n, 8), dtype=np.uint64)  # scratch, allocated once (not per key)
    digits = np.empty((n, MAX_CHARS), dtype=np.uint8)
    group_size = np.uint64(_GROUP)
    base = np.uint64(58)
    for i in numba.prange(n):
        for j in range(8):
            limbs[i, j] = ((np.uint64(keys[i, 4 * j]) << 24)
                           | (np.uint64(keys[i, 4 * j + 1]) << 16)
                           | (np.uint64(keys[i, 4 * j + 2]) << 8) | np.uint64(keys[i, 4 * j + 3]))
        first = 0  # limbs before it are zero: the division skips them (about half the work)
        for group in range(MAX_CHARS // 5 - 1, -1, -1):
            while first < 8 and limbs[i, first] == 0:
                first += 1
            rest = np.uint64(0)
            for j in range(first, 8):
                cur = (rest << np.uint64(32)) | limbs[i, j]
                limbs[i, j] = cur // group_size
                rest = cur % group_size
            for k in range(4, -1, -1):
                digits[i, group * 5 + k] = rest % base
                rest //= base
        zero_digits = 0
        while zero_digits < MAX_CHARS and digits[i, zero_digits] == 0:
            zero_digits += 1
        zero_bytes = 0
        while zero_bytes < 32 and keys[i, zero_bytes] == 0:
            zero_bytes += 1
        start = zero_digits - zero_bytes  # each leading zero byte is one leading "1"
        lengths[i] = MAX_CHARS - start
        for p in range(MAX_CHARS - start):
            chars[i, p] = alphabet[digits[i, start + p]]
    return chars, lengths


@numba.njit(cache=True)
def _pack(chars: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = lengths.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int32)
    for i in range(n):
        offsets[i + 1] = offsets[i] + lengths[i]
    data = np.empty(offsets[n], dtype=np.uint8)
    for i in range(n):
        data[offsets[i]:offsets[i + 1]] = chars[i, :lengths[i]]
    return offsets, data


def encode_keys(keys: np.ndarray) -> pa.StringArray:
    """Base58 strings of n 32-byte keys (any array of n x 32 bytes, e.g. dtype V32).

    >>> encode_keys(np.zeros((2, 32), dtype=np.uint8)).to_pylist()
    ['11111111111111111111111111111111', '11111111111111111111111111111111']
    """
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(-1, 32)
    if raw.shape[0] == 0:
        return pa.array([], pa.string())
    offsets, data = _pack(*_encode(raw, ALPHABET))
    return pa.StringArray.from_buffers(raw.shape[0], pa.py_buffer(offsets), pa.py_buffer(data))
