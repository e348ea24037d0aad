"""viewer.toml parsing (errors name the key) and the self-signed certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from viewer.config import ViewerConfig, ensure_certificate, load_config, parse_config
from viewer.errors import CertificateError, ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "viewer.example.toml"


def test_example_config_parses():
    config = load_config(EXAMPLE)
    assert config.default_language == "uk"
    assert config.broker is not None and config.broker.tls
    assert config.security.max_failed_logins <= 100


def test_defaults_without_broker(tmp_path):
    config = parse_config({"storage": {"state_dir": "state"}}, tmp_path)
    assert config.broker is None and config.port == 8443
    assert config.database_path == tmp_path / "state" / "viewer.db"


@pytest.mark.parametrize("raw, words", [
    ({"http": {"port": "80"}}, "[http] port: expected int"),
    ({"http": {"port": 70000}}, "[http] port"),
    ({"http": {"prot": 1}}, "unknown key(s): prot"),
    ({"tls": {"cert": "a.pem"}}, "set both cert and key"),
    ({"ui": {"default_language": "fr"}}, "[ui] default_language"),
    ({"security": {"max_failed_logins": 101}}, "NIST SP 800-63B"),
    ({"security": {"session_idle_s": 0}}, "[security] session_idle_s: must be positive"),
    ({"broker": {"port": 1883}}, "[broker] host: missing"),
    ({"broker": {"host": "b", "tls": "yes"}}, "[broker] tls: expected bool"),
    ({"broker": {"host": "b", "ca_file": "missing.pem"}}, "[broker] ca_file: no such file"),
    ({"health": {"offline_after_s": -1}}, "[health] offline_after_s"),
    ({"colour": "red"}, "unknown key(s): colour"),
])
def test_bad_values_name_the_key(raw, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, tmp_path)
    assert words in str(err.value)


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_self_signed_certificate_made_once_and_loadable(tmp_path):
    config = ViewerConfig(state_dir=tmp_path)
    tls = ensure_certificate(config)
    assert tls.key_path.stat().st_mode & 0o077 == 0
    stamp = tls.cert_path.stat().st_mtime_ns
    assert ensure_certificate(config).cert_path.stat().st_mtime_ns == stamp
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls.cert_path), str(tls.key_path))


def test_configured_certificate_must_exist(tmp_path):
    config = parse_config({"tls": {"cert": "c.pem", "key": "k.pem"}}, tmp_path)
    with pytest.raises(CertificateError, match="does not exist"):
        ensure_certificate(config)
