"""The `liqmap` command line: thin wrappers over library functions.

Commands are imported lazily so `liqmap --help` and `liqmap status` start fast. Any
`LiqmapError` becomes a one-line `Error: ...` and exit code 1 (traceback only with -v).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from liqmap import __version__
from liqmap.errors import LiqmapError
from liqmap.logs import setup_logging

#: command name -> "module:function" (module under liqmap.cli)
COMMANDS: dict[str, str] = {
    "collect": "collect:collect_cmd",
    "status": "collect:status_cmd",
    "compact": "collect:compact_cmd",
    "import-legacy": "collect:import_legacy_cmd",
    "export": "collect:export_cmd",
    "heatmap": "heatmap:heatmap_cmd",
    "levels": "heatmap:levels_cmd",
    "backtest": "backtest:backtest_cmd",
    "simulate": "demo:simulate_cmd",
    "demo": "demo:demo_cmd",
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"liqmap.cli.{module_name}")
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="liqmap")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks on errors.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (default ./liqmap.toml or $LIQMAP_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, config_path: str | None) -> None:
    """Jupiter Perps liquidation heatmaps: collect positions from chain, draw, backtest."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    ctx.obj["config_path"] = config_path
    setup_logging("DEBUG" if verbose else None)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `liqmap` console script and `python -m liqmap`."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="liqmap", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LiqmapError as exc:
        if verbose:
            logging.getLogger("liqmap").exception("failed")
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
