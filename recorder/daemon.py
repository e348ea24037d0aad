"""The recorder daemon: wires one site's parts together and runs until SIGTERM.

Start-up order (each step's precondition is the one before it):
config -> index -> recovery (no writer runs yet) -> flusher -> disk guard -> health server
-> ingest threads (explicit URLs at once; ONVIF cameras when their probe succeeds, retried
in the background so an unreachable camera never delays the others) -> retention timer
-> READY.  Shutdown runs it backwards: STOPPING -> ingest threads stop (each closes its
segment through its writer) -> flusher drains (rows for every closed file) -> index closed.

Other parts of the site plug in here: `recorder.motion.CameraMotion` per camera (its sink on
the sub stream, or the main stream when there is none; event changes go to the
`EventRecorder` (index rows and snapshot files) and to the police link; camera ONVIF events
feed it when its `motion.trigger` asks for them), `recorder.live.LiveController` (a live
sink on every stream, live commands answered on the link) and `police_link.SiteLink`
(events, alarms, camera status, stats). `sink_factories` receive (camera config, stream
name) and return extra packet sinks for that stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recorder.backoff import Backoff
from recorder.config import BrokerConfig, CameraConfig, SiteConfig
from recorder.health import HealthRegistry, HealthServer, MetricSample, StreamHealth, StreamState
from recorder.index import Index
from recorder.ingest import IngestSettings, Opener, StreamIngest
from recorder.logging_setup import configure as configure_logging
from recorder.logging_setup import context_logger
from recorder.rtsp_source import make_opener
from recorder.sdnotify import Notifier
from recorder.storage.disk import DiskGuard
from recorder.storage.flusher import Flusher
from recorder.storage.recovery import recover
from recorder.storage.retention import Retention, RetentionPolicy
from recorder.storage.segment_writer import SegmentWriter
from recorder.stream_types import PacketSink

__all__ = ["DaemonOptions", "Recorder", "SinkFactory", "run"]

log = logging.getLogger(__name__)

SinkFactory = Callable[[CameraConfig, str], Sequence[PacketSink]]
INDEX_NAME = "index.sqlite3"


@dataclass(frozen=True)
class DaemonOptions:
    ingest: IngestSettings = field(default_factory=IngestSettings)
    health_sample_interval_s: float = 2.0
    stall_after_s: float = 3.0  # health shows "stalled" before the read timeout ends the run
    camera_offline_alarm_s: float = 30.0  # main stream offline/stalled this long: an alarm
    retention_interval_s: float = 60.0
    probe_timeout_s: float = 10.0
    probe_backoff_max_s: float = 30.0
    shutdown_timeout_s: float = 20.0


@dataclass(frozen=True)
class _StreamParts:
    camera: str
    stream: str
    ingest: StreamIngest
    writer: SegmentWriter


class Recorder:
    """One site's recorder. `await run(stop)` until `stop` is set (SIGTERM does that)."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        options: DaemonOptions | None = None,
        opener: Opener | None = None,
        sink_factories: Iterable[SinkFactory] = (),
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        options = options or DaemonOptions()
        # the site file decides how streams are read; the rest are the daemon's options
        self.options = dataclasses.replace(options, ingest=dataclasses.replace(
            options.ingest,
            rtsp_client=config.ingest.rtsp_client,
            read_batch_s=config.ingest.read_batch_s,
        ))  # fmt: skip
        ing = self.options.ingest
        self._opener = opener or make_opener(ing)
        self._sink_factories = list(sink_factories)
        self._notifier = notifier or Notifier()
        self.site = config.site
        self.root = Path(config.storage.root)
        self.health = HealthRegistry(self.site, stall_after_s=self.options.stall_after_s)
        self.health_server: HealthServer | None = None
        self.index: Index | None = None
        self.flusher: Flusher | None = None
        self.disk_guard: DiskGuard | None = None
        self._streams: list[_StreamParts] = []
        self._streams_lock = threading.Lock()
        self._stream_count = sum(1 + self._has_sub(c) for c in config.cameras)
        self._log = context_logger(log, self.site)
        self._tasks: list[asyncio.Task[None]] = []
        self._services = _SiteServices(self)
        self._retention: Retention | None = None
        self._retention_now = asyncio.Event()

    @staticmethod
    def _has_sub(camera: CameraConfig) -> bool:
        return camera.sub_url is not None or camera.onvif_url is not None

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._start()
            self._notifier.ready(self._status_line())
            self._log.info("recorder ready: %s", self._status_line())
            await stop.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        storage = self.config.storage
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = Index(self.root / INDEX_NAME)
        self._recover()
        self.flusher = Flusher(
            self.root, self.index, flush_interval_s=storage.flush_interval_s, site=self.site
        )
        self.flusher.start()
        self._services.start()
        self.disk_guard = DiskGuard(
            self.root,
            stop_below_free_bytes=storage.stop_below_free_bytes,
            resume_above_free_bytes=max(
                storage.stop_below_free_bytes,
                (storage.stop_below_free_bytes + storage.min_free_bytes) // 2,
            ),
            site=self.site,
        )
        self.health.add_section("storage", self._storage_section)
        self.health.add_collector(self._storage_metrics)
        self.health_server = HealthServer(
            self.health, host=self.config.health.listen, port=self.config.health.port
        )
        await self.health_server.start()
        for camera in self.config.cameras:
            self.index.upsert_camera(
                camera.name,
                site=self.site,
                onvif_url=camera.onvif_url,
                main_url=camera.main_url,
                sub_url=camera.sub_url,
            )
            if camera.main_url is not None:
                self._start_camera(camera, camera.main_url, camera.sub_url)
            else:
                self._spawn(self._probe_then_start(camera), f"probe-{camera.name}")
        self._spawn(self._health_loop(), "health")
        self._spawn(self._services.poll_loop(), "motion-poll")
        if self._services.link is not None:
            self._spawn(self._services.stats_loop(), "stats")
        for camera in self.config.cameras:
            if self._services.wants_camera_events(camera):
                self._spawn(self._services.camera_events(camera), f"events-{camera.name}")
        self._spawn(self._retention_loop(), "retention")
        if self._notifier.watchdog_interval_s is not None:
            self._spawn(self._watchdog_loop(self._notifier.watchdog_interval_s), "watchdog")

    async def _shutdown(self) -> None:
        self._notifier.stopping()
        self._log.info("recorder stopping")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(self._stop_streams)
        if self.flusher is not None:
            await asyncio.to_thread(self.flusher.stop, self.options.shutdown_timeout_s)
        await asyncio.to_thread(self._services.stop)
        if self.health_server is not None:
            await self.health_server.stop()
        if self.index is not None:
            self.index.close()
        self._notifier.close()
        self._log.info("recorder stopped")

    def _stop_streams(self) -> None:
        """Stop every ingest thread; each ends its run, which closes its segment cleanly."""
        with self._streams_lock:
            streams = list(self._streams)
        for parts in streams:
            parts.ingest.request_stop()
        deadline = time.monotonic() + self.options.shutdown_timeout_s
        for parts in streams:
            if not parts.ingest.join(max(0.0, deadline - time.monotonic())):
                self._log.error(
                    "ingest %s/%s did not stop in time", parts.camera, parts.stream
                )
                continue

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    def _status_line(self) -> str:
        states = [h.state for h in self.health.streams()]
        recording = sum(s == "recording" for s in states)
        cameras = len(self.config.cameras)
        return f"{cameras} cameras, {recording}/{self._stream_count} streams recording"

    # --- cameras --------------------------------------------------------------------------

    def _start_camera(self, camera: CameraConfig, main_url: str, sub_url: str | None) -> None:
        urls = [("main", main_url)] + ([("sub", sub_url)] if sub_url else [])
        motion_stream = "sub" if sub_url else "main"
        for stream, url in urls:
            extra = self._services.motion_sinks(camera) if stream == motion_stream else []
            self._start_stream(camera, stream, camera.authenticated_url(url), extra)

    def _start_stream(
        self,
        camera: CameraConfig,
        stream: str,
        url: str,
        extra_sinks: Sequence[PacketSink] = (),
    ) -> None:
        assert self.flusher is not None
        storage = self.config.storage
        with self._streams_lock:
            position = len(self._streams)
        # Stagger the first rotation so cameras started together do not all close, hash
        # and index a segment in the same second.
        stagger = (position + 1) / max(1, self._stream_count)
        writer = SegmentWriter(
            self.root,
            self.flusher,
            disk_guard=self.disk_guard,
            target_duration_s=storage.segment_duration_s,
            first_segment_duration_s=max(1.0, storage.segment_duration_s * stagger),
        )
        sinks: list[PacketSink] = [writer, *extra_sinks]
        for factory in self._sink_factories:
            sinks.extend(factory(camera, stream))
        assert self.index is not None
        ingest = StreamIngest(
            site=self.site,
            camera=camera.name,
            stream=stream,
            url=url,
            opener=self._opener,
            sinks=sinks,
            run_log=self.index,
            health=self.health.stream(camera.name, stream),
            settings=self.options.ingest,
            previous_run_end=self._previous_run_end(camera.name, stream),
        )
        with self._streams_lock:
            self._streams.append(_StreamParts(camera.name, stream, ingest, writer))
        ingest.start()

    def _previous_run_end(self, camera: str, stream: str) -> tuple[float, str] | None:
        """The end of this stream's last run before this process (recovery closed it)."""
        assert self.index is not None
        ended = [
            r for r in self.index.runs(camera)
            if r.stream == stream and r.end_wall is not None and r.end_reason is not None
        ]  # fmt: skip
        if not ended:
            return None
        last = max(ended, key=lambda r: r.end_wall or 0.0)
        assert last.end_wall is not None and last.end_reason is not None
        return last.end_wall, last.end_reason

    async def _probe_then_start(self, camera: CameraConfig) -> None:
        """Probe an ONVIF camera for its stream URIs, retrying until it answers."""
        from camera_drivers import OnvifCamera, parse_device_url  # loaded only when needed
        from camera_drivers.errors import CameraError

        clog = context_logger(log, self.site, camera.name)
        assert camera.onvif_url is not None and camera.user and camera.password is not None
        host, port = parse_device_url(camera.onvif_url)
        backoff = Backoff(1.0, self.options.probe_backoff_max_s)
        for stream in ("main", "sub"):
            self.health.stream(camera.name, stream)  # visible as "connecting" while probing
        while True:
            try:
                async with OnvifCamera(
                    host,
                    port,
                    camera.user,
                    camera.password,
                    timeout_s=self.options.probe_timeout_s,
                    name=camera.name,
                ) as onvif:
                    probe = await onvif.probe()
                break
            except (CameraError, Exception) as err:  # never leave a camera unrecorded
                delay_s = backoff.next_delay_s()
                if not isinstance(err, CameraError):
                    clog.exception("ONVIF probe failed unexpectedly")
                clog.warning("ONVIF probe failed (%s); retrying in %.1f s", err, delay_s)
                for stream in ("main", "sub"):
                    health = self.health.stream(camera.name, stream)
                    health.last_error = f"probe: {err}"
                    # offline, not "connecting": the police must see it (and a retained
                    # "recording" left by a previous process must be replaced)
                    health.set_state(StreamState.OFFLINE, f"ONVIF probe failed: {err}")
                await asyncio.sleep(delay_s)
        main_url = probe.main.stream_uri
        # a camera with a single profile reports it as both main and sub: record it once
        sub_url = probe.sub.stream_uri if probe.sub.stream_uri != main_url else None
        clog.info("ONVIF probe: main %s, sub %s, clock offset %.1f s",
                  main_url, sub_url, probe.clock_offset_s or 0.0)  # fmt: skip
        if self.index is not None:
            self.index.upsert_camera(
                camera.name,
                site=self.site,
                main_url=main_url,
                sub_url=sub_url,
                clock_offset_s=probe.clock_offset_s,
            )
        self._start_camera(camera, main_url, sub_url)

    # --- periodic work --------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            self.health.sample()
            if self.disk_guard is not None:
                status = await asyncio.to_thread(self.disk_guard.status)
                full = status.storage_full
                if full != ("storage" in self.health.alarms()):
                    self._services.storage_alarm(full)
                if full and "storage" not in self.health.alarms():
                    self._retention_now.set()  # free space at once, not at the next tick
                self.health.set_alarm(
                    "storage", "storage full: recording stopped until space is freed"
                    if full else None,
                )  # fmt: skip
            self._services.check_cameras_offline(self.options.camera_offline_alarm_s)
            self._notifier.status(self._status_line())
            await asyncio.sleep(self.options.health_sample_interval_s)

    async def _retention_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._retention_pass)
            except Exception:
                self._log.exception("retention pass failed")
            self._retention_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._retention_now.wait(), self.options.retention_interval_s
                )

    async def _watchdog_loop(self, interval_s: float) -> None:
        """WATCHDOG=1 while the event loop and the flusher thread are alive."""
        while True:
            flusher_alive = self.flusher is not None and self.flusher.is_alive()
            if flusher_alive:
                self._notifier.watchdog()
            else:
                self._log.error("flusher thread is dead: withholding the watchdog ping")
            await asyncio.sleep(interval_s)

    # --- storage hooks --------------------------------------------------------------------

    def _recover(self) -> None:
        """Start-up sweep (docs/storage.md, "Recover at start-up"), before any writer runs."""
        assert self.index is not None
        recover(self.root, self.index, site=self.site)  # logs its report

    def _retention_pass(self) -> None:
        if self._retention is None:
            assert self.index is not None
            storage = self.config.storage
            policy = RetentionPolicy(
                retain_days=storage.retain_days,
                retain_days_by_camera={
                    c.name: c.retain_days for c in self.config.cameras if c.retain_days
                },
                event_retain_days=storage.event_retain_days,
                quota_bytes=storage.quota_bytes,
                min_free_bytes=storage.min_free_bytes,
            )
            self._retention = Retention(self.root, self.index, policy, site=self.site)
        self._retention.run()  # logs what it deleted

    def _storage_section(self) -> dict[str, object]:
        writers = self._writer_totals()
        section: dict[str, object] = dict(writers)
        if self.disk_guard is not None:
            section.update(asdict(self.disk_guard.status()))
        if self.flusher is not None:
            section["flusher"] = asdict(self.flusher.stats())
        with self._streams_lock:
            streams = list(self._streams)
        section["streams"] = {
            f"{p.camera}/{p.stream}": asdict(p.writer.stats()) for p in streams
        }
        return section

    def _writer_totals(self) -> dict[str, int]:
        with self._streams_lock:
            stats = [p.writer.stats() for p in self._streams]
        return {
            "media_bytes_written": sum(s.media_bytes_written for s in stats),
            "segments_closed": sum(s.segments_closed for s in stats),
        }

    def _storage_metrics(self) -> list[MetricSample]:
        samples = []
        if self.disk_guard is not None:
            status = self.disk_guard.status()
            samples.append(MetricSample("dozor_storage_free_bytes", "Free bytes under the "
                                        "storage root.", "gauge", status.free_bytes))  # fmt: skip
        with self._streams_lock:
            streams = list(self._streams)
        for p in streams:
            st = p.writer.stats()
            labels = (("camera", p.camera), ("stream", p.stream))
            samples += [
                MetricSample("dozor_segments_closed_total", "Segments closed.", "counter",
                             st.segments_closed, labels),
                MetricSample("dozor_written_media_bytes_total", "Media bytes written.",
                             "counter", st.media_bytes_written, labels),
                MetricSample("dozor_dropped_disk_full_total", "Packets dropped: disk full.",
                             "counter", st.dropped_disk_full, labels),
            ]  # fmt: skip
        if self.flusher is not None:
            fs = self.flusher.stats()
            samples.append(MetricSample("dozor_segments_indexed_total", "Segments indexed.",
                                        "counter", fs.segments_indexed))  # fmt: skip
        return samples


# --- motion, events, live view and the police link ------------------------------------------

# recorder.motion alarm kinds -> police_link.messages.ALARM_KINDS
_LINK_ALARM_KINDS = {
    "video_loss": "video_loss",
    "camera_signal_loss": "video_loss",
    "tamper_uniform": "tamper",
    "tamper_scene_change": "tamper",
    "camera_tamper": "tamper",
}
# stream state -> police_link.messages.CAMERA_STATES (a camera's state is its main stream's)
_LINK_CAMERA_STATES = {
    StreamState.CONNECTING: "starting",
    StreamState.RECORDING: "recording",
    StreamState.STALLED: "stalled",
    StreamState.OFFLINE: "offline",
}


class _SiteServices:
    """The parts of a site beyond recording, owned by the daemon.

    Callbacks arrive on ingest threads (event changes, alarms, state changes) and only queue
    work (EventRecorder.submit, SiteLink.publish_*): they never block and never raise.
    """

    def __init__(self, recorder: Recorder) -> None:
        self._rec = recorder
        self.site = recorder.site
        self.link: Any = None  # police_link.SiteLink when [broker] is configured
        self.events: Any = None  # recorder.motion.EventRecorder
        self.live: Any = None  # recorder.live.LiveController (needs the link)
        self._motions: dict[str, Any] = {}  # camera -> recorder.motion.CameraMotion
        self._log = context_logger(log, self.site)

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """After the index and flusher, before any ingest thread."""
        from recorder.motion import CameraMotion, EventRecorder, MotionConfig

        rec = self._rec
        assert rec.index is not None
        self.events = EventRecorder(rec.index, rec.root, site=self.site)
        self.events.start()
        broker = rec.config.broker
        if broker is not None:
            self.link = _make_link(self.site, broker, [c.name for c in rec.config.cameras])
            self.link.on_command("ack", self._on_ack)  # before start: no ack goes unrecorded
            self.link.start()
            from recorder.live import LiveController

            self.live = LiveController(self.site, self.link.publish_live)
            self.live.register(self.link)
            rec._sink_factories.append(self.live.sink_factory)
            rec.health.add_state_listener(self._on_stream_state)
        for camera in rec.config.cameras:
            cfg = camera.motion if camera.motion is not None else MotionConfig()
            if not cfg.enabled:
                continue
            self._motions[camera.name] = CameraMotion(
                camera.name, cfg, on_change=self._on_event_change,
                on_alarm=self._on_motion_alarm,
            )  # fmt: skip

    def stop(self) -> None:
        """After the ingest threads: write the last events, then leave the broker."""
        for motion in self._motions.values():
            with contextlib.suppress(Exception):
                motion.combiner.tick(time.time())
        if self.events is not None:
            self.events.stop()
        if self.link is not None:
            self.link.stop()

    # hooks -----------------------------------------------------------------------------

    def _on_ack(self, request: Any) -> dict[str, Any]:
        """An officer acknowledged an event: record it with the event, or refuse the id.

        Runs on the link's command thread; the index call is one short transaction.
        """
        from police_link import CommandError
        from recorder.errors import UnknownRow

        args = request.args
        index = self._rec.index
        assert index is not None
        try:
            ack_id = index.add_ack(
                args["event_id"], user=args["user"], comment=args.get("comment", ""),
                sender=request.sender, received_wall=request.received_unix_s,
            )  # fmt: skip
        except UnknownRow as err:
            raise CommandError("unknown_event", f"no event {args['event_id']} here") from err
        self._log.info("event %s acknowledged by %s (via %s)", args["event_id"], args["user"],
                       request.sender)
        return {"ack_id": ack_id}

    def motion_sinks(self, camera: CameraConfig) -> list[PacketSink]:
        motion = self._motions.get(camera.name)
        return [motion.sink] if motion is not None else []

    def wants_camera_events(self, camera: CameraConfig) -> bool:
        motion = self._motions.get(camera.name)
        return (
            motion is not None and camera.onvif_url is not None and motion.cfg.trigger != "dozor"
        )

    async def poll_loop(self) -> None:
        """Once a second: video-loss checks, camera-triggered events ending."""
        while True:
            now = time.time()
            for motion in self._motions.values():
                try:
                    motion.poll(now)
                except Exception:
                    self._log.exception("motion poll failed for %s", motion.camera)
            await asyncio.sleep(1.0)

    async def camera_events(self, camera: CameraConfig) -> None:
        """The camera's ONVIF events into its CameraMotion, resubscribing forever."""
        from camera_drivers import OnvifCamera, parse_device_url
        from camera_drivers.errors import CameraError

        assert camera.onvif_url is not None and camera.user and camera.password is not None
        host, port = parse_device_url(camera.onvif_url)
        motion = self._motions[camera.name]
        clog = context_logger(log, self.site, camera.name)
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                async with (
                    OnvifCamera(host, port, camera.user, camera.password,
                                name=camera.name) as onvif,
                    # events() is an async generator (it has aclose) typed as AsyncIterator
                    contextlib.aclosing(onvif.events()) as events,  # type: ignore[type-var]
                ):  # fmt: skip
                    async for event in events:
                        backoff.reset()
                        motion.on_camera_event(event, time.time())
            except (CameraError, Exception) as err:  # keep listening whatever happened
                delay_s = backoff.next_delay_s()
                if not isinstance(err, CameraError):
                    clog.exception("ONVIF events failed unexpectedly")
                clog.warning("ONVIF events: %s; resubscribing in %.1f s", err, delay_s)
                await asyncio.sleep(delay_s)

    async def stats_loop(self, interval_s: float = 30.0) -> None:
        from police_link.messages import StatsMessage

        rec = self._rec
        while True:
            await asyncio.sleep(interval_s)
            try:
                assert rec.disk_guard is not None and rec.index is not None
                disk = await asyncio.to_thread(rec.disk_guard.status)
                link_stats = self.link.stats()
                cameras = {
                    h.camera: {"fps": round(h.fps, 2), "bitrate_bps": round(h.bitrate_bps)}
                    for h in rec.health.streams() if h.stream == "main"
                }  # fmt: skip
                self.link.publish_stats(StatsMessage(
                    site=self.site, sent_unix_s=time.time(),
                    uptime_s=time.monotonic() - rec.health.started_monotonic,
                    disk_total_bytes=disk.total_bytes, disk_free_bytes=disk.free_bytes,
                    recorded_bytes=rec.index.total_segment_bytes(),
                    outbox_pending=link_stats.outbox_pending,
                    outbox_bytes=link_stats.outbox_bytes, cameras=cameras,
                ))  # fmt: skip
            except Exception:
                self._log.exception("could not publish stats")

    # callbacks (ingest threads, event loop) ---------------------------------------------

    def _on_event_change(self, change: Any) -> None:
        try:
            self.events.submit(change)
            if self.link is not None:
                from police_link.messages import EventMessage

                self.link.publish_event(
                    EventMessage(
                        site=self.site, camera=change.camera, event_id=change.event_id,
                        type=change.change, start_unix_s=change.start_wall,
                        end_unix_s=change.end_wall, zones=change.zones,
                        score=round(float(change.score), 3),
                    ),
                    snapshot_jpeg=change.snapshot_jpeg,
                )  # fmt: skip
        except Exception:
            self._log.exception("could not hand on event %s", getattr(change, "event_id", "?"))

    def _on_motion_alarm(self, alarm: Any) -> None:
        try:
            name = f"{alarm.kind}:{alarm.camera}"
            self._rec.health.set_alarm(name, (alarm.detail or alarm.kind) if alarm.active else None)
            if self.link is not None:
                from police_link.messages import AlarmMessage

                self.link.publish_alarm(AlarmMessage(
                    site=self.site, kind=_LINK_ALARM_KINDS.get(alarm.kind, "other"),
                    active=alarm.active, since_unix_s=alarm.since_wall, camera=alarm.camera,
                    detail=alarm.detail or alarm.kind,
                ))  # fmt: skip
        except Exception:
            self._log.exception("could not hand on alarm %r", alarm)

    def _on_stream_state(self, health: StreamHealth, state: StreamState, reason: str) -> None:
        if health.stream != "main" or self.link is None:
            return
        from police_link.messages import CameraStatusMessage

        self.link.set_camera_status(CameraStatusMessage(
            site=self.site, camera=health.camera, state=_LINK_CAMERA_STATES[state],
            since_unix_s=time.time(), detail=reason[:200],
        ))  # fmt: skip

    def check_cameras_offline(self, after_s: float) -> None:
        """Raise `camera_offline` for a camera whose main stream has not recorded for
        `after_s` (a camera going dark may be vandalism: the duty officer must know), and
        clear it when the stream records again. Runs on the event loop."""
        now = time.monotonic()
        alarms = self._rec.health.alarms()
        for health in self._rec.health.streams():
            if health.stream != "main":
                continue
            name = f"camera_offline:{health.camera}"
            down = health.state in (StreamState.OFFLINE, StreamState.STALLED) and (
                now - health.state_since_monotonic >= after_s
            )
            if down == (name in alarms):
                continue
            detail = f"no video for {after_s:g} s: {health.last_error or health.state}"
            self._rec.health.set_alarm(name, detail if down else None)
            if self.link is None:
                continue
            from police_link.messages import AlarmMessage

            try:
                self.link.publish_alarm(AlarmMessage(
                    site=self.site, kind="camera_offline", active=down,
                    since_unix_s=time.time() - (now - health.state_since_monotonic),
                    camera=health.camera, detail=detail[:500] if down else "",
                ))  # fmt: skip
            except Exception:
                self._log.exception("could not publish the camera_offline alarm")

    def storage_alarm(self, full: bool) -> None:
        if self.link is None:
            return
        from police_link.messages import AlarmMessage

        try:
            self.link.publish_alarm(AlarmMessage(
                site=self.site, kind="disk_full", active=full, since_unix_s=time.time(),
                detail="recording stopped until space is freed" if full else "",
            ))  # fmt: skip
        except Exception:
            self._log.exception("could not publish the storage alarm")


def _make_link(site: str, broker: BrokerConfig, cameras: list[str]) -> Any:
    from police_link.settings import BrokerSettings
    from police_link.site_client import SiteLink

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    settings = BrokerSettings(
        host=broker.host, port=broker.port, tls=broker.tls, ca_file=text(broker.ca_file),
        cert_file=text(broker.cert_file), key_file=text(broker.key_file),
        username=broker.username, password=broker.password, prefix=broker.prefix,
    )  # fmt: skip
    assert broker.outbox_path is not None  # filled in by the config loader
    return SiteLink(site, settings, str(broker.outbox_path),
                    outbox_max_bytes=broker.outbox_max_bytes, cameras=cameras)  # fmt: skip


def run(config: SiteConfig, *, log_level: str = "INFO") -> int:
    """Run the recorder in the foreground until SIGTERM or SIGINT. Returns the exit code."""
    configure_logging(config.site, log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Recorder(config).run(stop)

    try:
        asyncio.run(main())
    except Exception:
        log.exception("recorder failed", extra={"site": config.site})
        return 1
    return 0
