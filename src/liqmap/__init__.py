"""liqmap: Jupiter Perps liquidation heatmaps from on-chain positions."""

import os as _os
from pathlib import Path as _Path

__version__ = "0.1.0"

# numba caches compiled kernels next to their module; a read-only install would warn and
# recompile at every start, so default the cache to the user's cache directory.
_os.environ.setdefault("NUMBA_CACHE_DIR",
                       str(_Path(_os.environ.get("XDG_CACHE_HOME", _Path.home() / ".cache"))
                           / "liqmap" / "numba"))
