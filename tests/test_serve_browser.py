"""The live page in a real headless Chromium (Debian) against a real `liqmap serve`: the
canvas is drawn, empty cells differ from small ones, a preset changes the window, hovering a
cell shows the API's value for it, and a snapshot stored meanwhile appears without reload."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from liqmap.store import Store
from liqmap.timeutil import iso_utc

from browser_helpers import chromium, require_browser
from serve_helpers import add_minute, decode_f32, serve_process, write_market

pytestmark = pytest.mark.slow

MINUTES = 8 * 60
START = "2026-11-22T16:00"  # the history ends at midnight: the live minute starts a new day
SHOTS = os.environ.get("LIQMAP_SCREENSHOTS")  # a directory to keep the screenshots in


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    require_browser()
    root = tmp_path_factory.mktemp("page") / "store"
    write_market(root, start=START, minutes=MINUTES, n=400, gaps=range(300, 320))
    with serve_process(root) as (url, _), chromium() as driver:
        driver.get(url + "/")
        _wait(driver, lambda: driver.execute_script("return document.body.dataset.loaded"))
        yield url, driver, root


@pytest.fixture(autouse=True)
def default_view(page: tuple[str, Any, Path]) -> None:
    """Each test starts on the page as a user opens it (no pan, preset, cursor or column
    width left by another test); the store keeps the minutes earlier tests added."""
    url, driver, _ = page
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(driver.find_element("id", "info")).perform()
    driver.get(url + "/")
    _wait(driver, lambda: driver.execute_script("return document.body.dataset.loaded"))


def _wait(driver: Any, ok: Callable[[], Any], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ok()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out; page says: {driver.find_element('id', 'info').text}")


def _shot(driver: Any, name: str, tmp_path: Path) -> np.ndarray:
    from matplotlib.image import imread

    path = Path(SHOTS) / name if SHOTS else tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return imread(path)


def _data(driver: Any, expr: str) -> Any:
    return driver.execute_script(f"const d = window.liqmap.state.data; return {expr};")


def _caught_up(driver: Any, root: Path) -> pd.Timestamp:
    """The store's newest minute, once the page shows it and no fetch is in flight. The live
    tests add minutes after it: each works whichever tests ran before it on this page
    (xdist may run any of them on a fresh page)."""
    newest = Store(str(root)).snapshot_times("SOL")[-1]
    _wait(driver, lambda: _data(driver, "d && d.t_end") == iso_utc(newest)
          and not driver.execute_script("return window.liqmap.state.loading"))
    return newest


def _add_next(driver: Any, root: Path, newest: pd.Timestamp, price_usd: float
              ) -> pd.Timestamp:
    """Store the minute after `newest` and wait until the page shows it."""
    new = newest + pd.Timedelta(minutes=1)
    add_minute(root, new, price_usd, n=400)
    _wait(driver, lambda: _data(driver, "d && d.t_end") == iso_utc(new))
    return new


def _point_at_busiest_cell(driver: Any, column_js: str) -> dict[str, Any]:
    """Rest the cursor on the busiest cell of column `column_js` (the next one with a
    snapshot) and wait for its tooltip; the cell's column, bin, time and the columns shown."""
    from selenium.webdriver.common.action_chains import ActionChains

    target = driver.execute_script(f"""
      const d = window.liqmap.state.data, nb = d.n_bins;
      let c = {column_js}, best = 0;
      while (d.gap_mask[c]) c++;
      const total = (b) => d.layer.z_long[c * nb + b] + d.layer.z_short[c * nb + b];
      for (let b = 0; b < nb; b++) if (total(b) > total(best)) best = b;
      const heat = document.getElementById("heat"), at = window.liqmap.cellXY(c, best);
      return {{col: c, bin: best, n: d.n_cols, w: heat.clientWidth, h: heat.clientHeight,
               x: at.x, y: at.y, t: (d.t_edges_ms[c] + d.t_edges_ms[c + 1]) / 2}};""")
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element("id", "heat"), int(target["x"] - target["w"] / 2),
        int(target["y"] - target["h"] / 2)).perform()
    tip = driver.find_element("id", "tip")
    _wait(driver, lambda: tip.is_displayed()
          and tip.get_attribute("data-col") == str(target["col"]))
    return target


def _tip_equals_the_api(url: str, driver: Any) -> tuple[int, int, float]:
    """Assert the tooltip's amount is the API's for its cell in the view shown; the cell and
    that amount."""
    tip = driver.find_element("id", "tip")
    col, bin_ = int(tip.get_attribute("data-col")), int(tip.get_attribute("data-bin"))
    query = driver.execute_script("return window.liqmap.state.lastLoad.query")
    expected = httpx.get(f"{url}/api/v1/heatmap?{query}&format=json").json()["z"][bin_][col]
    assert float(tip.get_attribute("data-value")) == pytest.approx(expected, rel=5e-5)
    return col, bin_, expected


def test_canvas_is_drawn_with_empty_cells_distinct(page: tuple[str, Any, Path],
                                                   tmp_path: Path) -> None:
    _, driver, _ = page
    pixels = _shot(driver, "page_8h.png", tmp_path)
    heat = pixels[80:600, 80:1100, :3]
    assert float(np.std(heat)) > 0.05  # drawn, not blank
    # a zero cell in the empty corridor next to the price, and the smallest non-empty cell
    probe = driver.execute_script("""
      const S = window.liqmap.state, d = S.data, c = d.n_cols - 1, nb = d.n_bins;
      const total = (b) => d.layer.z_long[c * nb + b] + d.layer.z_short[c * nb + b];
      let zero = -1, small = -1;
      for (let b = 0; b < nb; b++) {
        const v = total(b);
        if (v === 0 && zero < 0 && Math.abs(d.y_edges_usd[b] - d.spot_usd[c]) < 2) zero = b;
        if (v > 0 && (small < 0 || v < total(small))) small = b;
      }
      const heat = document.getElementById("heat"), ctx = heat.getContext("2d");
      // the device pixel holding the cell centre (a cell is 1.6 px tall here: rounding may
      // land in the next row)
      const r = window.devicePixelRatio || 1, px = (b) => {
        const at = window.liqmap.cellXY(c, b);
        return Array.from(ctx.getImageData(Math.floor(at.x * r), Math.floor(at.y * r), 1, 1).data);
      };
      return {zero: zero, small: small, zeroPx: px(zero), smallPx: px(small), v: total(small)};
    """)
    assert probe["zero"] >= 0 and probe["small"] >= 0, probe
    assert probe["zeroPx"][:3] == [11, 13, 18]  # the empty colour, the page background
    assert probe["smallPx"][:3] != [11, 13, 18] and sum(probe["smallPx"][:3]) > 60
    def panels_loaded(d: Any) -> dict[str, str] | bool:  # each panel fills in on its own
        text = {p: d.find_element("css selector", f"#{p} span").text for p in ("signal", "liqs")}
        return text if all(t and t != "…" for t in text.values()) else False

    panels = WebDriverWait(driver, 60).until(panels_loaded)
    assert "boost" in panels["signal"] and "ratio" in panels["signal"]  # the live rule's state
    assert panels["signal"].count(" SOL") == 3 and "±0.5 %: below " in panels["signal"]
    assert panels["liqs"].startswith("0 in view")  # the route answers; this store has none


def test_the_signal_panel_names_units_and_a_warming_rule(page: tuple[str, Any, Path]) -> None:
    """Amounts carry the market's token; θ unknown (the rule warming up) is said, not 0."""
    _, driver, _ = page
    text = driver.execute_script("""return [
      window.liqmap.signalText({market: "ETH", params: {window_pct: 0.5}, state: {direction: 1,
        below_tokens: 1234.5, above_tokens: 0, threshold_tokens: null, suggested_ratio: 1.5}}),
      window.liqmap.signalText({market: "BTC", params: {window_pct: null, window_usd: 2000},
        state: {direction: 0, below_tokens: 0.25, above_tokens: 3, threshold_tokens: 2.5,
        suggested_ratio: 1}})];""")
    assert text == ["boost up · ±0.5 %: below 1,235 ETH / above 0 ETH · θ warming up · ratio 1.5",
                    "no boost · ±$2,000: below 0.25 BTC / above 3 BTC · θ 2.5 BTC · ratio 1"]


def test_liquidations_panel_says_why_they_are_unconfirmed(page: tuple[str, Any, Path]) -> None:
    """The panel names the commonest reason the unconfirmed rows give (the demo's node serves
    no transactions, and '0 confirmed' alone read like a fault)."""
    _, driver, _ = page
    text = driver.execute_script("""const row = (usd, confirmed, status) =>
        ({size_usd: usd, confirmed: confirmed, confirm_status: status});
      return [
        window.liqmap.liqsText([row(1000, false, "no transaction access"),
          row(2500, false, "no transaction access"), row(500, false, "pending")]),
        window.liqmap.liqsText([row(1000, true, "confirmed"), row(2000, true, "confirmed")]),
        window.liqmap.liqsText([row(1000, true, "confirmed"), row(2000, false, "pending")]),
        window.liqmap.liqsText([])];""")
    assert text == ["3 in view · $4,000 · 0 confirmed (no transaction access)",
                    "2 in view · $3,000 · 2 confirmed",
                    "2 in view · $3,000 · 1 confirmed (pending)",
                    "0 in view · $0 · 0 confirmed"]


def _canvas_sizes(driver: Any) -> list[list[int]]:
    """[drawing-buffer height, displayed height × DPR, the same for width] of both canvases."""
    return driver.execute_script("""const r = window.devicePixelRatio || 1;
      return ["heat", "levels"].map((id) => { const c = document.getElementById(id);
        return [c.height, Math.round(c.clientHeight * r),
                c.width, Math.round(c.clientWidth * r)]; });""")


def test_the_levels_profile_stays_on_the_heatmaps_price_scale(page: tuple[str, Any, Path]
                                                               ) -> None:
    """The levels canvas is as tall as the heatmap's, at the same height. The panels' text
    arrives after the first draw; when it wraps onto more lines the canvases shrink, and a
    drawing left at the old size is stretched off the heatmap's prices (the demo showed the
    profile's price line ~2 USD above the heatmap's). Each canvas is redrawn at its displayed
    size."""
    _, driver, _ = page
    _wait(driver, lambda: all(driver.find_element("css selector", f"#{p} span").text != "…"
                              for p in ("signal", "liqs")))
    matches = lambda: all(c[0] == c[1] and c[2] == c[3] for c in _canvas_sizes(driver))  # noqa: E731
    _wait(driver, matches, timeout_s=5)
    # the profile beside the heatmap covers its whole price axis: same top, same height
    heat, levels = driver.execute_script("""return ["heat", "levels"].map((id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return [r.top, r.height]; });""")
    assert heat == levels
    before = _canvas_sizes(driver)[1][1]
    driver.execute_script("document.querySelector('#signal span').textContent = "
                          "'a signal text long enough to wrap onto many lines '.repeat(6)")
    _wait(driver, lambda: _canvas_sizes(driver)[1][1] < before, timeout_s=5)  # it shrank
    _wait(driver, matches, timeout_s=5)


def test_the_pages_load_without_console_errors(page: tuple[str, Any, Path]) -> None:
    """No failed request or script error in the browser's console (a missing icon was one)."""
    url, _, _ = page
    for path in ("/", "/docs"):  # a browser each: leaving a live page may abort its requests
        with chromium() as driver:
            driver.get(url + path)
            _wait(driver, lambda: driver.execute_script(
                "return document.readyState === 'complete' && (location.pathname !== '/' "
                "|| document.body.dataset.loaded)"))
            time.sleep(0.5)  # the icon is fetched after the load event
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (path, errors)
            icon = driver.execute_script(
                "return document.querySelector('link[rel=icon]').href")
            assert "/static/icon." in icon and icon.endswith(".svg")


def test_colour_range_saturates_the_top_two_percent(page: tuple[str, Any, Path]) -> None:
    """Linear by default, top at the 98th percentile of non-empty cells (as the PNG); log
    starts at the 2nd. Measured on the loaded matrix (the page samples it)."""
    _, driver, _ = page
    share = """
      const d = window.liqmap.state.data, L = d.layer.z_long, Sh = d.layer.z_short;
      let n = 0, above = 0, atTop = 0, below = 0, atLow = 0;  // ties: equal cells repeat
      for (let i = 0; i < L.length; i++) {
        const v = L[i] + Sh[i];
        if (v <= 0) continue;
        n++; above += v > d.vmax; atTop += v >= d.vmax; below += v < d.vmin; atLow += v <= d.vmin;
      }
      return [above / n, atTop / n, below / n, atLow / n, d.vmin];"""
    assert driver.execute_script(
        "return document.querySelector('#scales .on').dataset.scale") == "linear"
    above, at_top, below, _, vmin = driver.execute_script(share)
    assert above <= 0.03 and at_top >= 0.01 and below == 0 and vmin == 0
    driver.find_element("css selector", "#scales [data-scale=log]").click()
    above, at_top, below, at_low, vmin = driver.execute_script(share)
    assert above <= 0.03 and at_top >= 0.01 and below <= 0.03 and at_low >= 0.01
    assert vmin > 0


def test_preset_changes_the_window(page: tuple[str, Any, Path], tmp_path: Path) -> None:
    _, driver, root = page
    end = _caught_up(driver, root)
    before = _data(driver, "[d.t_start, d.t_end, d.n_cols]")
    assert before[0] == f"{pd.Timestamp(START):%Y-%m-%dT%H:%M:%S}Z"  # 24 h clipped to the data
    seq = driver.execute_script("return document.body.dataset.loaded")
    driver.find_element("css selector", "button[data-preset='6h']").click()
    _wait(driver, lambda: driver.execute_script("return document.body.dataset.loaded") != seq)
    after = _data(driver, "[d.t_start, d.t_end, d.n_cols]")
    assert after[1] == before[1] == iso_utc(end)
    assert after[0] == iso_utc(end - pd.Timedelta(hours=6) + pd.Timedelta(minutes=1))
    assert "on" in driver.find_element("css selector",
                                       "button[data-preset='6h']").get_attribute("class")
    _shot(driver, "preset_6h.png", tmp_path)


def test_hover_shows_the_api_value_of_the_cell(page: tuple[str, Any, Path],
                                               tmp_path: Path) -> None:
    url, driver, _ = page
    target = _point_at_busiest_cell(driver, "Math.floor(d.n_cols / 3)")
    col, bin_, expected = _tip_equals_the_api(url, driver)
    assert (col, bin_) == (target["col"], target["bin"]) and expected > 0
    tip = driver.find_element("id", "tip")
    assert f"{expected:,.0f}" in tip.text or f"{expected:,.1f}" in tip.text
    assert "price bin" in tip.text and "between price and cursor" in tip.text and "≈ $" in tip.text
    _shot(driver, "hover_tooltip.png", tmp_path)


def test_a_reload_under_a_resting_cursor_follows_the_cell(page: tuple[str, Any, Path]) -> None:
    """The cursor rests on a late column while the view reloads with fewer columns (here
    5-minute ones): the page stays drawn and the tooltip shows the new cell under the cursor.
    It kept the old column's index, past the new last column, and the page broke with
    "Error: Invalid time value"."""
    url, driver, root = page
    _caught_up(driver, root)
    target = _point_at_busiest_cell(driver, "d.n_cols - 2")
    driver.execute_script("document.getElementById('freq').value = '5'; window.liqmap.load();")
    _wait(driver, lambda: _data(driver, "d && d.freq_min") == 5
          and not driver.execute_script("return window.liqmap.state.loading"))
    assert not driver.find_element("id", "info").text.startswith("Error")
    edges = _data(driver, "d.t_edges_ms")
    col, _, _ = _tip_equals_the_api(url, driver)
    assert col < target["n"] // 4 and edges[col] <= target["t"] < edges[col + 1]


def test_new_snapshot_appears_without_reload(page: tuple[str, Any, Path],
                                             tmp_path: Path) -> None:
    _, driver, root = page
    driver.find_element("css selector", "button[data-preset='24h']").click()
    newest = _caught_up(driver, root)
    driver.execute_script("window.__same_page = 42;")
    new = _add_next(driver, root, newest, 178.0)
    assert driver.execute_script("return window.__same_page") == 42  # no reload
    assert driver.find_element("id", "live").get_attribute("data-last") == iso_utc(new)
    _shot(driver, "live_update.png", tmp_path)


def _f32(url: str, **params: str) -> tuple[dict[str, Any], np.ndarray]:
    """The page's binary answer for `params`: (header, layers [n_layers, n_cols, n_bins])."""
    return decode_f32(httpx.get(url + "/api/v1/heatmap", timeout=30, params={
        **params, "side": "split", "format": "f32"}).content)


def test_a_live_minute_fetches_only_new_columns_and_equals_a_whole_fetch(
        page: tuple[str, Any, Path]) -> None:
    """Live: the next minute is fetched as the last column on (kilobytes, not the view), and
    the page's merged matrix is the one the server gives for the whole window."""
    url, driver, root = page
    newest = _caught_up(driver, root)
    before = _data(driver, "({last: d.t_edges_ms[d.n_cols - 1], n: d.n_cols, "
                           "full: window.liqmap.state.lastLoad.bytes})")
    new = _add_next(driver, root, newest, 179.0)
    append = driver.execute_script("return window.liqmap.state.lastAppend")
    assert append is not None, "the live minute reloaded the whole view"
    asked = httpx.QueryParams(append["query"])
    assert pd.Timestamp(asked["start"]) == pd.Timestamp(before["last"], unit="ms", tz="UTC")
    assert asked["side"] == "split" and append["cols"] == 2
    assert append["bytes"] < before["full"] / 4  # 3 kB (mostly the header) vs the view
    assert _page_equals_the_whole_answer(url, driver, new) == before["n"] + 1


def _page_equals_the_whole_answer(url: str, driver: Any, end: pd.Timestamp) -> int:
    """Assert the page's matrix is the server's answer for its whole window; its columns."""
    got = _data(driver, "({n: d.n_cols, t: d.t_edges_ms, freq: d.freq_min, bin: d.bin_usd, "
                        "y: d.y_edges_usd, gap: d.gap_mask, spot: d.spot_usd, "
                        "long: Array.from(d.layer.z_long), short: Array.from(d.layer.z_short), "
                        "loaded: window.liqmap.state.lastLoad.query})")
    # the window's start: the loaded view's (its first column holds the minutes from there,
    # on the server's column grid), or the first column's once the live minutes dropped it
    loaded_start = pd.Timestamp(httpx.QueryParams(got["loaded"])["start"])
    start = max(pd.Timestamp(got["t"][0], unit="ms", tz="UTC"), loaded_start)
    head, layers = _f32(url, market="SOL", start=f"{start:%Y-%m-%dT%H:%MZ}",
                        end=f"{end:%Y-%m-%dT%H:%MZ}", freq=str(got["freq"]), bin=str(got["bin"]),
                        pmin=repr(got["y"][0]), pmax=repr(got["y"][-1]))
    assert head["t_edges_ms"] == got["t"] and head["y_edges_usd"] == got["y"]
    assert head["gap_mask"] == got["gap"] and head["spot_usd"] == got["spot"]
    page_layers = np.array([got["long"], got["short"]], dtype="<f4").reshape(layers.shape)
    assert np.array_equal(page_layers, layers)
    assert layers[:, -1].sum() > 0  # the new minute holds positions
    return int(got["n"])


def test_a_live_price_at_the_range_edge_fetches_the_whole_view_again(
        page: tuple[str, Any, Path]) -> None:
    _, driver, root = page
    newest = _caught_up(driver, root)
    top = _data(driver, "d.y_edges_usd[d.n_bins]")
    _add_next(driver, root, newest, top * 1.02)  # the price leaves the range drawn
    assert driver.execute_script("return window.liqmap.state.lastAppend") is None
    assert _data(driver, "d.y_edges_usd[d.n_bins]") > top * 1.02  # re-centred on the price


def test_a_live_minute_inside_a_wide_column_replaces_it(page: tuple[str, Any, Path]) -> None:
    """At 5-minute columns a new minute usually lands in the last column: it is fetched again
    (mean over its minutes so far) and replaces it; the page still equals a whole fetch."""
    url, driver, root = page
    driver.execute_script("document.getElementById('freq').value = '5'; window.liqmap.load();")
    _wait(driver, lambda: _data(driver, "d && d.freq_min") == 5
          and not driver.execute_script("return window.liqmap.state.loading"))
    newest = _caught_up(driver, root)

    def last_column_end() -> pd.Timestamp:
        return pd.Timestamp(_data(driver, "d.t_edges_ms[d.n_cols]"), unit="ms", tz="UTC")

    while newest + pd.Timedelta(minutes=2) >= last_column_end():  # room for two minutes
        newest = _add_next(driver, root, newest, 179.5)
    for _ in range(2):
        newest = _add_next(driver, root, newest, 179.5)
        append = driver.execute_script("return window.liqmap.state.lastAppend")
        assert append is not None and append["cols"] == 1  # the last column, again
        _page_equals_the_whole_answer(url, driver, newest)


def test_overlapping_live_fetches_end_on_the_newest_minute(page: tuple[str, Any, Path]) -> None:
    """Two minutes' events whose fetches overlap, the newer one answered last (the page's fetch
    is slowed for it): the older one lands first, and the newer one must still be applied,
    on top of it, and equal a whole fetch."""
    url, driver, root = page
    newest = _caught_up(driver, root)
    news = [newest + pd.Timedelta(minutes=k) for k in (1, 2)]
    for new in news:
        add_minute(root, new, 179.0, n=400)
    driver.execute_script("""
        const L = window.liqmap, real = window.fetch; let calls = 0;
        const later = (r, ms) => new Promise((ok) => setTimeout(() => ok(r), ms));
        window.fetch = (...args) => { const k = calls++;
          return real(...args).then((r) => later(r, k ? 400 : 0)); };
        L.state.live = false;  // the stream's own events must not interleave
        const ev = (t) => ({ market: 'SOL', ts: t, price_usd: 179.0 });
        L.extend(ev(arguments[0])); L.extend(ev(arguments[1]));
        setTimeout(() => { window.fetch = real; L.state.live = true; }, 3000);
        """, *[iso_utc(t) for t in news])
    _wait(driver, lambda: _data(driver, "d && d.t_end") == iso_utc(news[-1]), timeout_s=10)
    _page_equals_the_whole_answer(url, driver, news[-1])
    _wait(driver, lambda: driver.execute_script("return window.liqmap.state.live"))


def test_pan_and_zoom_redraw_from_the_loaded_picture(page: tuple[str, Any, Path]) -> None:
    _, driver, _ = page
    view = driver.execute_script("return window.liqmap.state.view")
    driver.execute_script("window.liqmap.panBy(-3600000);")
    moved = driver.execute_script("return window.liqmap.state.view")
    assert moved["t0"] == view["t0"] - 3_600_000 and moved["t1"] == view["t1"] - 3_600_000
    assert driver.execute_script("return window.liqmap.lastDrawMs") >= 0
    driver.execute_script("window.liqmap.zoomTime(0.5, window.liqmap.state.view.t1);")
    zoomed = driver.execute_script("return window.liqmap.state.view")
    assert zoomed["t1"] - zoomed["t0"] < moved["t1"] - moved["t0"]
    assert driver.execute_script("return window.liqmap.state.live") is False
