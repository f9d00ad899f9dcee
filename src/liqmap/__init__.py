"""liqmap: Jupiter Perps liquidation heatmaps from on-chain positions.

    import liqmap
    store = liqmap.open_store("./data")
    m = store.heatmap("SOL")          # a LiqMatrix: m.to_frame(), m.plot(), m.save_png(...)

`import liqmap` is light: the names below load their modules (pandas, pyarrow, numba,
matplotlib) on first use. See docs/notebook.md.
"""

import os as _os
from importlib import import_module as _import_module
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from liqmap.errors import (
    ConfigError,
    DataGapError,
    DecodeError,
    InputError,
    LiqmapError,
    RpcError,
    StorageError,
)

if _TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from liqmap import backtest
    from liqmap.api import LegacyLog, LiqStore, StoreStatus, open_legacy, open_store, read_npz
    from liqmap.backtest.api import sweep
    from liqmap.heatmap.levels import LiqLevels
    from liqmap.matrix import LiqMatrix

__version__ = "0.1.0"

# numba caches compiled kernels next to their module; a read-only install would warn and
# recompile at every start, so default the cache to the user's cache directory.
_os.environ.setdefault("NUMBA_CACHE_DIR",
                       str(_Path(_os.environ.get("XDG_CACHE_HOME", _Path.home() / ".cache"))
                           / "liqmap" / "numba"))

#: Public name -> "module:attribute" (or "module" for a module itself), imported on first
#: access (PEP 562).
_LAZY: dict[str, str] = {
    "open_store": "liqmap.api:open_store",
    "open_legacy": "liqmap.api:open_legacy",
    "read_npz": "liqmap.api:read_npz",
    "LiqStore": "liqmap.api:LiqStore",
    "LegacyLog": "liqmap.api:LegacyLog",
    "StoreStatus": "liqmap.api:StoreStatus",
    "LiqMatrix": "liqmap.matrix:LiqMatrix",
    "LiqLevels": "liqmap.heatmap.levels:LiqLevels",
    # the backtest package is callable: liqmap.backtest(data, hedge_log=None, **rule_params)
    "backtest": "liqmap.backtest",
    "sweep": "liqmap.backtest.api:sweep",
}

__all__ = [  # the errors and every name of _LAZY, sorted (a test keeps them in step)
    "ConfigError",
    "DataGapError",
    "DecodeError",
    "InputError",
    "LegacyLog",
    "LiqLevels",
    "LiqMatrix",
    "LiqStore",
    "LiqmapError",
    "RpcError",
    "StorageError",
    "StoreStatus",
    "__version__",
    "backtest",
    "open_legacy",
    "open_store",
    "read_npz",
    "sweep",
]


def __getattr__(name: str) -> _Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'liqmap' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = _import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
