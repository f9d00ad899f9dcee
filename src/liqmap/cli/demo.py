"""`liqmap simulate` and `liqmap demo`: thin wrappers over `liqmap.sim` and `liqmap.sim.demo`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from liqmap import constants as C
from liqmap.cli.options import COUNT, POSITIVE_COUNT, Number, PathParam
from liqmap.sim import params as SP


@contextmanager
def _signals_stop(stop: threading.Event, *, at_once: bool = False) -> Iterator[None]:
    """SIGTERM/SIGINT: set `stop` (finish the current minute, exit 0); a second signal, or the
    first with `at_once`, also raises KeyboardInterrupt (the node child is still ended)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if at_once or stop.is_set():
            stop.set()
            raise KeyboardInterrupt
        click.echo(f"{signal.Signals(signum).name}: stopping after this minute", err=True)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


#: The demo simulates minute by minute; more than a week is a job for `liqmap simulate`.
MAX_DEMO_HOURS = 168


def _markets(value: str) -> tuple[str, ...]:
    markets = tuple(dict.fromkeys(m.strip().upper() for m in value.split(",") if m.strip()))
    bad = [m for m in markets if m not in C.MARKETS]
    if bad or not markets:
        raise click.BadParameter(f"unknown market(s) {', '.join(bad) or value!r}; choose from "
                                 f"{', '.join(C.MARKETS)}", param_hint="--markets")
    return markets


def _new_file(path: str | None, flag: str) -> Path | None:
    """`path` if it names a new file in an existing directory, else a one-line error."""
    if path is None:
        return None
    target = Path(path)
    if target.exists():
        raise click.BadParameter(f"{path} exists; choose a new file (never overwritten)",
                                 param_hint=flag)
    if not target.parent.is_dir():
        raise click.BadParameter(f"the directory of {path} does not exist; create it first",
                                 param_hint=flag)
    return target


def _positions(value: int | None, markets: tuple[str, ...]) -> dict[str, int] | None:
    if value is None:
        return None
    if value < 0:
        raise click.BadParameter(f"must be >= 0, got {value}", param_hint="--positions")
    return {m: value for m in markets}


@click.command("simulate")
@click.option("--rpc-url", default=None, metavar="URL",
              help="Write into this running surfnet instead of starting one (use a fresh one).")
@click.option("--markets", default=",".join(C.MARKETS), show_default=True,
              metavar="SOL,ETH,BTC", help="Markets with traders.")
@click.option("--seed", type=COUNT, default=SP.DEFAULT_SEED, show_default=True,
              help="Seed of every random draw: same seed, same accounts.")
@click.option("--speed", "speed_s", type=Number(low=0, unit="seconds"),
              default=SP.DEFAULT_SPEED_S, show_default=True,
              help="Wall-clock seconds per simulated minute (>= 1 for a separate collector).")
@click.option("--minutes", type=POSITIVE_COUNT, default=None,
              help="Stop after this many simulated minutes (default: run until Ctrl-C).")
@click.option("--price-from", "price_file", type=PathParam("file", "read"), default=None,
              metavar="FILE", help="Replay a real price series: an npz with `spot_grid` or a "
                                   "CSV timestamp,price (one price per minute).")
@click.option("--price-market", default="SOL", show_default=True, metavar="SOL|ETH|BTC",
              help="The market whose prices --price-from holds (others use the model).")
@click.option("--positions", type=COUNT, default=None, metavar="N",
              help=f"Open positions per market (default {C.per_market(SP.DEFAULT_POSITIONS)}).")
@click.option("--closed-accounts", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="Extra closed Position accounts (size 0) spread over the "
                                "markets, as on mainnet (~10^5-10^6); written at minute 0. "
                                "The local node takes longer per account the more it holds "
                                "(~1 ms each at first, ~10 ms at 50,000): 40,000 load in "
                                "about 3 minutes.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write the ground truth (every liquidation and trader "
                                   "close, per minute) to this new CSV file.")
def simulate_cmd(rpc_url: str | None, markets: str, seed: int, speed_s: float,
                 minutes: int | None, price_file: str | None, price_market: str,
                 positions: int | None, closed_accounts: int, truth_path: str | None) -> None:
    """Run a simulated Jupiter Perps market on a local Solana node (surfnet), offline.

    Real pool, custody, oracle and Position accounts change every simulated minute (traders
    open, change and close positions; crossed positions are liquidated), and the chain clock
    moves one minute per --speed seconds, so `liqmap collect --clock chain` records
    minute-spaced snapshots. Ctrl-C or SIGTERM stops it and ends the node.

    \b
    Examples:
      liqmap simulate                # prints the RPC and WebSocket URLs of its node
      liqmap collect --rpc-url http://127.0.0.1:PORT --ws-url ws://127.0.0.1:PORT2 \\
          --clock chain --data-dir sim-data
      liqmap simulate --closed-accounts 40000   # mainnet-shaped: mostly closed accounts
      liqmap simulate --price-from liq_matrix_72h_1m.npz --markets SOL --minutes 600
      liqmap simulate --minutes 60 --truth truth.csv   # what it liquidated and closed
    """
    from liqmap.sim.market import SimConfig
    from liqmap.sim.prices import load_price_series
    from liqmap.sim.session import run_simulation

    chosen = _markets(markets)
    series = load_price_series(price_file) if price_file else None
    config = SimConfig(markets=chosen, seed=seed, positions=_positions(positions, chosen),
                       price_series=series, price_market=price_market.upper(),
                       closed_accounts=closed_accounts)
    stop = threading.Event()
    with _signals_stop(stop):
        run_simulation(config, rpc_url=rpc_url, speed_s=speed_s, minutes=minutes, stop=stop,
                       echo=click.echo, truth_path=_new_file(truth_path, "--truth"))


@click.command("demo")
@click.option("--out-dir", type=PathParam("dir", "write"), default="demo-out", show_default=True,
              metavar="DIR",
              help="Directory for every output: new, empty, or a previous demo's (its outputs "
                   "are replaced; nothing else in it is touched).")
@click.option("--hours", type=Number(low=0, low_open=True, high=MAX_DEMO_HOURS, unit="hours"),
              default=3.0, show_default=True,
              help="Simulated hours to collect (one snapshot per simulated minute).")
@click.option("--seed", type=COUNT, default=None,
              help="Seed of the simulated market (default: one with a sell-off).")
@click.option("--positions", type=COUNT, default=None, metavar="N",
              help=f"Open positions per market (default {C.per_market(SP.DEFAULT_POSITIONS)}).")
@click.option("--no-serve", "no_serve", is_flag=True,
              help="Stop after the outputs instead of serving the live page.")
@click.option("--port", type=click.IntRange(0, 65535), default=C.SERVE_DEFAULT_PORT,
              show_default=True, help="Port of the live page on 127.0.0.1 (0: any free port).")
def demo_cmd(out_dir: str, hours: float, seed: int | None,
             positions: int | None, no_serve: bool, port: int) -> None:
    """The whole tool offline in about a minute: simulate a market on a local Solana node,
    collect it, draw the heatmap (PNG, HTML) and the liquidation levels, run a backtest,
    then serve the live page on the store while the simulated market goes on.

    Writes into ./demo-out (--out-dir): the store (demo-out/store, for every command's
    --data-dir), the pictures, the backtest and score, and the old tool's files: its CSV log
    (demo-out/data-sol_snapshots), an npz matrix and a desk hedge log. A re-run replaces them.
    Needs Node.js and `npm ci` (the local node), no network and no RPC key. Ctrl-C stops it
    and ends the node and the server.

    \b
    Examples:
      liqmap demo
      liqmap heatmap --data-dir demo-out/store --t-start -2h --out h.html
      liqmap demo --out-dir demo6 --hours 6 --seed 7 --no-serve
    """
    from liqmap.sim.demo import DEMO_SEED, DemoOutputs, check_node, check_out_dir, run_demo

    sock = None
    if not no_serve:  # the port is taken before the long run, so a busy one fails at once
        from liqmap.serve import bind

        check_out_dir(out_dir)
        check_node()
        sock = bind(C.SERVE_DEFAULT_HOST, port)

    def summary(outputs: DemoOutputs) -> None:
        click.echo(f"\ndone in {outputs.seconds:.0f} s: {outputs.minutes} minutes collected, "
                   f"{outputs.liquidations} liquidations. Outputs:")
        for line in outputs.lines():
            click.echo(f"  {line}")

    def serve(outputs: DemoOutputs) -> None:
        from liqmap.serve import ServeConfig, run_server

        summary(outputs)
        run_server(ServeConfig(data_dir=str(outputs.store_dir), port=port), sock=sock,
                   on_ready=lambda url: click.echo(
                       f"\nlive page: {url} (the simulated market goes on; Ctrl-C stops the "
                       "node and the server)"))

    interrupted = threading.Event()
    try:
        with _signals_stop(interrupted, at_once=True):
            outputs = run_demo(out_dir, hours=hours, seed=DEMO_SEED if seed is None else seed,
                               positions=_positions(positions, C.MARKETS), echo=click.echo,
                               serve=None if no_serve else serve, interrupted=interrupted)
    finally:
        if sock is not None:
            sock.close()
    if interrupted.is_set():  # its KeyboardInterrupt was lost, after the last step
        raise click.exceptions.Abort
    if no_serve:
        summary(outputs)
