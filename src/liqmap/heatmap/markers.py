"""Realized liquidations as markers on the heatmap (PNG, HTML, `liqmap serve`'s API).

One marker per position liquidated in the window: at the time it was seen gone and at the
price it was liquidated at (the event's price when confirmed on chain, else its liquidation
price re-priced to that time), its area proportional to its size in USD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from liqmap.timeutil import iso_utc

if TYPE_CHECKING:  # the renderers import this module; only a store reads markers
    from liqmap.store import Store

MARKER_COLUMNS = ("ts", "price_usd", "size_usd", "side", "confirmed", "confirm_status", "pubkey",
                  "signature")
#: marker area in points² for the smallest and the largest liquidation of a picture
MIN_AREA_PT2, MAX_AREA_PT2 = 12.0, 400.0
#: marker colour: red stands out on the viridis cells and the white price line
MARKER_FACE = "#ff3b30"


def liquidation_markers(store: Store, market: str, start: Any = None, end: Any = None
                        ) -> pd.DataFrame:
    """Liquidated positions of `market` with `ts` in [start, end] as marker rows:
    `ts` (UTC), `price_usd`, `size_usd`, `side`, `confirmed`, `pubkey`, `signature`."""
    from liqmap.collect.liquidations import LIQUIDATED

    rows = store.read_liquidations(market, start, end, kind=LIQUIDATED)
    return markers_from_rows(rows)


def markers_from_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Marker rows from `liquidations` rows (the liquidated ones)."""
    from liqmap.collect.liquidations import LIQUIDATED

    if not len(rows):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in MARKER_COLUMNS})
    rows = rows[rows["kind"] == LIQUIDATED]
    confirmed = rows["confirmed"].astype(bool) & rows["event_price"].notna()
    price = np.where(confirmed, rows["event_price"], rows["liq_price_now"].fillna(
        rows["predicted_liq_price"]))
    return pd.DataFrame({"ts": rows["ts"], "price_usd": price.astype(float),
                         "size_usd": rows["size_usd"].astype(float),
                         "side": rows["side"].astype(str),
                         "confirmed": rows["confirmed"].astype(bool),
                         "confirm_status": rows["confirm_status"],
                         "pubkey": rows["pubkey"], "signature": rows["signature"]}
                        ).reset_index(drop=True)


def marker_areas(size_usd: np.ndarray | pd.Series) -> np.ndarray:
    """Marker areas (points²) proportional to USD, scaled to the largest of the picture."""
    size = np.asarray(size_usd, dtype=float)
    if not size.size:
        return size
    top = float(np.nanmax(size)) or 1.0
    return np.clip(size / top * MAX_AREA_PT2, MIN_AREA_PT2, MAX_AREA_PT2)


def markers_json(markers: pd.DataFrame) -> list[dict[str, Any]]:
    """Marker rows as JSON-ready dicts (ISO times, None for a missing status or signature)."""
    out = []
    for rec in markers.to_dict("records"):
        sig, status = rec["signature"], rec["confirm_status"]
        out.append({"ts": iso_utc(rec["ts"]),
                    "price_usd": float(rec["price_usd"]), "size_usd": float(rec["size_usd"]),
                    "side": rec["side"], "confirmed": bool(rec["confirmed"]),
                    "confirm_status": status if isinstance(status, str) else None,
                    "pubkey": rec["pubkey"], "signature": sig if isinstance(sig, str) else None})
    return out
