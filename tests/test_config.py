"""Settings precedence (flags > env > liqmap.toml > defaults), validation and redaction."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from liqmap import constants as C
from liqmap.cli import cli
from liqmap.config import load_settings, redact_url
from liqmap.errors import ConfigError
from liqmap.logs import ScrubFilter, register_secret_url


def test_defaults_without_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.rpc_urls == (C.DEFAULT_RPC_URL,)
    assert settings.markets == ("SOL", "ETH", "BTC") and settings.interval_s == 60


def test_precedence_flags_env_file(tmp_path: Path) -> None:
    toml = tmp_path / "liqmap.toml"
    toml.write_text('[liqmap]\nrpc_url = ["https://a.example/k1", "https://b.example"]\n'
                    'markets = "SOL,ETH"\ninterval = 120\ndata_dir = "/srv/file"\n')
    env = {"LIQMAP_RPC_URL": "https://env.example/?api-key=E", "LIQMAP_INTERVAL": "30"}
    from_file = load_settings(config_path=toml, environ={})
    assert from_file.rpc_urls == ("https://a.example/k1", "https://b.example")
    assert from_file.markets == ("SOL", "ETH") and from_file.data_dir == "/srv/file"
    from_env = load_settings(config_path=toml, environ=env)
    assert from_env.rpc_urls == ("https://env.example/?api-key=E",)
    assert from_env.interval_s == 30 and from_env.sources["interval_s"] == "environment"
    flagged = load_settings({"interval_s": 300, "data_dir": "/flag"}, config_path=toml,
                            environ=env)
    assert flagged.interval_s == 300 and flagged.data_dir == "/flag"
    assert flagged.rpc_urls == ("https://env.example/?api-key=E",)


@pytest.mark.parametrize(("flags", "message"), [
    ({"markets": "SOL,DOGE"}, "unknown market DOGE"),
    ({"interval_s": 0.5}, "whole number of seconds"),
    ({"rpc_urls": "ftp://x"}, "must start with http"),
    ({"clock": "sundial"}, "'wall' or 'chain'"),
    ({"max_retries": -1}, ">= 0"),
])
def test_bad_values_name_the_fix(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, environ={})


def test_broken_config_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "liqmap.toml"
    bad.write_text("interval = [1,\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_path=bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_path=tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize(("url", "shown"), [
    ("https://mainnet.helius-rpc.com/?api-key=abc", "https://mainnet.helius-rpc.com/***"),
    ("https://x.solana-mainnet.quiknode.pro/abcdef0123/", "https://x.solana-mainnet.quiknode.pro/***"),
    ("https://user:pw@rpc.example:8443", "https://rpc.example:8443/***"),
    ("http://127.0.0.1:8899", "http://127.0.0.1:8899"),
])
def test_redaction(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_log_records_are_scrubbed() -> None:
    register_secret_url("https://rpc.example/v1/SUPERSECRET")
    record = logging.LogRecord("liqmap", logging.ERROR, __file__, 1,
                               "failed on %s", ("https://rpc.example/v1/SUPERSECRET",), None)
    ScrubFilter().filter(record)
    assert "SUPERSECRET" not in record.getMessage()
    assert "https://rpc.example/***" in record.getMessage()


def test_cli_rejects_bad_flags_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["collect", "--once", "--markets", "XRP",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: unknown market XRP (flags); choose from "
                                     "SOL, ETH, BTC")
    assert not any(tmp_path.iterdir())


SECRET_RPC = "https://rpc.example/v1/SUPERSECRET-KEY"


def test_settings_and_server_config_reprs_hide_secrets() -> None:
    """A repr (a debugger, a test failure, a `%r` in a log line) shows no key or token."""
    from liqmap.backtest.live import Webhook
    from liqmap.collect.rpc.transport import _Endpoint
    from liqmap.serve.app import ServeConfig

    settings = load_settings({"rpc_urls": SECRET_RPC,
                              "ws_urls": "wss://rpc.example/v1/SUPERSECRET-KEY"}, environ={})
    token = "SUPERSECRET-TOKEN-0123456789"
    hook = "https://hooks.slack.com/services/T0/B0/SUPERSECRET"
    for obj in (settings, _Endpoint(SECRET_RPC), ServeConfig("/tmp/x", token=token),
                Webhook(hook)):
        assert "SUPERSECRET" not in repr(obj), repr(obj)
    assert settings.rpc_urls == (SECRET_RPC,)  # still there to use
    assert "https://rpc.example/***" in settings.describe()


@pytest.mark.parametrize("url", ["https://rpc.example:xyz/?api-key=SUPERSECRET",
                                 "https://rpc.example:99999/SUPERSECRET/", "https:///SUPERSECRET"])
def test_an_rpc_url_that_does_not_parse_is_refused_without_showing_it(url: str) -> None:
    """Refused up front (it used to start and fail each cycle), and no part of it is shown."""
    fix = r"does not parse.*fix it to https://host\[:port\]"
    with pytest.raises(ConfigError, match=fix) as caught:
        load_settings({"rpc_urls": url}, environ={})
    assert "SUPERSECRET" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"wss://host") as caught:
        load_settings({"ws_urls": url.replace("https", "wss")}, environ={})
    assert "SUPERSECRET" not in str(caught.value)


def test_cli_error_lines_redact_registered_urls() -> None:
    from liqmap.cli import one_line

    register_secret_url(SECRET_RPC)
    assert one_line(f"failed:\n  {SECRET_RPC} said no") == "failed: https://rpc.example/*** said no"


def test_an_error_that_ends_a_thread_is_logged_scrubbed() -> None:
    """`serve --collect` runs the collector in a thread: an error escaping it is logged through
    liqmap's scrubbing handler, not printed raw by Python's thread hook."""
    import subprocess
    import sys

    code = f"""
import threading
from liqmap.logs import register_secret_url, setup_logging
setup_logging()
register_secret_url({SECRET_RPC!r})
def fail():
    raise RuntimeError("connect to {SECRET_RPC} failed")
thread = threading.Thread(target=fail, name="liqmap-collect")
thread.start()
thread.join()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "SUPERSECRET" not in done.stderr, done.stderr
    assert "thread liqmap-collect stopped on an error" in done.stderr
    assert "RuntimeError: connect to https://rpc.example/*** failed" in done.stderr


def test_urls_nobody_registered_are_redacted_in_logs_too() -> None:
    """websockets names a redirect's target in its message; no one registered that URL."""
    record = logging.LogRecord("liqmap", logging.WARNING, __file__, 1, "WebSocket %s: %s", (
        "wss://rpc.example/***", "InvalidHandshake: cannot follow redirect to "
        "wss://other.example/v2/SUPERSECRET?x=1 (307)"), None)
    ScrubFilter().filter(record)
    assert "SUPERSECRET" not in record.getMessage()
    assert "redirect to wss://other.example/*** (307)" in record.getMessage()


def test_webhook_and_endpoint_texts_are_redacted() -> None:
    """A webhook shows its host only (chat webhooks keep their secret in the path); an RPC
    error text bound for the endpoint report on disk hides any URL it quotes, the endpoint's
    own and a redirect's target."""
    from liqmap.backtest.live import Webhook
    from liqmap.collect.rpc.transport import _Endpoint, _scrub

    assert Webhook("https://hooks.slack.com/services/T0/B0/SUPERSECRET").redacted() == \
        "https://hooks.slack.com/***"
    assert Webhook("http://127.0.0.1:8765").redacted() == "http://127.0.0.1:8765/***"
    ep = _Endpoint(SECRET_RPC)
    text = _scrub(f"307 from {SECRET_RPC}: redirect to https://other.example/SUPERSECRET2", ep)
    assert "SUPERSECRET" not in text
    assert text == "307 from https://rpc.example/***: redirect to https://other.example/***"
