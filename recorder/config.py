"""The site configuration: one TOML file into frozen dataclasses.

Loading has two steps. A generic loader builds the dataclasses from the TOML tables and
rejects unknown keys, wrong types and missing required keys, naming the full key path
(``cameras[2].main_url: expected a string, got integer``). Then site rules are checked
(unique camera names, URL schemes, credentials, writable paths) with the same key paths.
Relative paths are taken relative to the configuration file's directory.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tempfile
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from police_link.topics import RESERVED_CAMERA_NAMES
from recorder.errors import RecorderError

__all__ = [
    "BrokerConfig",
    "CameraConfig",
    "ConfigError",
    "HealthConfig",
    "SiteConfig",
    "StorageConfig",
    "load_config",
    "parse_config",
    "parse_size",
]

GiB = 1 << 30
MiB = 1 << 20


class ConfigError(RecorderError):
    """The configuration is unusable; the message names the key and the problem."""


class _ByteSize:
    """Marks an int field that also accepts size strings such as "20GiB"."""


Bytes = Annotated[int, _ByteSize()]

# A name is one MQTT topic level (police_link.topics): no wildcards, no leading "-" or "_".
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_NAME_RULE = "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}  # fmt: skip


def parse_size(value: object, key: str = "size") -> int:
    """Bytes from an integer or a string like "20GiB", "500 MB" or "1.5GiB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _SIZE_UNITS:
            raise ConfigError(
                f'{key}: expected a size such as 1048576, "500MB" or "20GiB", got {value!r}'
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    else:
        raise ConfigError(f"{key}: expected a size (integer or string), got {_kind(value)}")
    if size < 0:
        raise ConfigError(f"{key}: must not be negative, got {size}")
    return size


@dataclass(frozen=True)
class StorageConfig:
    root: Path
    segment_duration_s: float = 60.0
    retain_days: float = 30.0
    quota_bytes: Bytes | None = None  # total for all segments; None: limited by free space
    min_free_bytes: Bytes = 2 * GiB  # retention deletes oldest footage below this
    stop_below_free_bytes: Bytes = 256 * MiB  # recording stops (alarm) below this
    flush_interval_s: float = 10.0
    event_retain_days: float = 90.0


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int = 8883
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    prefix: str = "dozor"
    outbox_path: Path | None = None  # default: <storage.root>/outbox.sqlite
    outbox_max_bytes: Bytes = 64 * MiB


@dataclass(frozen=True)
class HealthConfig:
    listen: str = "127.0.0.1"
    port: int = 9310


RTSP_CLIENTS = ("dozor", "ffmpeg")
MAX_READ_BATCH_S = 1.0


@dataclass(frozen=True)
class IngestConfig:
    """How streams are read (docs/ingest.md): Dozor's RTSP client with FFmpeg's for what it
    cannot read, or FFmpeg's for every stream; and how often a stream is read."""

    rtsp_client: str = "dozor"
    read_batch_s: float = 0.2


def _load_motion(value: object, key: str, loader: _Loader) -> Any:
    """The camera's ``motion`` table into recorder.motion.config.MotionConfig."""
    try:
        from recorder.motion.config import MotionConfig
    except ImportError:  # the motion package is not there: only an empty table fits
        if value:
            raise ConfigError(f"{key}: motion settings are not supported by this build") from None
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table, got {_kind(value)}")
    try:
        return MotionConfig.from_mapping(value, where=key)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from err


@dataclass(frozen=True)
class CameraConfig:
    name: str
    onvif_url: str | None = None  # http://host[:port]/onvif/device_service: streams probed
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    main_url: str | None = None  # rtsp://...: overrides probing
    sub_url: str | None = None
    retain_days: float | None = None  # default: storage.retain_days
    motion: Any = field(default=None, metadata={"load": _load_motion})

    def authenticated_url(self, url: str) -> str:
        """The stream URL with this camera's credentials, unless it already carries some."""
        parts = urlsplit(url)
        if self.user is None or parts.username is not None:
            return url
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc}"))


@dataclass(frozen=True)
class SiteConfig:
    site: str
    storage: StorageConfig
    broker: BrokerConfig | None = None
    health: HealthConfig = field(default_factory=HealthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    cameras: tuple[CameraConfig, ...] = ()


def load_config(path: str | Path, *, check_paths: bool = True) -> SiteConfig:
    """Read and validate a site file. Raises ConfigError naming the file, key and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the configuration: {err}") from err
    try:
        return parse_config(text, base_dir=path.parent, check_paths=check_paths)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def parse_config(
    text_or_table: str | Mapping[str, object],
    *,
    base_dir: Path = Path("."),
    check_paths: bool = True,
) -> SiteConfig:
    if isinstance(text_or_table, str):
        try:
            table: Mapping[str, object] = tomllib.loads(text_or_table)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"not valid TOML: {err}") from err
    else:
        table = text_or_table
    config = _Loader(base_dir).build(SiteConfig, table, "")
    return _check_site(config, check_paths=check_paths)


# --- generic loader ------------------------------------------------------------------------


def _kind(value: object) -> str:
    return {
        bool: "boolean", int: "integer", float: "float", str: "string",
        dict: "table", list: "array",
    }.get(type(value), type(value).__name__)  # fmt: skip


def _key(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


class _Loader:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def build(self, cls: type, value: object, key: str) -> Any:
        """A dataclass from a TOML table, rejecting unknown, missing and mistyped keys."""
        where = key or "the file"
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {_kind(value)}")
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        names = {f.name for f in fields}
        for name in value:
            if name not in names:
                raise ConfigError(
                    f"{_key(key, name)}: unknown key (known keys: {', '.join(sorted(names))})"
                )
        kwargs: dict[str, Any] = {}
        for f in fields:
            sub_key = _key(key, f.name)
            if f.name in value:
                custom: Callable[[object, str, _Loader], Any] | None = f.metadata.get("load")
                if custom is not None:
                    kwargs[f.name] = custom(value[f.name], sub_key, self)
                else:
                    kwargs[f.name] = self.convert(hints[f.name], value[f.name], sub_key)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{sub_key}: missing required key")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: {err}") from err

    def convert(self, tp: Any, value: object, key: str) -> Any:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            base, *extras = typing.get_args(tp)
            if any(isinstance(extra, _ByteSize) for extra in extras):
                return parse_size(value, key)
            return self.convert(base, value, key)
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
            if len(options) == 1:  # TOML has no null: an optional key is simply absent
                return self.convert(options[0], value, key)
            raise TypeError(f"unsupported union {tp}")  # a bug in this module, not the file
        if origin is Literal:
            allowed = typing.get_args(tp)
            if value not in allowed:
                choices = " | ".join(f'"{a}"' for a in allowed)
                raise ConfigError(f"{key}: expected one of {choices}, got {value!r}")
            return value
        if origin is tuple:
            (item_type, _ellipsis) = typing.get_args(tp)
            if not isinstance(value, list):
                raise ConfigError(f"{key}: expected an array, got {_kind(value)}")
            return tuple(self.convert(item_type, v, f"{key}[{i}]") for i, v in enumerate(value))
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)
        if tp is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected a boolean, got {_kind(value)}")
            return value
        if tp is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{key}: expected an integer, got {_kind(value)}")
            return value
        if tp is float:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"{key}: expected a number, got {_kind(value)}")
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected a string, got {_kind(value)}")
            return value
        if tp is Path:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key}: expected a path (string), got {_kind(value)}")
            return self.base_dir / Path(value).expanduser()
        if tp is Any:
            return value
        raise TypeError(f"unsupported field type {tp}")  # a bug in this module, not the file


# --- site rules ----------------------------------------------------------------------------


def _check_site(config: SiteConfig, *, check_paths: bool) -> SiteConfig:
    if not _NAME_RE.match(config.site):
        raise ConfigError(f"site: {config.site!r} {_NAME_RULE}")
    storage = _check_storage(config.storage, check_paths=check_paths)
    if not config.cameras:
        raise ConfigError("cameras: at least one [[cameras]] table is required")
    seen: set[str] = set()
    cameras = []
    for i, camera in enumerate(config.cameras):
        key = f"cameras[{i}]"
        if camera.name in seen:
            raise ConfigError(f"{key}.name: duplicate camera name {camera.name!r}")
        seen.add(camera.name)
        cameras.append(_check_camera(camera, key, storage, check_paths=check_paths))
    broker = (
        None
        if config.broker is None
        else _check_broker(config.broker, storage, check_paths=check_paths)
    )
    _check_health(config.health)
    _check_ingest(config.ingest)
    return dataclasses.replace(
        config, storage=storage, broker=broker, cameras=tuple(cameras)
    )


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value}")


def _check_storage(storage: StorageConfig, *, check_paths: bool) -> StorageConfig:
    if not 1 <= storage.segment_duration_s <= 3600:
        raise ConfigError(
            f"storage.segment_duration_s: must be between 1 and 3600, "
            f"got {storage.segment_duration_s}"
        )
    _positive(storage.retain_days, "storage.retain_days")
    _positive(storage.flush_interval_s, "storage.flush_interval_s")
    _positive(storage.event_retain_days, "storage.event_retain_days")
    if storage.quota_bytes is not None and storage.quota_bytes == 0:
        raise ConfigError("storage.quota_bytes: must be greater than 0 (omit it for no quota)")
    if storage.stop_below_free_bytes > storage.min_free_bytes:
        raise ConfigError(
            f"storage.stop_below_free_bytes: {storage.stop_below_free_bytes} is above "
            f"storage.min_free_bytes ({storage.min_free_bytes}): retention must free space "
            f"before recording has to stop"
        )
    if check_paths:
        _check_writable_dir(storage.root, "storage.root")
    return storage


def _check_writable_dir(path: Path, key: str) -> None:
    """The directory exists and accepts a file, or could be created."""
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{key}: {path} exists and is not a directory")
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            raise ConfigError(f"{key}: {path} is not writable: {err.strerror}") from err
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {path} does not exist and {ancestor} is not writable")


def _check_url(url: str, key: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise ConfigError(f"{key}: not a valid URL: {url!r} ({err})") from err
    if parts.scheme not in schemes:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{key}: must start with {wanted}, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"{key}: no host in {url!r}")


def _read_secret(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{key}: cannot read {path}: {err}") from err


def _resolve_password(
    password: str | None, password_file: Path | None, key: str, *, check_paths: bool
) -> str | None:
    """The password, read from password_file if given (not read without check_paths)."""
    if password is not None and password_file is not None:
        raise ConfigError(f"{key}.password_file: give either password or password_file, not both")
    if password_file is not None and check_paths:
        return _read_secret(password_file, f"{key}.password_file")
    return password


def _check_camera(
    camera: CameraConfig, key: str, storage: StorageConfig, *, check_paths: bool
) -> CameraConfig:
    if not _NAME_RE.match(camera.name):
        raise ConfigError(f"{key}.name: {camera.name!r} {_NAME_RULE}")
    if camera.name in RESERVED_CAMERA_NAMES:
        raise ConfigError(
            f"{key}.name: {camera.name!r} is a word the MQTT topics use "
            f"({', '.join(sorted(RESERVED_CAMERA_NAMES))}); choose another name"
        )
    password = _resolve_password(
        camera.password, camera.password_file, key, check_paths=check_paths
    )
    has_password = password is not None or camera.password_file is not None
    if camera.onvif_url is None and camera.main_url is None:
        raise ConfigError(f"{key}: give onvif_url (streams are probed) or main_url")
    if camera.onvif_url is not None:
        _check_url(camera.onvif_url, f"{key}.onvif_url", ("http",))
        if camera.user is None or not has_password:
            raise ConfigError(
                f"{key}: onvif_url needs credentials: user and password (or password_file)"
            )
    if camera.main_url is not None:
        _check_url(camera.main_url, f"{key}.main_url", ("rtsp", "rtsps"))
    if camera.sub_url is not None:
        if camera.main_url is None:
            raise ConfigError(f"{key}.sub_url: given without main_url")
        _check_url(camera.sub_url, f"{key}.sub_url", ("rtsp", "rtsps"))
    if has_password and camera.user is None:
        raise ConfigError(f"{key}.user: a password is given without a user")
    motion_trigger = getattr(camera.motion, "trigger", "dozor")
    if motion_trigger != "dozor" and camera.onvif_url is None:
        raise ConfigError(
            f'{key}.motion.trigger: "{motion_trigger}" uses the camera\'s ONVIF events '
            f"and needs onvif_url"
        )
    retain_days = storage.retain_days if camera.retain_days is None else camera.retain_days
    _positive(retain_days, f"{key}.retain_days")
    return dataclasses.replace(camera, password=password, retain_days=retain_days)


def _check_broker(
    broker: BrokerConfig, storage: StorageConfig, *, check_paths: bool
) -> BrokerConfig:
    if not broker.host:
        raise ConfigError("broker.host: must not be empty")
    if not 1 <= broker.port <= 65535:
        raise ConfigError(f"broker.port: must be between 1 and 65535, got {broker.port}")
    if (broker.cert_file is None) != (broker.key_file is None):
        raise ConfigError("broker.cert_file: cert_file and key_file go together")
    for name in ("ca_file", "cert_file", "key_file"):
        path: Path | None = getattr(broker, name)
        if path is not None and check_paths and not os.access(path, os.R_OK):
            raise ConfigError(f"broker.{name}: cannot read {path}")
        if path is not None and not broker.tls:
            raise ConfigError(f"broker.{name}: given but broker.tls is false")
    password = _resolve_password(
        broker.password, broker.password_file, "broker", check_paths=check_paths
    )
    if (password is not None or broker.password_file) and broker.username is None:
        raise ConfigError("broker.username: a password is given without a username")
    if not broker.prefix or "#" in broker.prefix or "+" in broker.prefix:
        raise ConfigError(f"broker.prefix: {broker.prefix!r} is not a usable topic prefix")
    outbox_path = broker.outbox_path or storage.root / "outbox.sqlite"
    if broker.outbox_max_bytes < MiB:
        raise ConfigError(
            f"broker.outbox_max_bytes: at least 1 MiB, got {broker.outbox_max_bytes}"
        )
    return dataclasses.replace(broker, password=password, outbox_path=outbox_path)


def _check_ingest(ingest: IngestConfig) -> None:
    if ingest.rtsp_client not in RTSP_CLIENTS:
        raise ConfigError(
            f"ingest.rtsp_client: expected one of {', '.join(RTSP_CLIENTS)}, "
            f"got {ingest.rtsp_client!r}"
        )
    if not 0 <= ingest.read_batch_s <= MAX_READ_BATCH_S:
        raise ConfigError(
            f"ingest.read_batch_s: must be between 0 and {MAX_READ_BATCH_S:g} s, "
            f"got {ingest.read_batch_s}"
        )


def _check_health(health: HealthConfig) -> None:
    try:
        ipaddress.ip_address(health.listen)
    except ValueError as err:
        raise ConfigError(
            f"health.listen: expected an IP address such as 127.0.0.1, got {health.listen!r}"
        ) from err
    if not 0 <= health.port <= 65535:
        raise ConfigError(f"health.port: must be between 0 and 65535, got {health.port}")
