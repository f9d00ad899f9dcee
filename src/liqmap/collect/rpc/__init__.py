"""Solana JSON-RPC in three layers: pure request bodies, one transport, pure response parsers."""

from liqmap.collect.rpc.client import ProgramAccounts, RpcClient
from liqmap.collect.rpc.transport import CallStats, Stopped, Transport

__all__ = ["CallStats", "ProgramAccounts", "RpcClient", "Stopped", "Transport"]
