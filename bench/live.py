"""Benchmark of the live path: camera packet received by the recorder -> fragment at the browser.

    python -m bench.live --seconds 10 [--views 1] [--modes frame,0.2,gop]

Everything is real and on loopback: Debian's GStreamer RTSP server (640x360 H.264 at 15 fps,
1 s GOP), the recorder's StreamIngest with a LiveSink, police_link's SiteLink and ViewerLink
through mosquitto with the police-station configuration (TLS, accounts, ACL), the viewer's
live relay (aiohttp), and WebSocket clients standing in for browsers (Chromium too with
--browser). For each fragmenting mode it prints the added latency p50/p95 (wall time at
the client minus the wall time the recorder received the fragment's first packet) and the
bytes per second each view receives against the camera stream's own bitrate. The peer is
the usual way to get fMP4 out of a camera without transcoding, `-c copy -movflags
frag_keyframe+empty_moov` (one fragment per GOP), measured in the same run as mode "gop".
The last line printed is one JSON object of the figures.

`LiveRig` (the whole chain) is also what the end-to-end tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from police_link import SiteLink, ViewerLink
from recorder.health import StreamHealth
from recorder.ingest import IngestSettings, PyavOpener, StreamIngest
from recorder.live import ChunkKind, LiveController, decode_payload
from tests.fixtures.mosquitto import MosquittoBroker
from viewer.live import LiveAccess, LiveHub, add_live_routes

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "viewer" / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>live</title></head><body>
<div id="live" data-live-site="{site}" data-live-camera="{camera}" data-live-stream="sub"></div>
<script src="/static/live.js"></script></body></html>"""
GST_SERVER = ROOT / "tests" / "fixtures" / "gst_rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
SITE = "site-a"  # one of tests.fixtures.mosquitto.SITES: the broker's ACL knows it
CAMERA = "gate"
# A new view first gets the fragments cached since the last keyframe: not live latency.
STARTUP_BURST_S = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gst_server(*, width: int = 640, height: int = 360, fps: int = 15,
                     bitrate_kbit: int = 512, pattern: str = "snow"
                     ) -> tuple[subprocess.Popen[str], str]:
    """Debian's GStreamer RTSP server (tests/fixtures/gst_rtsp_server.py); returns its URL.

    "snow" keeps the encoder at its target bitrate, as a real street scene does; "ball"
    compresses to almost nothing, which would overstate the per-fragment overhead.
    """
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(GST_SERVER), "--width", str(width), "--height", str(height),
         "--fps", str(fps), "--bitrate-kbit", str(bitrate_kbit), "--pattern", pattern],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"GStreamer RTSP server did not start: {line!r}")
    return proc, line.split(" ", 1)[1].strip()


class MemoryRunLog:
    """recorder.ingest.RunLog that keeps runs in memory (no index needed here)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, float]] = []

    def start_run(self, camera: str, stream: str, start_wall: float) -> int:
        self.runs.append((camera, stream, start_wall))
        return len(self.runs)

    def end_run(self, run_id: int, end_wall: float, reason: str) -> None:
        pass

    def add_gap(self, camera: str, stream: str, start_wall: float, end_wall: float,
                reason: str) -> None:
        pass


def allow_all(request: web.Request, site: str, camera: str) -> LiveAccess:
    return LiveAccess("bench", request.remote or "-")


def page_routes(site: str = SITE, camera: str = CAMERA) -> Callable[[web.Application], None]:
    """/live-test: a page with one player (viewer/static/live.js) watching site/camera."""

    def add(app: web.Application) -> None:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=PAGE.format(site=site, camera=camera),
                                content_type="text/html")

        app.router.add_get("/live-test", page)
        app.router.add_static("/static", STATIC_DIR)

    return add


# Every 200 ms: how far the picture shown lags the newest frame the player holds.
SAMPLE_BEHIND_JS = """() => { window.behindMs = [];
  setInterval(() => { const v = document.querySelector('#live video'); const b = v.buffered;
    if (b.length) window.behindMs.push((b.end(b.length - 1) - v.currentTime) * 1000); }, 200);
}"""


async def watch_in_chromium(http_port: int, seconds: float) -> tuple[list[float], list[float]]:
    """Latencies (ms) the player measured on arrival in the page, and how far (ms) playback
    stayed behind the newest buffered frame."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{http_port}/live-test")
            await asyncio.sleep(STARTUP_BURST_S + 1.0)
            skip = await page.evaluate("() => document.querySelector('#live')"
                                       ".dozorLive.stats.latencyMs.length")
            await page.evaluate(SAMPLE_BEHIND_JS)
            await asyncio.sleep(seconds)
            behind: list[float] = await page.evaluate("() => window.behindMs")
            latencies: list[float] = await page.evaluate(
                "() => document.querySelector('#live').dozorLive.stats.latencyMs")
            frames = await page.evaluate("() => document.querySelector('#live video')"
                                         ".getVideoPlaybackQuality().totalVideoFrames")
        finally:
            await browser.close()
    if frames == 0:
        raise RuntimeError("Chromium decoded no frame")
    return latencies[skip:], behind


@dataclass
class RecorderSide:
    """The site end: StreamIngest -> LiveSink (LiveController) -> SiteLink, on a broker."""

    rtsp_url: str
    broker: MosquittoBroker
    workdir: Path
    fragment_s: float | None = None  # None: chosen per session (recorder.live)
    streams: tuple[str, ...] = ("sub",)  # each ingested from rtsp_url (tests: main too)
    health: StreamHealth = field(init=False)  # of the sub stream
    controller: LiveController = field(init=False)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RecorderSide]:
        site_link = SiteLink(SITE, self.broker.settings(SITE),
                             str(self.workdir / f"outbox-{os.getpid()}.db"), cameras=[CAMERA])
        self.controller = LiveController(SITE, site_link.publish_live,
                                         fragment_s=self.fragment_s)
        self.controller.register(site_link)
        healths = {stream: StreamHealth(SITE, CAMERA, stream) for stream in self.streams}
        self.health = healths.get("sub") or next(iter(healths.values()))
        ingests = [
            StreamIngest(
                site=SITE, camera=CAMERA, stream=stream, url=self.rtsp_url,
                opener=PyavOpener(), sinks=[self.controller.sink(CAMERA, stream)],
                run_log=MemoryRunLog(), health=health,
                settings=IngestSettings(read_timeout_s=3.0),
            )
            for stream, health in healths.items()
        ]
        site_link.start()
        for ingest in ingests:
            ingest.start()
        try:
            if not await asyncio.to_thread(site_link.wait_connected, 10):
                raise RuntimeError("the site link did not connect to mosquitto")
            yield self
        finally:
            for ingest in ingests:
                ingest.request_stop()
            for ingest in ingests:
                await asyncio.to_thread(ingest.join, 10)
            await asyncio.to_thread(site_link.stop)


def viewer_link(broker: MosquittoBroker) -> ViewerLink:
    return ViewerLink(broker.settings("viewer", client_id="viewer-bench"), sender="viewer1")


@dataclass
class LiveRig:
    """RecorderSide plus the viewer end: ViewerLink -> LiveHub -> /ws/live on plain HTTP."""

    rtsp_url: str
    broker: MosquittoBroker
    workdir: Path
    fragment_s: float | None = None
    ttl_s: int = 30
    streams: tuple[str, ...] = ("sub",)
    extra_routes: Callable[[web.Application], None] | None = None
    recorder: RecorderSide = field(init=False)
    hub: LiveHub = field(init=False)
    http_port: int = field(init=False)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list, init=False)

    @property
    def controller(self) -> LiveController:
        return self.recorder.controller

    @property
    def health(self) -> StreamHealth:
        return self.recorder.health

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LiveRig]:
        self.recorder = RecorderSide(self.rtsp_url, self.broker, self.workdir,
                                     self.fragment_s, self.streams)
        link = viewer_link(self.broker)

        async def request(site: str, kind: str, args: dict[str, Any], timeout_s: float
                          ) -> dict[str, Any]:
            self.requests.append((kind, dict(args)))
            return await link.request(site, kind, args, timeout_s=timeout_s)

        self.hub = LiveHub(request, ttl_s=self.ttl_s)
        app = web.Application()
        add_live_routes(app, self.hub, allow_all)
        if self.extra_routes is not None:
            self.extra_routes(app)
        runner = web.AppRunner(app)
        pump: asyncio.Task[None] | None = None
        async with self.recorder.running():
            await link.start()
            try:
                if not await link.wait_connected(10):
                    raise RuntimeError("the viewer link did not connect to mosquitto")

                async def route() -> None:
                    async for message in link.messages():
                        self.hub.handle(message)

                pump = asyncio.create_task(route())
                await runner.setup()
                self.http_port = free_port()
                await web.TCPSite(runner, "127.0.0.1", self.http_port).start()
                yield self
            finally:
                if pump is not None:
                    pump.cancel()
                await runner.cleanup()
                await link.stop()

    def ws_url(self, stream: str = "sub", mode: str = "mse") -> str:
        return (f"http://127.0.0.1:{self.http_port}/ws/live/{SITE}/{CAMERA}"
                f"?stream={stream}&mode={mode}")


@dataclass
class ViewFigures:
    latencies_ms: list[float] = field(default_factory=list)
    bytes: int = 0
    media_bytes: int = 0  # MEDIA messages, as received
    sample_bytes: int = 0  # the camera's own data in them (mdat payloads)
    ws_header_bytes: int = 0  # WebSocket framing of every binary message
    media: int = 0
    inits: int = 0
    jpegs: int = 0
    texts: list[dict[str, Any]] = field(default_factory=list)
    first_s: float | None = None  # monotonic arrival of the first and last binary message
    last_s: float | None = None


async def watch(url: str, seconds: float, figures: ViewFigures) -> None:
    """A browser stand-in: receive for `seconds`, timing every media fragment on arrival."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            now_us = time.time() * 1e6
            if msg.type == aiohttp.WSMsgType.BINARY:
                now_s = time.monotonic()
                if figures.first_s is None:
                    figures.first_s = now_s
                figures.last_s = now_s
                chunk = decode_payload(msg.data)
                figures.bytes += len(msg.data)
                figures.ws_header_bytes += ws_header_size(len(msg.data))
                if chunk.kind is ChunkKind.MEDIA:
                    figures.media += 1
                    if now_s - figures.first_s >= STARTUP_BURST_S:
                        figures.latencies_ms.append((now_us - chunk.recv_wall_us) / 1000)
                    figures.media_bytes += len(msg.data) + ws_header_size(len(msg.data))
                    figures.sample_bytes += mdat_payload_size(chunk.body)
                elif chunk.kind is ChunkKind.INIT:
                    figures.inits += 1
                elif chunk.kind is ChunkKind.JPEG:
                    figures.jpegs += 1
            elif msg.type == aiohttp.WSMsgType.TEXT:
                figures.texts.append(json.loads(msg.data))
            else:
                break


def ws_header_size(payload_len: int) -> int:
    """RFC 6455 frame header of an unmasked server-to-client message."""
    return 2 if payload_len < 126 else 4 if payload_len < 65536 else 10


def mdat_payload_size(fragment: bytes) -> int:
    """Bytes of samples in a moof+mdat fragment."""
    moof_size = int.from_bytes(fragment[:4], "big")
    return int.from_bytes(fragment[moof_size : moof_size + 4], "big") - 8


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure_mode(url: str, broker: MosquittoBroker, workdir: Path, fragment_s: float | None,
                       seconds: float,
                       views: int, browser: bool = False) -> dict[str, Any]:
    rig = LiveRig(url, broker, workdir, fragment_s=fragment_s,
                  extra_routes=page_routes() if browser else None)
    browser_latencies: list[float] = []
    behind_ms: list[float] = []
    async with rig.running():
        await asyncio.sleep(2.0)  # the ingest connects; "auto" needs a second of stream
        bytes0, t0 = rig.health.bytes_received, time.monotonic()
        cpu0 = time.process_time()
        figures = [ViewFigures() for _ in range(views)]
        await asyncio.gather(*(watch(rig.ws_url(), seconds, f) for f in figures))
        if browser:
            browser_latencies, behind_ms = await watch_in_chromium(rig.http_port, seconds)
        elapsed = time.monotonic() - t0
        stream_bytes = rig.health.bytes_received - bytes0
        cpu_s = time.process_time() - cpu0
        sink_stats = rig.controller.sink(CAMERA, "sub").stats()
    stream_bps = stream_bytes * 8 / elapsed
    latencies = [x for f in figures for x in f.latencies_ms]
    view_bps = statistics.mean(
        f.bytes * 8 / (f.last_s - f.first_s) if f.first_s and f.last_s and f.last_s > f.first_s
        else 0.0 for f in figures)
    media_bytes = sum(f.media_bytes for f in figures)
    sample_bytes = sum(f.sample_bytes for f in figures)
    return {
        "fragment_s": "auto" if fragment_s is None else (
            fragment_s if math.isfinite(fragment_s) else "gop"),
        "views": views,
        "fragments_per_view": statistics.mean(f.media for f in figures),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
        "latency_max_ms": round(max(latencies, default=math.nan), 1),
        "stream_kbit_s": round(stream_bps / 1000, 1),
        "view_kbit_s": round(view_bps / 1000, 1),
        # what a view receives per byte of camera data, counted fragment by fragment
        "overhead_pct": round((media_bytes / sample_bytes - 1) * 100, 2)
        if sample_bytes else math.nan,
        "process_cpu_pct": round(cpu_s / elapsed * 100, 1),
        # not sent by the site: link backlogged (drop_if_backlogged), then up to a keyframe
        "fragments_skipped": sink_stats.fragments_skipped,
        **({"chromium_latency_p50_ms": round(percentile(browser_latencies, 50), 1),
            "chromium_latency_p95_ms": round(percentile(browser_latencies, 95), 1),
            "chromium_playback_behind_p50_ms": round(percentile(behind_ms, 50), 1)}
           if browser else {}),
    }


MODES: dict[str, float | None] = {"auto": None, "frame": 0.0, "gop": math.inf}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        gst, url = start_gst_server(bitrate_kbit=args.bitrate_kbit, pattern=args.pattern)
        results = {}
        broker: MosquittoBroker | None = None
        try:
            # The police-station configuration: TLS, accounts, ACL (config/mosquitto).
            broker = MosquittoBroker.launch(Path(tmp), sites=(SITE,))
            for mode in modes:
                fragment_s = MODES[mode] if mode in MODES else float(mode)
                results[mode] = await measure_mode(url, broker, Path(tmp), fragment_s,
                                                   args.seconds, args.views, args.browser)
                r = results[mode]
                print(f"mode {mode:>5}: latency p50 {r['latency_p50_ms']} ms, p95 "
                      f"{r['latency_p95_ms']} ms, max {r['latency_max_ms']} ms; view "
                      f"{r['view_kbit_s']} kbit/s vs stream {r['stream_kbit_s']} kbit/s "
                      f"(overhead {r['overhead_pct']} %); {r['fragments_per_view']:.0f} "
                      f"fragments per view; process CPU {r['process_cpu_pct']} %")
                if args.browser:
                    print(f"            in Chromium: p50 {r['chromium_latency_p50_ms']} ms, "
                          f"p95 {r['chromium_latency_p95_ms']} ms; playback "
                          f"{r['chromium_playback_behind_p50_ms']} ms behind the newest "
                          "frame (p50)")
        finally:
            if broker is not None:
                broker.stop()
            gst.kill()
            gst.wait()
    out: dict[str, Any] = {"bench": "live", "seconds": args.seconds, "views": args.views,
                           "modes": results}
    best = "auto" if "auto" in results else "frame"
    if best in results and "gop" in results and results[best]["latency_p95_ms"]:
        out["p95_ratio_gop_over_dozor"] = round(
            results["gop"]["latency_p95_ms"] / results[best]["latency_p95_ms"], 1)
        print(f"peer (fragment per GOP) p95 / Dozor ({best}) p95 = "
              f"{out['p95_ratio_gop_over_dozor']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per mode")
    parser.add_argument("--views", type=int, default=1, help="browsers watching at once")
    parser.add_argument("--modes", default="auto,frame,0.2,gop",
                        help="fragmenting: auto, frame, gop, or a duration in seconds")
    parser.add_argument("--bitrate-kbit", type=int, default=512, help="the camera's sub stream")
    parser.add_argument("--pattern", default="snow", help="videotestsrc pattern (ball: quiet)")
    parser.add_argument("--browser", action="store_true",
                        help="also measure in headless Chromium (Debian chromium, Playwright)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(amain(args))))


if __name__ == "__main__":
    main()
