"""Remux one stream's packets into fragmented MP4 segments (the hot path).

A `PacketSink` running on the ingest thread. It never blocks on fsync, hashing or the
index (invariant 7): closed segments go to the `Flusher`. Invariants as in docs/storage.md.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from recorder.clock import Clock, SystemClock
from recorder.index import ClosedSegment, GapRow
from recorder.storage.layout import check_camera_name, segment_relpath
from recorder.stream_types import StreamInfo

if TYPE_CHECKING:
    from recorder.storage.disk import DiskGuard
    from recorder.storage.flusher import Flusher

log = logging.getLogger(__name__)

MUXER_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",
}
CODEC_TAGS = {"hevc": "hvc1"}  # browsers accept H.265 in MP4 only as hvc1


@dataclass(frozen=True)
class WriterStats:
    """Counters of one writer, for health and benchmarks."""

    segments_closed: int
    packets_written: int
    media_bytes_written: int
    dropped_no_dts: int
    dropped_before_keyframe: int
    dropped_disk_full: int
    dropped_write_error: int  # while segments could not be opened or written (not ENOSPC)
    discontinuities: int
    write_errors: int
    storage_full: bool


class SegmentWriter:
    """One stream's segment writer (a `recorder.stream_types.PacketSink`).

    `target_duration_s`: rotate at the first keyframe after this much media time.
    `first_segment_duration_s`: target of this writer's first segment only, so that
    cameras started together do not all rotate (and hash, and insert) in the same second.
    `max_dts_jump_s`: a forward DTS jump larger than this is a discontinuity.
    """

    def __init__(
        self,
        root: str | Path,
        flusher: Flusher,
        *,
        disk_guard: DiskGuard | None = None,
        target_duration_s: float = 60.0,
        first_segment_duration_s: float | None = None,
        max_dts_jump_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if target_duration_s <= 0:
            raise ValueError(f"target_duration_s must be positive, not {target_duration_s}")
        self.root = Path(root)
        self._flusher = flusher
        self._guard = disk_guard
        self._target_s = target_duration_s
        self._first_target_s = (
            target_duration_s if first_segment_duration_s is None else first_segment_duration_s
        )
        self._max_jump_s = max_dts_jump_s
        self._clock = clock or SystemClock()
        self._info: StreamInfo | None = None
        self._in_run = False
        self._where = "camera ?"
        self._out: av.container.OutputContainer | None = None
        self._first_segment = True
        self._full = False
        self._full_since_wall = 0.0
        # run state (set by on_run_start)
        self._tb = Fraction(1, 90000)
        self._tb_s = 1 / 90000
        self._ticks_per_s = 90000.0
        self._max_jump_ticks = 0
        self._run_mono0 = 0.0
        self._anchor_dts: int | None = None  # set by the run's first packet with a DTS
        self._anchor_wall = 0.0
        self._seq = 0
        # segment state (set by _open_segment)
        self._relpath = ""
        self._seg_base_dts = 0
        self._gop_start_dts = 0
        self._seg_start_wall = 0.0
        self._seg_target_ticks = 0
        self._frames = 0
        self._keyframes = 0
        self._media_bytes = 0
        self._seg_discontinuity = False
        self._reset_run_state()
        # counters
        self._segments_closed = 0
        self._packets_written = 0
        self._media_bytes_written = 0
        self._dropped_no_dts = 0
        self._dropped_before_keyframe = 0
        self._dropped_disk_full = 0
        self._discontinuities = 0
        self._write_errors = 0
        self._dropped_write_error = 0
        self._error_since_wall: float | None = None  # recording paused by write errors
        self._next_error_log = float("-inf")

    def _reset_run_state(self) -> None:
        self._last_dts: int | None = None
        self._frame_ticks = 0  # last positive DTS step, to end a segment one frame late
        self._pending_discontinuity = False

    # --- PacketSink ---------------------------------------------------------------------

    def on_run_start(self, info: StreamInfo) -> None:
        if self._out is not None:
            self._close_segment(self._end_dts())
        check_camera_name(info.camera)
        self._info = info
        self._where = f"site {info.site} camera {info.camera}/{info.stream}"
        self._tb = Fraction(info.time_base_num, info.time_base_den)
        self._tb_s = float(self._tb)
        self._ticks_per_s = 1.0 / self._tb_s
        self._max_jump_ticks = int(self._max_jump_s * self._ticks_per_s)
        self._run_mono0 = self._clock.monotonic()
        self._anchor_dts = None
        self._anchor_wall = info.run_start_wall
        self._seq = 0
        self._reset_run_state()
        self._in_run = True

    def on_packet(self, packet: av.Packet) -> None:
        dts = packet.dts
        if dts is None:
            self._dropped_no_dts += 1
            return
        last = self._last_dts
        if last is None:
            if self._anchor_dts is None:
                self._anchor_dts = dts
        else:
            step = dts - last
            if step <= 0 or step > self._max_jump_ticks:
                self._on_discontinuity(dts)
            else:
                self._frame_ticks = step
        self._last_dts = dts
        out = self._out
        if packet.is_keyframe:
            if out is None:
                if not self._open_segment(dts):
                    return
                out = self._out
            elif dts - self._seg_base_dts >= self._seg_target_ticks:
                self._close_segment(dts)
                if not self._open_segment(dts):
                    return
                out = self._out
            elif self._guard is not None and not self._guard.ok_to_write():
                self._close_segment(dts)
                self._enter_full(dts)
                self._dropped_disk_full += 1
                return
            else:
                self._gop_start_dts = dts
            self._keyframes += 1
        elif out is None:
            if self._full:
                self._dropped_disk_full += 1
            elif self._error_since_wall is not None:
                self._dropped_write_error += 1
            else:
                self._dropped_before_keyframe += 1
            return
        base = self._seg_base_dts
        pts = packet.pts
        packet.dts = dts - base
        if pts is not None:
            packet.pts = pts - base
        try:
            out.mux(packet)  # type: ignore[union-attr]
        except (av.FFmpegError, OSError) as err:
            self._on_write_error(err, dts)
            return
        finally:
            packet.dts = dts  # other sinks see the packet unchanged
            packet.pts = pts
        self._frames += 1
        self._media_bytes += packet.size

    def on_run_end(self, reason: str) -> None:
        if self._info is None or not self._in_run:
            return
        self._in_run = False
        if self._out is not None:
            self._close_segment(self._end_dts())
        elif self._last_dts is not None:
            end_wall = self._wall_at(self._end_dts())
            if self._full:
                self._submit_gap(self._full_since_wall, end_wall, "disk_full")
            elif self._error_since_wall is not None:
                self._submit_gap(self._error_since_wall, end_wall, "write_error")
        # The time between runs is the ingest's gap; the next run asks the guard afresh.
        self._full = False
        self._error_since_wall = None
        log.info("%s: run %d ended (%s)", self._where, self._info.run_id, reason)
        self._reset_run_state()

    def close(self) -> None:
        """Close the open segment (SIGTERM): the same as the end of the run."""
        self.on_run_end("shutdown")

    # --- state for health ---------------------------------------------------------------

    @property
    def storage_full(self) -> bool:
        return self._full

    def stats(self) -> WriterStats:
        return WriterStats(
            segments_closed=self._segments_closed,
            packets_written=self._packets_written + (self._frames if self._out else 0),
            media_bytes_written=self._media_bytes_written + (self._media_bytes if self._out else 0),
            dropped_no_dts=self._dropped_no_dts,
            dropped_before_keyframe=self._dropped_before_keyframe,
            dropped_disk_full=self._dropped_disk_full,
            discontinuities=self._discontinuities,
            write_errors=self._write_errors,
            dropped_write_error=self._dropped_write_error,
            storage_full=self._full,
        )

    # --- segments -----------------------------------------------------------------------

    def _wall_at(self, dts: int) -> float:
        """Invariant 6: the run's anchor plus media time."""
        assert self._anchor_dts is not None
        return self._anchor_wall + (dts - self._anchor_dts) * self._tb_s

    def _end_dts(self) -> int:
        assert self._last_dts is not None
        return self._last_dts + self._frame_ticks

    def _open_segment(self, dts: int) -> bool:
        """Open a segment starting on this keyframe (invariant 2). False when disk is full."""
        info = self._info
        assert info is not None
        if self._guard is not None and not self._guard.ok_to_write():
            self._enter_full(dts)
            self._dropped_disk_full += 1
            return False
        start_wall = self._wall_at(dts)
        if self._full:
            self._full = False
            log.warning("%s: storage has room again, recording resumes", self._where)
            self._submit_gap(self._full_since_wall, start_wall, "disk_full")
        while True:  # never overwrite a file (e.g. run ids restarted with a new index)
            self._seq += 1
            relpath = segment_relpath(
                info.camera, info.stream, start_wall, info.run_id, self._seq
            )
            path = self.root / relpath
            if not path.exists():
                break
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            out = av.open(str(path), "w", format="mp4", options=MUXER_OPTIONS)
            tag = CODEC_TAGS.get(info.codec)
            if tag is not None:
                out.add_stream_from_template(info.av_stream, codec_tag=tag)
            else:
                out.add_stream_from_template(info.av_stream)
        except (av.FFmpegError, OSError) as err:
            self._write_errors += 1
            if _is_enospc(err):
                self._guard_report_enospc()
                self._enter_full(dts)
                self._dropped_disk_full += 1
            else:  # retried at the next keyframe; never give up on a camera
                self._pause_for_error(dts, f"cannot open segment {relpath}: {err}")
                self._dropped_write_error += 1
            return False
        if self._error_since_wall is not None:
            log.warning("%s: segments can be written again, recording resumes", self._where)
            self._submit_gap(self._error_since_wall, start_wall, "write_error")
            self._error_since_wall = None
        self._out = out
        self._relpath = relpath
        self._seg_base_dts = dts
        self._gop_start_dts = dts
        self._seg_start_wall = start_wall
        target_s = self._first_target_s if self._first_segment else self._target_s
        self._first_segment = False
        self._seg_target_ticks = int(target_s * self._ticks_per_s)
        self._frames = 0
        self._keyframes = 0
        self._media_bytes = 0
        self._seg_discontinuity = self._pending_discontinuity
        self._pending_discontinuity = False
        self._flusher.track_open(relpath)
        return True

    def _close_segment(self, end_dts: int, *, torn: bool = False) -> None:
        """Close the open segment ending at `end_dts` and hand it to the flusher."""
        out = self._out
        info = self._info
        assert out is not None and info is not None
        self._out = None
        try:
            out.close()
        except (av.FFmpegError, OSError) as err:
            self._write_errors += 1
            torn = True
            if _is_enospc(err):
                self._guard_report_enospc()
            log.error("%s: closing segment %s failed: %s", self._where, self._relpath, err)
        duration_ticks = max(0, end_dts - self._seg_base_dts)
        seg = ClosedSegment(
            camera=info.camera,
            stream=info.stream,
            run_id=info.run_id,
            path=self._relpath,
            start_wall=self._seg_start_wall,
            end_wall=self._seg_start_wall + duration_ticks * self._tb_s,
            duration_90k=round(duration_ticks * self._tb * 90000),
            frames=self._frames,
            keyframes=self._keyframes,
            media_bytes=self._media_bytes,
            codec=info.codec,
            width=info.width,
            height=info.height,
            discontinuity=self._seg_discontinuity,
        )
        self._segments_closed += 1
        self._packets_written += self._frames
        self._media_bytes_written += self._media_bytes
        self._flusher.untrack_open(self._relpath)
        self._flusher.submit_segment(seg, torn=torn)

    def _on_discontinuity(self, dts: int) -> None:
        """Close the segment and re-anchor wall time on the monotonic clock (invariant 6)."""
        info = self._info
        assert info is not None and self._last_dts is not None
        self._discontinuities += 1
        end_dts = self._end_dts()
        prev_end_wall = self._wall_at(end_dts)
        if self._out is not None:
            self._close_segment(end_dts)
        estimate = info.run_start_wall + (self._clock.monotonic() - self._run_mono0)
        new_wall = max(prev_end_wall, estimate)
        log.warning(
            "%s: timestamp discontinuity (dts %d after %d): new segment, wall %.3f",
            self._where, dts, self._last_dts, new_wall,
        )
        if not self._full and new_wall - prev_end_wall > 1.0:
            self._submit_gap(prev_end_wall, new_wall, "discontinuity")
        self._anchor_dts = dts
        self._anchor_wall = new_wall
        self._pending_discontinuity = True
        self._frame_ticks = 0

    # --- disk full ----------------------------------------------------------------------

    def _on_write_error(self, err: Exception, dts: int) -> None:
        self._write_errors += 1
        enospc = _is_enospc(err)
        if enospc:
            self._guard_report_enospc()
        # The fragment being written (the GOP that started at _gop_start_dts) is torn; the
        # flusher cuts the file back to its last complete fragment (invariant 3).
        gop_start = self._gop_start_dts
        self._close_segment(gop_start, torn=True)
        if enospc or (self._guard is not None and not self._guard.ok_to_write(force=True)):
            log.error("%s: writing %s failed: %s", self._where, self._relpath, err)
            self._enter_full(gop_start)
        else:  # a new segment is tried at the next keyframe
            self._pause_for_error(gop_start, f"writing {self._relpath} failed: {err}")

    def _pause_for_error(self, dts: int, what: str) -> None:
        """Recording pauses until a segment can be written; logged at most once a minute."""
        if self._error_since_wall is None:
            self._error_since_wall = self._wall_at(dts)
        now = self._clock.monotonic()
        if now >= self._next_error_log:
            self._next_error_log = now + 60.0
            log.error("%s: %s (%d write errors so far)", self._where, what, self._write_errors)

    def _enter_full(self, dts: int) -> None:
        if not self._full:
            self._full = True
            self._full_since_wall = self._wall_at(dts)
            log.error("%s: storage full, recording stopped (dropping packets)", self._where)

    def _guard_report_enospc(self) -> None:
        if self._guard is not None:
            self._guard.report_enospc()

    def _submit_gap(self, start_wall: float, end_wall: float, reason: str) -> None:
        info = self._info
        assert info is not None
        if end_wall > start_wall:
            self._flusher.submit_gap(
                GapRow(info.camera, info.stream, start_wall, end_wall, reason)
            )


def _is_enospc(err: BaseException) -> bool:
    return getattr(err, "errno", None) == errno.ENOSPC
