"""The `liqmap` command line: thin wrappers over library functions.

Commands are imported lazily so `liqmap --help` and `liqmap status` start fast. Any
`LiqmapError` becomes a one-line `Error: ...` and exit code 1 (traceback only with -v).
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from liqmap import __version__
from liqmap.cli.options import PathParam
from liqmap.errors import LiqmapError
from liqmap.logs import scrub, setup_logging

#: command name -> ("module:function" under liqmap.cli, one-line help for `liqmap --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("collect:collect_cmd", "Store every open position with its liquidation price, "
                                       "every minute."),
    "status": ("collect:status_cmd", "Snapshots, gaps and size of the store."),
    "compact": ("collect:compact_cmd", "Compact closed hours/days; clean interrupted writes."),
    "import-legacy": ("collect:import_legacy_cmd", "Load the old scripts' CSV log."),
    "export": ("collect:export_cmd", "Write stored positions in the old scripts' CSV format."),
    "heatmap": ("heatmap:heatmap_cmd", "Liquidation heatmap (time x price) as PNG or HTML."),
    "levels": ("heatmap:levels_cmd", "Liquidation map at one moment (longs below, shorts "
                                     "above)."),
    "backtest": ("backtest:backtest_cmd", "Backtest the liquidation-pressure hedge boost."),
    "simulate": ("demo:simulate_cmd", "Run a simulated Jupiter Perps market on a local node."),
    "demo": ("demo:demo_cmd", "The whole tool offline: simulate, collect, draw, backtest."),
    "serve": ("serve:serve_cmd", "The live liquidation page and API over the store."),
    "signal": ("signal:signal_cmd", "The hedge-boost rule live on the store; toggles to "
                                    "webhooks."),
    "recover": ("collect:recover_cmd", "Clean interrupted writes; find and quarantine damaged "
                                       "files."),
    "score": ("score:score_cmd", "Score the map against realized liquidations."),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[cmd_name][0].split(":")
        module = importlib.import_module(f"liqmap.cli.{module_name}")
        command: click.Command = getattr(module, attr)
        from liqmap.cli.options import harden

        return harden(command)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """Like click's, but every error is one line: `Error: <what> (see --help)`."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path} --help" if exc.ctx else "liqmap --help"
            click.echo(f"Error: {one_line(exc.format_message())} (see `{where}`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:  # Ctrl-C
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from COMMANDS without importing them (fast `liqmap --help`)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        """Turn LiqmapError, OSError (a full disk, a lost permission) and, as a last resort,
        any other exception into click's one-line `Error: ...` with exit code 1."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except LiqmapError as exc:
            _log_traceback(ctx)
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            _log_traceback(ctx)
            raise click.ClickException(describe_os_error(exc)) from exc
        except Exception as exc:  # a bug: still one line; -v shows the traceback
            _log_traceback(ctx)
            raise click.ClickException(f"internal error {type(exc).__name__}: {exc}; please "
                                       "report it (run with -v for the traceback)") from exc


def one_line(message: str) -> str:
    """Messages from libraries may hold newlines (pandas' parser errors do): one line, with
    every registered secret URL redacted (a library's message may quote the URL it used)."""
    return " ".join(scrub(message).split())


def _log_traceback(ctx: click.Context) -> None:
    if ctx.obj and ctx.obj.get("verbose"):
        logging.getLogger("liqmap").exception("failed")


#: errno -> what to do about it
_OS_FIXES = {
    errno.ENOSPC: "free space on that disk or write elsewhere; no partial file was left",
    errno.EDQUOT: "free space (disk quota) or write elsewhere; no partial file was left",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "fix the permissions or choose another path",
    errno.EPERM: "fix the permissions or choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a folder in the path is a file; check the path",
    errno.EISDIR: "give a file, not a directory",
}


def describe_os_error(exc: OSError) -> str:
    """One line: what the system said, about which file, and what to do."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    fix = _OS_FIXES.get(exc.errno or 0, "check the path and the disk")
    return f"{what}{where}; {fix}"


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="liqmap")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks on errors.")
@click.option("--config", "config_path", type=PathParam("file", "read"),
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
    try:
        return cli.main(args=argv, prog_name="liqmap")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
