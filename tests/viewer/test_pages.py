"""The duty officer's screen in headless Chromium against a real mosquitto and real
police_link sites: grid, alert within 1 s, acknowledgement reaching the site, site offline
on the health board, and a screenshot at 1366x768."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from police_link.messages import (
    AlarmMessage,
    CameraStatusMessage,
    EventMessage,
    StatsMessage,
)
from police_link.site_client import SiteLink
from police_link.viewer_client import ViewerLink
from viewer.accounts import Role

from .conftest import log_in

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT_DIR = Path(os.environ.get("DOZOR_SCREENSHOT_DIR", "/tmp"))
REPO = Path(__file__).resolve().parents[2]

# A second site in its own process, so that killing it lets the broker fire its will.
SITE_PROCESS = textwrap.dedent("""
    import sys, time, json
    from police_link.settings import BrokerSettings
    from police_link.site_client import SiteLink
    from police_link.messages import CameraStatusMessage
    settings = BrokerSettings(**json.loads(sys.argv[1]))
    link = SiteLink("site-b", settings, sys.argv[2], cameras=["porch"])
    link.start()
    assert link.wait_connected(10)
    link.set_camera_status(CameraStatusMessage(
        site="site-b", camera="porch", state="recording", since_unix_s=time.time()))
    print("ready", flush=True)
    time.sleep(600)
""")


def jpeg(text: str) -> bytes:
    img = np.full((180, 320, 3), (40, 60, 70), np.uint8)
    cv2.rectangle(img, (120, 60), (170, 170), (200, 200, 200), -1)
    cv2.putText(img, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@pytest.fixture
def chromium_path():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    return CHROMIUM


@pytest.mark.timeout(120)
async def test_duty_officer_screen(
    chromium_path, mosquitto, start_viewer, browser_factory, tmp_path
):
    from playwright.async_api import async_playwright

    link = ViewerLink(mosquitto.settings("viewer"))
    await link.start()
    assert await link.wait_connected(10)
    viewer = await start_viewer(link=link)
    viewer.add_user("officer", Role.DUTY_OFFICER)
    viewer.add_user("colleague", Role.DUTY_OFFICER)

    acks: list[dict] = []
    got_ack = threading.Event()

    def on_ack(request):
        acks.append(dict(request.args))
        got_ack.set()
        return {}

    site = SiteLink("site-a", mosquitto.settings("site-a"), str(tmp_path / "outbox-a.db"),
                    cameras=["gate", "yard"])
    site.on_command("ack", on_ack)
    site.start()
    other = subprocess.Popen(
        [sys.executable, "-c", SITE_PROCESS,
         json.dumps(dataclasses.asdict(mosquitto.settings("site-b"))),
         str(tmp_path / "outbox-b.db")],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert site.wait_connected(10)
        now = time.time()
        for cam, state in (("gate", "recording"), ("yard", "tamper")):
            site.set_camera_status(CameraStatusMessage(
                site="site-a", camera=cam, state=state, since_unix_s=now))
        site.publish_stats(StatsMessage(
            site="site-a", sent_unix_s=now, uptime_s=10, disk_total_bytes=500 * 1024**3,
            disk_free_bytes=300 * 1024**2))
        assert other.stdout.readline().strip() == "ready"

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path,
                                              args=CHROMIUM_ARGS)
            page = await (await browser.new_context(
                ignore_https_errors=True, viewport={"width": 1366, "height": 768},
                locale="uk-UA",
            )).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            # log in, see the grid of both sites
            await log_in(page, viewer.url)
            await page.wait_for_selector(".tile[data-site=site-a][data-camera=gate]")
            await page.wait_for_selector(".tile[data-site=site-b][data-camera=porch]")
            await page.wait_for_selector("#link-state[data-state=online]")
            assert await page.locator(".tile.problem[data-camera=yard]").count() == 1
            assert "Тривоги" in await page.text_content("main")  # Ukrainian by default

            # an alert published by the site appears within 1 s
            t0 = time.monotonic()
            site.publish_event(EventMessage(
                site="site-a", camera="gate", event_id="ev-1", type="new",
                start_unix_s=time.time(), zones=("door", "road"), score=0.4),
                snapshot_jpeg=jpeg("gate"))
            await page.wait_for_selector(".alert[data-site=site-a][data-camera=gate]",
                                         timeout=1000)
            elapsed = time.monotonic() - t0
            assert elapsed < 1.0, elapsed
            await page.wait_for_selector(".alert img.snap", timeout=2000)
            item = await page.inner_text(".alert[data-camera=gate]")
            assert "door, road" in item and "site-a" in item
            assert await page.text_content("#open-count") == "1"
            assert (await page.title()).startswith("(1) ")
            await page.click(".alert[data-camera=gate] img.snap")
            await page.wait_for_function(
                "document.getElementById('snapshot-large').naturalWidth === 320")
            await page.click("#snapshot-close")
            assert await page.get_attribute("body", "data-last-beep") is not None

            # acknowledge with a comment: the site's handler receives it. The event ends
            # while the officer is typing; the rebuilt alert keeps what was typed.
            comment = ".alert[data-camera=gate] input[name=comment]"
            await page.fill(comment, "patrol")
            await page.focus(comment)
            site.publish_event(EventMessage(
                site="site-a", camera="gate", event_id="ev-1", type="end",
                start_unix_s=now, end_unix_s=time.time(), zones=("door", "road"), score=0.4))
            await page.wait_for_selector(
                ".alert[data-camera=gate] .when:has-text('завершено')", timeout=5000)
            assert await page.input_value(comment) == "patrol"
            assert await page.evaluate("document.activeElement.name") == "comment"
            await page.type(comment, " sent")
            await page.click(".alert[data-camera=gate] .ack-form button")
            assert await asyncio.to_thread(got_ack.wait, 5.0)
            assert acks[0]["event_id"] == "ev-1"
            assert acks[0]["user"] == "officer" and acks[0]["comment"] == "patrol sent"
            await page.wait_for_selector(".alert[data-camera=gate] .ack.confirmed",
                                         timeout=5000)
            assert await page.is_hidden("#open-count")
            # the other officer sees it acknowledged
            colleague = browser_factory(viewer)
            await colleague.login("colleague")
            state = await (await colleague.get("/api/state")).json()
            alert = state["alerts"][0]
            assert alert["acked_by"] == "officer" and alert["ack_comment"] == "patrol sent"
            assert alert["ack_delivered"] is True

            # a camera going offline and a site alarm reach the board as they happen
            t0 = time.monotonic()
            site.set_camera_status(CameraStatusMessage(
                site="site-a", camera="gate", state="offline", since_unix_s=time.time(),
                detail="no answer on RTSP"))
            site.publish_alarm(AlarmMessage(site="site-a", kind="clock_unsynced", active=True,
                                            since_unix_s=time.time()))
            await page.wait_for_selector("#health-board li.problem[data-camera=gate]",
                                         timeout=10_000)
            await page.wait_for_selector(".tile.problem[data-camera=gate]", timeout=10_000)
            await page.wait_for_function(
                "document.getElementById('health-board').textContent"
                ".includes('Годинник не синхронізовано')", timeout=10_000)
            assert time.monotonic() - t0 < 10

            # kill site-b's process: its will marks it offline on the health board
            assert await page.locator("#health-board li[data-site=site-b]").count() == 0
            t0 = time.monotonic()
            other.send_signal(signal.SIGKILL)
            await page.wait_for_selector("#health-board li.problem[data-site=site-b]",
                                         timeout=10_000)
            assert time.monotonic() - t0 < 10
            await page.wait_for_selector("section.site.offline[data-site=site-b]")

            shot = SCREENSHOT_DIR / "dozor-duty-officer-1366x768.png"
            await page.screenshot(path=str(shot))
            board = await page.inner_text("#health-board")
            assert "site-b" in board and "саботаж" in board.lower()
            assert not errors, errors

            # a click on a tile opens the live dialog with live.js's player mounted in it
            await page.click(".tile[data-site=site-a][data-camera=gate]")
            await page.wait_for_selector("#live-dialog[open] #live-player video",
                                         state="attached")
            assert await page.text_content("#live-title") == "site-a / gate"
            await page.click("#live-close")
            await page.wait_for_selector("#live-dialog:not([open])", state="attached")
            assert await page.locator("#live-player *").count() == 0
            await browser.close()
    finally:
        if other.poll() is None:
            other.kill()
        other.wait()
        site.stop()
        await link.stop()
