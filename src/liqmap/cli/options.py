"""Options shared by several commands, defined once."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from liqmap import constants as C
from liqmap.config import Settings, load_settings
from liqmap.errors import InputError
from liqmap.validate import (
    Bounds,
    check_data_dir,
    check_input_dir,
    check_input_file,
    check_kind,
    check_number,
    check_output_dir,
    check_output_file,
    check_time_zone,
    is_uri,
)

F = TypeVar("F", bound=Callable[..., Any])
#: Relative times (`liqmap.timeutil`; not imported here: it loads pandas).
RELATIVE_HELP = "or a time before the newest snapshot: -6h, -90min, -2d"


def data_dir_option(f: F) -> F:
    return click.option(
        "--data-dir", default=None, metavar="PATH|URI", type=PathParam("dir", "store"),
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
                     help="Last minute included, ISO 8601 (UTC unless an offset is given), "
                          f"{RELATIVE_HELP}.")(f)
    f = click.option("--t-start", default=None, metavar="TIME",
                     help="First minute included, ISO 8601 (UTC unless an offset is given), "
                          f"{RELATIVE_HELP}.")(f)
    return f


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings for a command: its flags over env over liqmap.toml over defaults."""
    root = ctx.find_root()
    config_path = (root.obj or {}).get("config_path")
    return load_settings(flags, config_path=config_path)


# ------------------------------------------------------------------ one validation layer
class Number(click.ParamType):
    """A finite number inside `bounds` (see `liqmap.validate.Bounds`); an int when whole."""

    def __init__(self, bounds: Bounds | None = None, **kwargs: Any) -> None:
        self.bounds = bounds if bounds is not None else Bounds(**kwargs)
        self.name = "integer" if self.bounds.whole else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and self.bounds.contains(value) and math.isfinite(value):
            return int(value) if self.bounds.whole else float(value)  # a default
        try:
            return check_number(value, self.bounds)
        except InputError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INTEGER" if self.bounds.whole else "FLOAT"


class TimeZone(click.ParamType):
    """An IANA time zone name."""

    name = "zone"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        try:
            return check_time_zone(str(value))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class PathParam(click.ParamType):
    """A local path checked for what the command does with it: `kind` "file" or "dir", `mode`
    "read" (must exist) or "write" (its folder must exist and be writable); `allow_dash` lets
    "-" mean stdin/stdout. `data_dir` accepts URIs and refuses an existing file."""

    _CHECKS: ClassVar[dict[tuple[str, str], Callable[[str], object]]] = {
               ("file", "read"): check_input_file, ("dir", "read"): check_input_dir,
               ("file", "write"): check_output_file, ("dir", "write"): check_output_dir,
               ("dir", "store"): check_data_dir,
               ("file", "any"): lambda p: check_kind(p, "file"),
               ("dir", "any"): lambda p: check_kind(p, "dir")}

    def __init__(self, kind: str, mode: str, *, allow_dash: bool = False) -> None:
        self.kind, self.mode, self.allow_dash = kind, mode, allow_dash
        self.name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        text = os.fspath(value)
        if self.allow_dash and text == "-":
            return text
        try:
            self._CHECKS[(self.kind, self.mode)](text)
        except InputError as exc:
            self.fail(str(exc), param, ctx)
        return text


def upgrade_type(param_type: click.ParamType) -> click.ParamType:
    """Our checked equivalent of a plain click type (float and int refuse nan/inf and keep any
    range; Path keeps its exists/file/dir flags), or `param_type` itself."""
    if isinstance(param_type, click.FloatRange | click.IntRange):
        whole = isinstance(param_type, click.IntRange)
        return Number(Bounds(low=param_type.min, high=param_type.max, whole=whole,
                             low_open=param_type.min_open, high_open=param_type.max_open))
    if isinstance(param_type, click.types.FloatParamType):
        return Number()
    if isinstance(param_type, click.types.IntParamType):
        return Number(whole=True)
    if isinstance(param_type, click.Path) and not isinstance(param_type, PathParam):
        kind = "dir" if not param_type.file_okay else "file"
        mode = "read" if param_type.exists else "any"
        return PathParam(kind, mode, allow_dash=param_type.allow_dash)
    return param_type


def harden(command: click.Command) -> click.Command:
    """Give every option and argument of `command` (and of its subcommands) a checked type, so a
    command added later is covered without remembering to. Idempotent."""
    for param in command.params:
        param.type = upgrade_type(param.type)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            harden(sub)
    return command


def open_store_dir(ctx: click.Context, data_dir: str | None, *, must_exist: bool = True) -> str:
    """The store root from settings; for reading commands a local root must exist."""
    root = settings_from(ctx, data_dir=data_dir).data_dir
    if must_exist and not is_uri(root) and not Path(root).is_dir():
        raise InputError(f"no store at {root}; run `liqmap collect` first or fix --data-dir")
    return root


#: Types of the numbers commands share.
SECONDS = Number(low=0, low_open=True, unit="seconds")
INTERVAL_S = Number(low=1, whole=True, unit="seconds")
COUNT = Number(low=0, whole=True)
POSITIVE_COUNT = Number(low=1, whole=True)
USD = Number(low=0, low_open=True, unit="USD")
PRICE_USD = Number(low=0, unit="USD")
