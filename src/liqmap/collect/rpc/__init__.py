"""Solana JSON-RPC in three layers: pure request bodies, one transport, pure response parsers."""

from liqmap.collect.rpc.client import ProgramAccounts, RpcClient
from liqmap.collect.rpc.transport import CallStats, EndpointReport, Stopped, Transport

__all__ = ["CallStats", "EndpointReport", "ProgramAccounts", "RpcClient", "Stopped", "Transport"]
