"""What the API answers, computed by the same library functions as the CLI.

`plan_heatmap` turns validated parameters into the `HeatmapRequest` that `liqmap heatmap`
would build (coarsening columns or bins when a window is too big to answer); `build_heatmap`
then runs unchanged. The encoders write one built heatmap as JSON, as an Arrow IPC stream, or
as the page's compact binary (float32, little endian).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap import constants as C
from liqmap.constants import NS_PER_MINUTE
from liqmap.heatmap.build import Heatmap, HeatmapRequest, resolve_window
from liqmap.heatmap.defaults import default_bin_usd, default_price_margin, nice_number
from liqmap.heatmap.levels import LiqLevels, SideLevels
from liqmap.heatmap.sources import StoreSource, through_minute
from liqmap.timeutil import iso_utc

#: Nice bin widths: these times a power of ten.
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)
#: Magic and version of the page's binary format.
F32_MAGIC = b"LQM1"


def nice_bin_usd(width_usd: float, *, up: bool = False) -> float:
    """The nice bin width (1, 2, 2.5 or 5 times a power of ten) nearest to `width_usd`, or the
    smallest at or above it with `up` (`defaults.nice_number`).

    >>> nice_bin_usd(0.09), nice_bin_usd(2.7), nice_bin_usd(0.11, up=True), nice_bin_usd(48)
    (0.1, 2.5, 0.2, 50.0)
    """
    return nice_number(width_usd, NICE_STEPS, up=up)


@dataclass(frozen=True)
class Limits:
    """The named limits of a heatmap answer (see `liqmap.constants`)."""

    max_columns: int = C.SERVE_MAX_COLUMNS
    max_bins: int = C.SERVE_MAX_BINS
    max_cells: int = C.SERVE_MAX_CELLS
    max_matrix_bytes: int = C.SERVE_MAX_MATRIX_BYTES


@dataclass(frozen=True)
class HeatmapPlan:
    """The request `build_heatmap` runs, and what was coarsened (empty: as asked)."""

    request: HeatmapRequest
    market: str
    notes: tuple[str, ...]

    @property
    def coarsened(self) -> bool:
        return bool(self.notes)


def plan_heatmap(source: StoreSource, values: dict[str, Any], limits: Limits) -> HeatmapPlan:
    """Window, column width and bin width for `values` (validated query parameters).

    Raises `InputError`/`DataGapError` like the CLI (bad window, no data).
    """
    start, end = resolve_window(values["start"], values["end"], source)
    n_minutes = int((end - start).value // NS_PER_MINUTE) + 1
    notes = []
    freq = values["freq"] or 1
    if math.ceil(n_minutes / freq) > limits.max_columns:
        freq = math.ceil(n_minutes / limits.max_columns)
        notes.append(f"freq raised to {freq} min: the window has {n_minutes:,} minutes and an "
                     f"answer at most {limits.max_columns:,} columns")
    n_cols = math.ceil(n_minutes / freq)
    lo, hi, last_price = _price_bounds(source, start, end, values["pmin"], values["pmax"])
    bin_usd = values["bin"] or default_bin_usd(source.market, last_price)
    max_bins = max(1, min(limits.max_bins, limits.max_cells // n_cols))
    if math.isfinite(hi - lo) and (hi - lo) / bin_usd > max_bins:
        wider = nice_bin_usd((hi - lo) / max_bins, up=True)
        if values["bin"] is not None:
            notes.append(f"bin raised to {wider:g} USD: {hi - lo:,.6g} USD of prices at "
                         f"{bin_usd:g} USD is more than {max_bins:,} bins")
        bin_usd = wider
    request = HeatmapRequest(t_start=start, t_end=end, bin_usd=bin_usd, pmin_usd=values["pmin"],
                             pmax_usd=values["pmax"], freq_min=freq, agg=values["agg"],
                             unit=values["unit"], side=values["side"],
                             max_matrix_bytes=limits.max_matrix_bytes)
    return HeatmapPlan(request, source.market, tuple(notes))


def _price_bounds(source: StoreSource, start: pd.Timestamp, end: pd.Timestamp,
                  pmin: float | None, pmax: float | None) -> tuple[float, float, float]:
    """(low, high) price range the builder will use at most, and the window's last price."""
    state = source.store.read_market_state(source.market, start, through_minute(end),
                                           ["ts", "oracle_price"])
    price = state.column("oracle_price").to_numpy(zero_copy_only=False).astype(np.float64)
    price = price[np.isfinite(price)]
    last = float(price[-1]) if price.size else math.nan
    margin = default_price_margin(source.market)  # the builder's default range
    lo = pmin if pmin is not None else (float(price.min()) * (1 - margin)
                                        if price.size else math.nan)
    hi = pmax if pmax is not None else (float(price.max()) * (1 + margin)
                                        if price.size else math.nan)
    return lo, hi, last


def cli_command(plan: HeatmapPlan) -> str:
    """The `liqmap heatmap` command that writes the same matrix."""
    r = plan.request
    args = [f"--market {plan.market}", f"--t-start {_iso(r.t_start)}", f"--t-end {_iso(r.t_end)}",
            f"--bin {r.bin_usd:g}", f"--freq {r.freq_min}", f"--agg {r.agg}", f"--unit {r.unit}",
            f"--side {r.side}"]
    args += [f"--{name} {value:g}" for name, value in (("pmin", r.pmin_usd), ("pmax", r.pmax_usd))
             if value is not None]
    return "liqmap heatmap " + " ".join(args) + " --npz-out matrix.npz"


def _iso(ts: str | pd.Timestamp | None) -> str:
    assert ts is not None  # windows are resolved before they are written
    return iso_utc(ts)


def _nullable(values: np.ndarray) -> list[float | None]:
    """Floats for JSON with NaN as null."""
    return [None if math.isnan(v) else v for v in values.tolist()]


def heatmap_header(heatmap: Heatmap, plan: HeatmapPlan) -> dict[str, Any]:
    """Everything about a heatmap except its cells (JSON-ready)."""
    m, stats = heatmap.matrix, heatmap.stats
    return {
        "ok": True, "market": m.market, "unit": m.unit, "side": heatmap.side, "agg": heatmap.agg,
        "bin_usd": m.bin_width_usd, "freq_min": m.freq_min,
        "t_start": _iso(heatmap.t_start), "t_end": _iso(heatmap.t_end),
        "n_bins": int(m.z.shape[0]), "n_cols": m.n_columns,
        "t_edges_ms": (m.t_edges_ns // 1_000_000).tolist(),
        "y_edges_usd": m.y_edges_usd.tolist(), "spot_usd": _nullable(m.spot_usd),
        "gap_mask": m.gap_mask.tolist(), "coarsened": plan.coarsened, "notes": list(plan.notes),
        "stats": {"n_snapshots": stats.n_snapshots, "amount_in_range": stats.amount_in_range,
                  "amount_below": stats.amount_below, "amount_above": stats.amount_above},
        "cli": cli_command(plan),
    }


def _layers(heatmap: Heatmap) -> dict[str, np.ndarray]:
    layers = {"z": heatmap.matrix.z}
    for name in ("Z_long", "Z_short"):
        if name in heatmap.matrix.extra:
            layers[name.lower()] = heatmap.matrix.extra[name]
    return layers


def heatmap_json(heatmap: Heatmap, plan: HeatmapPlan) -> bytes:
    """JSON: the header plus `z` (and `z_long`, `z_short` for split) as [n_bins][n_cols] lists,
    float64 written exactly (the same numbers as `--npz-out`'s `Z`)."""
    body = heatmap_header(heatmap, plan)
    for name, layer in _layers(heatmap).items():
        body[name] = layer.tolist()
    return msgspec.json.encode(body)


def heatmap_arrow(heatmap: Heatmap, plan: HeatmapPlan) -> bytes:
    """Arrow IPC stream: one row per time column (`t_start` timestamp, `spot_usd`, `gap`, and
    `z` etc. as fixed-size lists of n_bins float64); the header JSON in the schema metadata
    under `liqmap`."""
    m = heatmap.matrix
    n_bins = int(m.z.shape[0])
    columns: dict[str, pa.Array] = {
        "t_start": pa.array(m.t_edges_ns[:-1], pa.timestamp("ns", tz="UTC")),
        "spot_usd": pa.array(m.spot_usd, pa.float64(), from_pandas=True),
        "gap": pa.array(m.gap_mask, pa.bool_()),
    }
    for name, layer in _layers(heatmap).items():
        flat = pa.array(np.ascontiguousarray(layer.T).ravel(), pa.float64())
        columns[name] = pa.FixedSizeListArray.from_arrays(flat, n_bins)
    header = heatmap_header(heatmap, plan)
    batch = pa.record_batch(list(columns.values()), names=list(columns))
    schema = batch.schema.with_metadata({"liqmap": json.dumps(header)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(schema.metadata))
    return bytes(sink.getvalue())


#: The page's binary keeps this many bits of each float32 mantissa (relative error < 2e-5,
#: far below the 4-5 digits the page shows); the zeroed low bits make it compress better.
F32_MANTISSA_BITS = 16


def round_mantissa(values: np.ndarray, bits: int = F32_MANTISSA_BITS) -> np.ndarray:
    """float32 copy of `values` rounded to `bits` mantissa bits (nearest; zeros stay zero)."""
    out = np.ascontiguousarray(values, dtype="<f4").copy()
    drop = 23 - bits
    raw = out.view("<u4")
    raw += np.uint32(1 << (drop - 1))
    raw &= np.uint32((0xFFFFFFFF >> drop) << drop)
    return out


def heatmap_f32(heatmap: Heatmap, plan: HeatmapPlan) -> bytes:
    """The page's binary: `LQM1`, uint32 header length, the header JSON (space-padded to 4
    bytes, with `layers` naming the arrays), then each layer as float32 [n_cols][n_bins]
    (one time column after another), little endian, rounded by `round_mantissa`. For split
    only `z_long` and `z_short` are sent (`z` is their sum)."""
    layers = _layers(heatmap)
    if "z_long" in layers:
        del layers["z"]
    header = heatmap_header(heatmap, plan)
    header["layers"] = list(layers)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    parts = [F32_MAGIC, struct.pack("<I", len(text)), text]
    parts += [round_mantissa(layer.T).tobytes() for layer in layers.values()]
    return b"".join(parts)


def _side_json(side: SideLevels) -> dict[str, Any]:
    return {"tokens": side.tokens.tolist(), "usd": side.usd.tolist(),
            "cum_tokens": _nullable(side.cum_tokens), "cum_usd": _nullable(side.cum_usd),
            "below_tokens": side.below_tokens, "above_tokens": side.above_tokens, "n": side.n}


def levels_json(levels: LiqLevels) -> bytes:
    """The liquidation levels of one snapshot (as `liqmap levels` draws them)."""
    return msgspec.json.encode({
        "ok": True, "market": levels.market, "ts": _iso(levels.ts),
        "price_usd": levels.price_usd, "y_edges_usd": levels.y_edges_usd.tolist(),
        "long": _side_json(levels.long), "short": _side_json(levels.short),
        "n_no_liq": levels.n_no_liq,
    })
