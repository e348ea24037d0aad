"""The video media of a DESCRIBE answer (SDP, RFC 4566): codec, payload type, SETUP URL and the
parameter sets announced in a=fmtp (RFC 6184 for H.264, RFC 7798 for H.265).

Cameras write SDP loosely, so the parser is lenient where meaning is still clear (\\n or \\r\\n
line ends, extra spaces, unknown lines, base64 without its "=" padding) and strict where the
stream could not be read right (no rtpmap for a dynamic payload type, undecodable parameter
sets, interleaved packetization).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from camera_drivers.rtsp.errors import RtspProtocolError, RtspUnsupported

# rtpmap encoding name (upper case) -> FFmpeg's codec name
_CODECS = {"H264": "h264", "H265": "hevc"}
# Static video payload types (RFC 3551 table 5): the SDP need not carry an rtpmap for these.
_STATIC_VIDEO = {26: "JPEG/90000", 31: "H261/90000", 32: "MPV/90000", 33: "MP2T/90000",
                 34: "H263/90000"}
_FIRST_DYNAMIC_PAYLOAD_TYPE = 96
_H264_INTERLEAVED_MODE = 2  # packetization-mode=2: STAP-B, MTAP, FU-B with DON
_SUPPORTED = "Dozor's RTSP client reads H.264 and H.265"


@dataclass(frozen=True)
class VideoMedia:
    codec: str  # FFmpeg's codec name: "h264" or "hevc"
    payload_type: int
    clock_rate_hz: int  # from a=rtpmap (90000 for video)
    control_url: str  # absolute URL to SETUP this media
    # NAL units without start codes: H.264 SPS, PPS... from sprop-parameter-sets; H.265 VPS,
    # SPS, PPS from sprop-vps/sps/pps; () if the SDP announces none (they come in-band then).
    parameter_sets: tuple[bytes, ...]
    fmtp: dict[str, str]  # raw a=fmtp parameters, keys lower-case


@dataclass
class _Media:
    """One m= section as read, before choosing."""

    kind: str  # "video", "audio"...
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # payload type -> "H264/90000"
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)
    control: str | None = None


def parse_sdp(text: str, base_url: str) -> VideoMedia:
    """The first H.264 or H.265 video media of a DESCRIBE answer.

    `base_url` is the Content-Base (or Content-Location, or the request URL) of the answer.
    Raises RtspUnsupported if the video is in another codec or needs interleaved
    packetization, RtspProtocolError if the SDP has no video or is malformed.
    """
    session_control, media = _read_sections(text)
    videos = [m for m in media if m.kind == "video"]
    if not videos:
        raise RtspProtocolError("SDP has no video media")
    problems: list[Exception] = []
    for video in videos:
        for payload_type in video.payload_types:
            rtpmap = video.rtpmap.get(payload_type)
            if rtpmap is None:
                rtpmap = _STATIC_VIDEO.get(payload_type)
            if rtpmap is None:
                if payload_type >= _FIRST_DYNAMIC_PAYLOAD_TYPE:
                    problems.append(RtspProtocolError(
                        f"SDP has no a=rtpmap for dynamic video payload type {payload_type}"))
                else:
                    problems.append(RtspUnsupported(
                        f"video has unknown static payload type {payload_type}; {_SUPPORTED}"))
                continue
            encoding, _, rest = rtpmap.partition("/")
            codec = _CODECS.get(encoding.strip().upper())
            if codec is None:
                problems.append(RtspUnsupported(
                    f"video is {rtpmap} (payload {payload_type}); {_SUPPORTED}"))
                continue
            control = video.control if video.control is not None else session_control
            fmtp = video.fmtp.get(payload_type, {})
            return VideoMedia(
                codec=codec,
                payload_type=payload_type,
                clock_rate_hz=_clock_rate_hz(rtpmap, rest),
                control_url=resolve_control_url(control, base_url),
                parameter_sets=_parameter_sets(codec, fmtp),
                fmtp=fmtp,
            )
    raise problems[0] if problems else RtspProtocolError("SDP video media has no payload type")


def resolve_control_url(control: str | None, base_url: str) -> str:
    """The URL to SETUP a media whose a=control is `control` (None: no a=control line).

    Not RFC 3986 resolution: a relative control is appended to the base with one "/" between,
    even after a query string ("rtsp://h/live?ch=1" + "trackID=1" ->
    "rtsp://h/live?ch=1/trackID=1"). That is what FFmpeg does, so it is what cameras expect.
    """
    if control is None or control == "*":
        return base_url
    if "://" in control:
        return control
    separator = "" if base_url.endswith("/") else "/"
    return base_url + separator + control.lstrip("/")


def _read_sections(text: str) -> tuple[str | None, list[_Media]]:
    """The session-level a=control and every m= section, in order."""
    session_control: str | None = None
    media: list[_Media] = []
    for raw in text.splitlines():
        kind, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        kind, value = kind.strip(), value.strip()
        if kind == "m":
            media.append(_media_line(value))
            continue
        if kind != "a":
            continue
        name, _, attribute = value.partition(":")
        name, attribute = name.strip().lower(), attribute.strip()
        current = media[-1] if media else None
        if name == "control":
            if current is None:
                session_control = attribute
            else:
                current.control = attribute
        elif current is not None and current.kind == "video" and name in ("rtpmap", "fmtp"):
            number, _, parameters = attribute.partition(" ")
            payload_type = _int(number, f"a={name}:{attribute}")
            if name == "rtpmap":
                current.rtpmap[payload_type] = parameters.strip()
            else:
                current.fmtp[payload_type] = _fmtp_parameters(parameters)
    return session_control, media


def _media_line(value: str) -> _Media:
    """m=<media> <port> <proto> <fmt> ..."""
    fields = value.split()
    if len(fields) < 3:
        raise RtspProtocolError(f"malformed SDP line m={value}")
    kind = fields[0].lower()
    # Formats of a non-RTP transport need not be numbers; only video formats are read.
    payload_types = [_int(f, f"m={value}") for f in fields[3:]] if kind == "video" else []
    return _Media(kind, payload_types)


def _fmtp_parameters(parameters: str) -> dict[str, str]:
    result = {}
    for item in parameters.split(";"):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key:
            result[key] = value.strip()
    return result


def _parameter_sets(codec: str, fmtp: dict[str, str]) -> tuple[bytes, ...]:
    if codec == "h264":
        if _int_parameter(fmtp, "packetization-mode") == _H264_INTERLEAVED_MODE:
            raise RtspUnsupported(
                "H.264 packetization-mode=2 (interleaved) is not supported; use mode 0 or 1")
        names: tuple[str, ...] = ("sprop-parameter-sets",)
    else:
        # DONL fields precede each NAL unit when sprop-max-don-diff > 0 (RFC 7798 7.1).
        if _int_parameter(fmtp, "sprop-max-don-diff") > 0:
            raise RtspUnsupported(
                "H.265 with decoding order numbers (sprop-max-don-diff > 0) is not supported")
        names = ("sprop-vps", "sprop-sps", "sprop-pps")
    return tuple(nal for name in names for nal in _base64_list(name, fmtp.get(name, "")))


def _base64_list(name: str, value: str) -> list[bytes]:
    """The NAL units of a comma-separated base64 sprop parameter; empty items are skipped."""
    nals = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            # Some cameras drop the "=" padding; restore it rather than reject the camera.
            nal = base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
        except binascii.Error as e:
            raise RtspProtocolError(f"SDP {name} is not valid base64 ({item!r}): {e}") from e
        if nal:
            nals.append(nal)
    return nals


def _clock_rate_hz(rtpmap: str, rest: str) -> int:
    clock, _, _channels = rest.partition("/")
    return _int(clock, f"a=rtpmap {rtpmap}")


def _int_parameter(fmtp: dict[str, str], name: str) -> int:
    """An integer a=fmtp parameter; 0 (the default of both used here) if absent or empty."""
    value = fmtp.get(name, "")
    return _int(value, f"a=fmtp {name}={value}") if value else 0


def _int(text: str, context: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise RtspProtocolError(f"malformed SDP: {context}") from None
