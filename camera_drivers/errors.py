"""Errors of the camera layer. zeep, aiohttp and socket errors are converted at the boundary."""

from __future__ import annotations


class CameraError(Exception):
    """Base class: something went wrong talking to a camera."""


class CameraUnreachable(CameraError):
    """Nothing answers at that address (connection refused, reset, no route)."""


class CameraTimeout(CameraUnreachable):
    """The camera accepted the connection (or not) but did not answer within timeout_s."""


class CameraAuthError(CameraError):
    """The camera rejected the user name or password."""


class NotOnvifDevice(CameraError):
    """Something answers at that address, but it does not speak ONVIF."""


class NoUsableProfile(CameraError):
    """The camera has no media profile with a video stream Dozor can record."""


class CameraCommandError(CameraError):
    """The camera refused or failed a command (PTZ, clock, subscription...)."""


class DiscoveryError(CameraError):
    """A WS-Discovery probe could not be sent on the chosen interface."""
