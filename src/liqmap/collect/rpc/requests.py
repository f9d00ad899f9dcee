"""Pure builders of JSON-RPC request bodies and getProgramAccounts filters."""

from __future__ import annotations

from typing import Any

from liqmap import constants as C

#: standard RPC nodes accept at most 100 keys per getMultipleAccounts
MAX_KEYS_PER_CALL = 100


def memcmp(offset: int, bytes_b58: str) -> dict[str, Any]:
    return {"memcmp": {"offset": offset, "bytes": bytes_b58}}


def data_size(size: int) -> dict[str, Any]:
    return {"dataSize": size}


def position_filters(custody: str) -> list[dict[str, Any]]:
    """Position accounts of one traded custody: discriminator @0 and custody @72 (spec §10).

    No dataSize filter: if the account ever grows, the decoder reports every account as a
    size error instead of the query silently returning nothing.
    """
    return [memcmp(0, C.POSITION_DISCRIMINATOR_B58), memcmp(C.POSITION_CUSTODY_OFFSET, custody)]


def get_program_accounts_params(program: str, filters: list[dict[str, Any]],
                                commitment: str = "confirmed") -> list[Any]:
    return [program, {"encoding": "base64", "commitment": commitment, "withContext": True,
                      "filters": filters}]


def get_multiple_accounts_params(keys: list[str], commitment: str = "confirmed") -> list[Any]:
    if len(keys) > MAX_KEYS_PER_CALL:
        raise ValueError(f"getMultipleAccounts takes at most {MAX_KEYS_PER_CALL} keys")
    return [keys, {"encoding": "base64", "commitment": commitment}]


def body(method: str, params: list[Any], request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
