"""`liqmap serve`: a thin wrapper over `liqmap.serve.run_server`."""

from __future__ import annotations

import click

from liqmap import constants as C
from liqmap.cli.options import data_dir_option, settings_from


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
              default=C.SERVE_STALE_AFTER_S, show_default=True, metavar="SECONDS",
              help="The page warns when no snapshot arrived for this long.")
@click.pass_context
def serve_cmd(ctx: click.Context, data_dir: str | None, host: str, port: int,
              token: str | None, cors_origin: str | None, stale_after_s: float) -> None:
    """Serve the live liquidation page and API v1 over the store (read-only).

    The page (heatmap, levels, live updates) is at the printed URL, the API under /api/v1
    and its description at /docs. Ctrl-C or SIGTERM stops it.

    \b
    Examples:
      liqmap serve --data-dir ./data
      liqmap serve --host 0.0.0.0 --port 8050 --token "$(cat ~/.liqmap-token)"
    """
    from liqmap.serve import ServeConfig, bind, run_server

    config = ServeConfig(data_dir=settings_from(ctx, data_dir=data_dir).data_dir, host=host,
                         port=port, token=token, cors_origin=cors_origin,
                         stale_after_s=stale_after_s)
    config.check()
    sock = bind(host, port)
    run_server(config, sock=sock, on_ready=lambda url: click.echo(
        f"liqmap serve: {url} (store {config.data_dir}; API {url}api/v1, docs {url}docs); "
        "Ctrl-C stops", err=False))
