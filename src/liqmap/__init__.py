"""liqmap: Jupiter Perps liquidation heatmaps from on-chain positions."""

import os as _os
from pathlib import Path as _Path

__version__ = "0.1.0"

# numba caches compiled kernels next to their module; a read-only install would warn and
# recompile at every start, so default the cache to the user's cache directory.
_os.environ.setdefault("NUMBA_CACHE_DIR",
                       str(_Path(_os.environ.get("XDG_CACHE_HOME", _Path.home() / ".cache"))
                           / "liqmap" / "numba"))


def __getattr__(name: str) -> object:
    # Loaded on first use so `import liqmap` stays light. `liqmap.backtest` is the backtest
    # package, callable as `liqmap.backtest(data, hedge_log=None, **rule_params)`.
    if name == "backtest":
        import liqmap.backtest as _backtest

        return _backtest
    if name == "sweep":
        from liqmap.backtest.api import sweep as _sweep

        return _sweep
    raise AttributeError(f"module 'liqmap' has no attribute {name!r}")
