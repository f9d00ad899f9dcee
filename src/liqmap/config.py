"""Settings resolved once: flags > environment (`LIQMAP_*`) > `liqmap.toml` > defaults.

The result is a frozen `Settings` passed down explicitly. RPC URLs often embed API keys, so
`redact_url` is what every log line and error message shows instead of the URL itself.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from liqmap import constants as C
from liqmap.errors import ConfigError, InputError
from liqmap.validate import Bounds, check_data_dir, check_number, check_text_file, suggest


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where data comes from and goes to."""

    #: secrets (API keys in paths or queries): left out of repr, `describe` redacts them
    rpc_urls: tuple[str, ...] = field(default=(C.DEFAULT_RPC_URL,), repr=False)
    data_dir: str = C.DEFAULT_DATA_DIR
    markets: tuple[str, ...] = C.MARKETS
    interval_s: float = C.DEFAULT_INTERVAL_S
    timeout_s: float = C.DEFAULT_TIMEOUT_S
    gpa_timeout_s: float = C.DEFAULT_GPA_TIMEOUT_S
    max_retries: int = C.DEFAULT_MAX_RETRIES
    backoff_s: float = C.DEFAULT_BACKOFF_S
    clock: str = "wall"  # "wall": schedule on this machine's clock; "chain": on the Clock sysvar
    log_level: str = "INFO"
    mode: str = "stream"  # "stream": live book over WebSocket; "poll": full scan per snapshot
    #: paired with rpc_urls in order; missing ones derived (left out of repr as rpc_urls)
    ws_urls: tuple[str, ...] = field(default=(), repr=False)
    resync_s: float = C.DEFAULT_RESYNC_S
    #: on-chain confirmation of detected liquidations: requests per second, 0 = off
    confirm_rps: float = C.DEFAULT_CONFIRM_RPS
    #: setting name -> where its value came from (flags, environment, a file)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        """One line safe for logs (URLs redacted)."""
        urls = ", ".join(redact_url(u) for u in self.rpc_urls)
        line = (f"rpc=[{urls}] data_dir={self.data_dir} markets={','.join(self.markets)} "
                f"interval={self.interval_s:g}s clock={self.clock} mode={self.mode}")
        if self.mode == "stream":
            ws = ", ".join(redact_url(u) for u in self.ws_urls) or "derived from rpc"
            line += f" ws=[{ws}] resync={self.resync_s:g}s"
        return line


_ENV_KEYS = {
    "rpc_urls": "RPC_URL", "data_dir": "DATA_DIR", "markets": "MARKETS",
    "interval_s": "INTERVAL", "timeout_s": "TIMEOUT", "gpa_timeout_s": "GPA_TIMEOUT",
    "max_retries": "MAX_RETRIES", "backoff_s": "BACKOFF", "clock": "CLOCK",
    "log_level": "LOG_LEVEL", "mode": "MODE", "ws_urls": "WS_URL", "resync_s": "RESYNC",
    "confirm_rps": "CONFIRM_RPS",
}
_TOML_KEYS = {
    "rpc_urls": ("rpc_url", "rpc_urls"), "data_dir": ("data_dir",), "markets": ("markets",),
    "interval_s": ("interval",), "timeout_s": ("timeout",), "gpa_timeout_s": ("gpa_timeout",),
    "max_retries": ("max_retries",), "backoff_s": ("backoff",), "clock": ("clock",),
    "log_level": ("log_level",), "mode": ("mode",), "ws_urls": ("ws_url", "ws_urls"),
    "resync_s": ("resync",), "confirm_rps": ("confirm_rps",),
}


#: What `redact_url` shows for a URL whose host or port does not parse.
UNPARSABLE = "<unparsable url>"


def redact_url(url: str) -> str:
    """Show scheme, host and port only; any path, query or user info may hold an API key.

    >>> redact_url("https://mainnet.helius-rpc.com/?api-key=abc123")
    'https://mainnet.helius-rpc.com/***'
    >>> redact_url("http://127.0.0.1:8899")
    'http://127.0.0.1:8899'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return UNPARSABLE
    if not parts.scheme or not host:
        return UNPARSABLE
    hidden = bool(parts.path.strip("/") or parts.query or parts.fragment or parts.username)
    return f"{parts.scheme}://{host}{port}" + ("/***" if hidden else "")


#: A URL inside free text (an exception message), up to a space, quote or bracket; a
#: sentence's punctuation after it (`url: msg`, `url.`) is not part of it.
_URL_IN_TEXT = re.compile(r"""\b(?:https?|wss?)://[^\s'"<>()\[\]]*[^\s'"<>()\[\].,;:!?]""")


def redact_urls(text: str) -> str:
    """Every http(s)/ws(s) URL in `text` by its `redact_url` form: a library's message may
    quote a URL liqmap never registered (a redirect's target, a derived WebSocket URL).

    >>> redact_urls("cannot follow redirect to wss://x.example/KEY (307); http://127.0.0.1:8899 ok")
    'cannot follow redirect to wss://x.example/*** (307); http://127.0.0.1:8899 ok'
    """
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _split_list(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    else:
        raise ConfigError(f"{what} must be a string or a list, got {type(value).__name__}")
    items = [v for v in items if v]
    if not items:
        raise ConfigError(f"{what} is empty; give at least one value")
    return tuple(items)


def _url_list(what: str, *schemes: str) -> Callable[[Any, str], tuple[str, ...]]:
    """A list of URLs (`what`: "RPC URL") whose scheme is one of `schemes`."""
    prefixes = tuple(f"{scheme}://" for scheme in schemes)

    def coerce(value: Any, origin: str) -> tuple[str, ...]:
        urls = _split_list(value, f"{what} ({origin})")
        for u in urls:
            if not u.startswith(prefixes):
                raise ConfigError(f"{what} {redact_url(u)} ({origin}) must start with "
                                  + " or ".join(prefixes))
            if redact_url(u) == UNPARSABLE:  # the text may hold a key: none of it is shown
                raise ConfigError(f"an {what} ({origin}) does not parse (its host or port); "
                                  f"fix it to {schemes[-1]}://host[:port][/path]")
        return urls
    return coerce


_urls = _url_list("RPC URL", "http", "https")
_ws_urls = _url_list("WebSocket URL", "ws", "wss")


def _markets(value: Any, origin: str) -> tuple[str, ...]:
    markets = tuple(m.upper() for m in _split_list(value, f"markets ({origin})"))
    bad = [m for m in markets if m not in C.MARKETS]
    if bad:
        raise ConfigError(f"unknown market {', '.join(bad)} ({origin}); "
                          f"choose from {', '.join(C.MARKETS)}")
    return markets


def _number(bounds: Bounds) -> Any:
    """A coercer: a finite number in `bounds` (the same check as the command-line options)."""
    def coerce(value: Any, origin: str) -> float | int:
        return check_number(value, bounds)
    return coerce


#: Snapshots are named to the second, so the interval is a whole number of seconds.
_INTERVAL = Bounds(low=1, whole=True, unit="seconds")
_SECONDS = Bounds(low=0, low_open=True, unit="seconds")


def _text(value: Any, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"expected text, got {type(value).__name__} {value!r}")
    return value


def _choice(name: str, *choices: str) -> Callable[[Any, str], str]:
    """A setting that is one of `choices` (text, any case)."""
    def coerce(value: Any, origin: str) -> str:
        picked = _text(value, origin).lower()
        if picked not in choices:
            raise ConfigError(f"{name} ({origin}) must be "
                              + " or ".join(repr(c) for c in choices) + f", got {value!r}")
        return picked
    return coerce



_COERCE = {
    "rpc_urls": _urls, "markets": _markets, "interval_s": _number(_INTERVAL),
    "timeout_s": _number(_SECONDS), "gpa_timeout_s": _number(_SECONDS),
    "backoff_s": _number(_SECONDS), "max_retries": _number(Bounds(low=0, whole=True)),
    "clock": _choice("clock", "wall", "chain"), "log_level": lambda v, o: _text(v, o).upper(),
    "data_dir": lambda v, o: check_data_dir(_text(v, o)),
    "confirm_rps": _number(Bounds(low=0, high=C.MAX_CONFIRM_RPS, unit="requests per second")),
    "mode": _choice("mode", "stream", "poll"), "ws_urls": _ws_urls, "resync_s": _number(_SECONDS),
}
#: liqmap.toml key -> Settings field (the file's names, as in the README).
_FIELD_BY_TOML_KEY = {k: name for name, keys in _TOML_KEYS.items() for k in keys}
_SETTING_NAME = {name: keys[0] for name, keys in _TOML_KEYS.items()}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a raw flag/env/TOML value into the field's type, with a message naming the fix."""
    what = _SETTING_NAME.get(name, name)
    try:
        return _COERCE[name](value, origin)
    except ConfigError:
        raise
    except InputError as exc:
        raise ConfigError(f"{what} ({origin}): {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {what} ({origin}): {value!r}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        check_text_file(path, "a liqmap.toml settings file")
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (binary data); give a liqmap.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    section = raw.get("liqmap", raw)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [liqmap] must be a table")
    if section is not raw:
        others = [k for k in raw if k != "liqmap"]
        if others:
            raise ConfigError(f"{path}: {others[0]!r} outside [liqmap]; put every setting "
                              "under [liqmap], or drop the [liqmap] header")
    _check_keys(path, section)
    return section


def _check_keys(path: Path, section: dict[str, Any]) -> None:
    """Refuse unknown keys and tables (a misspelt `rpc_url` would silently mean the public
    endpoint), naming the closest known key."""
    for key, value in section.items():
        if key in _FIELD_BY_TOML_KEY:
            continue
        what = "table" if isinstance(value, dict) else "key"
        known = ", ".join(sorted(_FIELD_BY_TOML_KEY))
        raise ConfigError(f"{path}: unknown {what} {key!r}{suggest(key, _FIELD_BY_TOML_KEY)}; "
                          f"known keys: {known}")


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: `flags` (None values ignored) > `LIQMAP_*` env > TOML > defaults.

    The TOML file is `config_path`, else `$LIQMAP_CONFIG`, else `./liqmap.toml` if present;
    keys may sit at top level or under `[liqmap]`.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path_str = config_path or env.get(C.ENV_PREFIX + "CONFIG")
    path = Path(path_str) if path_str else Path(C.CONFIG_FILE_NAME)
    if path_str and not path.is_file():
        raise ConfigError(f"config file {path} does not exist; fix --config or LIQMAP_CONFIG")
    layers: list[tuple[str, dict[str, Any]]] = []
    if path.is_file():
        toml = _read_toml(path)
        layers.append((str(path), {n: toml[k] for n, ks in _TOML_KEYS.items() for k in ks
                                   if k in toml}))
    layers.append(("environment", {n: env[C.ENV_PREFIX + k] for n, k in _ENV_KEYS.items()
                                   if env.get(C.ENV_PREFIX + k)}))
    layers.append(("flags", {k: v for k, v in (flags or {}).items()
                             if v is not None and v != ()}))
    known = {f.name for f in fields(Settings)} - {"sources"}
    for origin, layer in layers:
        for name, raw in layer.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r} ({origin})")
            values[name] = _coerce(name, raw, origin)
            sources[name] = origin
    return Settings(**values, sources=sources)
