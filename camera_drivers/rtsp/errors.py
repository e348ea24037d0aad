"""Errors of Dozor's RTSP client. Socket errors are converted here, at the boundary."""

from __future__ import annotations

from camera_drivers.errors import CameraAuthError, CameraError, CameraTimeout, CameraUnreachable


class RtspError(CameraError):
    """Base class: an RTSP session could not be set up or broke."""


class RtspProtocolError(RtspError):
    """The camera sent something that is not valid RTSP, SDP or RTP."""


class RtspUnsupported(RtspError):
    """A valid stream this client does not read (a codec other than H.264/H.265, interleaved
    packetization, B-frames...). The recorder then reads that stream through FFmpeg."""


class RtspStatusError(RtspError):
    """The camera answered a request with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RtspAuthError(RtspStatusError, CameraAuthError):
    """401 after sending credentials (or none were given)."""


class RtspConnectionError(RtspError, CameraUnreachable):
    """The TCP connection could not be made, or the camera closed or reset it."""


class RtspEndOfStream(RtspConnectionError):
    """The camera closed the connection in an orderly way (a TCP FIN)."""


class RtspTimeout(RtspError, CameraTimeout):
    """Nothing (no response, or no video) arrived within the timeout."""
