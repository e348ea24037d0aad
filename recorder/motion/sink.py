"""MotionSink: the sub stream's packet sink that decodes, detects and tracks events.

Runs on the ingest thread and never does I/O: event changes and alarms go to callbacks (the
EventRecorder queues them for its own thread). Decoding follows `MotionConfig.decode`:
"all" decodes and processes every frame; "fps" decodes every frame (inter frames need their
references) but processes only `fps` of them a second, leaving undecoded only the tail of a
GOP after its last analysed frame (recorder.motion.gop_tail); "keyframes" hands only keyframes to a
decoder told to skip the rest (`skip_frame = "NONKEY"`), the cheapest mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import av
import cv2

from recorder.clock import Clock, SystemClock
from recorder.motion.config import MotionConfig
from recorder.motion.detector import Box, Detection, MotionDetector
from recorder.motion.events import EventChange, EventTracker
from recorder.motion.frames import luma_plane
from recorder.motion.gop_tail import GopTailSkipper
from recorder.motion.snapshot import snapshot_jpeg
from recorder.motion.tamper import AlarmChange, TamperMonitor
from recorder.stream_types import StreamInfo

log = logging.getLogger(__name__)


class MotionSink:
    """A PacketSink (see recorder.stream_types) for one camera's sub stream."""

    def __init__(
        self,
        camera: str,
        cfg: MotionConfig,
        on_event: Callable[[EventChange], None],
        on_alarm: Callable[[AlarmChange], None] | None = None,
        *,
        clock: Clock | None = None,
        on_detection: Callable[[Detection], None] | None = None,
        skip_gop_tails: bool = True,
    ) -> None:
        cfg.validate()
        # OpenCV's thread pool costs more than it saves on 320 px images, and would spread a
        # camera's work over threads the ingest design does not account for
        cv2.setNumThreads(1)
        self.camera = camera
        self.cfg = cfg
        self._site = ""
        params = cfg.params()
        self.detector = MotionDetector(params, cfg.masks, cfg.zones)
        self.tracker = EventTracker(
            camera, cfg.events, on_event, source="motion", snapshot=self._snapshot,
            min_area_fraction=params.min_area_fraction,
        )
        self.tamper = TamperMonitor(camera, cfg.tamper, on_alarm or (lambda _a: None),
                                    clock=clock or SystemClock())
        self._on_detection = on_detection
        self._ctx: av.VideoCodecContext | None = None
        self._tb_s = 1 / 90000
        self._wall0 = 0.0
        self._pts0: int | None = None
        self._next_sample_s = 0.0
        self._last_wall: float | None = None
        self._decode_errors = 0
        self._skip_gop_tails = skip_gop_tails
        self._tail: GopTailSkipper | None = None
        self.frames_decoded = 0
        self.frames_processed = 0
        self.frames_skipped = 0  # GOP tails left undecoded (decode = "fps")

    # ---- PacketSink --------------------------------------------------------------------------

    def on_run_start(self, info: StreamInfo) -> None:
        self._site = info.site
        self._close_decoder()
        try:
            src = info.av_stream.codec_context
            ctx = cast(av.VideoCodecContext, av.CodecContext.create(src.name, "r"))
            if src.extradata:
                ctx.extradata = src.extradata
            ctx.thread_count = 1  # one ingest thread per stream; no frame-threading delay
            # detection works on a 320 px thumbnail: deblocking and exact decoding are wasted
            ctx.options = {"skip_loop_filter": "all", "flags2": "+fast"}
            if self.cfg.decode == "keyframes":
                ctx.skip_frame = "NONKEY"
            elif self.cfg.decode == "fps":
                # frames nothing refers to (B-frames, SVC-T layers of "smart" codecs) need
                # not be decoded when only a few frames a second are looked at
                ctx.skip_frame = "NONREF"
        except (av.FFmpegError, ValueError) as err:
            log.error("site %s camera %s: cannot open a %s decoder for motion: %s", info.site,
                      self.camera, info.codec, err)
            self._ctx = None
            return
        self._ctx = ctx
        self._tb_s = info.time_base_num / info.time_base_den
        self._wall0 = info.run_start_wall
        self._pts0 = None
        self._next_sample_s = float("-inf")
        if self.cfg.decode == "fps" and self._skip_gop_tails:
            self._tail = GopTailSkipper()
        else:
            self._tail = None
        self.detector.reset()
        log.info("site %s camera %s: motion on %dx%d %s, decode=%s", info.site, self.camera,
                 info.width, info.height, info.codec, self.cfg.decode)

    def on_packet(self, packet: av.Packet) -> None:
        ctx = self._ctx
        if ctx is None or not self.cfg.enabled:
            return
        if self._pts0 is None:  # anchor like the segment writer: the run's first DTS
            self._pts0 = packet.dts if packet.dts is not None else packet.pts
        if self.cfg.decode == "keyframes" and not packet.is_keyframe:
            return
        tail = self._tail
        if tail is not None:
            ts = packet.pts if packet.pts is not None else packet.dts
            pts0 = self._pts0
            if ts is not None and pts0 is not None and not tail.must_decode(
                (ts - pts0) * self._tb_s, packet.is_keyframe, self._next_sample_s
            ):
                self.frames_skipped += 1
                return
        try:
            frames = ctx.decode(packet)
        except av.FFmpegError as err:  # corrupt packet, or inter frames before the first key
            self._decode_errors += 1
            if self._decode_errors in (1, 10, 100) or self._decode_errors % 1000 == 0:
                log.warning("site %s camera %s: motion decode error #%d: %s", self._site,
                            self.camera, self._decode_errors, err)
            return
        for frame in frames:
            self._on_frame(frame)

    def on_run_end(self, reason: str) -> None:
        if self._ctx is not None:
            try:
                for frame in self._ctx.decode(None):
                    self._on_frame(frame)
            except av.FFmpegError:
                pass
        self.tracker.flush()
        self._close_decoder()
        log.info("site %s camera %s: motion run ended (%s)", self._site, self.camera, reason)

    # ---- timers and frames -------------------------------------------------------------------

    def poll(self) -> None:
        """Call about once a second from a timer thread: raises video loss."""
        if self.cfg.enabled:  # a disabled sink sees no frames: that is not video loss
            self.tamper.poll()

    def _on_frame(self, frame: av.VideoFrame) -> None:
        self.frames_decoded += 1
        pts = frame.pts
        if pts is None or self._pts0 is None:
            return
        media_s = (pts - self._pts0) * self._tb_s
        if self.cfg.decode == "fps":
            if media_s < self._next_sample_s:
                return
            step = 1.0 / self.cfg.fps
            # stay on the fps grid; after a stall, restart it from this frame
            nxt = self._next_sample_s + step
            self._next_sample_s = nxt if media_s < nxt else media_s + step
        wall = self._wall0 + media_s
        self._last_wall = wall
        self.frames_processed += 1
        luma = luma_plane(frame)
        det = self.detector.process(luma, wall)
        if self._on_detection is not None:
            self._on_detection(det)
        self.tracker.feed(det, frame)
        self.tamper.on_frame(self.detector.last_resized, wall)

    def _snapshot(self, frame: av.VideoFrame, box: Box) -> bytes | None:
        try:
            return snapshot_jpeg(frame, box, colour=self.cfg.snapshot_colour)
        except (ValueError, av.FFmpegError) as err:
            log.warning("site %s camera %s: snapshot failed: %s", self._site, self.camera, err)
            return None

    def _close_decoder(self) -> None:
        self._ctx = None
