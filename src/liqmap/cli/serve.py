"""`liqmap serve`: a thin wrapper over `liqmap.serve.run_server`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from liqmap import constants as C
from liqmap.cli.options import data_dir_option, settings_from
from liqmap.config import Settings


@click.command("serve")
@data_dir_option
@click.option("--host", default=C.SERVE_DEFAULT_HOST, show_default=True,
              help="Address to listen on. Anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=C.SERVE_DEFAULT_PORT,
              show_default=True, help="TCP port (0: any free port, printed).")
@click.option("--token", envvar="LIQMAP_SERVE_TOKEN", default=None, metavar="TOKEN",
              help="Bearer token every request must carry (>= 16 characters; also "
                   "LIQMAP_SERVE_TOKEN). Open /?token=TOKEN once in a browser.")
@click.option("--cors-origin", default=None, metavar="ORIGIN",
              help="Let pages from this origin read the API (CORS; off by default).")
@click.option("--stale-after", "stale_after_s", type=click.FloatRange(min=1),
              default=None, metavar="SECONDS",
              help="The page warns when no snapshot arrived for this long (default: "
                   f"{C.SERVE_STALE_AFTER_INTERVALS} snapshot intervals, the collector's "
                   f"setting as for `liqmap collect`: {C.SERVE_STALE_AFTER_S:g} s at "
                   f"{C.DEFAULT_INTERVAL_S:g} s).")
@click.option("--collect", is_flag=True,
              help="Also run the collector in this process (settings as for `liqmap collect`: "
                   "--rpc-url, LIQMAP_RPC_URL, liqmap.toml), so the page follows the live book.")
@click.option("--rpc-url", "rpc_urls", multiple=True, metavar="URL",
              help="RPC endpoint for --collect; repeat for failover.")
@click.pass_context
def serve_cmd(ctx: click.Context, data_dir: str | None, host: str, port: int,
              token: str | None, cors_origin: str | None, stale_after_s: float | None,
              collect: bool, rpc_urls: tuple[str, ...]) -> None:
    """Serve the live liquidation page and API v1 over the store (read-only).

    The page (heatmap, levels, live updates) is at the printed URL, the API under /api/v1
    and its description at /docs. Ctrl-C or SIGTERM stops it.

    \b
    Examples:
      liqmap serve --data-dir ./data
      liqmap serve --collect --rpc-url "$LIQMAP_RPC_URL"
      liqmap serve --host 0.0.0.0 --port 8050 --token "$(cat ~/.liqmap-token)"
    """
    from liqmap.serve import ServeConfig, bind, run_server

    if rpc_urls and not collect:
        raise click.UsageError("--rpc-url is for --collect; add --collect or drop it")
    settings = settings_from(ctx, data_dir=data_dir, **({"rpc_urls": rpc_urls} if rpc_urls
                                                         else {}))
    if stale_after_s is None:  # a 300 s collector is not stale after 180 s
        stale_after_s = C.SERVE_STALE_AFTER_INTERVALS * settings.interval_s
    config = ServeConfig(data_dir=settings.data_dir, host=host, port=port, token=token,
                         cors_origin=cors_origin, stale_after_s=stale_after_s)
    config.check()
    sock = bind(host, port)
    with _collector(settings if collect else None):
        run_server(config, sock=sock, on_ready=lambda url: click.echo(
            f"liqmap serve: {url} (store {config.data_dir}; API {url}api/v1, docs {url}docs)"
            + ("; collecting" if collect else "") + "; Ctrl-C stops"))


@contextmanager
def _collector(settings: Settings | None) -> Iterator[None]:
    """The collector in a thread while the server runs (None: no collector); stopped, its
    current write finished, when the server stops."""
    if settings is None:
        yield
        return
    from liqmap.collect.loop import Collector
    from liqmap.store import Store

    stop = threading.Event()
    collector = Collector(settings, Store(settings.data_dir), stop=stop)
    thread = threading.Thread(target=collector.run, name="liqmap-collect", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=120)
