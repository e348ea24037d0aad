"""Benchmark of the alert path: publish call (or decoded frame) -> alert at the viewer.

    python -m bench.alerts [--cameras 32] [--alerts 1000] [--seconds 10] [--burst 3000]

Everything is real and on loopback: a mosquitto broker running Dozor's configuration
(config/mosquitto: TLS, passwords, ACLs; started through tests/fixtures/mosquitto.py), one
site's SiteLink (durable SQLite outbox, fsync per commit, QoS 1, PUBACK reason codes) fed
from one thread per camera, and a ViewerLink (validation, dedupe) receiving in asyncio in
a separate process, as at the police station (times: CLOCK_MONOTONIC, shared by both).

Figures:
- latency p50/p95/max of `--alerts` alerts spread over `--cameras` cameras, at
  `--alerts / --seconds` a second, publish_event() call -> EventMessage out of
  ViewerLink.receive(); the peers' alerts take turns with Dozor's (so the run lasts
  3 x `--seconds`);
- the same from the decoded frame that starts an event, when recorder.motion is importable:
  the frame is handed to the recorder's MotionDetector and EventTracker, whose "new"
  change is turned into the alert (`--frame-alerts` of them);
- messages per second sustained: `--burst` alerts published at once, until the last arrives;
- the peer, in the same run: a plain paho QoS 1 publish of the same JSON, no outbox (what
  Frigate-style integrations do, minus QoS 0's silent loss), received by the same viewer;
  once with paho's defaults and once with TCP_NODELAY as Dozor sets it (which isolates the
  cost of the outbox); ratios Dozor / plain.
The last line printed is one JSON object of the figures. Goal: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from police_link import BrokerSettings, EventMessage, SiteLink, Topics, ViewerLink
from police_link._mqtt import make_client
from tests.fixtures.mosquitto import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
SITE = "site-a"
SNAPSHOT_BYTES = 20_000  # a small JPEG's worth of bytes with every "new" event
FRAME_INTERVAL_S = 0.005


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(values_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "max_ms": round(ordered[-1], 2),
    }


class Receiver:
    """A ViewerLink in its own process (`--receive`); collects arrival times by event id."""

    def __init__(self, broker: MosquittoBroker) -> None:
        settings = dataclasses.asdict(broker.settings("viewer", client_id="bench-viewer"))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.alerts", "--receive", json.dumps(settings)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        self.arrived: dict[str, float] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(20):
            self.close()
            raise RuntimeError("the receiver process did not connect")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("ready"):
                self._ready.set()
                continue
            event_id, _, at = line.partition(" ")
            with self._cond:
                self.arrived[event_id] = float(at)
                self._cond.notify_all()

    def wait_for(self, event_ids: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not event_ids <= self.arrived.keys():
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    missing = len(event_ids - self.arrived.keys())
                    raise TimeoutError(f"{missing} alerts did not arrive")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


async def receive_main(settings_json: str) -> None:
    """The receiver process: print "<event id> <monotonic time>" per EventMessage."""
    link = ViewerLink(BrokerSettings(**json.loads(settings_json)))
    await link.start()
    if not await link.wait_connected(20):
        raise SystemExit("receiver: no connection")
    print("ready", flush=True)
    async for message in link.messages():
        if isinstance(message, EventMessage):
            sys.stdout.write(f"{message.event_id} {time.monotonic()}\n")
            sys.stdout.flush()


Publish = Callable[[EventMessage, bytes | None], None]


def run_cameras(paths: dict[str, Publish], cameras: int, alerts: int,
                seconds: float, snapshot: bytes | None) -> dict[str, float]:
    """One thread per camera, `alerts` per path at `alerts / seconds` a second in all. The
    paths take turns (each camera's k-th alert goes through path k + camera mod n), so load
    from elsewhere on the shared machine hits every path alike, and the total rate stays
    what one path alone would see. Returns the monotonic time of each publish call."""
    sent: dict[str, float] = {}
    lock = threading.Lock()
    names = list(paths)
    total = alerts * len(names)
    interval_s = seconds * cameras / max(alerts, 1)

    def camera(index: int) -> None:
        name = f"cam{index:02d}"
        count = len(range(index, total, cameras))
        start = time.monotonic() + index * interval_s / cameras
        for k in range(count):
            delay = start + k * interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            prefix = names[(k + index) % len(names)]
            event_id = f"{prefix}-{name}-{k}"
            msg = EventMessage(SITE, name, event_id, "new", time.time(), zones=("yard",),
                               score=0.3)
            t0 = time.monotonic()
            paths[prefix](msg, snapshot)
            with lock:
                sent[event_id] = t0

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(cameras)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def plain_publisher(broker: MosquittoBroker, *, nodelay: bool = False
                    ) -> tuple[mqtt.Client, Publish]:
    """The peer: paho QoS 1 straight to the broker, no outbox, no sequence numbers. With
    paho's defaults (Nagle on) unless `nodelay`, which isolates what the outbox costs."""
    client_id = "plain-nodelay" if nodelay else "plain-peer"
    client = make_client(broker.settings(SITE, client_id=client_id), client_id)
    if not nodelay:
        client.on_socket_open = None
    client.max_inflight_messages_set(32)
    client.connect(broker.host, broker.port)
    client.loop_start()
    topics = Topics()

    def publish(msg: EventMessage, jpeg: bytes | None) -> None:
        # seq 0: unsequenced, so the viewer's tracker of the site's real seqs is untouched
        client.publish(topics.events(SITE), msg.to_json(), qos=1)
        if jpeg is not None:
            client.publish(topics.snapshot(SITE, msg.camera, msg.event_id), jpeg, qos=1)

    return client, publish


def latency_phase(receiver: Receiver, paths: dict[str, Publish], args: Any
                  ) -> dict[str, list[float]]:
    snapshot = bytes(args.snapshot_bytes) if args.snapshot_bytes else None
    sent = run_cameras(paths, args.cameras, args.alerts, args.seconds, snapshot)
    receiver.wait_for(set(sent), 60)
    return {prefix: [(receiver.arrived[e] - t0) * 1000 for e, t0 in sent.items()
                     if e.startswith(prefix + "-")] for prefix in paths}


def burst_phase(receiver: Receiver, publish: Publish, prefix: str, count: int) -> float:
    """Messages per second: `count` alerts published at once until the last one arrives."""
    ids = {f"{prefix}-{i}" for i in range(count)}
    t0 = time.monotonic()
    for i in range(count):
        publish(EventMessage(SITE, f"cam{i % 32:02d}", f"{prefix}-{i}", "new", time.time()),
                None)
    receiver.wait_for(ids, 120)
    return count / (max(receiver.arrived[e] for e in ids) - t0)


def frame_path_phase(publish: Publish, count: int) -> tuple[dict[str, float], str]:
    """Drive the recorder's detector and event tracker with synthetic luma frames; the
    alert of each "new" change is timed from the start of processing of its frame."""
    try:
        from recorder.motion.config import EventConfig, MotionConfig
        from recorder.motion.detector import MotionDetector
        from recorder.motion.events import EventChange, EventTracker
    except ImportError as err:
        return {}, f"recorder.motion not importable: {err}"
    try:
        cfg = MotionConfig(events=EventConfig(post_roll_s=0.6, min_duration_s=0.4,
                                              update_interval_s=3600.0))
        detector = MotionDetector(cfg.params(), cfg.masks, cfg.zones)
        sent: dict[str, float] = {}
        frame_t0 = [0.0]

        def on_change(change: EventChange) -> None:
            if change.change != "new":
                return
            msg = EventMessage(SITE, change.camera, f"frame-{change.event_id}", "new",
                               change.start_wall, zones=change.zones, score=change.score)
            sent[msg.event_id] = frame_t0[0]
            publish(msg, change.snapshot_jpeg)

        tracker = EventTracker("cam00", cfg.events, on_change)
        rng = np.random.default_rng(1)
        background = rng.integers(60, 90, (360, 640), dtype=np.uint8)
        t_s = 1_700_000_000.0
        step_s = 0.2
        for _ in range(60):  # calibration on a still scene
            t_s += step_s
            tracker.feed(detector.process(background, t_s))
        position = 0
        deadline = time.monotonic() + 120
        while len(sent) < count and time.monotonic() < deadline:
            for _ in range(6):  # a bright block walks across the scene
                # 200 frames/s in all: a site of 40 cameras analysed at 5 fps, not a CPU-bound
                # loop starving the link's threads of the GIL
                time.sleep(max(0.0, frame_t0[0] + FRAME_INTERVAL_S - time.monotonic()))
                frame = background.copy()
                x = 40 + (position * 37) % 500
                frame[120:240, x:x + 80] = 230
                position += 1
                t_s += step_s
                frame_t0[0] = time.monotonic()
                tracker.feed(detector.process(frame, t_s), None)
            tracker.flush()  # end the event at once, ready for the next one
        return sent, "" if sent else "the detector raised no event on the synthetic scene"
    except Exception as err:  # the recorder's API is another package's: report, don't fail
        return {}, f"frame path failed: {type(err).__name__}: {err}"


def run(args: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dozor-bench-alerts-") as tmp:
        broker = MosquittoBroker.launch(Path(tmp))
        cameras = [f"cam{i:02d}" for i in range(max(32, args.cameras))]
        site = SiteLink(SITE, broker.settings(SITE), str(Path(tmp) / "outbox.db"),
                        cameras=cameras)
        plain_client, plain_publish = plain_publisher(broker)
        nodelay_client, nodelay_publish = plain_publisher(broker, nodelay=True)
        receiver = None
        try:
            site.start()
            receiver = Receiver(broker)
            if not site.wait_connected(10):
                raise RuntimeError(f"the site did not connect: {broker.log_text()[-500:]}")
            latencies = latency_phase(
                receiver, {"dz": site.publish_event, "pl": plain_publish, "nd": nodelay_publish},
                args)
            dozor, plain, nodelay = latencies["dz"], latencies["pl"], latencies["nd"]
            frame_sent, frame_note = frame_path_phase(site.publish_event, args.frame_alerts)
            if frame_sent:
                receiver.wait_for(set(frame_sent), 30)
            frame = [(receiver.arrived[e] - t0) * 1000 for e, t0 in frame_sent.items()]
            dozor_rate = burst_phase(receiver, site.publish_event, "dzb", args.burst)
            plain_rate = burst_phase(receiver, plain_publish, "plb", args.burst)
        finally:
            if receiver is not None:
                receiver.close()
            site.stop()
            for client in (plain_client, nodelay_client):
                client.disconnect()
                client.loop_stop()
            broker.stop()
    d, p, n = percentiles(dozor), percentiles(plain), percentiles(nodelay)
    return {
        "bench": "alerts",
        "cameras": args.cameras,
        "alerts": args.alerts,
        "seconds": args.seconds,
        "snapshot_bytes": args.snapshot_bytes,
        "dozor_latency": d,
        "plain_qos1_latency": p,
        "plain_qos1_nodelay_latency": n,
        "frame_to_alert_latency": percentiles(frame) if frame else None,
        "frame_to_alert_count": len(frame),
        "frame_to_alert_note": frame_note,
        "dozor_msgs_per_s": round(dozor_rate, 1),
        "plain_qos1_msgs_per_s": round(plain_rate, 1),
        "p95_ratio_dozor_over_plain": round(d["p95_ms"] / p["p95_ms"], 2),
        "p95_ratio_dozor_over_plain_nodelay": round(d["p95_ms"] / n["p95_ms"], 2),
        "rate_ratio_dozor_over_plain": round(dozor_rate / plain_rate, 2),
        "goal_p95_under_50_ms": d["p95_ms"] < 50,
        "load_avg_1m": round(os.getloadavg()[0], 2),  # shared machine: context for the noise
    }


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="alerts / seconds is the rate (paths take turns: 3x as long)")
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--frame-alerts", type=int, default=100)
    parser.add_argument("--snapshot-bytes", type=int, default=SNAPSHOT_BYTES)
    parser.add_argument("--receive", metavar="SETTINGS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            asyncio.run(receive_main(args.receive))
        return
    signal.signal(signal.SIGTERM, _terminate)  # run the finally blocks: stop mosquitto
    figures = run(args)
    d, p = figures["dozor_latency"], figures["plain_qos1_latency"]
    print(f"alerts: {args.alerts} per path over {args.cameras} cameras at "
          f"{args.alerts / args.seconds:g}/s, "
          f"{args.snapshot_bytes} B snapshot each")
    print(f"  Dozor (outbox, fsync, QoS 1)  p50 {d['p50_ms']} ms  p95 {d['p95_ms']} ms  "
          f"max {d['max_ms']} ms")
    print(f"  plain paho QoS 1 (no outbox)  p50 {p['p50_ms']} ms  p95 {p['p95_ms']} ms  "
          f"max {p['max_ms']} ms")
    n = figures["plain_qos1_nodelay_latency"]
    print(f"  plain paho QoS 1, TCP_NODELAY  p50 {n['p50_ms']} ms  p95 {n['p95_ms']} ms  "
          f"max {n['max_ms']} ms")
    frame = figures["frame_to_alert_latency"]
    if frame:
        print(f"  decoded frame -> alert ({figures['frame_to_alert_count']} events)  "
              f"p50 {frame['p50_ms']} ms  p95 {frame['p95_ms']} ms  max {frame['max_ms']} ms")
    else:
        print(f"  decoded frame -> alert: not measured ({figures['frame_to_alert_note']})")
    print(f"sustained: Dozor {figures['dozor_msgs_per_s']} msg/s, plain "
          f"{figures['plain_qos1_msgs_per_s']} msg/s (ratio "
          f"{figures['rate_ratio_dozor_over_plain']})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
