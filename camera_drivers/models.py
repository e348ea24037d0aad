"""What the camera layer tells the rest of Dozor: frozen dataclasses, decoded, no I/O."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclass(frozen=True)
class StreamProfile:
    """One ONVIF media profile with its video stream. URIs never embed credentials."""

    token: str
    name: str
    encoding: str  # "H264", "H265", "JPEG", "MPEG4"... as the camera names it, upper case
    width: int
    height: int
    fps: float | None
    bitrate_kbps: int | None
    stream_uri: str
    snapshot_uri: str | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Capabilities:
    """What the camera turned out to support, found by trying each call once."""

    events: bool = False  # a pull-point subscription can be created
    ptz: bool = False  # the PTZ service answers GetNodes with at least one node
    snapshot: bool = False  # GetSnapshotUri gives a URI


@dataclass(frozen=True)
class CameraProbe:
    """What Dozor would record from a camera: its identity, its streams, its clock."""

    onvif_url: str
    device: DeviceInfo
    profiles: tuple[StreamProfile, ...]
    main: StreamProfile  # highest resolution
    sub: StreamProfile  # lowest resolution (the motion detector's stream)
    clock_offset_s: float  # camera clock minus our clock
    capabilities: Capabilities


class CameraEventKind(enum.Enum):
    MOTION = "motion"
    TAMPER = "tamper"
    SIGNAL_LOSS = "signal_loss"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CameraEvent:
    """A state change reported by the camera (ONVIF events are properties: on / off)."""

    kind: CameraEventKind
    active: bool
    topic: str  # without namespace prefix, e.g. "VideoSource/MotionAlarm"
    source: str | None  # video source or rule token the event is about
    camera_time: dt.datetime | None  # UtcTime the camera stamped (its clock, not ours)
    initial: bool = False  # True for the state sent when the subscription starts


@dataclass(frozen=True)
class PtzPreset:
    token: str
    name: str


@dataclass(frozen=True)
class DiscoveredDevice:
    """A WS-Discovery ProbeMatch: a device that says it is an ONVIF video transmitter."""

    endpoint_ref: str  # urn:uuid:... stable across reboots
    xaddrs: tuple[str, ...]  # ONVIF device service URLs
    types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    from_ip: str = ""
    name: str | None = field(default=None)  # from onvif://www.onvif.org/name/...
    hardware: str | None = field(default=None)  # from onvif://www.onvif.org/hardware/...
