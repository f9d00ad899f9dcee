"""`liqmap collect`, `status`, `compact`, `import-legacy`, `export`: thin wrappers."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from liqmap import constants as C
from liqmap.cli.options import (
    COUNT,
    INTERVAL_S,
    SECONDS,
    Number,
    PathParam,
    data_dir_option,
    market_option,
    open_store_dir,
    settings_from,
    window_options,
)
from liqmap.errors import StorageError


def _install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT: finish the current write, then exit 0. A second signal aborts."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo(f"{signal.Signals(signum).name}: finishing the current write, then "
                   "stopping", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command("collect")
@click.option("--rpc-url", "rpc_urls", multiple=True, metavar="URL",
              help="Solana RPC endpoint; repeat for failover (default: $LIQMAP_RPC_URL, "
                   "liqmap.toml, else the public mainnet endpoint). Keys in URLs are redacted "
                   "in all output.")
@click.option("--markets", default=None, metavar="SOL,ETH,BTC", help="Markets to collect.")
@data_dir_option
@click.option("--interval", "interval_s", type=INTERVAL_S, default=None,
              help="Whole seconds between snapshots, on multiples of it (default 60).")
@click.option("--once", is_flag=True, help="One cycle (the current minute), then exit.")
@click.option("--clock", type=click.Choice(["wall", "chain"]), default=None,
              help="Schedule on this machine's clock (wall, default) or on the chain's Clock "
                   "sysvar (chain: for simulated/accelerated chains).")
@click.option("--timeout", "timeout_s", type=SECONDS, default=None,
              help="Seconds per request (getProgramAccounts: --gpa-timeout).")
@click.option("--gpa-timeout", "gpa_timeout_s", type=SECONDS, default=None,
              help="Seconds per getProgramAccounts request (default 120).")
@click.option("--max-retries", type=COUNT, default=None, help="Retries per request (default 5).")
@click.option("--mode", type=click.Choice(["stream", "poll"]), default=None,
              help="stream (default): a live book per market over WebSocket, resynced "
                   "cheaply; poll: a full getProgramAccounts per market per snapshot.")
@click.option("--ws-url", "ws_urls", multiple=True, metavar="URL",
              help="WebSocket endpoint, repeatable, paired with --rpc-url in order (default: "
                   "$LIQMAP_WS_URL, liqmap.toml ws_url, else derived from the RPC URL: "
                   "https -> wss, same host, path and key).")
@click.option("--resync", "resync_s", type=SECONDS, default=None,
              help="Seconds between resyncs of the live book (default 1800; also after "
                   "every reconnect).")
@click.option("--confirm-rps", "confirm_rps", type=Number(low=0, high=C.MAX_CONFIRM_RPS),
              default=None, metavar="N",
              help="Confirm detected liquidations on chain (getSignaturesForAddress + "
                   "getTransaction) at most N requests per second, off the snapshot path; "
                   "0 turns it off (default 2).")
@click.pass_context
def collect_cmd(ctx: click.Context, **flags: object) -> None:
    """Store a snapshot of every open position, with exact liquidation prices, every minute.

    Runs until SIGTERM/Ctrl-C (the current write completes, exit code 0). `--once` runs
    one poll-mode cycle (a stream needs a running process).

    Example:

    \b
        LIQMAP_RPC_URL=https://mainnet.helius-rpc.com/?api-key=KEY liqmap collect
    """
    from liqmap.collect.stream import make_collector
    from liqmap.store import Store

    once = bool(flags.pop("once"))
    if once:
        flags["mode"] = "poll"
    settings = settings_from(ctx, **flags)
    store = Store(settings.data_dir)
    stop = threading.Event()
    collector = make_collector(settings, store, stop=stop)
    if once:
        results = collector.collect_once()
        collector.client.transport.close()
        failed = [r for r in results if r.error]
        if failed:
            raise click.ClickException("; ".join(f"{r.market}: {r.error}" for r in failed))
        return
    _install_stop_handlers(stop)
    collector.run()


@click.command("status")
@data_dir_option
@click.option("--market", "markets", default=None, metavar="SOL|ETH|BTC",
              help="Market (default: every market in the store).")
@window_options
@click.option("--interval", "interval_s", type=INTERVAL_S, default=None, metavar="SECONDS",
              help="Expected whole seconds between snapshots (default: the collector's "
                   "setting, LIQMAP_INTERVAL or liqmap.toml's interval, else "
                   f"{C.DEFAULT_INTERVAL_S:g}).")
@click.option("--source", "data_source", type=click.Choice(["auto", "collected", "legacy"]),
              default="auto", show_default=True,
              help="Minutes that count as present: collected snapshots, rows imported with "
              "import-legacy, or auto (either).")
@click.pass_context
def status_cmd(ctx: click.Context, data_dir: str | None, markets: str | None,
               t_start: str | None, t_end: str | None, interval_s: float | None,
               data_source: str) -> None:
    """Snapshots present, gaps (missing minutes, with the recorded reason), positions per
    snapshot and store size, for a window (default: the last 24 hours of data).

    Example:

    \b
        liqmap status --market SOL --t-start 2026-11-23T00:00
        liqmap status --market SOL --t-start -6h   # from 6 h before the newest snapshot
    """
    from liqmap.api import open_store

    settings = settings_from(ctx, data_dir=data_dir, markets=markets, interval_s=interval_s)
    root = open_store_dir(ctx, data_dir)
    status = open_store(root).status(settings.markets if markets else None, t_start or None,
                                     t_end or None, settings.interval_s, source=data_source)
    click.echo(str(status))


@click.command("compact")
@data_dir_option
@click.pass_context
def compact_cmd(ctx: click.Context, data_dir: str | None) -> None:
    """Compact closed hours into one file each, store closed days as position versions
    (rows of a day a version cannot represent stay one day file), write each converted day's
    pre-binned roll-up (missing or stale ones), and clean up interrupted writes. Safe to
    interrupt and to run again.

    The collector does this by itself every hour; run it after an import or an outage, or once
    to convert a store written by an older liqmap.

    Example:

    \b
        liqmap compact --data-dir ./data
    """
    from liqmap.store import Store
    from liqmap.store.status import damaged_files, format_damaged

    store = Store(open_store_dir(ctx, data_dir))
    removed = store.recover()
    try:
        report = store.compact()
    except StorageError as exc:
        damaged = damaged_files(store)
        if not damaged:
            raise
        raise StorageError(f"cannot compact: {format_damaged(damaged)}; run `liqmap recover "
                           "--quarantine` to move them aside (nothing is deleted)") from exc
    click.echo(f"compacted {report.hours} hour(s) and {report.days} day(s); "
               f"{report.converted} day(s) of positions stored as versions"
               + (f", {report.kept_rows} kept as rows" if report.kept_rows else "")
               + (f"; {report.rollups} roll-up(s) written" if report.rollups else "")
               + f"; removed {report.files_removed + removed} file(s)")


@click.command("recover")
@data_dir_option
@click.option("--quarantine", is_flag=True,
              help="Move damaged Parquet files aside to <data-dir>/_quarantine/.")
@click.pass_context
def recover_cmd(ctx: click.Context, data_dir: str | None, quarantine: bool) -> None:
    """Clean up leftovers of interrupted writes and find damaged (truncated) Parquet files;
    with --quarantine, move those aside so every reader works again. Nothing is deleted.

    Example:

    \b
        liqmap recover --data-dir ./data --quarantine
    """
    from liqmap.store import Store
    from liqmap.store.status import damaged_files

    store = Store(settings_from(ctx, data_dir=data_dir).data_dir)
    removed = store.recover()
    click.echo(f"removed {removed} leftover file(s) of interrupted writes")
    damaged = damaged_files(store)
    for d in damaged:
        if quarantine:
            click.echo(f"moved damaged {d.path} ({d.error}) to {store.quarantine(d.path)}")
        else:
            click.echo(f"damaged: {d.path} ({d.error})")
    if damaged and not quarantine:
        click.echo(f"{len(damaged)} damaged file(s); run `liqmap recover --quarantine` to move "
                   "them aside (nothing is deleted)")
    elif not damaged:
        click.echo("no damaged files")


@click.command("import-legacy")
@click.argument("csv_file", type=PathParam("file", "read"))
@data_dir_option
@market_option
@click.pass_context
def import_legacy_cmd(ctx: click.Context, csv_file: str, data_dir: str | None,
                      market: str) -> None:
    """Load an old `sol_positions_log.csv` (liq_price,size_sol,t_bin) into the store.

    Streams any size; bad rows are counted and listed by line number, never abort the
    import; minutes already stored are skipped, so running it twice adds nothing.

    Example:

    \b
        liqmap import-legacy data-sol_snapshots/sol_positions_log.csv
    """
    import os

    from tqdm import tqdm

    from liqmap.store import Store
    from liqmap.store.legacy import import_legacy_csv

    store = Store(settings_from(ctx, data_dir=data_dir).data_dir)
    total = os.path.getsize(csv_file) if os.path.isfile(csv_file) else 0
    with tqdm(total=total, unit="B", unit_scale=True, desc="import", file=sys.stderr,
              disable=total < 64 << 20) as bar:
        report = import_legacy_csv(store, csv_file, market, progress=bar.update)
    click.echo(report.summary())


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["legacy-csv"]), default="legacy-csv",
              show_default=True, help="Output format (the old scripts' CSV).")
@data_dir_option
@market_option
@window_options
@click.option("--source", type=click.Choice(["positions", "legacy"]), default="positions",
              show_default=True, help="Collected snapshots, or rows imported by import-legacy.")
@click.option("--out", required=True, metavar="FILE|-",
              type=PathParam("file", "write", allow_dash=True),
              help="Output file, or - for stdout.")
@click.pass_context
def export_cmd(ctx: click.Context, fmt: str, data_dir: str | None, market: str,
               t_start: str | None, t_end: str | None, source: str, out: str) -> None:
    """Write stored positions as `liq_price,size_sol,t_bin` rows for the old scripts.

    `size_sol` is the position size in tokens of the market (SOL for SOL).

    Example:

    \b
        liqmap export --format legacy-csv --out data-sol_snapshots/sol_positions_log.csv
    """
    from liqmap.api import open_store

    store = open_store(open_store_dir(ctx, data_dir))
    rows = store.export_legacy_csv(out, market, t_start, t_end, source=source)
    if out != "-":
        click.echo(f"wrote {rows:,} rows to {out}")
