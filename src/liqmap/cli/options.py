"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from liqmap import constants as C
from liqmap.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def data_dir_option(f: F) -> F:
    return click.option(
        "--data-dir", default=None, metavar="PATH|URI",
        help=f"Store root: a directory or an fsspec/pyarrow URI such as s3://bucket/liqmap "
             f"(default: settings, else {C.DEFAULT_DATA_DIR}).")(f)


def market_option(f: F) -> F:
    return click.option(
        "--market", default="SOL", show_default=True, metavar="SOL|ETH|BTC",
        callback=_check_market, help="Market (traded asset).")(f)


def _check_market(ctx: click.Context, param: click.Parameter, value: str) -> str:
    market = value.upper()
    if market not in C.MARKETS:
        raise click.BadParameter(f"unknown market {value!r}; choose one of {', '.join(C.MARKETS)}")
    return market


def window_options(f: F) -> F:
    f = click.option("--t-end", default=None, metavar="TIME",
                     help="Last minute included, ISO 8601 (UTC unless an offset is given).")(f)
    f = click.option("--t-start", default=None, metavar="TIME",
                     help="First minute included, ISO 8601 (UTC unless an offset is given).")(f)
    return f


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings for a command: its flags over env over liqmap.toml over defaults."""
    root = ctx.find_root()
    config_path = (root.obj or {}).get("config_path")
    return load_settings(flags, config_path=config_path)
