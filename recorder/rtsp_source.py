"""Sources read by Dozor's own RTSP client, and the opener that falls back to FFmpeg.

`RtspOpener` hands `StreamIngest` the same things `PyavOpener` does: a template stream for
remuxing (built once per run by letting FFmpeg probe the parameter sets and the first
keyframe) and `av.Packet`s timed in the RTP clock. Only the reading differs: one `recv` per
burst instead of three system-call pairs per RTP packet (docs/ingest.md).

`FallbackOpener` tries Dozor's client first and remembers, per URL, a stream it cannot read
(MJPEG, RTSP over TLS, interleaved packetization, B-frames): that stream is read through
FFmpeg from then on, so no camera is left unrecorded for being unusual.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.error

from camera_drivers.rtsp.client import RtspSession
from camera_drivers.rtsp.errors import RtspEndOfStream, RtspError, RtspTimeout, RtspUnsupported
from recorder.ingest import (
    QUICK_PROBE,
    IngestSettings,
    Opener,
    PyavOpener,
    Source,
    SourceError,
    redact,
)
from recorder.stream_types import ReadLatency

if TYPE_CHECKING:
    import av.container
    import av.video.stream

__all__ = ["FallbackOpener", "RtspOpener", "RtspSource", "make_opener"]

log = logging.getLogger(__name__)

START_CODE = b"\x00\x00\x00\x01"
# a backward step shorter than this between two frames is reordering (B-frames), not a jump
REORDER_WINDOW_S = 1.0
# no keyframe (IDR / IRAP) this long: the camera starts its GOPs otherwise (recovery-point
# SEI, plain I slices), which FFmpeg's parser recognises and ours does not
FIRST_KEYFRAME_TIMEOUT_S = 20.0


class RtspSource:
    """One playing `RtspSession` as a `recorder.ingest.Source`."""

    def __init__(self, session: RtspSession) -> None:
        self._session = session
        media = session.media
        assert media is not None, "open the session first"
        self._media = media
        self._url = redact(session.url)
        self._time_base = Fraction(1, media.clock_rate_hz)
        self._template: av.container.InputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._latency: ReadLatency | None = None
        self._batch_s = session.read_batch_s

    @property
    def video(self) -> av.video.stream.VideoStream:
        """The template stream; exists once `packets()` has yielded its first packet."""
        if self._video is None:
            raise SourceError(f"{self._url}: no keyframe seen yet")
        return self._video

    @property
    def time_base(self) -> Fraction:
        return self._time_base

    def follow(self, latency: ReadLatency) -> None:
        self._latency = latency

    def packets(self) -> Iterator[av.Packet]:
        """Packets from the first keyframe on, with 64-bit timestamps in the RTP clock."""
        time_base = self._time_base
        reorder_ticks = int(REORDER_WINDOW_S * self._media.clock_rate_hz)
        last_rtp: int | None = None
        ts = 0
        give_up_at = time.monotonic() + FIRST_KEYFRAME_TIMEOUT_S
        session, latency, batch_s = self._session, self._latency, self._batch_s
        try:
            for unit in session.access_units():
                if last_rtp is None:
                    if not unit.is_keyframe:  # nothing before it can be recorded
                        if time.monotonic() > give_up_at:
                            raise RtspUnsupported(
                                f"no IDR/IRAP keyframe in {FIRST_KEYFRAME_TIMEOUT_S:g} s"
                            )
                        continue
                    self._make_template(unit.data)
                else:
                    step = ((unit.timestamp - last_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                    if -reorder_ticks < step <= 0:
                        raise RtspUnsupported(
                            "timestamps go backwards or repeat between frames (B-frames?)"
                        )
                    ts += step
                last_rtp = unit.timestamp
                packet = av.Packet(unit.data)  # type: ignore[arg-type]  # any buffer works
                packet.pts = packet.dts = ts
                packet.time_base = time_base
                packet.is_keyframe = unit.is_keyframe
                if latency is not None:  # the session reads the new value after this unit
                    session.read_batch_s = 0.0 if latency.low else batch_s
                yield packet
        except RtspEndOfStream:
            return  # the end of the stream, as FFmpeg reports it
        except RtspError as err:
            raise _source_error(err) from err

    def _make_template(self, keyframe: bytes | bytearray) -> None:
        """Let FFmpeg probe the parameter sets and one keyframe: the stream it finds
        (size, extradata) is the template every muxer and decoder of this run copies."""
        if self._template is not None:
            return
        sets = b"".join(START_CODE + p for p in self._media.parameter_sets)
        fmt = "hevc" if self._media.codec == "hevc" else "h264"
        try:
            container = av.open(  # the quick probe: 25 ms for a 1080p keyframe, not 35
                io.BytesIO(sets + bytes(keyframe)), "r", format=fmt, options=QUICK_PROBE
            )
        except (av.error.FFmpegError, OSError) as err:
            raise SourceError(
                f"{self._url}: the first keyframe cannot be parsed: {err}", unsupported=True
            ) from err
        if not container.streams.video or not container.streams.video[0].codec_context.width:
            container.close()
            raise SourceError(  # FFmpeg's reader may find them where ours did not
                f"{self._url}: the first keyframe has no usable parameter sets",
                unsupported=True,
            )
        video = container.streams.video[0]
        # The raw demuxer counts in 1/1200000 s; the packets count in the RTP clock. Muxers
        # copy the template's time base (and PyAV gives it to a packet bound to the stream).
        video.time_base = self._time_base
        self._template = container
        self._video = video

    def close(self) -> None:
        self._session.close()
        if self._template is not None:
            self._template.close()
            self._template = None


class RtspOpener:
    """Opens RTSP URLs with Dozor's client (H.264/H.265 over TCP)."""

    def __init__(
        self,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        read_batch_s: float = 0.0,
    ) -> None:
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.read_batch_s = read_batch_s

    def open(self, url: str) -> Source:
        try:
            session = RtspSession(
                url,
                open_timeout_s=self.open_timeout_s,
                read_timeout_s=self.read_timeout_s,
                read_batch_s=self.read_batch_s,
            )
        except RtspError as err:
            raise _source_error(err) from err
        try:
            session.open()
        except RtspError as err:
            session.close()
            raise _source_error(err) from err
        except BaseException:
            session.close()
            raise
        return RtspSource(session)


class FallbackOpener:
    """`primary` (Dozor's client) unless it said a URL is unsupported; then `fallback`."""

    def __init__(self, primary: Opener, fallback: Opener) -> None:
        self._primary = primary
        self._fallback = fallback
        self._fallback_urls: set[str] = set()
        self._lock = threading.Lock()  # one opener serves every ingest thread

    def uses_fallback(self, url: str) -> bool:
        with self._lock:
            return url in self._fallback_urls

    def open(self, url: str) -> Source:
        if not url.startswith("rtsp://") or self.uses_fallback(url):
            return self._fallback.open(url)
        try:
            return _Remembering(self._primary.open(url), url, self)
        except SourceError as err:
            if not err.unsupported:
                raise
            self.fall_back(url, err)
            return self._fallback.open(url)

    def fall_back(self, url: str, err: SourceError) -> None:
        """Read `url` through the fallback opener from now on."""
        with self._lock:
            self._fallback_urls.add(url)
        log.warning("%s: read through FFmpeg from now on: %s", redact(url), err)


class _Remembering:
    """A primary source that tells its opener when it turns out to be unsupported."""

    def __init__(self, source: Source, url: str, opener: FallbackOpener) -> None:
        self._source = source
        self._url = url
        self._opener = opener

    @property
    def video(self) -> av.video.stream.VideoStream:
        return self._source.video

    @property
    def time_base(self) -> Fraction:
        return self._source.time_base

    def follow(self, latency: ReadLatency) -> None:
        self._source.follow(latency)

    def packets(self) -> Iterator[av.Packet]:
        try:
            yield from self._source.packets()
        except SourceError as err:
            if err.unsupported:
                self._opener.fall_back(self._url, err)
            raise

    def close(self) -> None:
        self._source.close()


def make_opener(settings: IngestSettings) -> Opener:
    """The opener `settings.rtsp_client` names ("dozor" or "ffmpeg")."""
    ffmpeg = PyavOpener(
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        read_interrupt=settings.read_interrupt,
    )
    if settings.rtsp_client == "ffmpeg":
        return ffmpeg
    if settings.rtsp_client != "dozor":
        raise ValueError(f"rtsp_client must be 'dozor' or 'ffmpeg', not {settings.rtsp_client!r}")
    native = RtspOpener(
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        read_batch_s=settings.read_batch_s,
    )
    return FallbackOpener(native, ffmpeg)


def _source_error(err: RtspError) -> SourceError:
    return SourceError(
        redact(str(err)),
        timed_out=isinstance(err, RtspTimeout),
        unsupported=isinstance(err, RtspUnsupported),
    )
