"""The collector: RPC (`rpc/`), one collection cycle (`cycle`), and the loop (`loop`)."""
