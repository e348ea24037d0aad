"""Per-camera trigger choice: Dozor's own detection, the camera's ONVIF events, or both.

- "dozor": motion events come from the MotionSink; camera motion alarms are ignored.
- "camera": the camera's MotionAlarm (active / inactive) makes the events; an event ends
  `post_roll_s` after the alarm went inactive (via `tick()`), and Dozor's detections are ignored.
- "both": either source starts an event; while one is open, the other only updates it; the
  event ends when every source that joined it has ended. One alert, not two.

Camera TAMPER and SIGNAL_LOSS events are health alarms (`AlarmChange` kinds `camera_tamper`,
`camera_signal_loss`) whatever the mode. UNKNOWN events are ignored (logged once per topic).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from recorder.motion.config import TRIGGERS, EventConfig
from recorder.motion.events import EventChange
from recorder.motion.tamper import AlarmChange

log = logging.getLogger(__name__)


class TriggerCombiner:
    """Thread-safe: motion changes arrive on the ingest thread, camera events on the ONVIF
    task, ticks from a timer."""

    def __init__(
        self,
        camera: str,
        mode: str,
        events: EventConfig,
        on_change: Callable[[EventChange], None],
        on_alarm: Callable[[AlarmChange], None] | None = None,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if mode not in TRIGGERS:
            raise ValueError(f"camera {camera}: motion.trigger {mode!r} is not one of {TRIGGERS}")
        self.camera = camera
        self.mode = mode
        self.cfg = events
        self._emit = on_change
        self._alarm = on_alarm or (lambda _a: None)
        self._new_id = new_id
        self._lock = threading.RLock()
        # camera-sourced motion
        self._cam_active = False
        self._cam_event: str | None = None
        self._cam_start = 0.0
        self._cam_last = 0.0  # when the alarm was last seen active
        # combined ("both")
        self._out_id: str | None = None
        self._out_start = 0.0
        self._out_source = "motion"
        self._open_sources: dict[str, float] = {}  # source -> last known end or activity
        self._zones: list[str] = []
        self._peak = 0.0
        self._score = 0.0
        self._ends = 0.0  # latest end of the sources that joined the combined event
        self._unknown_topics: set[str] = set()

    # ---- inputs ------------------------------------------------------------------------------

    def on_motion_change(self, change: EventChange) -> None:
        """An EventChange from Dozor's detector (source 'motion')."""
        with self._lock:
            if self.mode == "dozor":
                self._emit(change)
            elif self.mode == "both":
                self._merge(change)

    def on_camera_event(self, event: Any, wall: float) -> None:
        """A camera_drivers.CameraEvent received at our wall time `wall`."""
        kind = getattr(event.kind, "name", str(event.kind)).upper()
        with self._lock:
            if kind == "MOTION":
                self._camera_motion(bool(event.active), wall)
            elif kind in ("TAMPER", "SIGNAL_LOSS"):
                self._alarm(AlarmChange(
                    self.camera, f"camera_{kind.lower()}", bool(event.active), wall,
                    f"ONVIF {getattr(event, 'topic', '')}",
                ))
            else:
                topic = str(getattr(event, "topic", "?"))
                if topic not in self._unknown_topics:
                    self._unknown_topics.add(topic)
                    log.info("camera %s: ignoring camera event %s", self.camera, topic)

    def tick(self, wall: float) -> None:
        """Call about once a second: ends camera-triggered events after their post-roll."""
        with self._lock:
            if (self._cam_event is not None and not self._cam_active
                    and wall - self._cam_last >= self.cfg.post_roll_s):
                self._camera_change("end", self._cam_last)
                self._cam_event = None

    # ---- camera-sourced events ---------------------------------------------------------------

    def _camera_motion(self, active: bool, wall: float) -> None:
        if self.mode == "dozor":
            return
        if active:
            self._cam_active = True
            self._cam_last = wall
            if self._cam_event is None:
                # in "both" the combined event gets the id; this one stays internal
                self._cam_event = self._new_id() if self.mode == "camera" else "camera"
                self._cam_start = wall
                self._camera_change("new", None)
            return
        if self._cam_active:
            self._cam_active = False
            self._cam_last = wall

    def _camera_change(self, change: str, end: float | None) -> None:
        assert self._cam_event is not None
        ch = EventChange(
            event_id=self._cam_event, camera=self.camera, change=change, source="camera",
            start_wall=self._cam_start, end_wall=end, zones=(), peak_area=0.0, score=1.0,
            snapshot_jpeg=None, pre_roll_s=self.cfg.pre_roll_s,
            post_roll_s=self.cfg.post_roll_s, trigger_wall=self._cam_start,
        )
        if self.mode == "camera":
            self._emit(ch)
        else:
            self._merge(ch)

    # ---- "both": one combined event ------------------------------------------------------------

    def _merge(self, ch: EventChange) -> None:
        src = ch.source
        if ch.change == "end":
            if src not in self._open_sources or self._out_id is None:
                return
            self._open_sources.pop(src)
            self._absorb(ch)
            self._ends = max(self._ends, ch.end_wall if ch.end_wall is not None else 0.0)
            if not self._open_sources:
                self._send("end", self._ends, ch)
                self._out_id = None
                self._ends = 0.0
            return
        if self._out_id is None:
            self._out_id = self._new_id()
            self._out_start = ch.start_wall
            self._out_source = src
            self._zones, self._peak, self._score = [], 0.0, 0.0
            self._ends = 0.0
            self._open_sources[src] = ch.start_wall
            self._absorb(ch)
            self._send("new", None, ch)
            return
        self._open_sources[src] = ch.start_wall
        self._out_start = min(self._out_start, ch.start_wall)
        self._absorb(ch)
        self._send("update", None, ch)

    def _absorb(self, ch: EventChange) -> None:
        for z in ch.zones:
            if z not in self._zones:
                self._zones.append(z)
        self._peak = max(self._peak, ch.peak_area)
        self._score = max(self._score, ch.score)

    def _send(self, change: str, end: float | None, ch: EventChange) -> None:
        assert self._out_id is not None
        self._emit(replace(
            ch, event_id=self._out_id, change=change, source=self._out_source,
            start_wall=self._out_start, end_wall=end, zones=tuple(self._zones),
            peak_area=self._peak, score=self._score,
        ))
