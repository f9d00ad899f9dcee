# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # liqmap in a notebook
#
# From a store to DataFrames, a heatmap matrix, figures and files, then an old matrix.
# Make the demo store first (offline, about a minute): `liqmap demo --out-dir demo-out`.
# This file is the notebook's jupytext twin (`jupytext --to ipynb quickstart.py` makes the
# `.ipynb`); the test suite runs it, so it stays true. Walkthrough: docs/notebook.md.

# %%
import os
from pathlib import Path

import liqmap

STORE = os.environ.get("LIQMAP_EXAMPLE_STORE", "demo-out/store")
OUT = Path(os.environ.get("LIQMAP_EXAMPLE_OUT", "."))
REAL_NPZ = Path(os.environ.get("LIQMAP_EXAMPLE_NPZ", "liq_matrix_72h_1m.npz"))

store = liqmap.open_store(STORE)
print(store.markets())

# %% [markdown]
# ## What the store holds

# %%
status = store.status("SOL")
print(status)

# %%
state = store.market_state("SOL", columns=["oracle_price", "n_long", "n_short",
                                           "jlp_net_delta_tokens"])
print(state.tail(3))

# %% [markdown]
# Every open position of one snapshot, one row each, with its liquidation price:

# %%
last = state.index[-1]
book = store.positions("SOL", last, last)
print(book.groupby("side", observed=True)[["size_usd", "size_tokens"]].sum())

# %% [markdown]
# Positions seen gone, liquidated or closed (red circles on the pictures below):

# %%
gone = store.liquidations("SOL", kind="liquidated")
print(len(gone), "liquidated,", f"{gone['size_usd'].sum():,.0f} USD")

# %% [markdown]
# ## The heatmap as a matrix
#
# `heatmap` takes the same choices as `liqmap heatmap`; without a window it covers the last
# 24 hours of data. The result is a `LiqMatrix`.

# %%
m = store.heatmap("SOL", bin=0.5, freq=5)
print(m)

# %%
frame = m.to_frame()  # rows: 5-minute columns (UTC), columns: 0.5 USD price bins
print(frame.attrs["unit"], frame.shape)
print(frame.iloc[-1].nlargest(3))  # the three biggest bins of the last column

# %% [markdown]
# SOL that a fall of 5 % from the last price would liquidate, per column:

# %%
spot = m.spot()
lower = frame.columns.to_numpy()[None, :] >= (spot * 0.95).to_numpy()[:, None]
below_price = frame.columns.to_numpy()[None, :] < spot.to_numpy()[:, None]
at_risk = frame.where(lower & below_price).sum(axis=1, min_count=1)
print(at_risk.tail(3).round(1))

# %% [markdown]
# ## Pictures and files
#
# `plot()` returns a matplotlib Figure (shown inline), `plot(interactive=True)` a plotly
# Figure; the `save_*` methods write what `liqmap heatmap --out/--npz-out` writes.

# %%
fig = m.plot(log_color=True)
fig

# %%
page = m.plot(interactive=True)
page

# %%
for path in (m.save_png(OUT / "heatmap_SOL.png", log_color=True),
             m.save_html(OUT / "heatmap_SOL.html"), m.save_npz(OUT / "heatmap_SOL.npz")):
    print("wrote", path)

# %% [markdown]
# Longs and shorts apart, in USD, 15-minute columns:

# %%
split = store.heatmap("SOL", side="split", unit="usd", freq=15)
usd = split.to_frame("long").sum(axis=1).to_frame("longs_usd")
usd["shorts_usd"] = split.to_frame("short").sum(axis=1)
print(usd.tail(3).round(0))

# %% [markdown]
# ## Liquidation levels at one moment

# %%
levels = store.levels("SOL", at=last, bin=1.0)
table = levels.to_frame()
print(levels)
print(table[["long_tokens", "short_tokens"]].sum().round(1))

# %%
levels.plot()

# %% [markdown]
# ## xarray (optional)

# %%
try:
    import xarray  # noqa: F401
except ImportError:
    print("xarray not installed: to_xarray() skipped")
else:
    da = m.to_xarray()
    print(da.dims, da.sizes["time"], da.sizes["liq_price_usd"])

# %% [markdown]
# ## An old matrix
#
# `read_npz` reads matrices of the old tool (and of `save_npz`), e.g. the real 72-hour SOL
# matrix `liq_matrix_72h_1m.npz`: SOL per 0.1 USD bin, one column per minute.

# %%
if REAL_NPZ.exists():
    real = liqmap.read_npz(REAL_NPZ)
    print(real)
    real_frame = real.to_frame()
    print(real_frame.shape, f"{real_frame.index[0]:%Y-%m-%d %H:%M} UTC")
    per_minute = real_frame.sum(axis=1)
    print(f"SOL in range per minute: median {per_minute.median():,.0f}")
    real.save_png(OUT / "real_72h.png", log_color=True)
else:
    print(f"{REAL_NPZ} not found: the old-matrix cell skipped")
