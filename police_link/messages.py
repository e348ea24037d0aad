"""Payloads of the protocol as frozen dataclasses, with strict validation.

JSON messages carry `"v": 1` and exactly the fields of their dataclass: an unknown field,
a missing one or a wrong type raises ValidationError naming the field. Validation runs in
`__post_init__`, so a recorder building a bad message learns it at the call site, and
`from_json` only adds JSON decoding. Hand-written validators rather than jsonschema: the
schemas are small and flat, the project gets no new dependency, and errors name the field
in our own words. docs/mqtt.md is the reference for every field.

Times are Unix seconds (UTC, float) in fields named `*_unix_s`; `seq` is the per-site
sequence number (docs/mqtt.md "Sequence numbers"); 0 means "not yet assigned" and the
outbox replaces it before publishing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import ValidationError
from .topics import check_camera_name, check_event_id, check_name

PROTOCOL_VERSION = 1

EVENT_TYPES = ("new", "update", "end")
CAMERA_STATES = (
    "starting", "recording", "offline", "stalled", "tamper", "video_loss", "disabled", "error",
)
ALARM_KINDS = (
    "video_loss", "tamper", "camera_offline", "stalled", "disk_full", "disk_error",
    "clock_unsynced", "storage_error", "other",
)
DROP_CLASSES = ("snapshot", "camera_status", "event", "alarm", "ack")
SITE_ONLINE = b"online"
SITE_OFFLINE = b"offline"
MAX_TEXT = 1000


# -- field checks: each names the field it rejects -------------------------------------
def check_str(value: object, name: str, *, max_len: int = 256, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise ValidationError(name, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(name, f"longer than {max_len} characters")
    return value


def check_number(
    value: object, name: str, *, min_value: float | None = None, max_value: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValidationError(name, "must be finite")
    if min_value is not None and value < min_value:
        raise ValidationError(name, f"must be >= {min_value:g}, got {value!r}")
    if max_value is not None and value > max_value:
        raise ValidationError(name, f"must be <= {max_value:g}, got {value!r}")
    return float(value)


def check_int(
    value: object, name: str, *, min_value: int | None = None, max_value: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, f"must be an integer, got {type(value).__name__}")
    check_number(value, name, min_value=min_value, max_value=max_value)
    return value


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(name, f"must be true or false, got {type(value).__name__}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(name, f"must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _check_time(value: object, name: str) -> float:
    return check_number(value, name, min_value=0.0)


def _check_seq(value: object) -> int:
    return check_int(value, "seq", min_value=0)


def _check_figures(value: object, name: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValidationError(name, "must be an object of name: number")
    for key, number in value.items():
        check_name(key, f"{name}.{key}")
        check_number(number, f"{name}.{key}")
    return dict(value)


M = TypeVar("M", bound="JsonMessage")


class JsonMessage:
    """Mixin: to_json / from_json for the dataclasses below."""

    _TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls: type[M], data: bytes | str) -> M:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValidationError("payload", f"not valid JSON: {err}") from err
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls: type[M], obj: object) -> M:
        if not isinstance(obj, dict):
            raise ValidationError("payload", "must be a JSON object")
        obj = dict(obj)
        version = obj.pop("v", None)
        if version != PROTOCOL_VERSION:
            raise ValidationError("v", f"must be {PROTOCOL_VERSION}, got {version!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in obj:
            if key not in known:
                raise ValidationError(str(key), "unknown field")
        for name, f in known.items():
            no_default = f.default is dataclasses.MISSING
            if no_default and f.default_factory is dataclasses.MISSING and name not in obj:
                raise ValidationError(name, "missing")
        for name in cls._TUPLE_FIELDS:
            if name in obj:
                if not isinstance(obj[name], list):
                    raise ValidationError(name, "must be a list")
                obj[name] = tuple(tuple(v) if isinstance(v, list) else v for v in obj[name])
        return cls(**obj)


def _tuple_of(value: object, name: str) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list):
        raise ValidationError(name, "must be a list")
    return tuple(value)


@dataclass(frozen=True)
class EventMessage(JsonMessage):
    """One change of a motion event (topic <p>/<site>/events)."""

    site: str
    camera: str
    event_id: str
    type: str  # "new" | "update" | "end"
    start_unix_s: float
    end_unix_s: float | None = None
    zones: tuple[str, ...] = ()
    score: float = 0.0
    snapshot: str | None = None  # topic of the JPEG, published right after the event
    seq: int = 0

    _TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("zones",)

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        check_camera_name(self.camera)
        check_event_id(self.event_id)
        check_choice(self.type, "type", EVENT_TYPES)
        _check_time(self.start_unix_s, "start_unix_s")
        if self.end_unix_s is not None:
            _check_time(self.end_unix_s, "end_unix_s")
            if self.end_unix_s < self.start_unix_s:
                raise ValidationError("end_unix_s", "is before start_unix_s")
        elif self.type == "end":
            raise ValidationError("end_unix_s", "required when type is 'end'")
        object.__setattr__(self, "zones", _tuple_of(self.zones, "zones"))
        for i, zone in enumerate(self.zones):
            check_str(zone, f"zones[{i}]", max_len=64)
        check_number(self.score, "score", min_value=0.0)
        if self.snapshot is not None:
            check_str(self.snapshot, "snapshot", max_len=512)
        _check_seq(self.seq)


@dataclass(frozen=True)
class CameraStatusMessage(JsonMessage):
    """A camera's state (topic <p>/<site>/<camera>/status, retained)."""

    site: str
    camera: str
    state: str
    since_unix_s: float
    detail: str = ""
    seq: int = 0

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        check_camera_name(self.camera)
        check_choice(self.state, "state", CAMERA_STATES)
        _check_time(self.since_unix_s, "since_unix_s")
        check_str(self.detail, "detail", max_len=MAX_TEXT, empty=True)
        _check_seq(self.seq)


@dataclass(frozen=True)
class AlarmMessage(JsonMessage):
    """A health alarm raised or cleared (topic <p>/<site>/alarms). camera None = site-wide."""

    site: str
    kind: str
    active: bool
    since_unix_s: float
    camera: str | None = None
    detail: str = ""
    seq: int = 0

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        check_choice(self.kind, "kind", ALARM_KINDS)
        check_bool(self.active, "active")
        _check_time(self.since_unix_s, "since_unix_s")
        if self.camera is not None:
            check_camera_name(self.camera)
        check_str(self.detail, "detail", max_len=MAX_TEXT, empty=True)
        _check_seq(self.seq)


@dataclass(frozen=True)
class AckMessage(JsonMessage):
    """An event acknowledged by a duty officer (topic <p>/<site>/acks), so every viewer
    instance learns it; published by the site after it accepted the "ack" command."""

    site: str
    event_id: str
    user: str
    acked_unix_s: float
    sender: str
    comment: str = ""
    camera: str | None = None
    seq: int = 0

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        check_event_id(self.event_id)
        check_str(self.user, "user", max_len=64)
        _check_time(self.acked_unix_s, "acked_unix_s")
        check_name(self.sender, "sender")
        check_str(self.comment, "comment", max_len=MAX_TEXT, empty=True)
        if self.camera is not None:
            check_camera_name(self.camera)
        _check_seq(self.seq)


@dataclass(frozen=True)
class DropReport(JsonMessage):
    """What the outbox discarded to stay within its size bound (topic <p>/<site>/dropped).

    `counts` is by drop class (DROP_CLASSES); `seq_ranges` lists the sequence numbers that
    will never arrive, as inclusive [first, last] pairs, so receivers can explain gaps.
    """

    site: str
    first_drop_unix_s: float
    last_drop_unix_s: float
    counts: Mapping[str, int]
    dropped_bytes: int
    seq_ranges: tuple[tuple[int, int], ...] = ()
    seq: int = 0

    _TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("seq_ranges",)

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        _check_time(self.first_drop_unix_s, "first_drop_unix_s")
        _check_time(self.last_drop_unix_s, "last_drop_unix_s")
        if not isinstance(self.counts, Mapping):
            raise ValidationError("counts", "must be an object")
        for key, count in self.counts.items():
            check_choice(key, f"counts.{key}", DROP_CLASSES)
            check_int(count, f"counts.{key}", min_value=0)
        check_int(self.dropped_bytes, "dropped_bytes", min_value=0)
        ranges = _tuple_of(self.seq_ranges, "seq_ranges")
        for i, pair in enumerate(ranges):
            pair = _tuple_of(pair, f"seq_ranges[{i}]")
            if len(pair) != 2:
                raise ValidationError(f"seq_ranges[{i}]", "must be [first, last]")
            check_int(pair[0], f"seq_ranges[{i}]", min_value=1)
            check_int(pair[1], f"seq_ranges[{i}]", min_value=pair[0])
        object.__setattr__(self, "seq_ranges", tuple(tuple(p) for p in ranges))
        _check_seq(self.seq)


@dataclass(frozen=True)
class StatsMessage(JsonMessage):
    """Periodic health and storage figures (topic <p>/<site>/stats, retained, not queued).

    `figures` holds extra site-wide numbers (e.g. cpu_percent); `cameras` maps a camera to
    its numbers (e.g. {"fps": 15, "bitrate_bps": 2.1e6, "segments_per_h": 60}).
    """

    site: str
    sent_unix_s: float
    uptime_s: float
    disk_total_bytes: int
    disk_free_bytes: int
    recorded_bytes: int = 0
    outbox_pending: int = 0
    outbox_bytes: int = 0
    figures: Mapping[str, float] = field(default_factory=dict)
    cameras: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        _check_time(self.sent_unix_s, "sent_unix_s")
        check_number(self.uptime_s, "uptime_s", min_value=0.0)
        for name in (
            "disk_total_bytes", "disk_free_bytes", "recorded_bytes",
            "outbox_pending", "outbox_bytes",
        ):
            check_int(getattr(self, name), name, min_value=0)
        _check_figures(self.figures, "figures")
        if not isinstance(self.cameras, Mapping):
            raise ValidationError("cameras", "must be an object of camera: figures")
        for camera, figures in self.cameras.items():
            check_camera_name(camera, f"cameras.{camera}")
            _check_figures(figures, f"cameras.{camera}")


# -- viewer-side deliveries that are not JSON ---------------------------------------------
@dataclass(frozen=True)
class SiteStatus:
    """A site's connection state: the retained "online", or "offline" (clean stop or will)."""

    site: str
    online: bool


@dataclass(frozen=True)
class Snapshot:
    site: str
    camera: str
    event_id: str
    jpeg: bytes = field(repr=False)


@dataclass(frozen=True)
class LiveChunk:
    """One fMP4 fragment of a live stream (the first one after start carries the init)."""

    site: str
    camera: str
    stream: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class SeqGap:
    """Sequence numbers first_seq..last_seq of `site` were not received (yet).

    A DropReport names those the site discarded on purpose; others were lost in transit
    (or arrive late, out of order)."""

    site: str
    first_seq: int
    last_seq: int


SequencedMessage = EventMessage | CameraStatusMessage | AlarmMessage | AckMessage | DropReport
ViewerMessage = (
    SiteStatus | CameraStatusMessage | EventMessage | Snapshot | StatsMessage | AlarmMessage
    | AckMessage | DropReport | LiveChunk | SeqGap
)
