"""The camera layer: ONVIF driver, WS-Discovery and the typed models and errors they share."""

from camera_drivers.discovery import discover
from camera_drivers.errors import (
    CameraAuthError,
    CameraCommandError,
    CameraError,
    CameraTimeout,
    CameraUnreachable,
    DiscoveryError,
    NotOnvifDevice,
    NoUsableProfile,
)
from camera_drivers.models import (
    CameraEvent,
    CameraEventKind,
    CameraProbe,
    Capabilities,
    DeviceInfo,
    DiscoveredDevice,
    PtzPreset,
    StreamProfile,
)
from camera_drivers.onvif_camera import OnvifCamera, parse_device_url

__all__ = [
    "CameraAuthError",
    "CameraCommandError",
    "CameraError",
    "CameraEvent",
    "CameraEventKind",
    "CameraProbe",
    "CameraTimeout",
    "CameraUnreachable",
    "Capabilities",
    "DeviceInfo",
    "DiscoveredDevice",
    "DiscoveryError",
    "NoUsableProfile",
    "NotOnvifDevice",
    "OnvifCamera",
    "PtzPreset",
    "StreamProfile",
    "discover",
    "parse_device_url",
]
