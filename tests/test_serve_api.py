"""API v1 of `liqmap serve` in-process (httpx over ASGI): the heatmap equals `liqmap heatmap
--npz-out`, every format, levels, status, coarsening, and bad or hostile input answered with
one JSON line and nothing computed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from liqmap.cli import main
from liqmap.errors import InputError
from liqmap.heatmap.build import build_levels
from liqmap.heatmap.sources import StoreSource
from liqmap.serve import ServeConfig, create_app
from liqmap.serve.data import Limits, default_bin_usd, nice_bin_usd, round_mantissa
from liqmap.serve.params import START as START_PARAM
from liqmap.serve.watch import MarketView

from serve_helpers import decode_f32, write_market

START = "2026-11-23T00:00"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "store"
    write_market(root, start=START, minutes=90, gaps=range(40, 45))
    return root


class Client:
    """An httpx client on the app in this process, with the app's lifespan running."""

    def __init__(self, app: Any, base_url: str = "http://127.0.0.1:8050") -> None:
        self.app, self.base_url = app, base_url
        self.loop = asyncio.new_event_loop()
        self._cm = self._open()
        self.http: httpx.AsyncClient = self.loop.run_until_complete(self._cm.__anext__())

    async def _open(self) -> AsyncIterator[httpx.AsyncClient]:
        inner = self.app.app
        async with inner.router.lifespan_context(inner), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=self.base_url,
                timeout=60) as http:
            yield http

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.get(url, **kwargs))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, url, **kwargs))

    @property
    def server(self) -> Any:
        return self.app.app.state.server

    def close(self) -> None:
        with pytest.raises(StopAsyncIteration):
            self.loop.run_until_complete(self._cm.__anext__())
        self.loop.close()


@pytest.fixture
def client(store_dir: Path) -> Iterator[Client]:
    c = Client(create_app(ServeConfig(data_dir=str(store_dir))))
    yield c
    c.close()


def _cli_matrix(store_dir: Path, tmp_path: Path, *args: str) -> dict[str, np.ndarray]:
    out = tmp_path / "m.npz"
    try:
        main(["heatmap", "--data-dir", str(store_dir), *args, "--npz-out", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


ARGS = {"start": "2026-11-23T00:10", "end": "2026-11-23T01:20", "bin": "0.25", "freq": "3",
        "side": "split", "unit": "usd"}
CLI_ARGS = ["--t-start", ARGS["start"], "--t-end", ARGS["end"], "--bin", "0.25", "--freq", "3",
            "--side", "split", "--unit", "usd"]


def test_heatmap_json_equals_the_cli_npz(client: Client, store_dir: Path,
                                         tmp_path: Path) -> None:
    r = client.get("/api/v1/heatmap", params=ARGS)
    assert r.status_code == 200, r.text
    body = r.json()
    npz = _cli_matrix(store_dir, tmp_path, *CLI_ARGS)
    assert np.array_equal(np.array(body["z"]), npz["Z"])  # exact float64, not approximately
    assert np.array_equal(np.array(body["z_long"]), npz["Z_long"])
    assert np.array_equal(np.array(body["z_short"]), npz["Z_short"])
    assert np.array_equal(np.array(body["y_edges_usd"]), npz["y_edges"])
    assert np.array_equal(np.array(body["t_edges_ms"]) * 1_000_000, npz["t_edges"])
    assert np.array_equal(np.array(body["gap_mask"]), npz["gap_mask"])
    spot = np.array([np.nan if v is None else v for v in body["spot_usd"]])
    assert np.array_equal(spot, npz["spot_grid"], equal_nan=True)
    assert body["gap_mask"].count(True) == 1  # minutes 40-44 fall in one 3-minute column... and
    assert not body["coarsened"] and body["freq_min"] == 3 and body["unit"] == "usd"
    assert body["cli"].startswith("liqmap heatmap --market SOL --t-start 2026-11-23T00:10:00Z")


def test_default_arguments_equal_the_cli_defaults(client: Client, store_dir: Path,
                                                  tmp_path: Path) -> None:
    body = client.get("/api/v1/heatmap?bin=0.5").json()
    npz = _cli_matrix(store_dir, tmp_path, "--bin", "0.5")
    assert np.array_equal(np.array(body["z"]), npz["Z"])
    assert body["t_start"] == "2026-11-23T00:00:00Z" and body["t_end"] == "2026-11-23T01:29:00Z"


def test_arrow_and_page_binary_carry_the_same_matrix(client: Client, store_dir: Path,
                                                     tmp_path: Path) -> None:
    npz = _cli_matrix(store_dir, tmp_path, *CLI_ARGS)
    r = client.get("/api/v1/heatmap", params=ARGS,
                   headers={"accept": "application/vnd.apache.arrow.stream"})
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(r.content).read_all()
    n_bins = npz["Z"].shape[0]
    z = np.asarray(table.column("z").combine_chunks().flatten()).reshape(-1, n_bins).T
    assert np.array_equal(z, npz["Z"])
    header = json.loads(table.schema.metadata[b"liqmap"])
    assert header["n_bins"] == n_bins and header["y_edges_usd"] == npz["y_edges"].tolist()

    raw = client.get("/api/v1/heatmap", params={**ARGS, "format": "f32"},
                     headers={"accept-encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"  # httpx has already decompressed it
    data = raw.content
    assert data[:4] == b"LQM1"
    head, layers = decode_f32(data)
    assert head["layers"] == ["z_long", "z_short"]  # the page adds them up for `both`
    assert np.array_equal(layers[0].T, round_mantissa(npz["Z_long"]))
    assert np.array_equal(layers[1].T, round_mantissa(npz["Z_short"]))
    assert np.allclose(layers.sum(axis=0).T, npz["Z"], rtol=5e-5, atol=0)


def test_page_binary_rounding_keeps_five_digits() -> None:
    values = np.array([0.0, 1812.123, 0.1234567, 5e9, 1e-9])
    rounded = round_mantissa(values).astype(np.float64)
    assert rounded[0] == 0.0
    assert np.all(np.abs(rounded[1:] / values[1:] - 1) < 2e-5)
    assert np.all(round_mantissa(values).view("<u4") & 0x7F == 0)  # low bits zeroed


def test_levels_equal_the_library(client: Client, store_dir: Path) -> None:
    body = client.get("/api/v1/levels?at=2026-11-23T00:30&bin=0.5").json()
    levels = build_levels(StoreSource(str(store_dir), "SOL"), "2026-11-23T00:30", bin_usd=0.5)
    assert body["ts"] == "2026-11-23T00:30:00Z" and body["price_usd"] == levels.price_usd
    assert body["long"]["tokens"] == levels.long.tokens.tolist()
    assert body["short"]["usd"] == levels.short.usd.tolist()
    assert body["long"]["n"] + body["short"]["n"] == 300


def test_status_names_each_market_and_flags_old_data_stale(client: Client) -> None:
    body = client.get("/api/v1/status").json()
    sol = next(m for m in body["markets"] if m["market"] == "SOL")
    eth = next(m for m in body["markets"] if m["market"] == "ETH")
    assert sol["first"] == "2026-11-23T00:00:00Z" and sol["last"] == "2026-11-23T01:29:00Z"
    assert sol["stale"] is True  # minutes from last week, none arriving
    assert eth["last"] is None and eth["stale"] is True
    assert body["default_bin_usd"]["SOL"] == 0.1
    assert body["features"] == {"signal": True, "liquidations": True}


def test_stale_means_old_and_nothing_arriving() -> None:
    last = pd.Timestamp("2026-11-23T00:00", tz="UTC")
    now = last.timestamp() + 1000
    assert MarketView("SOL", last, last).stale(now, 180)
    assert not MarketView("SOL", last, last, changed_at=now - 30).stale(now, 180)
    assert not MarketView("SOL", last, last).stale(last.timestamp() + 60, 180)


def test_new_snapshot_changes_the_answer_not_a_stale_cache(client: Client,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "live"
    write_market(root, start=START, minutes=10)
    live = Client(create_app(ServeConfig(data_dir=str(root))))
    try:
        first = live.get("/api/v1/heatmap?bin=0.5").json()
        write_market(root, start="2026-11-23T00:10", minutes=1, seed=5)
        live.server.watcher.poll()
        second = live.get("/api/v1/heatmap?bin=0.5").json()
        assert first["n_cols"] == 10 and second["n_cols"] == 11
    finally:
        live.close()


def test_huge_window_is_coarsened_not_refused(client: Client) -> None:
    r = client.get("/api/v1/heatmap?start=2026-10-01&end=2026-11-23T01:29&bin=0.000001")
    assert r.status_code == 200, r.text
    body = r.json()
    limits = Limits()
    assert body["coarsened"] and len(body["notes"]) == 2
    assert body["n_cols"] <= limits.max_columns and body["n_bins"] <= limits.max_bins
    assert body["n_cols"] * body["n_bins"] <= limits.max_cells
    assert body["freq_min"] > 1 and body["bin_usd"] > 0.000001


def test_identical_requests_in_flight_compute_once(client: Client) -> None:
    async def burst() -> list[httpx.Response]:
        return await asyncio.gather(*[client.http.get("/api/v1/heatmap?bin=0.3")
                                      for _ in range(20)])

    calls = []
    original = client.server.pool.submit

    def counting(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return original(fn, *args)

    client.server.pool.submit = counting
    responses = client.loop.run_until_complete(burst())
    assert {r.status_code for r in responses} == {200}
    assert [fn.__name__ for fn in calls].count("work") == 1  # one build (and one gzip)
    assert len({r.content for r in responses}) == 1


BAD = [
    ("/api/v1/heatmap?market=DOGE", "parameter market must be one of SOL, ETH, BTC"),
    ("/api/v1/heatmap?bin=abc", "parameter bin must be a number"),
    ("/api/v1/heatmap?bin=nan", "parameter bin must be finite"),
    ("/api/v1/heatmap?bin=inf", "parameter bin must be finite"),
    ("/api/v1/heatmap?bin=1e999", "parameter bin must be finite"),
    ("/api/v1/heatmap?bin=0", "parameter bin must be >= 1e-06"),
    ("/api/v1/heatmap?bin=-1", "parameter bin must be >= 1e-06"),
    ("/api/v1/heatmap?freq=1.5", "parameter freq must be a whole number"),
    ("/api/v1/heatmap?freq=0", "parameter freq must be >= 1"),
    ("/api/v1/heatmap?freq=99999999999999999999", "parameter freq must be <= 525600"),
    ("/api/v1/heatmap?start=yesterday", "parameter start must be an ISO 8601 time"),
    ("/api/v1/heatmap?start=1970-01-01", "parameter start must lie between 2000 and 2200"),
    ("/api/v1/heatmap?side=both;DROP", "parameter side must be one of both, long, short, split"),
    ("/api/v1/heatmap?unit=%00", "parameter unit must be one of tokens, usd"),
    ("/api/v1/heatmap?pmin=-5", "parameter pmin must be >= 0"),
    ("/api/v1/heatmap?bins=0.1", "unknown parameter 'bins'; this route takes market, start"),
    ("/api/v1/heatmap?bin=0.1&bin=0.2", "parameter bin given 2 times; give it once"),
    ("/api/v1/heatmap?format=../../etc/passwd", "parameter format must be one of json"),
    ("/api/v1/levels?at=2026-13-45", "parameter at must be an ISO 8601 time"),
    ("/api/v1/status?x=1", "unknown parameter 'x'"),
    ("/api/v1/stream?market=XRP", "parameter market must be one of SOL, ETH, BTC"),
]


@pytest.mark.parametrize(("url", "message"), BAD)
def test_bad_parameters_get_one_json_line_and_nothing_is_computed(
        client: Client, url: str, message: str) -> None:
    r = client.get(url)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["ok"] is False and body["status"] == 400 and "\n" not in body["error"]
    assert body["error"].startswith(message), body["error"]
    assert client.server.cache.bytes == 0 and not client.server.inflight


@pytest.mark.parametrize(("url", "status", "message"), [
    ("/api/v1/heatmap?start=2026-11-23T01:00&end=2026-11-23T00:00", 400,
     "start 2026-11-23T01:00Z is after end"),
    ("/api/v1/heatmap?start=2026-11-20T00:00&end=2026-11-20T01:00", 404,
     "no SOL snapshots between"),
    ("/api/v1/heatmap?market=ETH", 404, "no ETH snapshots"),
    ("/api/v1/heatmap?pmin=200&pmax=100&bin=1", 400, "pmin (200) must be below pmax (100)"),
    ("/api/v1/levels?at=2026-11-20T00:00", 404, "no SOL snapshot in the hour"),
    ("/api/v1/signal?market=ETH", 400, "the store holds no ETH snapshots"),
])
def test_library_refusals_become_api_errors(client: Client, url: str, status: int,
                                            message: str) -> None:
    r = client.get(url)
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "--" not in r.json()["error"]


@pytest.mark.parametrize("path", ["/static/../../pyproject.toml", "/static/%2e%2e%2fREADME.md",
                                  "/static/index.html", "/static/app.js", "/..%2f..%2fetc/passwd",
                                  "/api/v1/../../../etc/passwd", "/api/v2/heatmap"])
def test_no_request_path_reaches_the_filesystem(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["ok"] is False


def test_page_assets_are_hashed_and_cached(client: Client) -> None:
    page = client.get("/").text
    assets = [part.split('"')[0] for part in page.split('/static/')[1:]]
    assert sorted(a.split(".")[::2] for a in assets) == [["app", "css"], ["app", "js"],
                                                          ["icon", "svg"]]
    types = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
    for asset in assets:
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert r.headers["content-type"].startswith(types[asset.rsplit(".", 1)[1]])
    assert "http" not in page.replace("http-equiv", "")  # nothing from elsewhere


def test_docs_and_openapi_offline(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    heat = spec["paths"]["/api/v1/heatmap"]["get"]
    assert {p["name"] for p in heat["parameters"]} >= {"market", "start", "end", "bin", "freq",
                                                        "side", "unit"}
    times = [p for p in heat["parameters"] if p["name"] in ("start", "end")]
    for example in [e for p in times for e in p["schema"]["examples"]]:  # each one accepted
        assert START_PARAM.parse(example) is not None, example
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert "<script src=\"/static/docs." in docs.text


@pytest.mark.parametrize(("method", "status"), [("POST", 405), ("PUT", 405), ("DELETE", 405)])
def test_read_only(client: Client, method: str, status: int) -> None:
    r = client.request(method, "/api/v1/status")
    assert r.status_code == status and "read-only" in r.json()["error"]


def test_bodies_long_queries_and_foreign_hosts_are_refused(client: Client) -> None:
    r = client.request("GET", "/api/v1/status", content=b"x" * 10)
    assert r.status_code == 413
    r = client.get("/api/v1/heatmap?bin=" + "1" * 5000)
    assert r.status_code == 414
    r = client.get("/api/v1/status", headers={"host": "evil.example:8050"})
    assert r.status_code == 400 and "Host" in r.json()["error"]


def test_security_headers_and_no_cors_by_default(client: Client) -> None:
    r = client.get("/api/v1/status", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_cors_only_for_the_named_origin(store_dir: Path) -> None:
    c = Client(create_app(ServeConfig(data_dir=str(store_dir), cors_origin="https://desk.lan")))
    try:
        r = c.get("/api/v1/status")
        assert r.headers["access-control-allow-origin"] == "https://desk.lan"
    finally:
        c.close()


TOKEN = "s3cret-token-for-tests-0123456789"


def test_public_bind_needs_a_token(store_dir: Path) -> None:
    with pytest.raises(InputError, match=r"--host 0\.0\.0\.0 exposes the store"):
        create_app(ServeConfig(data_dir=str(store_dir), host="0.0.0.0"))
    with pytest.raises(InputError, match="at least 16 characters"):
        create_app(ServeConfig(data_dir=str(store_dir), host="0.0.0.0", token="short"))


def test_token_is_required_on_every_route(store_dir: Path) -> None:
    c = Client(create_app(ServeConfig(data_dir=str(store_dir), host="0.0.0.0", token=TOKEN)))
    try:
        for path in ("/", "/api/v1/status", "/api/v1/heatmap", "/docs", "/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in r.text
        assert c.get("/api/v1/status", headers={"authorization": "Bearer wrong"}
                     ).status_code == 401
        assert c.get("/api/v1/status", headers={"authorization": f"Bearer {TOKEN}x"}
                     ).status_code == 401
        ok = c.get("/api/v1/status", headers={"authorization": f"Bearer {TOKEN}",
                                              "host": "desk.example.org"})
        assert ok.status_code == 200  # a public bind takes any Host name
        login = c.get(f"/?token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert "HttpOnly" in login.headers["set-cookie"]
        assert "Secure" not in login.headers["set-cookie"]  # plain HTTP would drop it
        assert c.get("/api/v1/status").status_code == 200  # the cookie now
    finally:
        c.close()
    # reached over HTTPS (a TLS proxy in front): the cookie is never sent over plain HTTP
    https = Client(create_app(ServeConfig(data_dir=str(store_dir), host="0.0.0.0",
                                          token=TOKEN)), base_url="https://desk.example.org")
    try:
        login = https.get(f"/?token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and "; Secure" in login.headers["set-cookie"]
    finally:
        https.close()


def test_nice_and_default_bins() -> None:
    assert nice_bin_usd(0.09) == 0.1 and nice_bin_usd(0.11, up=True) == 0.2
    assert default_bin_usd("SOL", 180.0) == 0.1
    assert default_bin_usd("ETH", 4000.0) == 2.0
    assert default_bin_usd("BTC", 100_000.0) == 50.0
    assert default_bin_usd("BTC", float("nan")) == 50.0


def test_liquidations_are_the_markers_the_heatmap_draws(tmp_path: Path) -> None:
    import pyarrow as pa

    from liqmap.heatmap.markers import liquidation_markers, markers_json
    from liqmap.store import Store
    from liqmap.store import schema as S
    from test_score import BOOK, REALIZED, _state, priced_positions

    store = Store(str(tmp_path / "store"))
    for ts, rows in BOOK.items():
        store.write_snapshot("SOL", priced_positions(ts, rows), _state(ts))
    store.write_liquidations("SOL", pa.Table.from_pylist(REALIZED, schema=S.LIQUIDATIONS))
    c = Client(create_app(ServeConfig(data_dir=store.root)))
    try:
        body = c.get("/api/v1/liquidations?market=SOL").json()
        first, last = min(BOOK), max(BOOK)
        expected = markers_json(liquidation_markers(store, "SOL", first, last))
        assert body["ok"] and body["liquidations"] == expected and len(expected) == 2
        assert {row["confirm_status"] for row in expected} == {"confirmation off"}  # why not
        assert c.get("/api/v1/status").json()["features"]["liquidations"] is True
        assert c.get("/api/v1/liquidations?market=ETH").status_code == 404  # no ETH data
    finally:
        c.close()


def test_signal_is_the_library_state(client: Client, store_dir: Path) -> None:
    from liqmap.backtest.live import signal_state

    body = client.get("/api/v1/signal?market=SOL").json()
    expected = json.loads(json.dumps(signal_state(str(store_dir), "SOL"), default=str))
    assert body == {"ok": True, **expected}
    assert body["as_of"] == "2026-11-23T01:29:00Z" and "direction" in body["state"]
