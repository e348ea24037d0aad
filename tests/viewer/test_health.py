"""The health board fed with police_link messages: site offline, camera states, alarms,
disk nearly full, the silence watchdog, and what each user may see."""

from __future__ import annotations

import asyncio
import json

from police_link.messages import (
    AlarmMessage,
    CameraStatusMessage,
    SiteStatus,
    StatsMessage,
)
from viewer.accounts import Role


async def _ws_messages(ws, count: int, timeout_s: float = 2.0) -> list[dict]:
    out = []
    for _ in range(count):
        out.append(json.loads((await ws.receive(timeout=timeout_s)).data))
    return out


async def test_feed_updates_board_and_pushes(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("tech", Role.TECHNICIAN, sites=["village"])
    feed, health = viewer.ctx.feed, viewer.ctx.health
    b = browser_factory(viewer)
    await b.login("tech")
    async with b.http.ws_connect(b.url("/ws")) as ws:
        assert (await _ws_messages(ws, 1))[0]["sites"] == []
        feed.handle(SiteStatus("village", True))
        feed.handle(SiteStatus("school", True))  # not tech's site: not pushed
        feed.handle(CameraStatusMessage(site="village", camera="gate", state="stalled",
                                        since_unix_s=100.0, detail="no frames for 20 s"))
        feed.handle(AlarmMessage(site="village", kind="tamper", active=True,
                                 since_unix_s=101.0, camera="gate"))
        feed.handle(StatsMessage(site="village", sent_unix_s=102.0, uptime_s=5,
                                 disk_total_bytes=10 * 1024**3, disk_free_bytes=100 * 1024**2))
        pushed = await _ws_messages(ws, 4)
        assert all(m["type"] == "site" and m["site"]["site"] == "village" for m in pushed)
        last = pushed[-1]["site"]
        assert last["online"] and last["disk_low"]
        assert last["cameras"] == [{"camera": "gate", "state": "stalled", "since": 100.0,
                                    "detail": "no frames for 20 s", "problem": True}]
        assert last["alarms"][0]["kind"] == "tamper"
        feed.handle(AlarmMessage(site="village", kind="tamper", active=False,
                                 since_unix_s=103.0, camera="gate"))
        feed.handle(SiteStatus("village", False))
        cleared, offline = await _ws_messages(ws, 2)
        assert cleared["site"]["alarms"] == []
        assert offline["site"]["online"] is False
    feed.handle(AlarmMessage(site="school", kind="disk_error", active=True, since_unix_s=104.0))
    assert health.site("school").online
    # The board survives a restart as it was: the persistent MQTT session brings only what
    # changed since, not the retained messages again.
    from viewer.health import HealthBoard
    from viewer.push import Broadcaster

    again = HealthBoard(viewer.ctx.db, Broadcaster(), viewer.clock, offline_after_s=0,
                        disk_low_free_bytes=1)
    assert again.site("village").cameras["gate"].state == "stalled"
    assert not again.site("village").online and again.site("village").disk_low
    assert again.site("school").online
    assert again.site("school").alarms["disk_error"].since == 104.0


async def test_silent_site_goes_offline(start_viewer):
    viewer = await start_viewer(health_offline_after_s=10.0)
    health = viewer.ctx.health
    viewer.ctx.feed.handle(SiteStatus("village", True))
    health.check_silence()
    assert health.site("village").online
    viewer.clock.advance(11)
    health.check_silence()
    assert not health.site("village").online
    # any message brings it back
    viewer.ctx.feed.handle(CameraStatusMessage(site="village", camera="gate",
                                               state="recording", since_unix_s=1.0))
    assert health.site("village").online


async def test_watchdog_task_runs(start_viewer):
    viewer = await start_viewer(health_offline_after_s=0.5)
    viewer.ctx.feed.handle(SiteStatus("village", True))
    for _ in range(40):
        await asyncio.sleep(0.1)
        if not viewer.ctx.health.site("village").online:
            break
    assert not viewer.ctx.health.site("village").online
