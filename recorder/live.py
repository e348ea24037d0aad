"""Live view on demand: remux a stream into fMP4 fragments in memory while somebody watches.

A `LiveSink` is a `PacketSink` on a stream's ingest thread. It does nothing (one dict
lookup per packet) until a viewer asks for the stream; it then starts at the next keyframe,
publishes the init segment (ftyp+moov) and then every moof+mdat fragment as its own message,
and stops when the last request expires (requests live `ttl_s` unless renewed). Nothing is
transcoded. Where the browser cannot play the codec (H.265) a viewer asks for mode "jpeg"
instead: keyframes only are decoded and sent as JPEG at most once per `jpeg_interval_s`.

Every message is a `LivePayload`: a fixed 28-byte header, a short JSON meta, then the body
(docs/live.md, "Wire format"). `LiveController` holds the sinks of a site and answers the
"live.start" / "live.renew" / "live.stop" commands.
"""

from __future__ import annotations

import enum
import io
import json
import logging
import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import av
import cv2

from police_link.commands import (
    COMMAND_SCHEMAS,
    ArgSpec,
    CommandError,
    CommandRequest,
    CommandSchema,
    ErrorCode,
)
from recorder.clock import Clock, SystemClock
from recorder.errors import RecorderError
from recorder.stream_types import StreamInfo

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30.0
# Automatic fragmenting (fragment_s=None): bytes a fragment costs beyond the camera's own
# data (moof 104 + mdat header 8 + our header 28 + WebSocket framing 4, measured), the
# overhead aimed at, and the longest a frame may wait for its fragment to close.
FRAGMENT_OVERHEAD_BYTES = 144
AUTO_OVERHEAD_TARGET = 0.04
AUTO_MAX_HOLD_S = 0.2
AUTO_MIN_SPAN_S = 1.0  # stream seen for less than this: per frame
MAX_TTL_S = 600.0
STREAMS = ("main", "sub")


class LiveError(RecorderError):
    """The live path failed for one stream (muxing, decoding, a malformed payload)."""


class LiveRequestError(LiveError):
    """A live command names an unknown camera or stream or carries a bad field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class LiveMode(enum.StrEnum):
    MSE = "mse"  # fMP4 fragments for Media Source Extensions
    JPEG = "jpeg"  # keyframes decoded and sent as JPEG (H.265 in Chromium)


# --------------------------------------------------------------------------- wire format


class ChunkKind(enum.IntEnum):
    INIT = 0  # ftyp+moov; meta has codec (RFC 6381 string), width, height
    MEDIA = 1  # one moof+mdat
    JPEG = 2  # one JPEG picture
    END = 3  # the stream stopped; meta has reason, and mode when only that mode stopped


FLAG_KEYFRAME = 0x01  # MEDIA: the fragment starts with a keyframe

MAGIC = b"DZL1"
_HEADER = struct.Struct("!4sBBHIqq")  # magic, kind, flags, meta_len, seq, sample_us, recv_us
HEADER_BYTES = _HEADER.size


@dataclass(frozen=True)
class LivePayload:
    """One live message. Times are wall clock microseconds (0 when not known).

    sample_wall_us: media time of the first sample, anchored at the run start.
    recv_wall_us: when the recorder received the first packet in the chunk (latency probe).
    """

    kind: ChunkKind
    seq: int
    body: bytes
    flags: int = 0
    sample_wall_us: int = 0
    recv_wall_us: int = 0
    meta: Mapping[str, Any] | None = None

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)

    def encode(self) -> bytes:
        meta = json.dumps(dict(self.meta), separators=(",", ":")).encode() if self.meta else b""
        head = _HEADER.pack(
            MAGIC, self.kind, self.flags, len(meta), self.seq & 0xFFFFFFFF,
            self.sample_wall_us, self.recv_wall_us,
        )
        return head + meta + self.body


def decode_payload(payload: bytes) -> LivePayload:
    """Parse a live message; LiveError names what is wrong with it."""
    if len(payload) < HEADER_BYTES:
        raise LiveError(f"live payload: {len(payload)} bytes, shorter than the header")
    magic, kind, flags, meta_len, seq, sample_us, recv_us = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise LiveError(f"live payload: bad magic {magic!r}")
    try:
        kind = ChunkKind(kind)
    except ValueError as err:
        raise LiveError(f"live payload: unknown kind {kind}") from err
    end_meta = HEADER_BYTES + meta_len
    if end_meta > len(payload):
        raise LiveError("live payload: meta runs past the end")
    meta = None
    if meta_len:
        try:
            meta = json.loads(payload[HEADER_BYTES:end_meta])
        except ValueError as err:
            raise LiveError("live payload: meta is not JSON") from err
    return LivePayload(kind, seq, bytes(payload[end_meta:]), flags, sample_us, recv_us, meta)


# --------------------------------------------------------------------------- codec strings


def codec_string(init_segment: bytes) -> str:
    """The RFC 6381 codec string (for MediaSource.isTypeSupported) from an init segment."""
    at = init_segment.find(b"avcC")
    if at >= 0 and len(init_segment) >= at + 8:
        profile, compat, level = init_segment[at + 5 : at + 8]
        return f"avc1.{profile:02x}{compat:02x}{level:02x}"
    at = init_segment.find(b"hvcC")
    if at >= 0 and len(init_segment) >= at + 4 + 13:
        return _hevc_codec_string(init_segment[at + 4 : at + 4 + 13])
    raise LiveError("init segment has neither avcC nor hvcC")


def _hevc_codec_string(hvcc: bytes) -> str:
    """ISO/IEC 14496-15 annex E: hvc1.<space><profile>.<compat>.<tier><level>[.<constraints>]."""
    space = "" if hvcc[1] >> 6 == 0 else "ABC"[(hvcc[1] >> 6) - 1]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    compat = int.from_bytes(hvcc[2:6], "big")
    compat_reversed = int(f"{compat:032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [f"hvc1.{space}{profile}", f"{compat_reversed:x}", f"{tier}{hvcc[12]}"]
    parts += [f"{b:x}" for b in constraints]
    return ".".join(parts)


# --------------------------------------------------------------------------- fMP4 muxer


class _Collect(io.RawIOBase):
    """The muxer's output file: bytes accumulate until the box parser takes them."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        self.data += b
        return len(b)


def _take_boxes(buf: bytearray) -> list[tuple[bytes, bytes]]:
    """Remove complete top-level boxes from buf: [(type, whole box)]."""
    boxes = []
    pos = 0
    while len(buf) - pos >= 8:
        size = int.from_bytes(buf[pos : pos + 4], "big")
        header = 8
        if size == 1:
            if len(buf) - pos < 16:
                break
            size = int.from_bytes(buf[pos + 8 : pos + 16], "big")
            header = 16
        if size < header:
            raise LiveError(f"muxer wrote a box of size {size}")
        if len(buf) - pos < size:
            break
        boxes.append((bytes(buf[pos + 4 : pos + 8]), bytes(buf[pos : pos + size])))
        pos += size
    del buf[:pos]
    return boxes


def _trun_sample_count(moof: bytes) -> int:
    """Samples in a moof (one track): the trun's sample_count."""
    at = moof.find(b"trun")
    if at < 0 or len(moof) < at + 12:
        raise LiveError("moof without trun")
    return int.from_bytes(moof[at + 8 : at + 12], "big")


@dataclass(frozen=True)
class _Pending:
    recv_wall_us: int
    sample_wall_us: int
    keyframe: bool


class _FragmentMuxer:
    """One fMP4 muxing session, started on a keyframe. Ingest thread only."""

    def __init__(self, info: StreamInfo, fragment_s: float) -> None:
        flags = "empty_moov+default_base_moof"
        options = {"flush_packets": "1"}
        if fragment_s <= 0:
            flags += "+frag_every_frame"
        else:
            flags += "+frag_keyframe"  # alone (fragment_s infinite): one fragment per GOP
            if math.isfinite(fragment_s):
                options["frag_duration"] = str(int(fragment_s * 1_000_000))
        options["movflags"] = flags
        self._file = _Collect()
        try:
            self._out = av.open(self._file, "w", format="mp4", options=options)
            if info.codec == "hevc":  # hvc1: parameter sets in the init segment, as browsers want
                self._stream = self._out.add_stream_from_template(info.av_stream, codec_tag="hvc1")
            else:
                self._stream = self._out.add_stream_from_template(info.av_stream)
        except (av.FFmpegError, ValueError) as err:
            raise LiveError(f"cannot start the fMP4 muxer: {err}") from err
        self._pending: deque[_Pending] = deque()
        self._moof: bytes | None = None
        self._head: list[bytes] = []
        self.init_segment: bytes | None = None
        self.codec: str | None = None

    def feed(self, packet: av.Packet, pending: _Pending) -> list[tuple[bytes, _Pending | None]]:
        """Mux one packet; return what became complete: (init, None) and (fragment, first)."""
        # A copy: the packet is shared with the other sinks, and muxing rewrites its stream,
        # time base and timestamps.
        copy = av.Packet(bytes(packet))
        copy.stream = self._stream  # first: binding a stream may set the time base too
        copy.pts, copy.dts = packet.pts, packet.dts
        copy.time_base = packet.time_base
        copy.is_keyframe = packet.is_keyframe
        self._pending.append(pending)
        try:
            self._out.mux(copy)
        except (av.FFmpegError, ValueError) as err:
            raise LiveError(f"muxing a live packet failed: {err}") from err
        return self._collect()

    def _collect(self) -> list[tuple[bytes, _Pending | None]]:
        done: list[tuple[bytes, _Pending | None]] = []
        for kind, box in _take_boxes(self._file.data):
            if self.init_segment is None:
                self._head.append(box)
                if kind == b"moov":
                    self.init_segment = b"".join(self._head)
                    self.codec = codec_string(self.init_segment)
                    done.append((self.init_segment, None))
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                count = _trun_sample_count(self._moof)
                first = self._pending[0] if self._pending else None
                for _ in range(min(count, len(self._pending))):
                    self._pending.popleft()
                done.append((self._moof + box, first))
                self._moof = None
        return done

    def close(self) -> None:
        try:
            self._out.close()
        except (av.FFmpegError, ValueError) as err:
            log.debug("closing a live muxer: %s", err)


# --------------------------------------------------------------------------- JPEG fallback


class _JpegEncoder:
    """Decodes keyframes only and encodes them as JPEG. Ingest thread only."""

    def __init__(self, info: StreamInfo, quality: int, max_width: int) -> None:
        try:
            self._ctx: Any = av.CodecContext.create(info.codec, "r")  # a VideoCodecContext
            extradata = info.av_stream.codec_context.extradata
            if extradata:
                self._ctx.extradata = extradata
            self._ctx.skip_frame = "NONKEY"
            self._ctx.thread_count = 1  # no frame threading: a keyframe comes out at once
        except (av.FFmpegError, ValueError) as err:
            raise LiveError(f"cannot open a {info.codec} decoder: {err}") from err
        self._quality = quality
        self._max_width = max_width

    def encode(self, packet: av.Packet) -> bytes | None:
        try:
            frames = self._ctx.decode(packet)
        except (av.FFmpegError, ValueError) as err:
            raise LiveError(f"decoding a keyframe failed: {err}") from err
        if not frames:
            return None
        frame = frames[-1]
        if frame.width > self._max_width:
            height = round(frame.height * self._max_width / frame.width / 2) * 2
            frame = frame.reformat(width=self._max_width, height=height)
        image = frame.to_ndarray(format="bgr24")
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise LiveError("cv2.imencode failed")
        return jpeg.tobytes()


# --------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class LiveStats:
    views: int
    bytes_published: int
    messages_published: int
    fragments: int
    jpegs: int
    fragments_skipped: int  # not sent (link backlogged or down) or after one that was not


class LiveSink:
    """The live end of one stream. Requests come from any thread; packets on the ingest thread.

    `publish(payload, droppable)` must not block (paho's publish only queues) and returns
    False when it did not send: droppable media fragments are then skipped up to the next
    keyframe, since nothing after a lost fragment decodes. `fragment_s` 0 cuts a
    fragment per frame (lowest latency); > 0 groups frames up to that duration (less
    overhead), math.inf one fragment per GOP; None (default) picks per session from the
    stream's bitrate and frame rate so that the overhead stays near AUTO_OVERHEAD_TARGET
    without holding a frame longer than AUTO_MAX_HOLD_S. See docs/live.md for figures.
    """

    def __init__(
        self,
        *,
        site: str,
        camera: str,
        stream: str,
        publish: Callable[[bytes, bool], object],
        clock: Clock | None = None,
        fragment_s: float | None = None,
        jpeg_interval_s: float = 1.0,
        jpeg_quality: int = 70,
        jpeg_max_width: int = 1280,
    ) -> None:
        self.site, self.camera, self.stream = site, camera, stream
        self._publish = publish
        self._skip_to_keyframe = False  # a media fragment was not sent
        self._skipped = 0
        self._clock = clock or SystemClock()
        self._fragment_s = fragment_s
        self._jpeg_interval_s = jpeg_interval_s
        self._jpeg_quality = jpeg_quality
        self._jpeg_max_width = jpeg_max_width
        self._lock = threading.Lock()
        self._views: dict[str, tuple[LiveMode, float]] = {}  # view id -> (mode, expiry)
        self._low_latency = False  # asked the stream's ReadLatency for unbatched reads
        self._resend_init = False
        # Ingest thread state.
        self._info: StreamInfo | None = None
        self._first_dts: int | None = None  # of the run: anchors sample wall times
        self._last_dts: int | None = None
        self._seen_bytes = 0  # since the run started: the stream's own bitrate
        self._seen_packets = 0
        self._mux: _FragmentMuxer | None = None
        self._jpeg: _JpegEncoder | None = None
        self._last_jpeg_mono: float | None = None
        self._seq = 0
        self._bytes = 0
        self._messages = 0
        self._fragments = 0
        self._jpegs = 0

    def _tag(self) -> str:
        return f"site {self.site} camera {self.camera}/{self.stream}"

    # -- control, any thread ------------------------------------------------------------
    def request(self, view_id: str, mode: LiveMode = LiveMode.MSE,
                ttl_s: float = DEFAULT_TTL_S) -> None:
        """Start or renew a view for ttl_s seconds from now."""
        with self._lock:
            new = view_id not in self._views
            self._views[view_id] = (mode, self._clock.monotonic() + ttl_s)
            if new:
                self._resend_init = True
        if new:
            log.info("%s: live view %s started (%s, ttl %g s)", self._tag(), view_id, mode, ttl_s)

    def release(self, view_id: str) -> bool:
        with self._lock:
            gone = self._views.pop(view_id, None) is not None
        if gone:
            log.info("%s: live view %s stopped", self._tag(), view_id)
        return gone

    def stats(self) -> LiveStats:
        with self._lock:
            views = len(self._views)
        return LiveStats(views, self._bytes, self._messages, self._fragments, self._jpegs,
                         self._skipped)

    def _wanted_modes(self) -> tuple[set[LiveMode], bool]:
        now = self._clock.monotonic()
        with self._lock:
            expired = [v for v, (_, until) in self._views.items() if until <= now]
            for view_id in expired:
                del self._views[view_id]
            modes = {mode for mode, _ in self._views.values()}
            resend, self._resend_init = self._resend_init, False
        for view_id in expired:
            log.info("%s: live view %s expired", self._tag(), view_id)
        return modes, resend

    # -- PacketSink, ingest thread -----------------------------------------------------
    def on_run_start(self, info: StreamInfo) -> None:
        self._stop_all("new run")
        self._info = info
        self._first_dts = self._last_dts = None
        self._seen_bytes = self._seen_packets = 0
        self._ask_low_latency(bool(self._views))

    def on_run_end(self, reason: str) -> None:
        self._stop_all(f"stream ended: {reason}")
        self._ask_low_latency(False)
        self._info = None

    def _ask_low_latency(self, low: bool) -> None:
        """While someone watches, frames are read as they arrive (not in 0.2 s batches)."""
        info = self._info
        if info is not None and info.read_latency is not None and low != self._low_latency:
            info.read_latency.ask(self, low)
            self._low_latency = low

    def on_packet(self, packet: av.Packet) -> None:
        dts = packet.dts
        if dts is None:
            return
        if self._first_dts is None:
            self._first_dts = dts
        self._last_dts = dts
        self._seen_bytes += packet.size
        self._seen_packets += 1
        if not self._views and self._mux is None and self._jpeg is None:
            if self._low_latency:
                self._ask_low_latency(False)
            return  # the common case: nobody watches
        info = self._info
        if info is None:
            return
        modes, resend = self._wanted_modes()
        self._ask_low_latency(bool(modes))
        try:
            self._feed_mse(info, packet, LiveMode.MSE in modes, resend)
            self._feed_jpeg(info, packet, LiveMode.JPEG in modes)
        except LiveError as err:
            # Never let the live path disturb recording: drop this session, retry at the
            # next keyframe.
            log.warning("%s: live view restarts at the next keyframe: %s", self._tag(), err)
            self._stop_all(str(err), announce=False)

    def _times(self, info: StreamInfo, packet: av.Packet) -> _Pending:
        tb = info.time_base_num / info.time_base_den
        pts = packet.pts if packet.pts is not None else (packet.dts or 0)
        first = self._first_dts if self._first_dts is not None else pts
        sample_wall = info.run_start_wall + (pts - first) * tb
        return _Pending(
            recv_wall_us=int(self._clock.wall() * 1e6),
            sample_wall_us=int(sample_wall * 1e6),
            keyframe=bool(packet.is_keyframe),
        )

    def _feed_mse(self, info: StreamInfo, packet: av.Packet, wanted: bool, resend: bool) -> None:
        if not wanted:
            if self._mux is not None:
                self._mux.close()
                self._mux = None
                self._emit(ChunkKind.END, b"", meta={"reason": "no viewers", "mode": "mse"})
            return
        if self._mux is None:
            if not packet.is_keyframe:
                return
            self._mux = _FragmentMuxer(info, self._session_fragment_s(info))
        elif resend and self._mux.init_segment is not None:
            self._emit_init(info, self._mux)
        for data, first in self._mux.feed(packet, self._times(info, packet)):
            if first is None:
                self._emit_init(info, self._mux)
            else:
                self._emit_media(data, first)

    def _emit_media(self, data: bytes, first: _Pending) -> None:
        """A fragment, unless an earlier one was not sent and this is no keyframe."""
        if self._skip_to_keyframe and not first.keyframe:
            self._seq += 1  # the viewer sees the gap and waits for a keyframe too
            self._skipped += 1
            return
        self._fragments += 1
        sent = self._emit(ChunkKind.MEDIA, data, FLAG_KEYFRAME if first.keyframe else 0,
                          first.sample_wall_us, first.recv_wall_us, droppable=True)
        self._skip_to_keyframe = not sent
        if not sent:
            self._skipped += 1

    def _session_fragment_s(self, info: StreamInfo) -> float:
        """fragment_s for a new session: as configured, or chosen from what was seen."""
        if self._fragment_s is not None:
            return self._fragment_s
        first, last = self._first_dts, self._last_dts
        if first is None or last is None or self._seen_packets < 2:
            return 0.0
        span_s = (last - first) * info.time_base_num / info.time_base_den
        if span_s < AUTO_MIN_SPAN_S:
            return 0.0
        fps = (self._seen_packets - 1) / span_s
        bitrate_bps = self._seen_bytes * 8 / span_s
        if bitrate_bps <= 0:
            return 0.0
        frames = math.ceil(FRAGMENT_OVERHEAD_BYTES * 8 * fps / (AUTO_OVERHEAD_TARGET * bitrate_bps))
        frames = max(1, min(frames, math.floor(AUTO_MAX_HOLD_S * fps)))
        log.info("%s: live fragments of %d frame(s) (%.0f kbit/s, %.1f fps)", self._tag(),
                 frames, bitrate_bps / 1000, fps)
        # The muxer closes a fragment once it spans frag_duration: half a frame under k
        # frames makes that exactly k.
        return 0.0 if frames == 1 else (frames - 0.5) / fps

    def _emit_init(self, info: StreamInfo, mux: _FragmentMuxer) -> None:
        meta = {"codec": mux.codec, "width": info.width, "height": info.height,
                "stream": info.stream}
        self._emit(ChunkKind.INIT, mux.init_segment or b"", meta=meta)

    def _feed_jpeg(self, info: StreamInfo, packet: av.Packet, wanted: bool) -> None:
        if not wanted:
            self._jpeg = None
            return
        if not packet.is_keyframe:
            return
        now = self._clock.monotonic()
        if self._last_jpeg_mono is not None and now - self._last_jpeg_mono < self._jpeg_interval_s:
            return
        if self._jpeg is None:
            self._jpeg = _JpegEncoder(info, self._jpeg_quality, self._jpeg_max_width)
        times = self._times(info, packet)
        jpeg = self._jpeg.encode(packet)
        if jpeg is None:
            return
        self._last_jpeg_mono = now
        self._jpegs += 1
        self._emit(ChunkKind.JPEG, jpeg, FLAG_KEYFRAME, times.sample_wall_us, times.recv_wall_us)

    def _emit(self, kind: ChunkKind, body: bytes, flags: int = 0, sample_wall_us: int = 0,
              recv_wall_us: int = 0, meta: Mapping[str, Any] | None = None,
              droppable: bool = False) -> bool:
        """Publish one message; False when the link did not send it."""
        self._seq += 1
        payload = LivePayload(kind, self._seq, body, flags, sample_wall_us, recv_wall_us,
                              meta).encode()
        if self._publish(payload, droppable) is False:
            return False
        self._bytes += len(payload)
        self._messages += 1
        return True

    def _stop_all(self, reason: str, announce: bool = True) -> None:
        was_live = self._mux is not None or self._jpeg is not None
        if self._mux is not None:
            self._mux.close()
            self._mux = None
        self._jpeg = None
        self._last_jpeg_mono = None
        with self._lock:
            self._resend_init = False
        if was_live and announce:
            self._emit(ChunkKind.END, b"", meta={"reason": reason})


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class LiveCommand:
    """The arguments of live.start / live.renew / live.stop, with the view they name."""

    view_id: str
    camera: str
    stream: str
    mode: LiveMode
    ttl_s: float


def _live_schemas() -> dict[str, CommandSchema]:
    """police_link's live schemas plus the optional "mode" (mse | jpeg)."""
    mode = ArgSpec("mode", str, required=False, choices=tuple(m.value for m in LiveMode))
    return {kind: (*COMMAND_SCHEMAS[kind], mode)
            for kind in ("live.start", "live.renew", "live.stop")}


# Register with SiteLink.on_command(kind, controller.handle_request, schema).
LIVE_COMMAND_SCHEMAS: dict[str, CommandSchema] = _live_schemas()


def parse_live_command(args: Mapping[str, Any], sender: str) -> LiveCommand:
    """Validate a live command's arguments; LiveRequestError names the bad field.

    The view is the requesting viewer and the mode: a viewer aggregates its own browsers,
    so each viewer process holds at most one view per stream and mode.
    """
    if not isinstance(args, Mapping):
        raise LiveRequestError("args", "must be a JSON object")
    camera = args.get("camera")
    if not isinstance(camera, str) or not camera:
        raise LiveRequestError("camera", f"must be a camera name, got {camera!r}")
    stream = args.get("stream", "sub")
    if stream not in STREAMS:
        raise LiveRequestError("stream", f"must be one of {STREAMS}, got {stream!r}")
    try:
        mode = LiveMode(args.get("mode", "mse"))
    except ValueError as err:
        raise LiveRequestError(
            "mode", f"must be one of {[m.value for m in LiveMode]}, got {args.get('mode')!r}"
        ) from err
    ttl_s = args.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not 0 < ttl_s <= MAX_TTL_S:
        raise LiveRequestError("ttl_s", f"must be a number in (0, {MAX_TTL_S:g}], got {ttl_s!r}")
    return LiveCommand(f"{sender}:{mode.value}", camera, stream, mode, float(ttl_s))


class LivePublisher(Protocol):
    """SiteLink.publish_live: False when not sent (not connected, or backlogged and droppable)."""

    def __call__(self, camera: str, stream: str, payload: bytes, *,
                 drop_if_backlogged: bool = False) -> bool: ...


class LiveController:
    """The site's live sinks, keyed by (camera, stream), and the live command handlers.

    `publish_live` is police_link's SiteLink.publish_live.
    """

    def __init__(
        self,
        site: str,
        publish_live: LivePublisher,
        *,
        clock: Clock | None = None,
        **sink_options: Any,
    ) -> None:
        self.site = site
        self._publish_live = publish_live
        self._clock = clock or SystemClock()
        self._sink_options = sink_options
        self._sinks: dict[tuple[str, str], LiveSink] = {}

    def sink(self, camera: str, stream: str) -> LiveSink:
        """The sink to add to (camera, stream)'s ingest; created on first call."""
        key = (camera, stream)
        if key not in self._sinks:
            self._sinks[key] = LiveSink(
                site=self.site, camera=camera, stream=stream,
                publish=lambda payload, droppable: self._publish_live(
                    camera, stream, payload, drop_if_backlogged=droppable),
                clock=self._clock, **self._sink_options,
            )
        return self._sinks[key]

    def handle(self, kind: str, args: Mapping[str, Any], sender: str) -> dict[str, Any]:
        """Answer live.start / live.renew / live.stop; raises LiveRequestError."""
        if kind not in LIVE_COMMAND_SCHEMAS:
            raise LiveRequestError("kind", f"not a live command: {kind!r}")
        cmd = parse_live_command(args, sender)
        sink = self._sinks.get((cmd.camera, cmd.stream))
        if sink is None:
            raise LiveRequestError(
                "camera", f"no live source for camera {cmd.camera!r} stream {cmd.stream!r}"
            )
        if kind == "live.stop":
            return {"stopped": sink.release(cmd.view_id)}
        sink.request(cmd.view_id, cmd.mode, cmd.ttl_s)
        return {"ttl_s": cmd.ttl_s, "mode": cmd.mode.value}

    def handle_request(self, request: CommandRequest) -> dict[str, Any]:
        """police_link CommandHandler: LiveRequestError becomes a CommandError response."""
        try:
            return self.handle(request.kind, request.args, request.sender)
        except LiveRequestError as err:
            code = ErrorCode.UNKNOWN_CAMERA if err.field == "camera" else ErrorCode.BAD_REQUEST
            raise CommandError(code, str(err)) from err

    def stats(self) -> dict[tuple[str, str], LiveStats]:
        return {key: sink.stats() for key, sink in self._sinks.items()}

    # -- wiring into the daemon -----------------------------------------------------------
    def sink_factory(self, camera_config: Any, stream: str) -> list[LiveSink]:
        """recorder.daemon.SinkFactory: every stream of every camera gets its live sink."""
        return [self.sink(camera_config.name, stream)]

    def register(self, site_link: Any) -> None:
        """Answer the live commands on a police_link.SiteLink."""
        for kind, schema in LIVE_COMMAND_SCHEMAS.items():
            site_link.on_command(kind, self.handle_request, schema)


__all__ = [
    "DEFAULT_TTL_S",
    "HEADER_BYTES",
    "LIVE_COMMAND_SCHEMAS",
    "ChunkKind",
    "LiveCommand",
    "LiveController",
    "LiveError",
    "LiveMode",
    "LivePayload",
    "LiveRequestError",
    "LiveSink",
    "LiveStats",
    "codec_string",
    "decode_payload",
    "parse_live_command",
]
