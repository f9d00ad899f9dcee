"""The OpenAPI 3.1 description of API v1, written from the same parameter table that
validates requests (`liqmap.serve.params`)."""

from __future__ import annotations

from typing import Any

from liqmap import __version__
from liqmap.serve.params import (
    HEATMAP_PARAMS,
    LEVELS_PARAMS,
    LIQUIDATIONS_PARAMS,
    SIGNAL_PARAMS,
    STREAM_PARAMS,
    Param,
)

ERROR = {"description": "Bad parameter (400), no data (404), busy or too slow (503): "
                        '`{"ok": false, "error": "...", "status": N}`'}

ROUTES: list[tuple[str, str, tuple[Param, ...], dict[str, Any]]] = [
    ("/api/v1/heatmap", "Liquidation heatmap (time × price); the matrix `liqmap heatmap "
     "--npz-out` writes for the same arguments (`cli` in the answer names that command). "
     "Windows past the limits are answered coarser and flagged (`coarsened`, `notes`).",
     HEATMAP_PARAMS,
     {"application/json": "header, `z` [n_bins][n_cols] (and `z_long`, `z_short` for split)",
      "application/vnd.apache.arrow.stream": "one row per time column, `z` as a fixed-size "
                                             "list of n_bins; the header in schema metadata",
      "application/x-liqmap-f32": "LQM1, uint32 header length, header JSON, float32 "
                                  "[n_cols][n_bins] per layer (the page's format)"}),
    ("/api/v1/levels", "Liquidation levels of one snapshot: longs below, shorts above, with "
     "cumulative amounts from the price outward (as `liqmap levels`).", LEVELS_PARAMS,
     {"application/json": "tokens, usd, cum_tokens, cum_usd per side and price bin"}),
    ("/api/v1/status", "Newest and oldest snapshot per market, its price and age, stale flag, "
     "the server's limits.", (), {"application/json": "status"}),
    ("/api/v1/stream", "Server-sent events: `snapshot` with market, ts and price each time a "
     "new snapshot is stored; `hello` with the status on connect.", STREAM_PARAMS,
     {"text/event-stream": "events"}),
    ("/api/v1/signal", "The live hedge signal (the rule `liqmap signal` runs, default "
     "parameters): state at the newest minute (window sums, threshold, direction, suggested "
     "ratio) and its toggles.", SIGNAL_PARAMS, {"application/json": "signal"}),
    ("/api/v1/liquidations", "Realized liquidations in a window (default: as the heatmap's): "
     "time, price (the on-chain event's when confirmed), size in USD, side, confirmed, "
     "confirm_status (why not, when not), position and signature; the markers `liqmap "
     "heatmap` draws.", LIQUIDATIONS_PARAMS,
     {"application/json": "liquidations"}),
]


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document served at /openapi.json."""
    paths = {}
    for path, summary, params, media in ROUTES:
        paths[path] = {"get": {
            "summary": summary.split(";")[0].split(":")[0],
            "description": summary,
            "parameters": [{"name": p.name, "in": "query", "required": False,
                            "description": p.description, "schema": p.schema()}
                           for p in params],
            "responses": {"200": {"description": "OK", "content": {
                m: {"schema": {"description": d}} for m, d in media.items()}},
                "4XX": ERROR, "503": ERROR},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "liqmap API", "version": __version__,
                 "description": "Read-only API of `liqmap serve`. Times ISO 8601 UTC, prices "
                                "USD, amounts in tokens of the asset or USD (`unit`)."},
        "paths": paths,
    }
