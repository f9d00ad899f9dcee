// liqmap live page: heatmap on a canvas, levels profile, crosshair, presets, zoom/pan, live.
// Plain JavaScript, no build step, nothing from a CDN. Data: /api/v1/heatmap in the compact
// binary (float32 per cell, side=split), /api/v1/status, /api/v1/stream (server-sent events).
"use strict";
(function () {
  const MIN = 60000;
  const PRESETS = { "6h": 360, "24h": 1440, "3d": 4320, "7d": 10080, "30d": 43200 };
  const FULL_RELOAD_MS = 15 * MIN;   // live: the whole view is fetched again this often (re-centred)
  const MAX_APPEND_COLS = 30;        // live: a longer gap since the last column reloads the view
  const EDGE_FRACTION = 0.05;        // live: a price this close to the range's edge reloads the view
  const MARGIN = { l: 64, r: 12, t: 10, b: 26 };
  const EMPTY = "#0b0d12";          // empty cell: the page background, never a colour of the scale
  // the colour range, as the PNG's (render_png.VMAX_PERCENTILE, LOG_VMIN_PERCENTILE): the top
  // at this quantile of the non-empty cells (clusters above it saturate), log from this one
  const VMAX_Q = 0.98, LOG_VMIN_Q = 0.02;
  const GAP = "rgba(140,150,170,0.22)";
  const $ = (id) => document.getElementById(id);
  const heat = $("heat"), lv = $("levels"), tip = $("tip");
  const S = {
    market: "SOL", preset: "24h", side: "split", scale: "linear", live: true,
    view: null,        // {t0, t1, p0, p1}: ms and USD shown
    zoomedPrice: false, data: null, status: null, lastEvent: null,
    hover: null, drag: null, loading: 0, seq: 0, lastDrawMs: 0, lastLoad: null,
    fullAt: 0,         // when the shown view was last fetched whole (Date.now())
    lastAppend: null,  // {bytes, cols, query} of the last live update that fetched only new columns
  };

  // ---------------------------------------------------------------- colour scales
  function ramp(stops) {        // 256 RGB entries between colour stops
    const lut = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const x = i / 255 * (stops.length - 1), k = Math.min(Math.floor(x), stops.length - 2), f = x - k;
      for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f);
    }
    return lut;
  }
  // every scale starts at a visible colour: the smallest amount never looks like an empty cell
  const LUT = {
    both: ramp([[48, 18, 110], [40, 80, 200], [20, 170, 190], [120, 220, 90], [250, 240, 60], [255, 255, 230]]),
    long: ramp([[20, 40, 110], [30, 100, 210], [60, 170, 255], [170, 225, 255], [245, 252, 255]]),
    short: ramp([[100, 30, 20], [190, 70, 20], [255, 140, 40], [255, 205, 120], [255, 250, 230]]),
  };

  // ---------------------------------------------------------------- data
  function decode(buf) {
    const dv = new DataView(buf);
    const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
    if (magic !== "LQM1") throw new Error("unexpected answer format");
    const n = dv.getUint32(4, true);
    const h = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
    const cells = h.n_cols * h.n_bins;
    h.layer = {};
    h.layers.forEach((name, i) => { h.layer[name] = new Float32Array(buf, 8 + n + i * cells * 4, cells); });
    h.bytes = buf.byteLength;
    return h;
  }

  function niceStep(x, up) {
    const e = Math.floor(Math.log10(x)), c = [];
    for (const k of [e - 1, e, e + 1]) for (const s of [1, 2, 2.5, 5]) c.push(+(s * 10 ** k).toPrecision(12));
    if (up) return Math.min(...c.filter((v) => v >= x * (1 - 1e-9)));
    return c.reduce((a, b) => (Math.abs(Math.log(b / x)) < Math.abs(Math.log(a / x)) ? b : a));
  }

  // column widths from a fixed ladder, so clients with different window sizes share answers
  function niceFreq(m) {
    for (const f of [1, 2, 3, 4, 5, 10, 15, 20, 30, 60, 120, 240, 360, 720, 1440]) if (f >= m) return f;
    return Math.ceil(m / 1440) * 1440;
  }

  function plotBox() {
    const w = heat.clientWidth, h = heat.clientHeight;
    return { x: MARGIN.l, y: MARGIN.t, w: Math.max(w - MARGIN.l - MARGIN.r, 10), h: Math.max(h - MARGIN.t - MARGIN.b, 10) };
  }

  function query() {
    const st = S.status && S.status.markets.find((m) => m.market === S.market);
    const box = plotBox(), q = new URLSearchParams({ market: S.market, side: "split" });
    if (S.view) {
      q.set("start", iso(S.view.t0)); q.set("end", iso(S.view.t1));
      const minutes = (S.view.t1 - S.view.t0) / MIN + 1;
      const freq = +$("freq").value || niceFreq(minutes / box.w);
      q.set("freq", String(freq));
    }
    let bin = +$("bin").value;
    if (S.view && S.zoomedPrice) {
      q.set("pmin", S.view.p0.toPrecision(10)); q.set("pmax", S.view.p1.toPrecision(10));
      const def = S.status ? S.status.default_bin_usd[S.market] : 0;
      if (!bin) bin = Math.max(niceStep((S.view.p1 - S.view.p0) / box.h, true), def / 10);
    } else if (!bin && st && st.price_usd) {
      const def = S.status.default_bin_usd[S.market];
      bin = Math.max(def, niceStep(st.price_usd * 0.6 / box.h, true));
    }
    if (bin) q.set("bin", String(bin));
    return q;
  }

  // the heatmap answer for query `q` in the page's binary; `wire`: its bytes on the wire
  async function fetchMatrix(q) {
    const r = await fetch("/api/v1/heatmap?" + q, { headers: { Accept: "application/x-liqmap-f32" } });
    if (!r.ok) { const e = await r.json().catch(() => ({ error: r.statusText })); throw new Error(e.error); }
    const d = decode(await r.arrayBuffer());
    d.wire = +(r.headers.get("content-length") || d.bytes);
    return d;
  }

  async function load() {
    const seq = ++S.seq, q = query(), t0 = performance.now();
    S.loading++; $("busy").hidden = false;
    try {
      const d = await fetchMatrix(q);
      if (seq !== S.seq) return;
      S.data = d; prepare(d);
      if (!S.view || !S.zoomedPrice) {
        const te = d.t_edges_ms;
        S.view = { t0: S.view ? S.view.t0 : te[0], t1: S.view ? S.view.t1 : te[te.length - 1] - MIN,
          p0: d.y_edges_usd[0], p1: d.y_edges_usd[d.n_bins] };
      }
      S.lastLoad = { ms: performance.now() - t0, bytes: d.wire, query: q.toString() };
      S.fullAt = Date.now(); S.lastAppend = null;
      $("info").textContent = info(d);
      $("apilink").href = "/api/v1/heatmap?" + q.toString().replace("side=split", "side=split&format=json");
      if (S.hover) hoverAt(S.hover.x, S.hover.y); else draw();
      if (!S.firstPaintMs) S.firstPaintMs = performance.now();  // since navigation started
      loadLiquidations(q, seq);
      document.body.dataset.loaded = String(seq);
    } catch (err) {
      if (seq === S.seq) { $("info").textContent = "Error: " + err.message; S.data = null; draw(); }
    } finally {
      S.loading--; $("busy").hidden = S.loading === 0;
    }
  }

  // Live: a new minute fetches only the columns from the last (possibly partial) one on, on the
  // same time grid and price bins, and appends them; the server bins a minute or two instead of
  // the whole window, and the wire carries kilobytes instead of the view. The whole view is
  // fetched again every FULL_RELOAD_MS, after a long gap, or when the price nears the range's
  // edge (the range is re-centred).
  async function extend(e) {
    const d = S.data, seq = S.seq, started = performance.now();
    const t1 = Math.floor(Date.parse(e.ts) / MIN) * MIN;
    if (!d || d.market !== S.market || S.loading || Date.now() - S.fullAt > FULL_RELOAD_MS) return load();
    const lastStart = d.t_edges_ms[d.n_cols - 1], stepMs = d.freq_min * MIN;
    if (t1 < lastStart) return;                           // an older minute: already shown
    if ((t1 - lastStart) / stepMs > MAX_APPEND_COLS) return load();
    const y0 = d.y_edges_usd[0], y1 = d.y_edges_usd[d.n_bins], margin = (y1 - y0) * EDGE_FRACTION;
    if (!S.zoomedPrice && e.price_usd && (e.price_usd < y0 + margin || e.price_usd > y1 - margin)) return load();
    const q = new URLSearchParams({ market: d.market, side: "split", start: iso(lastStart), end: iso(t1),
      freq: String(d.freq_min), bin: String(d.bin_usd), pmin: String(y0), pmax: String(y1) });
    let nd;
    try { nd = await fetchMatrix(q); } catch (err) { return load(); }
    if (seq !== S.seq) return;                              // a full load started meanwhile
    if (S.data !== d) return extend(e);                     // another minute was appended: on it
    const same = nd.n_bins === d.n_bins && nd.freq_min === d.freq_min && nd.t_edges_ms[0] === lastStart &&
      nd.y_edges_usd[0] === y0 && nd.y_edges_usd[nd.n_bins] === y1 && nd.layers.join() === d.layers.join();
    if (!same) return load();
    // keep the columns that end after the view's start (the view moved with the minute)
    let drop = 0;
    while (drop < d.n_cols - 1 && d.t_edges_ms[drop + 1] <= S.view.t0) drop++;
    const keep = d.n_cols - 1 - drop, n = keep + nd.n_cols, nb = d.n_bins;
    const out = { ...d, n_cols: n, layer: {} };
    for (const name of d.layers) {
      const a = new Float32Array(n * nb);
      a.set(d.layer[name].subarray(drop * nb, (drop + keep) * nb), 0);
      a.set(nd.layer[name], keep * nb);
      out.layer[name] = a;
    }
    out.t_edges_ms = d.t_edges_ms.slice(drop, drop + keep).concat(nd.t_edges_ms);
    out.spot_usd = d.spot_usd.slice(drop, drop + keep).concat(nd.spot_usd);
    out.gap_mask = d.gap_mask.slice(drop, drop + keep).concat(nd.gap_mask);
    out.t_start = drop ? iso(out.t_edges_ms[0]).replace("Z", ":00Z") : d.t_start;
    out.t_end = nd.t_end;
    S.data = out; prepare(out);
    S.lastAppend = { bytes: nd.wire, cols: nd.n_cols, query: q.toString() };
    $("info").textContent = info(out);
    if (S.hover) hoverAt(S.hover.x, S.hover.y); else draw();
    S.lastAppend.ms = performance.now() - started;   // event to drawn
    loadLiquidations(query(), seq);
    document.body.dataset.loaded = String(seq) + "+" + out.t_end;
  }

  // realized liquidations of the window, drawn as red circles sized by USD
  async function loadLiquidations(q, seq) {
    const lq = new URLSearchParams({ market: q.get("market") });
    if (q.has("start")) { lq.set("start", q.get("start")); lq.set("end", q.get("end")); }
    try {
      const r = await fetch("/api/v1/liquidations?" + lq);
      if (seq !== S.seq) return;
      const el = $("liqs").querySelector("span");
      if (!r.ok) { S.liqs = null; el.textContent = "not available"; return; }
      S.liqs = (await r.json()).liquidations;
      el.textContent = liqsText(S.liqs);
      draw();
    } catch (e) { $("liqs").querySelector("span").textContent = "not available"; }
  }

  // "26 in view · $1.2M · 0 confirmed (no transaction access)": why the others are not, by
  // the commonest confirm_status among them
  function liqsText(liqs) {
    const usd = liqs.reduce((a, x) => a + x.size_usd, 0), open = liqs.filter((x) => !x.confirmed);
    const counts = new Map();
    for (const x of open) if (x.confirm_status) counts.set(x.confirm_status, (counts.get(x.confirm_status) || 0) + 1);
    const why = [...counts].sort((a, b) => b[1] - a[1])[0];
    return `${liqs.length} in view · $${fmtAmt(usd)} · ${liqs.length - open.length} confirmed` +
      (why ? ` (${why[0]})` : "");
  }

  function drawLiquidations(ctx, b) {
    if (!S.liqs || !S.liqs.length) return;
    const top = Math.max(...S.liqs.map((x) => x.size_usd)) || 1;
    ctx.fillStyle = "rgba(255,59,48,0.75)"; ctx.strokeStyle = "#000";
    for (const x of S.liqs) {
      const r = Math.max(2.5, Math.sqrt(x.size_usd / top) * 11);
      ctx.beginPath(); ctx.arc(X(Date.parse(x.ts) + MIN / 2, b), Y(x.price_usd, b), r, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
  }

  function info(d) {
    const cols = `${d.n_cols} columns of ${d.freq_min} min × ${d.n_bins} bins of $${d.bin_usd}`;
    const gaps = d.gap_mask.filter(Boolean).length;
    return `${d.market} ${d.t_start} → ${d.t_end} · ${cols} · ${gaps} gap columns` +
      (d.coarsened ? " · coarsened: " + d.notes.join("; ") : "") + ` · ${(S.lastLoad ? S.lastLoad.bytes : d.bytes).toLocaleString()} B` +
      (S.lastAppend ? ` (live: +${S.lastAppend.bytes.toLocaleString()} B)` : "");
  }

  // amounts of the side shown, per cell, and a robust colour range
  function prepare(d) {
    const L = d.layer.z_long, Sh = d.layer.z_short, n = L.length;
    const vals = [];
    for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 20000))) {
      const v = S.side === "long" ? L[i] : S.side === "short" ? Sh[i] : L[i] + Sh[i];
      if (v > 0) vals.push(v);
    }
    vals.sort((a, b) => a - b);
    const at = (q) => vals[Math.min(vals.length - 1, Math.floor(vals.length * q))];
    const vmax = vals.length ? at(VMAX_Q) : 1;
    d.vmax = vmax; d.vmin = S.scale === "log" ? Math.max(vals.length ? at(LOG_VMIN_Q) : vmax / 1e3, vmax / 1e4) : 0;
    d.image = paint(d);
  }

  function level(v, d) {
    if (S.scale === "log") return Math.max(0, Math.min(255, Math.round(255 * Math.log(v / d.vmin) / Math.log(d.vmax / d.vmin))));
    return Math.max(0, Math.min(255, Math.round(255 * v / d.vmax)));
  }

  function paint(d) {   // one pixel per cell, price bin 0 at the bottom; empty cells transparent
    const cv = document.createElement("canvas");
    cv.width = d.n_cols; cv.height = d.n_bins;
    const ctx = cv.getContext("2d"), img = ctx.createImageData(d.n_cols, d.n_bins), px = img.data;
    const L = d.layer.z_long, Sh = d.layer.z_short;
    for (let c = 0; c < d.n_cols; c++) {
      if (d.gap_mask[c]) continue;
      for (let b = 0; b < d.n_bins; b++) {
        const i = c * d.n_bins + b, l = L[i], s = Sh[i];
        let v, lut;
        if (S.side === "long") { v = l; lut = LUT.long; } else if (S.side === "short") { v = s; lut = LUT.short; }
        else if (S.side === "split") { v = l + s; lut = l >= s ? LUT.long : LUT.short; } else { v = l + s; lut = LUT.both; }
        if (!(v > 0)) continue;
        const k = level(v, d) * 3, o = ((d.n_bins - 1 - b) * d.n_cols + c) * 4;
        px[o] = lut[k]; px[o + 1] = lut[k + 1]; px[o + 2] = lut[k + 2]; px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return cv;
  }

  // ---------------------------------------------------------------- drawing
  function fit(cv) {
    const r = window.devicePixelRatio || 1, w = cv.clientWidth, h = cv.clientHeight;
    if (cv.width !== Math.round(w * r) || cv.height !== Math.round(h * r)) { cv.width = Math.round(w * r); cv.height = Math.round(h * r); }
    const ctx = cv.getContext("2d"); ctx.setTransform(r, 0, 0, r, 0, 0); return ctx;
  }
  const X = (t, b) => b.x + (t - S.view.t0) / (S.view.t1 + MIN - S.view.t0) * b.w;
  const Y = (p, b) => b.y + b.h - (p - S.view.p0) / (S.view.p1 - S.view.p0) * b.h;
  const T = (x, b) => S.view.t0 + (x - b.x) / b.w * (S.view.t1 + MIN - S.view.t0);
  const P = (y, b) => S.view.p0 + (b.y + b.h - y) / b.h * (S.view.p1 - S.view.p0);

  function draw() {
    const t0 = performance.now(), ctx = fit(heat), b = plotBox();
    ctx.fillStyle = "#0f1219"; ctx.fillRect(0, 0, heat.clientWidth, heat.clientHeight);
    ctx.fillStyle = EMPTY; ctx.fillRect(b.x, b.y, b.w, b.h);
    const d = S.data;
    if (d && S.view) {
      ctx.save(); ctx.beginPath(); ctx.rect(b.x, b.y, b.w, b.h); ctx.clip();
      const te = d.t_edges_ms, ye = d.y_edges_usd;
      ctx.imageSmoothingEnabled = false;
      const x0 = X(te[0], b), x1 = X(te[d.n_cols], b), y0 = Y(ye[d.n_bins], b), y1 = Y(ye[0], b);
      ctx.drawImage(d.image, x0, y0, x1 - x0, y1 - y0);
      drawGaps(ctx, d, b); drawPrice(ctx, d, b); drawLiquidations(ctx, b); drawCrosshair(ctx, b);
      ctx.restore();
      drawAxes(ctx, b); drawColorbar(ctx, d, b);
    }
    if (S.drag && S.drag.mode === "zoom") {
      ctx.strokeStyle = "#fff"; ctx.setLineDash([4, 3]); ctx.strokeRect(S.drag.x0, S.drag.y0, S.drag.x - S.drag.x0, S.drag.y - S.drag.y0); ctx.setLineDash([]);
    }
    drawLevels();
    S.lastDrawMs = performance.now() - t0;
  }

  function drawGaps(ctx, d, b) {
    ctx.fillStyle = GAP;
    for (let c = 0; c < d.n_cols; c++) {
      if (!d.gap_mask[c]) continue;
      let e = c; while (e + 1 < d.n_cols && d.gap_mask[e + 1]) e++;
      const xa = X(d.t_edges_ms[c], b), xb = X(d.t_edges_ms[e + 1], b);
      ctx.fillRect(xa, b.y, Math.max(xb - xa, 1), b.h);
      ctx.strokeStyle = "rgba(160,170,190,0.35)"; ctx.beginPath();
      for (let x = xa - b.h; x < xb; x += 8) { ctx.moveTo(Math.max(x, xa), b.y + b.h - Math.max(0, xa - x)); ctx.lineTo(Math.min(x + b.h, xb), b.y + b.h - Math.min(b.h, xb - x)); }
      ctx.stroke(); c = e;
    }
  }

  function drawPrice(ctx, d, b) {
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5; ctx.beginPath();
    let on = false;
    for (let c = 0; c < d.n_cols; c++) {
      const p = d.spot_usd[c];
      if (p === null || d.gap_mask[c]) { on = false; continue; }
      const x = X((d.t_edges_ms[c] + d.t_edges_ms[c + 1]) / 2, b), y = Y(p, b);
      if (on) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      on = true;
    }
    ctx.stroke(); ctx.lineWidth = 1;
  }

  function drawCrosshair(ctx, b) {
    if (!S.hover || S.drag) return;
    ctx.strokeStyle = "rgba(255,255,255,0.45)"; ctx.setLineDash([3, 3]); ctx.beginPath();
    ctx.moveTo(S.hover.x, b.y); ctx.lineTo(S.hover.x, b.y + b.h); ctx.moveTo(b.x, S.hover.y); ctx.lineTo(b.x + b.w, S.hover.y);
    ctx.stroke(); ctx.setLineDash([]);
  }

  function ticks(lo, hi, n) {
    const step = niceStep((hi - lo) / n, true), out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function drawAxes(ctx, b) {
    ctx.fillStyle = "#9aa3b2"; ctx.strokeStyle = "#2a3040"; ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const p of ticks(S.view.p0, S.view.p1, Math.max(3, b.h / 60))) {
      const y = Y(p, b); ctx.fillText(fmtPrice(p), b.x - 6, y);
      ctx.beginPath(); ctx.moveTo(b.x - 3, y); ctx.lineTo(b.x, y); ctx.stroke();
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const span = S.view.t1 + MIN - S.view.t0, stepMin = niceTime(span / MIN / Math.max(2, b.w / 110));
    const first = Math.ceil(S.view.t0 / (stepMin * MIN)) * stepMin * MIN;
    for (let t = first; t <= S.view.t1 + MIN; t += stepMin * MIN) {
      const x = X(t, b); const dt = new Date(t);
      const label = stepMin >= 1440 || (dt.getUTCHours() === 0 && dt.getUTCMinutes() === 0)
        ? dt.toISOString().slice(5, 10) : dt.toISOString().slice(11, 16);
      if (x > b.x + 12 && x < b.x + b.w - 16) ctx.fillText(label, x, b.y + b.h + 6);
      ctx.beginPath(); ctx.moveTo(x, b.y + b.h); ctx.lineTo(x, b.y + b.h + 3); ctx.stroke();
    }
  }

  function niceTime(m) {
    for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080]) if (s >= m) return s;
    return 43200;
  }

  function drawColorbar(ctx, d, b) {
    const lut = S.side === "long" ? LUT.long : S.side === "short" ? LUT.short : S.side === "split" ? null : LUT.both;
    const w = 150, h = lut ? 8 : 22, pad = lut ? 6 : 40, x = b.x + b.w - w - 8, y = b.y + 8;
    ctx.fillStyle = "rgba(11,13,18,0.8)"; ctx.fillRect(x - pad, y - 4, w + pad + 6, h + 28);
    const bars = lut ? [lut] : [LUT.short, LUT.long];  // split: each ramp named, shorts on top as on the map
    ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "middle";
    bars.forEach((L, j) => {
      const hh = h / bars.length;
      for (let i = 0; i < w; i++) { const k = Math.round(i / (w - 1) * 255) * 3; ctx.fillStyle = `rgb(${L[k]},${L[k + 1]},${L[k + 2]})`; ctx.fillRect(x + i, y + j * hh, 1, hh); }
      if (!lut) { ctx.fillStyle = "#9aa3b2"; ctx.textAlign = "right"; ctx.fillText(j ? "longs" : "shorts", x - 4, y + (j + 0.5) * hh); }
    });
    ctx.fillStyle = "#9aa3b2"; ctx.textBaseline = "top";
    ctx.textAlign = "left"; ctx.fillText(fmtAmt(d.vmin || 0), x, y + h + 3);
    ctx.textAlign = "right"; ctx.fillText(fmtAmt(d.vmax) + " " + d.market + (S.scale === "log" ? " (log)" : ""), x + w, y + h + 3);
    ctx.textAlign = "left"; ctx.fillStyle = EMPTY; ctx.fillRect(x, y + h + 16, 8, 8);
    ctx.strokeStyle = "#555"; ctx.strokeRect(x, y + h + 16, 8, 8);
    ctx.fillStyle = "#9aa3b2"; ctx.fillText("empty", x + 11, y + h + 15);
  }

  // the column under the cursor (or the newest) as a levels profile beside the heatmap
  function column() {
    const d = S.data; if (!d) return -1;
    if (S.hover) return S.hover.col;  // derived from the data shown by hoverAt
    for (let c = d.n_cols - 1; c >= 0; c--) if (!d.gap_mask[c]) return c;
    return -1;
  }

  function drawLevels() {
    const ctx = fit(lv), W = lv.clientWidth, H = lv.clientHeight, d = S.data, b = plotBox();
    ctx.fillStyle = "#0f1219"; ctx.fillRect(0, 0, W, H);
    const c = column(); if (!d || c < 0 || !S.view) return;
    const L = d.layer.z_long, Sh = d.layer.z_short, nb = d.n_bins, base = c * nb, price = d.spot_usd[c];
    let max = 0;
    for (let i = 0; i < nb; i++) max = Math.max(max, L[base + i], Sh[base + i]);
    const cumL = new Float64Array(nb), cumS = new Float64Array(nb);
    const pb = price === null ? -1 : binOf(price, d);
    let acc = 0; for (let i = nb - 1; i >= 0; i--) { acc += L[base + i]; cumL[i] = acc; }
    acc = 0; for (let i = 0; i < nb; i++) { acc += Sh[base + i]; cumS[i] = acc; }
    const cmax = Math.max(cumL[0] || 0, cumS[nb - 1] || 0, 1e-12), x0 = 8, w = W - 16;
    for (let i = 0; i < nb; i++) {
      const ya = Y(d.y_edges_usd[i + 1], b), yb = Y(d.y_edges_usd[i], b), hh = Math.max(yb - ya, 1);
      if (yb < b.y || ya > b.y + b.h) continue;
      if (L[base + i] > 0) { ctx.fillStyle = "#3d8bfd"; ctx.fillRect(x0, ya, w * L[base + i] / max, hh); }
      if (Sh[base + i] > 0) { ctx.fillStyle = "#ff8a3d"; ctx.fillRect(x0, ya, w * Sh[base + i] / max, hh); }
    }
    const curve = (cum, from, to, colour) => {
      ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.beginPath();
      for (let i = from; i <= to; i++) { const y = Y((d.y_edges_usd[i] + d.y_edges_usd[i + 1]) / 2, b), x = x0 + w * cum[i] / cmax; i === from ? ctx.moveTo(x, y) : ctx.lineTo(x, y); }
      ctx.stroke(); ctx.lineWidth = 1;
    };
    if (pb >= 0) { curve(cumL, 0, Math.min(pb, nb - 1), "#a9d1ff"); curve(cumS, Math.max(pb, 0), nb - 1, "#ffc79e"); }
    if (price !== null) {
      const y = Y(price, b); ctx.strokeStyle = "#fff"; ctx.setLineDash([4, 3]); ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(W, y); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.fillStyle = "rgba(15,18,25,0.85)"; ctx.fillRect(0, 0, W, 34); ctx.fillRect(0, H - 20, W, 20);
    ctx.fillStyle = "#9aa3b2"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "top";
    ctx.fillText(`${d.gap_mask[c] ? "gap · " : ""}${new Date(d.t_edges_ms[c]).toISOString().slice(0, 16).replace("T", " ")} UTC`, x0, 4);
    ctx.fillText(`longs ${fmtAmt(cumL[0] || 0)} · shorts ${fmtAmt(cumS[nb - 1] || 0)} ${d.market}`, x0, 18);
    ctx.fillText("bars: per bin · lines: cumulative from price", x0, H - 16);
  }

  function binOf(p, d) {
    const ye = d.y_edges_usd; if (p < ye[0]) return -1; if (p >= ye[d.n_bins]) return d.n_bins;
    let lo = 0, hi = d.n_bins; while (hi - lo > 1) { const m = (lo + hi) >> 1; if (ye[m] <= p) lo = m; else hi = m; }
    return lo;
  }
  function colOf(t, d) {
    const te = d.t_edges_ms; if (t < te[0] || t >= te[d.n_cols]) return -1;
    let lo = 0, hi = d.n_cols; while (hi - lo > 1) { const m = (lo + hi) >> 1; if (te[m] <= t) lo = m; else hi = m; }
    return lo;
  }

  // ---------------------------------------------------------------- tooltip
  function showTip(ev) {
    const r = heat.getBoundingClientRect();
    hoverAt(ev.clientX - r.left, ev.clientY - r.top);
  }

  // the cell at canvas position (x, y) of the data shown: the crosshair, the levels column and
  // the tooltip; called again when new data arrives under a resting cursor (its cell moved)
  function hoverAt(x, y) {
    const d = S.data, b = plotBox(); if (!d || !S.view) return;
    const r = heat.getBoundingClientRect();
    if (x < b.x || x > b.x + b.w || y < b.y || y > b.y + b.h) { S.hover = null; tip.hidden = true; draw(); return; }
    const col = colOf(T(x, b), d), bin = binOf(P(y, b), d);
    if (col < 0 || bin < 0 || bin >= d.n_bins) { S.hover = null; tip.hidden = true; draw(); return; }
    S.hover = { x, y, col, bin }; draw();
    const i = col * d.n_bins + bin, l = d.layer.z_long[i], s = d.layer.z_short[i], mid = (d.y_edges_usd[bin] + d.y_edges_usd[bin + 1]) / 2;
    const price = d.spot_usd[col];
    let cum = 0;
    if (price !== null) {
      const pb = binOf(price, d), a = Math.min(pb, bin), z = Math.max(pb, bin);
      for (let k = Math.max(a, 0); k <= Math.min(z, d.n_bins - 1); k++) cum += d.layer.z_long[col * d.n_bins + k] + d.layer.z_short[col * d.n_bins + k];
    }
    const u = d.market, te = d.t_edges_ms;
    tip.innerHTML = `<b>${new Date(te[col]).toISOString().slice(0, 16).replace("T", " ")}</b> UTC` +
      (d.freq_min > 1 ? ` (+${d.freq_min} min, mean)` : "") + (d.gap_mask[col] ? " · <b>no snapshot</b>" : "") +
      `<br>price bin <b>${fmtPrice(d.y_edges_usd[bin])}–${fmtPrice(d.y_edges_usd[bin + 1])}</b>` +
      `<br>amount <b id="tip-amount">${fmtAmt(l + s)} ${u}</b> ≈ $${fmtAmt((l + s) * mid)}` +
      `<br><span class="l">longs ${fmtAmt(l)}</span> · <span class="s">shorts ${fmtAmt(s)}</span>` +
      (price !== null ? `<br>price ${fmtPrice(price)} · between price and cursor <b>${fmtAmt(cum)} ${u}</b> ≈ $${fmtAmt(cum * mid)}` : "");
    tip.dataset.value = String(l + s); tip.dataset.col = String(col); tip.dataset.bin = String(bin);
    tip.hidden = false;
    const tw = tip.offsetWidth, th = tip.offsetHeight;
    tip.style.left = (x + 14 + tw > r.width ? x - tw - 14 : x + 14) + "px";
    tip.style.top = (y + 14 + th > r.height ? y - th - 14 : y + 14) + "px";
  }

  // ---------------------------------------------------------------- interaction
  let reloadTimer = null;
  function reloadSoon() { clearTimeout(reloadTimer); reloadTimer = setTimeout(load, 250); }

  function zoomTime(factor, atT) {
    const v = S.view, t0 = atT - (atT - v.t0) * factor, t1 = atT + (v.t1 - atT) * factor;
    S.view = { ...v, t0: Math.round(t0 / MIN) * MIN, t1: Math.max(Math.round(t1 / MIN) * MIN, Math.round(t0 / MIN) * MIN + 10 * MIN) };
    S.live = false; draw(); reloadSoon();
  }

  function panBy(ms, usd) {
    const v = S.view, dt = Math.round(ms / MIN) * MIN;
    S.view = { t0: v.t0 + dt, t1: v.t1 + dt, p0: v.p0 + (usd || 0), p1: v.p1 + (usd || 0) };
    if (usd) S.zoomedPrice = true;
    S.live = false; draw(); reloadSoon();
  }

  heat.addEventListener("mousemove", (ev) => {
    if (S.drag) {
      const r = heat.getBoundingClientRect(), b = plotBox();
      S.drag.x = ev.clientX - r.left; S.drag.y = ev.clientY - r.top;
      if (S.drag.mode === "pan") {
        const dt = -(S.drag.x - S.drag.px) / b.w * (S.view.t1 + MIN - S.view.t0), dp = (S.drag.y - S.drag.py) / b.h * (S.view.p1 - S.view.p0);
        S.drag.px = S.drag.x; S.drag.py = S.drag.y;
        S.view = { t0: S.view.t0 + dt, t1: S.view.t1 + dt, p0: S.view.p0 + dp, p1: S.view.p1 + dp }; S.zoomedPrice = true; S.live = false;
      }
      draw(); return;
    }
    showTip(ev);
  });
  heat.addEventListener("mouseleave", () => { S.hover = null; tip.hidden = true; if (!S.drag) draw(); });
  heat.addEventListener("mousedown", (ev) => {
    const r = heat.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    S.drag = { mode: ev.shiftKey || ev.button === 1 ? "pan" : "zoom", x0: x, y0: y, x, y, px: x, py: y };
    tip.hidden = true; ev.preventDefault();
  });
  window.addEventListener("mouseup", () => {
    const g = S.drag; if (!g) return; S.drag = null;
    const b = plotBox();
    if (g.mode === "zoom" && Math.abs(g.x - g.x0) > 6) {
      const ta = T(Math.min(g.x, g.x0), b), tb = T(Math.max(g.x, g.x0), b);
      const v = { ...S.view, t0: Math.floor(ta / MIN) * MIN, t1: Math.max(Math.floor(tb / MIN) * MIN, Math.floor(ta / MIN) * MIN + 5 * MIN) };
      if (Math.abs(g.y - g.y0) > 6) { v.p0 = P(Math.max(g.y, g.y0), b); v.p1 = P(Math.min(g.y, g.y0), b); S.zoomedPrice = true; }
      S.view = v; S.live = false; setOn("presets", null);
    } else if (g.mode === "pan") {
      S.view.t0 = Math.round(S.view.t0 / MIN) * MIN; S.view.t1 = Math.round(S.view.t1 / MIN) * MIN;
    } else { draw(); return; }
    draw(); reloadSoon();
  });
  heat.addEventListener("wheel", (ev) => {
    if (!S.view) return; ev.preventDefault();
    const r = heat.getBoundingClientRect(), b = plotBox(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    const f = ev.deltaY > 0 ? 1.25 : 0.8;
    if (ev.ctrlKey || ev.altKey) {
      const p = P(y, b); S.view = { ...S.view, p0: p - (p - S.view.p0) * f, p1: p + (S.view.p1 - p) * f }; S.zoomedPrice = true; draw(); reloadSoon();
    } else zoomTime(f, T(x, b));
  }, { passive: false });
  heat.addEventListener("dblclick", () => setPreset(S.preset || "24h"));  // reset the zoom
  window.addEventListener("keydown", (ev) => {
    if (!S.view || ev.target.tagName === "INPUT") return;
    const span = S.view.t1 - S.view.t0;
    if (ev.key === "ArrowLeft") panBy(-span / 4); else if (ev.key === "ArrowRight") panBy(span / 4);
  });
  // redraw when a canvas changes size: the window, or the side panels' text wrapping to more
  // lines and shrinking the levels canvas (drawn at its old size, it was stretched off the
  // heatmap's price scale)
  const resized = new ResizeObserver(() => { if (S.data) draw(); });
  resized.observe(heat); resized.observe(lv);

  function setOn(group, value) {
    for (const el of $(group).querySelectorAll("button")) el.classList.toggle("on", Object.values(el.dataset)[0] === value);
  }

  function bounds() {
    const st = S.status && S.status.markets.find((m) => m.market === S.market);
    return st && st.last ? { first: Date.parse(st.first), last: Date.parse(st.last) } : null;
  }

  function setPreset(p, priceRange) {
    S.preset = p; setOn("presets", p); S.zoomedPrice = !!priceRange;
    const bd = bounds();
    if (!bd) { S.view = null; return load(); }
    const first = Math.floor(bd.first / MIN) * MIN, t1 = Math.floor(bd.last / MIN) * MIN;
    const t0 = p === "all" ? first : Math.max(first, t1 - (PRESETS[p] - 1) * MIN);
    const [p0, p1] = priceRange || [0, 1];
    S.view = { t0, t1, p0, p1 }; S.live = true; return load();
  }

  $("markets").addEventListener("click", (ev) => { const m = ev.target.dataset.market; if (!m) return; S.market = m; setOn("markets", m); $("bin").value = ""; updateLive(); loadSignal(); setPreset(S.preset || "24h"); });
  $("presets").addEventListener("click", (ev) => { const p = ev.target.dataset.preset; if (p) setPreset(p); });
  $("sides").addEventListener("click", (ev) => { const s = ev.target.dataset.side; if (!s) return; S.side = s; setOn("sides", s); if (S.data) { prepare(S.data); draw(); } });
  $("scales").addEventListener("click", (ev) => { const s = ev.target.dataset.scale; if (!s) return; S.scale = s; setOn("scales", s); if (S.data) { prepare(S.data); draw(); } });
  $("bin").addEventListener("change", load);
  $("freq").addEventListener("change", load);

  // ---------------------------------------------------------------- live
  async function fetchStatus() {
    try { const r = await fetch("/api/v1/status"); if (r.ok) S.status = await r.json(); } catch (e) { /* shown as stale */ }
    updateLive();
  }

  function updateLive() {
    const el = $("live"), st = S.status && S.status.markets.find((m) => m.market === S.market);
    if (!st || !st.last) { el.textContent = "no data yet"; el.classList.add("stale"); return; }
    const arrived = S.lastEvent && S.lastEvent.market === S.market ? (Date.now() - S.lastEvent.at) / 1000 : null;
    const stale = st.stale && (arrived === null || arrived > S.status.stale_after_s);
    el.textContent = `last update ${st.last.slice(5, 16).replace("T", " ")} UTC` + (arrived !== null ? ` (${Math.round(arrived)} s ago)` : "") +
      (st.price_usd ? ` · ${S.market} ${fmtPrice(st.price_usd)}` : "") + (stale ? " · STALE" : "");
    el.classList.toggle("stale", stale);
    el.dataset.last = st.last;
  }

  function stream() {
    const es = new EventSource("/api/v1/stream");
    es.addEventListener("hello", (ev) => { S.status = JSON.parse(ev.data); updateLive(); });
    es.addEventListener("snapshot", (ev) => {
      const e = JSON.parse(ev.data);
      if (S.status) { const st = S.status.markets.find((m) => m.market === e.market); if (st) { st.last = e.ts; st.price_usd = e.price_usd; st.stale = false; if (!st.first) st.first = e.ts; } }
      S.lastEvent = { market: e.market, at: Date.now() };
      updateLive();
      if (e.market === S.market) loadSignal();
      if (e.market === S.market && S.live && S.view) {
        const t1 = Math.floor(Date.parse(e.ts) / MIN) * MIN, span = S.view.t1 - S.view.t0;
        const full = S.preset && S.preset !== "all" ? (PRESETS[S.preset] - 1) * MIN : Infinity;
        S.view = { ...S.view, t1, t0: span + MIN * 1 < full ? S.view.t0 : t1 - full };
        extend(e);
      }
    });
    es.onerror = () => { $("live").textContent = "reconnecting…"; $("live").classList.add("stale"); };
  }

  function loadSignal() {
    panel("signal", "/api/v1/signal?market=" + S.market, signalText);
  }

  // the rule's last minute: the amounts to liquidate within its window below and above the
  // price (matrix units: the market's tokens) against θ; θ unknown while the rule warms up
  function signalText(j) {
    const s = j.state || {}, p = j.params || {}, unit = " " + (j.market || S.market);
    const amount = (v) => (v == null ? "–" : fmtAmt(v) + unit);
    const band = p.window_pct != null ? `±${p.window_pct} %` : p.window_usd != null ? `±$${fmtPrice(p.window_usd)}` : "window";
    const boost = s.direction > 0 ? "boost up" : s.direction < 0 ? "boost down" : "no boost";
    const theta = s.threshold_tokens == null ? "warming up" : amount(s.threshold_tokens);
    return `${boost} · ${band}: below ${amount(s.below_tokens)} / above ${amount(s.above_tokens)}` +
      ` · θ ${theta} · ratio ${s.suggested_ratio ?? "–"}`;
  }

  async function panel(id, url, render) {
    try {
      const r = await fetch(url);
      $(id).querySelector("span").textContent = r.ok ? render(await r.json()) : "not available";
    } catch (e) { $(id).querySelector("span").textContent = "not available"; }
  }

  function fmtPrice(p) { return p >= 1000 ? p.toLocaleString("en-US", { maximumFractionDigits: 0 }) : p.toLocaleString("en-US", { maximumFractionDigits: p >= 10 ? 2 : 4 }); }
  function fmtAmt(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e3) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
    return v.toLocaleString("en-US", { maximumFractionDigits: a >= 10 ? 1 : 3 });
  }
  function iso(t) { return new Date(t).toISOString().slice(0, 16) + "Z"; }

  // where a cell's centre is drawn (CSS pixels in the heat canvas), for tests and benchmarks
  function cellXY(col, bin) {
    const d = S.data, b = plotBox();
    return { x: X((d.t_edges_ms[col] + d.t_edges_ms[col + 1]) / 2, b), y: Y((d.y_edges_usd[bin] + d.y_edges_usd[bin + 1]) / 2, b) };
  }
  window.liqmap = { state: S, draw, load, extend, panBy, zoomTime, setPreset, cellXY, signalText, liqsText, get lastDrawMs() { return S.lastDrawMs; } };

  // a view can be linked: /?market=ETH&preset=3d&bin=2&freq=5&pmin=3000&pmax=4000&scale=linear
  function fromUrl() {
    const u = new URLSearchParams(location.search), num = (k) => (u.has(k) && isFinite(+u.get(k)) ? +u.get(k) : null);
    if (["SOL", "ETH", "BTC"].includes(u.get("market"))) S.market = u.get("market");
    if (["both", "split", "long", "short"].includes(u.get("side"))) S.side = u.get("side");
    if (["log", "linear"].includes(u.get("scale"))) S.scale = u.get("scale");
    if (num("bin")) $("bin").value = String(num("bin"));
    if (num("freq")) $("freq").value = String(Math.round(num("freq")));
    const preset = u.get("preset") in PRESETS || u.get("preset") === "all" ? u.get("preset") : "24h";
    return { preset, pmin: num("pmin"), pmax: num("pmax") };
  }

  async function start() {
    const linked = fromUrl();
    setOn("markets", S.market); setOn("sides", S.side); setOn("scales", S.scale);
    await fetchStatus();
    const range = linked.pmin !== null && linked.pmax !== null && linked.pmax > linked.pmin ? [linked.pmin, linked.pmax] : null;
    const first = setPreset(linked.preset, range);
    stream();
    setInterval(updateLive, 1000);
    setInterval(fetchStatus, 15000);
    await first;  // the heatmap first: the signal's computation would share its CPU
    loadSignal();

  }
  start();
})();
