"""`liqmap signal`: the backtest's rule on each new stored minute, toggles to webhooks."""

from __future__ import annotations

import logging
import time
from typing import Any

import click

from liqmap import constants as C
from liqmap.cli.backtest import _rule_keywords, rule_options
from liqmap.cli.options import data_dir_option, market_option, settings_from
from liqmap.errors import InputError, StorageError

_EPILOG = """\b
Examples:
  liqmap signal --data-dir demo-out/store --once
  liqmap signal --webhook https://hooks.slack.com/services/T0/B0/XX --webhook-format slack
  liqmap signal --market ETH --threshold-quantile 0.95 --webhook http://127.0.0.1:9000/hook
"""


@click.command("signal", epilog=_EPILOG)
@data_dir_option
@market_option
@click.option("--bin", "bin_usd", type=float, default=None,
              help="Price bin width (USD) of the matrix (default: "
                   f"{C.per_market(C.DEFAULT_BIN_USD_BY_MARKET)}).")
@click.option("--target", "target_ratio", type=float, default=1.0, show_default=True,
              help="Hedge ratio without the boost (the suggested ratio adds ±--boost).")
@rule_options
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="POST every toggle here (repeat for several).")
@click.option("--webhook-format", type=click.Choice(["json", "slack", "discord", "telegram"]),
              default="json", show_default=True, help="Message body of the webhooks.")
@click.option("--poll", "poll_s", type=float, default=5.0, show_default=True,
              help="Seconds between looks at the store for a new minute.")
@click.option("--once", is_flag=True, help="Evaluate what is stored, deliver, print, exit.")
@click.pass_context
def signal_cmd(ctx: click.Context, **opts: Any) -> None:
    """Run the hedge-boost rule live on the store and alert on every toggle.

    Prints one line per new minute: window sums, θ, state and the suggested hedge ratio. After
    a restart the state is rebuilt from the stored minutes and the alert log, so no toggle is
    lost or posted twice (payloads carry an idempotency key).
    """
    from liqmap.backtest.live import SignalRunner, Webhook, config_from

    rule = {k: v for k, v in _rule_keywords({**opts, "legacy_formulas": False}).items()
            if k not in ("legacy_formulas",)}
    if not opts["poll_s"] > 0:
        raise InputError(f"--poll {opts['poll_s']:g} must be > 0 seconds")
    for n, url in enumerate(opts["webhooks"], 1):
        if not url.startswith(("http://", "https://")):  # the URL itself may hold a token
            raise InputError(f"--webhook number {n} is not an http(s) URL; pass "
                             "https://host/path")
    config = config_from(opts["market"], bin_usd=opts["bin_usd"],
                         target_ratio=opts["target_ratio"], **rule)
    root = str(settings_from(ctx, data_dir=opts["data_dir"]).data_dir)
    runner = SignalRunner(root, config, [Webhook(u, opts["webhook_format"])
                                         for u in opts["webhooks"]], echo=click.echo)
    runner.start()
    if runner.last is not None:
        click.echo(runner.last.line(config.market))
    if opts["once"]:
        return
    while True:
        time.sleep(opts["poll_s"])
        try:
            runner.poll()
        except StorageError as exc:  # e.g. a file compacted away mid-read: try next poll
            logging.getLogger("liqmap.signal").warning("store read failed, retrying: %s", exc)
