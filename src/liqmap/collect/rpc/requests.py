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


def _config(commitment: str, min_context_slot: int | None) -> dict[str, Any]:
    """Common options; `minContextSlot` makes a node that is behind answer with an error
    (-32016) instead of old data."""
    config: dict[str, Any] = {"encoding": "base64", "commitment": commitment}
    if min_context_slot:
        config["minContextSlot"] = int(min_context_slot)
    return config


def get_program_accounts_params(program: str, filters: list[dict[str, Any]],
                                commitment: str = "confirmed",
                                min_context_slot: int | None = None) -> list[Any]:
    return [program, {**_config(commitment, min_context_slot), "withContext": True,
                      "filters": filters}]


def get_multiple_accounts_params(keys: list[str], commitment: str = "confirmed",
                                 min_context_slot: int | None = None) -> list[Any]:
    if len(keys) > MAX_KEYS_PER_CALL:
        raise ValueError(f"getMultipleAccounts takes at most {MAX_KEYS_PER_CALL} keys")
    return [keys, _config(commitment, min_context_slot)]


def body(method: str, params: list[Any], request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
