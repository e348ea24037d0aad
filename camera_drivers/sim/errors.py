"""Errors of the camera simulator's media side; one base class, `SimError`."""

from __future__ import annotations


class SimError(Exception):
    """Base class of the simulator's errors."""


class ClipError(SimError):
    """A clip could not be encoded or read back from the cache."""


class BitstreamError(SimError, ValueError):
    """An encoded frame or RTP payload that cannot be parsed."""


class FaultSpecError(SimError, ValueError):
    """A fault request (command line or control endpoint) that does not make sense."""


class ConfigError(SimError, ValueError):
    """A bad simulator option (scene, codec, ports, ...)."""
