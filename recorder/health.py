"""Health of the site's streams, in the logs and on a loopback HTTP server.

Each stream's counters (`StreamHealth`) are written only by its ingest thread: plain integer
attributes, no lock, so the per-packet cost is two additions and one store. A sampler
(`HealthRegistry.sample`, called every few seconds by the daemon) turns counter deltas into
fps and bitrate and notices stalls: a connected stream whose last packet is older than
``stall_after_s`` is *stalled* until packets flow again or its read timeout ends the run.

States: *connecting* (opening the stream), *recording* (packets flowing), *stalled*
(connected, nothing arrives), *offline* (the last attempt failed; waiting to retry).

`/health` is JSON; `/metrics` is the Prometheus text format (version 0.0.4).
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from recorder.errors import RecorderError

__all__ = [
    "HealthError",
    "HealthRegistry",
    "HealthServer",
    "MetricSample",
    "StreamHealth",
    "StreamState",
]

log = logging.getLogger(__name__)
RATE_WINDOW_S = 2.0  # fps and bit rate are averaged over at least this long


class HealthError(RecorderError):
    """The health endpoint cannot be served (e.g. its port is taken)."""


class StreamState(enum.StrEnum):
    CONNECTING = "connecting"
    RECORDING = "recording"
    STALLED = "stalled"
    OFFLINE = "offline"


@dataclass(frozen=True)
class MetricSample:
    """One extra Prometheus sample contributed by another part of the recorder."""

    name: str  # e.g. "dozor_storage_bytes"
    help: str
    kind: str  # "gauge" | "counter"
    value: float
    labels: tuple[tuple[str, str], ...] = ()


StateListener = Callable[["StreamHealth", StreamState, str], None]


class StreamHealth:
    """Counters and state of one (camera, stream). Counters: written by the ingest thread."""

    def __init__(
        self,
        site: str,
        camera: str,
        stream: str,
        listeners: list[StateListener] | None = None,
    ) -> None:
        self.site = site
        self._listeners = listeners if listeners is not None else []
        self.camera = camera
        self.stream = stream
        # hot-path counters (ingest thread only)
        self.packets = 0
        self.bytes_received = 0
        self.last_packet_monotonic: float | None = None
        # run-level fields (ingest thread, at run boundaries)
        self.reconnects = 0
        self.runs = 0
        self.gaps = 0
        self.last_error: str | None = None
        self.codec: str | None = None
        self.width = 0
        self.height = 0
        # computed by the sampler
        self.fps = 0.0
        self.bitrate_bps = 0.0
        self._state = StreamState.CONNECTING
        self._state_since_monotonic = time.monotonic()
        self._lock = threading.Lock()
        # (time, packets, bytes) of recent samples: rates span at least RATE_WINDOW_S
        self._samples: deque[tuple[float, int, int]] = deque()

    @property
    def label(self) -> str:
        return f"{self.camera}/{self.stream}"

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def state_since_monotonic(self) -> float:
        return self._state_since_monotonic

    def set_state(self, state: StreamState, reason: str = "") -> None:
        """Change state, logging the change once (not on every call)."""
        with self._lock:
            old = self._state
            if old == state:
                return
            self._state = state
            self._state_since_monotonic = time.monotonic()
        level = logging.WARNING if state in (StreamState.STALLED, StreamState.OFFLINE) else (
            logging.INFO
        )
        log.log(
            level,
            "stream %s: %s -> %s%s",
            self.label,
            old,
            state,
            f" ({reason})" if reason else "",
            extra={"site": self.site, "camera": self.label},
        )
        for listener in self._listeners:
            try:
                listener(self, state, reason)
            except Exception:  # a listener (e.g. the police link) must not break ingest
                log.exception("state listener failed", extra={"site": self.site})

    def sample(self, now_monotonic: float, stall_after_s: float) -> None:
        """Update fps and bitrate from counter deltas; notice stalls and their end."""
        packets, size, last = self.packets, self.bytes_received, self.last_packet_monotonic
        samples = self._samples
        # Rates over at least RATE_WINDOW_S, whatever the sampling interval: streams are read
        # in batches (docs/ingest.md), so a short interval would see 0 or 2 batches.
        while len(samples) > 1 and now_monotonic - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        if samples:
            then, then_packets, then_bytes = samples[0]
            dt = now_monotonic - then
            if dt > 0:
                self.fps = max(0, packets - then_packets) / dt
                self.bitrate_bps = max(0, size - then_bytes) * 8 / dt
        samples.append((now_monotonic, packets, size))
        state = self._state
        quiet = last is None or now_monotonic - last > stall_after_s
        if state == StreamState.RECORDING and quiet:
            self.set_state(StreamState.STALLED, f"no packet for more than {stall_after_s:g} s")
        elif state == StreamState.STALLED and not quiet:
            self.set_state(StreamState.RECORDING, "packets flow again")
        if state not in (StreamState.RECORDING, StreamState.STALLED):
            self.fps = self.bitrate_bps = 0.0

    def snapshot(self, now_monotonic: float, now_wall: float) -> dict[str, object]:
        last = self.last_packet_monotonic
        return {
            "state": str(self._state),
            "state_for_s": round(now_monotonic - self._state_since_monotonic, 3),
            "fps": round(self.fps, 2),
            "bitrate_bps": round(self.bitrate_bps),
            "last_frame_wall": None if last is None else now_wall - (now_monotonic - last),
            "reconnects": self.reconnects,
            "runs": self.runs,
            "gaps": self.gaps,
            "packets": self.packets,
            "bytes_received": self.bytes_received,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "last_error": self.last_error,
        }


class HealthRegistry:
    """All streams of a site, site-wide alarms, and extra metric sources."""

    def __init__(self, site: str, *, stall_after_s: float = 5.0) -> None:
        self.site = site
        self.stall_after_s = stall_after_s
        self.started_monotonic = time.monotonic()
        self._streams: dict[tuple[str, str], StreamHealth] = {}
        self._alarms: dict[str, str] = {}
        self._collectors: list[Callable[[], Iterable[MetricSample]]] = []
        self._sections: dict[str, Callable[[], object]] = {}
        self._listeners: list[StateListener] = []
        self._lock = threading.Lock()

    def stream(self, camera: str, stream: str) -> StreamHealth:
        with self._lock:
            key = (camera, stream)
            if key not in self._streams:
                self._streams[key] = StreamHealth(self.site, camera, stream, self._listeners)
            return self._streams[key]

    def streams(self) -> list[StreamHealth]:
        with self._lock:
            return list(self._streams.values())

    def set_alarm(self, name: str, message: str | None) -> None:
        """Raise (message) or clear (None) a site alarm such as "storage"; logs changes."""
        with self._lock:
            old = self._alarms.get(name)
            if message is None:
                self._alarms.pop(name, None)
            else:
                self._alarms[name] = message
        extra = {"site": self.site}
        if message is not None and old != message:
            log.error("alarm %s raised: %s", name, message, extra=extra)
        elif message is None and old is not None:
            log.warning("alarm %s cleared", name, extra=extra)

    def alarms(self) -> dict[str, str]:
        with self._lock:
            return dict(self._alarms)

    def add_state_listener(self, listener: StateListener) -> None:
        """Called as listener(stream_health, new_state, reason) on every state change, on
        the thread that changed it (ingest or sampler): it must not block."""
        self._listeners.append(listener)

    def add_collector(self, collector: Callable[[], Iterable[MetricSample]]) -> None:
        self._collectors.append(collector)

    def add_section(self, name: str, provider: Callable[[], object]) -> None:
        """Add a JSON section to /health (e.g. "storage": free space, writer counters)."""
        self._sections[name] = provider

    def sample(self, now_monotonic: float | None = None) -> None:
        now = time.monotonic() if now_monotonic is None else now_monotonic
        for health in self.streams():
            health.sample(now, self.stall_after_s)

    def snapshot(self) -> dict[str, object]:
        now_m, now_w = time.monotonic(), time.time()
        cameras: dict[str, dict[str, object]] = {}
        states = []
        for health in self.streams():
            cameras.setdefault(health.camera, {})[health.stream] = health.snapshot(now_m, now_w)
            states.append(health.state)
        alarms = self.alarms()
        if alarms:
            status = "alarm"
        elif all(s == StreamState.RECORDING for s in states):
            status = "ok"
        else:
            status = "degraded"
        body: dict[str, object] = {
            "site": self.site,
            "status": status,
            "time": now_w,
            "uptime_s": round(now_m - self.started_monotonic, 3),
            "alarms": alarms,
            "cameras": cameras,
        }
        for name, provider in self._sections.items():
            try:
                body[name] = provider()
            except Exception as err:  # one broken section must not hide the rest
                log.exception("health section %s failed", name, extra={"site": self.site})
                body[name] = {"error": str(err)}
        return body

    def metrics_text(self) -> str:
        return _render_metrics(self)


_STREAM_METRICS = (
    # name, kind, help, attribute
    ("dozor_stream_packets_total", "counter", "Packets received.", "packets"),
    ("dozor_stream_received_bytes_total", "counter", "Payload bytes received.", "bytes_received"),
    ("dozor_stream_reconnects_total", "counter", "Reconnections after a failed run.",
     "reconnects"),
    ("dozor_stream_gaps_total", "counter", "Gaps recorded between runs.", "gaps"),
    ("dozor_stream_fps", "gauge", "Packets per second over the last 2 s or more.", "fps"),
    ("dozor_stream_bitrate_bits_per_second", "gauge",
     "Received bit rate over the last 2 s or more.",
     "bitrate_bps"),
)  # fmt: skip


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    inner = ",".join(f'{k}="{esc(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _render_metrics(registry: HealthRegistry) -> str:
    now_m, now_w = time.monotonic(), time.time()
    site = ("site", registry.site)
    streams = registry.streams()
    lines: list[str] = []

    def header(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    header("dozor_up", "gauge", "The recorder is running.")
    lines.append(f"dozor_up{_labels([site])} 1")
    header("dozor_uptime_seconds", "gauge", "Seconds since the recorder started.")
    lines.append(f"dozor_uptime_seconds{_labels([site])} {now_m - registry.started_monotonic:.3f}")
    header("dozor_stream_state", "gauge", "1 for the stream's current state.")
    for h in streams:
        for state in StreamState:
            labels = _labels([site, ("camera", h.camera), ("stream", h.stream),
                              ("state", str(state))])  # fmt: skip
            lines.append(f"dozor_stream_state{labels} {int(h.state == state)}")
    for name, kind, text, attr in _STREAM_METRICS:
        header(name, kind, text)
        for h in streams:
            labels = _labels([site, ("camera", h.camera), ("stream", h.stream)])
            lines.append(f"{name}{labels} {_number(getattr(h, attr))}")
    header("dozor_stream_last_frame_timestamp_seconds", "gauge",
           "Wall time of the last packet received (Unix seconds).")  # fmt: skip
    for h in streams:
        last = h.last_packet_monotonic
        if last is not None:
            labels = _labels([site, ("camera", h.camera), ("stream", h.stream)])
            lines.append(
                f"dozor_stream_last_frame_timestamp_seconds{labels} {now_w - (now_m - last):.3f}"
            )
    alarms = registry.alarms()
    header("dozor_alarm", "gauge", "1 while a site alarm (e.g. storage) is raised.")
    for name in sorted({"storage", *alarms}):
        lines.append(f"dozor_alarm{_labels([site, ('alarm', name)])} {int(name in alarms)}")
    seen: set[str] = set()
    for collector in registry._collectors:
        try:
            samples = list(collector())
        except Exception:  # a broken collector must not take the health endpoint down
            log.exception("metric collector failed", extra={"site": registry.site})
            continue
        for s in samples:
            if s.name not in seen:
                header(s.name, s.kind, s.help)
                seen.add(s.name)
            lines.append(f"{s.name}{_labels([site, *s.labels])} {_number(s.value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


class HealthServer:
    """/health and /metrics on a (loopback) HTTP port, run on the daemon's event loop."""

    def __init__(self, registry: HealthRegistry, *, host: str = "127.0.0.1", port: int = 0):
        self._registry = registry
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            raise HealthError(
                f"health endpoint: cannot listen on {self._host}:{self._port}: {err.strerror}"
            ) from err
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info(
            "health endpoint on http://%s:%s/health",
            self._host,
            self.port,
            extra={"site": self._registry.site},
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _request: web.Request) -> web.Response:
        body = self._registry.snapshot()
        return web.Response(
            text=json.dumps(body, indent=1), content_type="application/json"
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._registry.metrics_text().encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
