"""The MSE player (viewer/static/live.js) in headless Chromium against the real live path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web

from bench.live import (
    CAMERA,
    CHROMIUM,
    CHROMIUM_ARGS,
    SITE,
    LiveRig,
    RecorderSide,
    allow_all,
    page_routes,
    start_gst_server,
    viewer_link,
)
from recorder.live import LiveController
from recorder.stream_types import StreamInfo
from tests.fixtures.mosquitto import MosquittoBroker
from tests.recorder.test_live import make_clip
from tests.viewer.conftest import log_in
from viewer.accounts import Role
from viewer.live import LiveHub, add_live_routes

pytestmark = pytest.mark.browser

PLAYBACK = """() => {
  const v = document.querySelector('#live video');
  const player = document.querySelector('#live').dozorLive;
  return {time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
          error: v.error && v.error.message, rate: document.querySelector('.live-rate').textContent,
          note: document.querySelector('.live-note').textContent,
          jpegs: player.stats.jpegs, latency: player.stats.latencyMs.slice(-30)};
}"""


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(ignore_https_errors=True)  # self-signed
            yield await context.new_page()
        finally:
            await browser.close()


@pytest.fixture
def gst_and_broker(mosquitto: MosquittoBroker) -> Iterator[tuple[str, MosquittoBroker]]:
    try:
        gst, url = start_gst_server(pattern="ball", bitrate_kbit=300)
    except (OSError, RuntimeError) as err:
        pytest.skip(f"GStreamer RTSP server unavailable: {err}")
    yield url, mosquitto
    gst.kill()
    gst.wait()


async def test_live_view_plays_in_chromium(
    gst_and_broker: tuple[str, MosquittoBroker], browser_page: Any, tmp_path: Path
) -> None:
    url, broker = gst_and_broker
    rig = LiveRig(url, broker, tmp_path, extra_routes=page_routes(),
                  streams=("main", "sub"))
    async with rig.running():
        page = browser_page
        await page.goto(f"http://127.0.0.1:{rig.http_port}/live-test")
        await page.wait_for_function(
            "() => { const v = document.querySelector('#live video');"
            " return v && v.currentTime > 0.3; }", timeout=15000)
        before = await page.evaluate(PLAYBACK)
        await asyncio.sleep(3.0)
        after = await page.evaluate(PLAYBACK)
        # main stream on request: the button reconnects the same player
        await page.evaluate("() => { window.subSrc = document.querySelector('#live video').src; }")
        await page.click("#live .live-stream-toggle")
        await page.wait_for_function(
            "() => { const v = document.querySelector('#live video');"
            " return v.src !== window.subSrc && v.currentTime > 0.3; }", timeout=15000)
        assert ("live.start", {"camera": CAMERA, "stream": "main", "ttl_s": 30}) in rig.requests
    assert after["error"] is None
    assert after["time"] - before["time"] > 1.0, (before, after)
    assert after["frames"] - before["frames"] > 15, (before, after)
    assert after["rate"].endswith("kbit/s")
    assert after["note"].startswith("avc1.")
    latency = sorted(after["latency"])
    # bench.live measures the latency on a quiet machine; here only a sanity bound
    assert latency and latency[len(latency) // 2] < 1000, latency


async def test_live_view_plays_on_the_viewer_wall_page(
    gst_and_broker: tuple[str, MosquittoBroker], browser_page: Any, tmp_path: Path,
    start_viewer: Any,
) -> None:
    """The real application: HTTPS, login form, session cookie, its CSP, the wall's dialog."""
    url, broker = gst_and_broker
    async with RecorderSide(url, broker, tmp_path).running():
        link = viewer_link(broker)
        await link.start()
        try:
            assert await link.wait_connected(10)
            viewer = await start_viewer(link=link)
            viewer.add_user("officer", Role.DUTY_OFFICER)
            page = browser_page
            await log_in(page, viewer.url)
            await page.evaluate(
                "([site, camera]) => { document.getElementById('live-dialog').showModal();"
                " window.livePlayer = DozorLive.open(document.getElementById('live-player'),"
                " {site: site, camera: camera}); }", [SITE, CAMERA])
            await page.wait_for_function(
                "() => { const v = document.querySelector('#live-player video');"
                " return v && v.currentTime > 0.3; }", timeout=15000)
            frames = "() => document.querySelector('#live-player video')" \
                ".getVideoPlaybackQuality().totalVideoFrames"
            before = await page.evaluate(frames)
            await asyncio.sleep(2.0)
            assert await page.evaluate(frames) > before + 10
            await page.evaluate("() => window.livePlayer.close()")
        finally:
            await link.stop()


class FileReplay(threading.Thread):
    """Plays a clip in real time, in a loop, into a sink: a camera without RTSP.

    With new_run_each_loop every loop is a new run whose timestamps start over, as when a
    camera reconnects: the player must take the new init segment and go on.
    """

    def __init__(self, path: Path, sink: Any, *, new_run_each_loop: bool = False) -> None:
        super().__init__(daemon=True)
        self.path, self.sink = path, sink
        self.new_run_each_loop = new_run_each_loop
        self.stop = threading.Event()

    def run(self) -> None:
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            tb: Fraction = stream.time_base
            ctx = stream.codec_context

            def start_run(run_id: int) -> None:
                self.sink.on_run_start(StreamInfo(
                    "bench", "gate", "sub", run_id, ctx.name, ctx.width, ctx.height,
                    tb.numerator, tb.denominator, time.time(), stream))

            start_run(1)
            packets = [p for p in container.demux(stream) if p.dts is not None]
            duration_s = float((packets[-1].dts - packets[0].dts) * tb) + 1 / 15
            start = time.monotonic()
            loop = 0
            while not self.stop.is_set():
                if loop and self.new_run_each_loop:
                    self.sink.on_run_end("camera reconnected")
                    start_run(loop + 1)
                shift = 0 if self.new_run_each_loop else round(loop * duration_s / tb)
                for p in packets:
                    due = start + loop * duration_s + float((p.dts - packets[0].dts) * tb)
                    if self.stop.wait(max(0.0, due - time.monotonic())):
                        break
                    q = av.Packet(bytes(p))
                    q.pts, q.dts = p.pts + shift, p.dts + shift
                    q.time_base, q.is_keyframe = p.time_base, p.is_keyframe
                    self.sink.on_packet(q)
                loop += 1
            self.sink.on_run_end("replay stopped")


@contextlib.asynccontextmanager
async def replayed_camera(clip: Path, **replay_options: Any) -> AsyncIterator[int]:
    """A clip replayed into LiveController -> LiveHub in this process (no broker), served
    with the test page; yields the HTTP port."""
    hub: LiveHub | None = None

    def publish(camera: str, stream: str, payload: bytes, **_: Any) -> bool:
        assert hub is not None
        hub.deliver_threadsafe("bench", camera, stream, payload)
        return True

    controller = LiveController("bench", publish)

    async def request(site: str, kind: str, args: dict[str, Any], timeout_s: float) -> dict:
        return controller.handle(kind, args, "viewer1")

    hub = LiveHub(request)
    app = web.Application()
    add_live_routes(app, hub, allow_all)
    page_routes("bench", "gate")(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    replay = FileReplay(clip, controller.sink("gate", "sub"), **replay_options)
    replay.start()
    try:
        yield runner.addresses[0][1]
    finally:
        replay.stop.set()
        replay.join(5)
        await runner.cleanup()


async def test_h265_falls_back_to_jpeg_in_chromium(browser_page: Any, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam265.ts", "h265", seconds=2.0)
    async with replayed_camera(clip) as port:
        page = browser_page
        await page.goto(f"http://127.0.0.1:{port}/live-test")
        await page.wait_for_function(
            "() => document.querySelector('#live').dozorLive.stats.jpegs >= 2", timeout=15000)
        state = await page.evaluate(PLAYBACK)
        shown = await page.evaluate(
            "() => { const i = document.querySelector('#live img');"
            " return {hidden: i.hidden, width: i.naturalWidth}; }")
    assert state["note"].startswith("hvc1.") and "cannot play here" in state["note"]
    assert shown == {"hidden": False, "width": 320}


async def test_playback_goes_on_across_camera_reconnects(
    browser_page: Any, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "cam.ts", "h264", seconds=2.0)
    async with replayed_camera(clip, new_run_each_loop=True) as port:
        page = browser_page
        await page.goto(f"http://127.0.0.1:{port}/live-test")
        await page.wait_for_function(
            "() => { const v = document.querySelector('#live video');"
            " return v && v.currentTime > 0.3; }", timeout=15000)
        before = await page.evaluate(PLAYBACK)
        await asyncio.sleep(4.5)  # two new runs, timestamps starting over each time
        after = await page.evaluate(PLAYBACK)
    assert after["error"] is None
    assert after["time"] - before["time"] > 2.5, (before, after)
    assert after["frames"] - before["frames"] > 40, (before, after)
