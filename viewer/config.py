"""viewer.toml into frozen dataclasses; a self-signed certificate when none is configured."""

from __future__ import annotations

import logging
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from police_link.errors import SettingsError
from police_link.settings import BrokerSettings
from viewer.errors import CertificateError, ConfigError

log = logging.getLogger(__name__)

LANGUAGES = ("uk", "en")
MAX_FAILED_LOGINS_LIMIT = 100  # NIST SP 800-63B: lock out after at most 100 failures


@dataclass(frozen=True)
class TlsConfig:
    cert_path: Path | None = None  # None: generate a self-signed one in state_dir
    key_path: Path | None = None


@dataclass(frozen=True)
class SecurityConfig:
    session_idle_s: float = 8 * 3600.0  # a duty shift
    session_max_s: float = 24 * 3600.0
    max_failed_logins: int = 20  # consecutive failures before the account is locked
    throttle_free_failures: int = 3  # failures allowed before delays start
    throttle_base_delay_s: float = 1.0  # doubles with every further failure
    throttle_max_delay_s: float = 300.0


@dataclass(frozen=True)
class ViewerConfig:
    listen: str = "0.0.0.0"
    port: int = 8443
    tls: TlsConfig = field(default_factory=TlsConfig)
    state_dir: Path = Path("/var/lib/dozor-viewer")
    database_path: Path = Path("/var/lib/dozor-viewer/viewer.db")
    alert_retain_days: float = 90.0  # alerts, snapshots and acknowledgements; audit is kept
    broker: BrokerSettings | None = None  # None: run without a broker (tests, set-up)
    default_language: str = "uk"
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # A site silent this long is shown offline even before its will arrives; 0 = rely on
    # the will alone. Set it to about 3x the sites' stats interval.
    health_offline_after_s: float = 0.0
    health_disk_low_free_bytes: int = 1024**3  # below this the board says "disk nearly full"


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.pop(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # bool is a subclass of int
        raise ConfigError(f"{where}{key}: expected {_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: expected {_name(kind)}, got {type(value).__name__}")
    return value


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.pop(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}]: expected a table")
    return dict(value)


def _no_leftovers(table: dict[str, Any], where: str) -> None:
    if table:
        raise ConfigError(f"{where}unknown key(s): {', '.join(sorted(table))}")


def _port(value: int, where: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{where}: port {value} out of range 0..65535")
    return value


def _positive(value: float, where: str) -> float:
    if value <= 0:
        raise ConfigError(f"{where}: must be positive, got {value}")
    return float(value)


_BROKER_KEYS: dict[str, type | tuple[type, ...]] = {
    "host": str, "port": int, "tls": bool, "ca_file": str, "cert_file": str, "key_file": str,
    "username": str, "password": str, "prefix": str, "keepalive_s": int, "client_id": str,
}


def _broker(table: dict[str, Any], path: Any) -> BrokerSettings:
    kwargs: dict[str, Any] = {"client_id": "dozor-viewer"}
    for key, kind in _BROKER_KEYS.items():
        if key in table:
            value = _take(table, key, kind, "[broker] ")
            kwargs[key] = str(path(value)) if key.endswith("_file") else value
    _no_leftovers(table, "[broker] ")
    if "host" not in kwargs:
        raise ConfigError("[broker] host: missing")
    try:
        return BrokerSettings(**kwargs)
    except SettingsError as err:
        raise ConfigError(f"[broker] {err.field}: {err.problem}") from err


def parse_config(raw: dict[str, Any], base_dir: Path) -> ViewerConfig:
    """Build a ViewerConfig from parsed TOML; relative paths are taken from base_dir."""
    raw = dict(raw)
    defaults = ViewerConfig()

    def path(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (base_dir / p)

    http = _section(raw, "http")
    listen = _take(http, "listen", str, "[http] ") if "listen" in http else defaults.listen
    port = defaults.port
    if "port" in http:
        port = _port(_take(http, "port", int, "[http] "), "[http] port")
    _no_leftovers(http, "[http] ")

    tls_raw = _section(raw, "tls")
    cert = path(_take(tls_raw, "cert", str, "[tls] ")) if "cert" in tls_raw else None
    key = path(_take(tls_raw, "key", str, "[tls] ")) if "key" in tls_raw else None
    _no_leftovers(tls_raw, "[tls] ")
    if (cert is None) != (key is None):
        raise ConfigError("[tls]: set both cert and key, or neither to generate a self-signed pair")

    storage = _section(raw, "storage")
    state_dir = defaults.state_dir
    if "state_dir" in storage:
        state_dir = path(_take(storage, "state_dir", str, "[storage] "))
    database = state_dir / "viewer.db"
    if "database" in storage:
        database = path(_take(storage, "database", str, "[storage] "))
    alert_retain_days = defaults.alert_retain_days
    if "alert_retain_days" in storage:
        alert_retain_days = _positive(
            _take(storage, "alert_retain_days", (int, float), "[storage] "),
            "[storage] alert_retain_days",
        )
    _no_leftovers(storage, "[storage] ")

    broker = _broker(_section(raw, "broker"), path) if "broker" in raw else None

    ui = _section(raw, "ui")
    language = defaults.default_language
    if "default_language" in ui:
        language = _take(ui, "default_language", str, "[ui] ")
        if language not in LANGUAGES:
            raise ConfigError(f"[ui] default_language: {language!r} is not one of {LANGUAGES}")
    _no_leftovers(ui, "[ui] ")

    s = _section(raw, "security")
    sd = SecurityConfig()
    num = (int, float)
    security = SecurityConfig(
        session_idle_s=_positive(_take(s, "session_idle_s", num, "[security] "),
                                 "[security] session_idle_s")
        if "session_idle_s" in s else sd.session_idle_s,
        session_max_s=_positive(_take(s, "session_max_s", num, "[security] "),
                                "[security] session_max_s")
        if "session_max_s" in s else sd.session_max_s,
        max_failed_logins=_take(s, "max_failed_logins", int, "[security] ")
        if "max_failed_logins" in s else sd.max_failed_logins,
        throttle_free_failures=_take(s, "throttle_free_failures", int, "[security] ")
        if "throttle_free_failures" in s else sd.throttle_free_failures,
        throttle_base_delay_s=_positive(_take(s, "throttle_base_delay_s", num, "[security] "),
                                        "[security] throttle_base_delay_s")
        if "throttle_base_delay_s" in s else sd.throttle_base_delay_s,
        throttle_max_delay_s=_positive(_take(s, "throttle_max_delay_s", num, "[security] "),
                                       "[security] throttle_max_delay_s")
        if "throttle_max_delay_s" in s else sd.throttle_max_delay_s,
    )
    _no_leftovers(s, "[security] ")
    if not 1 <= security.max_failed_logins <= MAX_FAILED_LOGINS_LIMIT:
        raise ConfigError(
            f"[security] max_failed_logins: must be 1..{MAX_FAILED_LOGINS_LIMIT} "
            f"(NIST SP 800-63B), got {security.max_failed_logins}"
        )
    if security.throttle_free_failures < 0:
        raise ConfigError("[security] throttle_free_failures: must not be negative")

    h = _section(raw, "health")
    offline_after_s = defaults.health_offline_after_s
    if "offline_after_s" in h:
        offline_after_s = float(_take(h, "offline_after_s", num, "[health] "))
        if offline_after_s < 0:
            raise ConfigError("[health] offline_after_s: must not be negative")
    disk_low = defaults.health_disk_low_free_bytes
    if "disk_low_free_bytes" in h:
        disk_low = _take(h, "disk_low_free_bytes", int, "[health] ")
        if disk_low < 0:
            raise ConfigError("[health] disk_low_free_bytes: must not be negative")
    _no_leftovers(h, "[health] ")

    _no_leftovers(raw, "")
    return ViewerConfig(
        listen=listen,
        port=port,
        tls=TlsConfig(cert_path=cert, key_path=key),
        state_dir=state_dir,
        database_path=database,
        alert_retain_days=alert_retain_days,
        broker=broker,
        default_language=language,
        security=security,
        health_offline_after_s=offline_after_s,
        health_disk_low_free_bytes=disk_low,
    )


def load_config(path: Path) -> ViewerConfig:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_config(raw, path.parent.resolve())


def ensure_certificate(config: ViewerConfig, common_name: str = "dozor-viewer") -> TlsConfig:
    """Return the configured pair, or a self-signed one kept in state_dir/tls (made once).

    The openssl CLI is used so that no Python crypto dependency is needed.
    """
    if config.tls.cert_path is not None and config.tls.key_path is not None:
        for p in (config.tls.cert_path, config.tls.key_path):
            if not p.is_file():
                raise CertificateError(f"[tls]: {p} does not exist")
        return config.tls
    tls_dir = config.state_dir / "tls"
    cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert.is_file() and key.is_file():
        return TlsConfig(cert_path=cert, key_path=key)
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "3650", "-subj", f"/CN={common_name}",
        "-addext", f"subjectAltName=DNS:{common_name},DNS:localhost,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    except FileNotFoundError as err:
        raise CertificateError("openssl is not installed; configure [tls] cert and key") from err
    except subprocess.CalledProcessError as err:
        raise CertificateError(f"openssl failed: {err.stderr.decode(errors='replace')}") from err
    key.chmod(0o600)
    log.info("viewer: generated a self-signed TLS certificate %s", cert)
    return TlsConfig(cert_path=cert, key_path=key)
