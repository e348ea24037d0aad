"""MotionSite: motion for every camera of a site, shaped for the daemon's hook points.

    site = MotionSite(index, storage_root, site="school", on_change=link.publish_event,
                      on_alarm=health.on_alarm)
    site.start()
    Recorder(config, sink_factories=[site.sink_factory], ...)
    # ONVIF event task: site.on_camera_event("yard", event)
    ...
    site.stop()

Every EventChange is persisted by an EventRecorder (its own thread) and then handed to
`on_change` (the police link); every AlarmChange goes to `on_alarm` (health). Both callbacks
run on ingest or timer threads and must not block. A timer thread polls each camera once a
second (video loss, ends of camera-triggered events).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recorder.clock import Clock, SystemClock
from recorder.index import Index
from recorder.motion.camera import CameraMotion
from recorder.motion.config import MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.persist import EventRecorder
from recorder.motion.tamper import AlarmChange
from recorder.stream_types import PacketSink

log = logging.getLogger(__name__)


class MotionSite:
    def __init__(
        self,
        index: Index,
        snapshot_root: str | Path,
        *,
        site: str,
        on_change: Callable[[EventChange], None] | None = None,
        on_alarm: Callable[[AlarmChange], None] | None = None,
        clock: Clock | None = None,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.site = site
        self.recorder = EventRecorder(index, snapshot_root, site=site)
        self._on_change = on_change
        self._on_alarm = on_alarm or (lambda _a: None)
        self._clock = clock or SystemClock()
        self._poll_interval_s = poll_interval_s
        self._cameras: dict[str, CameraMotion] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the daemon's hooks --------------------------------------------------------------------

    def sink_factory(self, camera: Any, stream: str) -> Sequence[PacketSink]:
        """recorder.daemon.SinkFactory: a MotionSink for the camera's sub stream (or its main
        stream when it has no sub stream). `camera` is a recorder.config.CameraConfig."""
        has_sub = camera.sub_url is not None or camera.onvif_url is not None
        if stream != ("sub" if has_sub else "main"):
            return ()
        cfg: MotionConfig = camera.motion or MotionConfig()
        if not cfg.enabled:
            return ()
        with self._lock:
            cm = self._cameras.get(camera.name)
            if cm is None:
                cm = CameraMotion(camera.name, cfg, on_change=self._changed,
                                  on_alarm=self._on_alarm, clock=self._clock)
                self._cameras[camera.name] = cm
        log.info("site %s camera %s: motion on the %s stream, trigger %s", self.site,
                 camera.name, stream, cfg.trigger)
        return (cm.sink,)

    def on_camera_event(self, camera: str, event: Any) -> None:
        """A camera_drivers.CameraEvent from the camera's ONVIF subscription."""
        cm = self._cameras.get(camera)
        if cm is not None:
            cm.on_camera_event(event, self._clock.wall())

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.recorder.start()
        self._thread = threading.Thread(target=self._poll_loop, name=f"motion-{self.site}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """After the ingest threads stopped: ends the timer and writes what is queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.recorder.stop(timeout_s)

    def camera(self, name: str) -> CameraMotion | None:
        return self._cameras.get(name)

    # ---- internals -------------------------------------------------------------------------------

    def _changed(self, change: EventChange) -> None:
        self.recorder.submit(change)
        if self._on_change is not None:
            self._on_change(change)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_interval_s):
            with self._lock:
                cameras = list(self._cameras.values())
            for cm in cameras:
                try:
                    cm.poll(self._clock.wall())
                except Exception:  # a timer must survive one camera's bug; logged in full
                    log.exception("site %s camera %s: motion poll failed", self.site,
                                  cm.camera)
