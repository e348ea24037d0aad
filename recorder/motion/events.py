"""Event lifecycle: turns per-frame detections into new / update / end changes.

Timeline of one event (times are media-derived wall times, never arrival times):

    pre-roll      first motion   'new' (min duration met)     last motion    post-roll over: 'end'
    |<-- 5 s -->|-------------|--------------- ... ---------|<---- 10 s ---->|
    footage linked to the event: [first motion - pre_roll_s, last motion + post_roll_s]

`start_wall` is the first motion and `end_wall` the last motion; the index adds the pre- and
post-roll (carried in the change) when it links segments. An event longer than
`max_length_s` is ended and a new one started at once. After an end, no new event starts
within `cooldown_s` (motion seen then still counts towards the next event's start).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recorder.motion.config import EventConfig
from recorder.motion.detector import Box, Detection

log = logging.getLogger(__name__)

CHANGES = ("new", "update", "end")
SOURCES = ("motion", "camera")


@dataclass(frozen=True)
class EventChange:
    event_id: str  # uuid4 string
    camera: str
    change: str  # "new" | "update" | "end"
    source: str  # "motion" | "camera"
    start_wall: float  # first motion
    end_wall: float | None  # last motion; None until the 'end' change
    zones: tuple[str, ...]  # zones entered so far, in configuration order
    peak_area: float  # largest motion area seen, as a fraction of the frame
    score: float  # 0..1, see EventTracker.score
    snapshot_jpeg: bytes | None  # best frame so far, box drawn; None when unchanged or absent
    pre_roll_s: float = 0.0
    post_roll_s: float = 0.0
    trigger_wall: float | None = None  # when the event was confirmed (latency measurement)


# Makes the JPEG for the best frame on demand: (frame handle, box) -> JPEG bytes.
SnapshotFn = Callable[[Any, Box], bytes | None]


class EventTracker:
    """One camera's motion events. Called on the ingest thread, one frame at a time."""

    def __init__(
        self,
        camera: str,
        cfg: EventConfig,
        on_change: Callable[[EventChange], None],
        *,
        source: str = "motion",
        snapshot: SnapshotFn | None = None,
        min_area_fraction: float = 0.001,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"camera {camera}: event source {source!r} is not one of {SOURCES}")
        self.camera = camera
        self.cfg = cfg
        self._emit = on_change
        self._source = source
        self._snapshot = snapshot
        self._min_area = min_area_fraction
        self._new_id = new_id
        self._frame_interval_s: float | None = None  # smoothed time between processed frames
        self._last_t: float | None = None
        self._run_first: float | None = None  # first motion of the current candidate run
        self._run_frames = 0
        self._last_end_wall = -math.inf  # when the previous event was ended (cool-down)
        # the open event (reset by _reset_event)
        self._id: str | None = None
        self._start = 0.0
        self._last_motion = 0.0
        self._trigger = 0.0
        self._peak = 0.0
        self._zones: list[str] = []
        self._best: tuple[Any, Box | None] | None = None
        self._best_dirty = False
        self._dirty = False
        self._new_pending = False
        self._last_update = -math.inf
        self._motion_frames = 0

    # ---- public --------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._id is not None

    def feed(self, det: Detection, frame: Any = None) -> None:
        """One processed frame; `frame` is kept (by reference) if it is the best so far."""
        t = det.t_s
        if self._last_t is not None and t > self._last_t:
            dt = t - self._last_t
            if self._frame_interval_s is None:  # the first interval seen sets it outright
                self._frame_interval_s = dt
            else:
                self._frame_interval_s += 0.2 * (dt - self._frame_interval_s)
        self._last_t = t
        if self._id is not None and det.motion and t - self._start >= self.cfg.max_length_s:
            self._split(t)
        if det.motion:
            self._on_motion(det, frame)
        else:
            self._run_first = None
            self._run_frames = 0
        if self._id is not None and t - self._last_motion >= self.cfg.post_roll_s:
            self._end(self._last_motion)

    def tick(self, t_s: float) -> None:
        """Advance time without a frame (e.g. the stream ended): ends an event past post-roll."""
        if self._id is not None and t_s - self._last_motion >= self.cfg.post_roll_s:
            self._end(self._last_motion)

    def flush(self) -> None:
        """End any open event now (run ended, shutdown)."""
        if self._id is not None:
            self._end(self._last_motion)
        self._run_first = None
        self._run_frames = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def _on_motion(self, det: Detection, frame: Any) -> None:
        t = det.t_s
        if self._run_first is None:
            self._run_first = t
            self._run_frames = 0
        self._run_frames += 1
        if self._id is None:
            if not self._confirmed(t):
                return
            self._start_event(self._run_first, t)
        elif self._run_first < self._start:  # a split: this event starts at the split
            self._run_first = self._start
        self._last_motion = t
        self._motion_frames += 1
        self._add(det, frame)
        self._maybe_update(t)

    def _confirmed(self, t: float) -> bool:
        interval = self._frame_interval_s or 0.2
        needed = max(1, math.ceil(self.cfg.min_duration_s / max(interval, 1e-3)))
        return self._run_frames >= needed and t >= self._last_end_wall + self.cfg.cooldown_s

    def _start_event(self, start: float, t: float) -> None:
        self._reset_event()
        self._id = self._new_id()
        self._start = start
        self._last_motion = t
        self._trigger = t
        self._new_pending = True
        log.info("camera %s: %s event %s started at %.3f", self.camera, self._source, self._id,
                 start)

    def _add(self, det: Detection, frame: Any) -> None:
        for z in det.zones:
            if z not in self._zones:
                self._zones.append(z)
                self._dirty = True
        if det.area_fraction > self._peak:
            self._peak = det.area_fraction
            self._best = (frame, det.union_box())
            self._best_dirty = True
            self._dirty = True

    def _maybe_update(self, t: float) -> None:
        if self._new_pending:
            self._new_pending = False
            self._last_update = t
            self._send("new", None)
        elif self._dirty and t - self._last_update >= self.cfg.update_interval_s:
            self._last_update = t
            self._send("update", None)

    def _end(self, end: float) -> None:
        self._send("end", end)
        log.info("camera %s: %s event %s ended at %.3f (peak %.4f, zones %s)", self.camera,
                 self._source, self._id, end, self._peak, ",".join(self._zones) or "-")
        self._last_end_wall = self._last_t if self._last_t is not None else end
        self._reset_event()
        self._run_first = None
        self._run_frames = 0

    def _split(self, t: float) -> None:
        """Max length reached with motion still going: end here and start the next at once."""
        old = self._id
        self._send("end", self._last_motion)
        self._start_event(t, t)
        log.info("camera %s: event %s split at max length, continues as %s", self.camera, old,
                 self._id)

    def _send(self, change: str, end: float | None) -> None:
        assert self._id is not None
        jpeg = None
        if self._best_dirty and self._best is not None and self._snapshot is not None:
            frame, box = self._best
            if box is not None:
                jpeg = self._snapshot(frame, box)
            self._best_dirty = False
        self._dirty = False
        self._emit(
            EventChange(
                event_id=self._id,
                camera=self.camera,
                change=change,
                source=self._source,
                start_wall=self._start,
                end_wall=end,
                zones=tuple(self._zones),
                peak_area=round(self._peak, 6),
                score=self.score(),
                snapshot_jpeg=jpeg,
                pre_roll_s=self.cfg.pre_roll_s,
                post_roll_s=self.cfg.post_roll_s,
                trigger_wall=self._trigger,
            )
        )

    def score(self) -> float:
        """Confidence 0..1: how far the peak area exceeds the minimum object area (saturating
        at 10x), weighted by how steadily motion was seen while the event was active."""
        if self._peak <= 0:
            return 0.0
        size = min(1.0, math.log10(max(self._peak / self._min_area, 1.0)) / 1.0 * 0.5 + 0.5)
        span = max(self._last_motion - self._start, 0.0)
        expected = max(1.0, span / max(self._frame_interval_s or 0.2, 1e-3))
        steadiness = min(1.0, self._motion_frames / expected)
        return round(size * (0.5 + 0.5 * steadiness), 3)

    def _reset_event(self) -> None:
        self._id = None
        self._start = 0.0
        self._last_motion = 0.0
        self._trigger = 0.0
        self._peak = 0.0
        self._zones = []
        self._best = None
        self._best_dirty = False
        self._dirty = False
        self._new_pending = False
        self._last_update = -math.inf
        self._motion_frames = 0
