"""The RPC calls liqmap makes, each one request body + the transport + a pure parser."""

from __future__ import annotations

from liqmap import constants as C
from liqmap.collect.rpc import requests as Q
from liqmap.collect.rpc.responses import (
    MultipleAccounts,
    ProgramAccounts,
    parse_multiple_accounts,
    parse_program_accounts,
)
from liqmap.collect.rpc.transport import CallStats, Transport

__all__ = ["MultipleAccounts", "ProgramAccounts", "RpcClient"]


class RpcClient:
    """getMultipleAccounts / getProgramAccounts over a `Transport`, with per-call stats."""

    def __init__(self, transport: Transport, *, gpa_timeout_s: float = C.DEFAULT_GPA_TIMEOUT_S,
                 commitment: str = "confirmed") -> None:
        self.transport = transport
        self.gpa_timeout_s = gpa_timeout_s
        self.commitment = commitment

    def get_multiple_accounts(self, keys: list[str], *, deadline: float | None = None,
                              min_context_slot: int | None = None
                              ) -> tuple[MultipleAccounts, CallStats]:
        """Accounts for `keys` (any number; sent 100 per request), one context slot.

        `min_context_slot`: the node must have reached this slot (else it errs and the
        transport tries again or elsewhere).
        """
        unique = list(dict.fromkeys(keys))
        merged: dict[str, bytes | None] = {}
        owners: dict[str, str] = {}
        total = CallStats("getMultipleAccounts")
        slot = 0
        for i in range(0, len(unique), Q.MAX_KEYS_PER_CALL):
            chunk = unique[i:i + Q.MAX_KEYS_PER_CALL]
            result, stats = self.transport.call(
                "getMultipleAccounts",
                Q.get_multiple_accounts_params(chunk, self.commitment, min_context_slot),
                lambda raw, c=chunk: parse_multiple_accounts(raw, c), deadline=deadline)  # type: ignore[misc]
            merged.update(result.data)
            owners.update(result.owners)
            slot = max(slot, result.slot)
            _add(total, stats)
        return MultipleAccounts(slot=slot, data=merged, owners=owners), total

    def get_program_accounts(self, program: str, filters: list[dict[str, object]], *,
                             deadline: float | None = None, min_context_slot: int | None = None
                             ) -> tuple[ProgramAccounts, CallStats]:
        """Accounts of `program` matching `filters`, with the answer's context slot."""
        return self.transport.call(
            "getProgramAccounts",
            Q.get_program_accounts_params(program, filters, self.commitment, min_context_slot),
            parse_program_accounts, timeout_s=self.gpa_timeout_s, deadline=deadline)


def _add(total: CallStats, stats: CallStats) -> None:
    total.attempts += stats.attempts
    total.response_bytes += stats.response_bytes
    total.latency_s += stats.latency_s
    total.endpoint = stats.endpoint
