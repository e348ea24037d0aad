"""CameraMotion: one camera's motion pieces wired together, for the daemon.

    cm = CameraMotion("yard", cfg, on_change=fan_out, on_alarm=health.on_alarm, clock=clock)
    ingest_sub.add_sink(cm.sink)           # a PacketSink on the sub stream's ingest thread
    onvif task:  cm.on_camera_event(ev, clock.wall())
    1 Hz timer:  cm.poll(clock.wall())     # video loss; ends camera-triggered events

`on_change` receives the EventChange values to persist (EventRecorder.submit) and to publish.
With trigger "camera" Dozor's detector is not needed: the sink decodes keyframes only, which
keeps the tamper and video-loss checks alive at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from recorder.clock import Clock, SystemClock
from recorder.motion.config import MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.sink import MotionSink
from recorder.motion.tamper import AlarmChange
from recorder.motion.triggers import TriggerCombiner


class CameraMotion:
    def __init__(
        self,
        camera: str,
        cfg: MotionConfig,
        *,
        on_change: Callable[[EventChange], None],
        on_alarm: Callable[[AlarmChange], None],
        clock: Clock | None = None,
    ) -> None:
        cfg.validate()
        self.camera = camera
        self.cfg = cfg
        self.combiner = TriggerCombiner(camera, cfg.trigger, cfg.events, on_change, on_alarm)
        sink_cfg = replace(cfg, decode="keyframes") if cfg.trigger == "camera" else cfg
        self.sink = MotionSink(camera, sink_cfg, self.combiner.on_motion_change, on_alarm,
                               clock=clock or SystemClock())

    def on_camera_event(self, event: Any, wall: float) -> None:
        """A camera_drivers.CameraEvent, stamped with our wall clock when it arrived."""
        self.combiner.on_camera_event(event, wall)

    def poll(self, wall: float) -> None:
        """About once a second, from a timer thread."""
        self.sink.poll()
        self.combiner.tick(wall)
