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
