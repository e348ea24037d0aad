"""Helpers for test_end_to_end.py: a real `dozor-recorder` process, an independent MQTT
subscriber (the "tap") and the page-side probes that timestamp what the officer sees.

Every time here is wall-clock Unix seconds from the one system clock that the recorder, the
tap, the viewer and Chromium (`Date.now()`) all read, so times taken in different processes
can be subtracted.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from police_link._mqtt import make_client
from police_link.settings import BrokerSettings
from tests.fixtures.camsim import SimCam
from tests.fixtures.mosquitto import MosquittoBroker

REPO = Path(__file__).resolve().parents[2]
RECORDER = Path(sys.executable).parent / "dozor-recorder"  # the venv's console script
SITE = "site-a"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# recorder/logging_setup.py: "%(asctime)s %(levelname)s site=... camera=... name: message"
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# recorder/motion/events.py, EventTracker._start_event
_EVENT_STARTED = re.compile(r"camera (\S+): motion event (\S+) started at ([\d.]+)")


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_site_config(
    state: Path,
    broker: MosquittoBroker,
    cam: SimCam,
    camera_name: str = "cam01",
    segment_s: int = 4,
    post_roll_s: float = 3.0,
) -> Path:
    """site.toml for SITE with one ONVIF camera, as scripts/demo.py writes it (short
    segments, small free-space margins for a test machine, health port chosen by the OS,
    a short post-roll so that an event ends a few seconds after the motion does)."""
    assert cam.onvif, "the simulator was started without ONVIF"
    lines = [
        f"site = {toml_str(SITE)}",
        "[storage]",
        f"root = {toml_str(str(state / 'recordings'))}",
        f"segment_duration_s = {segment_s}",
        "flush_interval_s = 1",
        'min_free_bytes = "300MiB"',
        'stop_below_free_bytes = "100MiB"',
        "[health]",
        'listen = "127.0.0.1"',
        "port = 0",
        *broker.toml_table(SITE),
        "[[cameras]]",
        f"name = {toml_str(camera_name)}",
        f"onvif_url = {toml_str(cam.onvif)}",
        f"user = {toml_str(cam.user)}",
        f"password = {toml_str(cam.password)}",
        "[cameras.motion.events]",
        f"post_roll_s = {post_roll_s}",
    ]
    path = state / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def log_wall(line: str) -> float | None:
    """The wall time of a recorder log line (asctime is local time, milliseconds)."""
    found = _LOG_TIME.match(line)
    if found is None:
        return None
    return datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclasses.dataclass(frozen=True)
class EventStarted:
    logged_wall: float  # when the recorder raised the event (its log record's time)
    camera: str
    event_id: str
    start_wall: float  # the event's start: wall time of its first motion frame


class RecorderProcess:
    """`dozor-recorder --config site.toml` as a real process; its log goes to a file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0
        self.log_offset = 0  # where this process's lines begin in the log file

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RECORDER), "--config", str(self.config)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig`; return the wall time it was sent."""
        assert self.proc is not None
        sent = time.time()
        self.proc.send_signal(sig)
        return sent

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def current_log(self) -> str:
        """The lines of the process started last."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def events_started(self) -> list[EventStarted]:
        found = []
        for line in self.log_text().splitlines():
            match = _EVENT_STARTED.search(line)
            wall = log_wall(line)
            if match and wall is not None:
                found.append(
                    EventStarted(wall, match.group(1), match.group(2), float(match.group(3)))
                )
        return found


@dataclasses.dataclass(frozen=True)
class Received:
    wall: float
    topic: str
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttTap:
    """An independent MQTT 5 subscriber (the viewer account, its own client id and a clean
    session): what the site really published, and when the broker delivered it."""

    def __init__(self, settings: BrokerSettings, topics: list[str]) -> None:
        self.topics = topics
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = make_client(settings, f"e2e-tap-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._settings = settings

    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None
    ) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(Received(time.time(), msg.topic, bytes(msg.payload)))

    def start(self, timeout_s: float = 10.0) -> None:
        s = self._settings
        self._client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise AssertionError("the MQTT tap could not subscribe")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def select(self, pred: Callable[[Received], bool]) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if pred(m)]

    def first(self, pred: Callable[[Received], bool]) -> Received | None:
        found = self.select(pred)
        return found[0] if found else None


# Page-side probes. A MutationObserver callback runs as a microtask right after the DOM
# change, so Date.now() there is when the element entered the page (before the next paint,
# which follows within a frame).
PROBES_JS = """() => {
  if (window.__e2e) return;
  const e2e = window.__e2e = {alerts: {}, seen: {}, selectors: []};
  const check = () => {
    const now = Date.now();
    for (const li of document.querySelectorAll('#alert-feed .alert[data-id]')) {
      if (!(li.dataset.id in e2e.alerts)) e2e.alerts[li.dataset.id] = now;
    }
    for (const sel of e2e.selectors) {
      if (!(sel in e2e.seen) && document.querySelector(sel)) e2e.seen[sel] = now;
    }
  };
  e2e.watch = (sel) => { delete e2e.seen[sel]; e2e.selectors.push(sel); check(); };
  new MutationObserver(check).observe(document.body,
      {childList: true, subtree: true, attributes: true, characterData: true});
  check();
}"""

PLAYBACK_JS = """() => {
  const v = document.querySelector('#live-player video');
  if (!v) return null;
  return {time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
          dropped: v.getVideoPlaybackQuality().droppedVideoFrames,
          error: v.error && v.error.message, now: Date.now()};
}"""
