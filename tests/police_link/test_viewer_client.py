"""ViewerLink: dedupe and gap detection, validation of what arrives, requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from police_link import (
    CameraStatusMessage,
    EventMessage,
    LinkError,
    RequestTimeout,
    SeqGap,
    SiteLink,
    SiteStatus,
    ViewerLink,
)
from police_link.viewer_client import SeqTracker
from tests.fixtures.mosquitto import MosquittoBroker
from tests.police_link.conftest import next_of
from tests.police_link.rawclient import RawClient


def test_tracker_dedupes_and_reports_gaps() -> None:
    tracker = SeqTracker(window=100)
    assert tracker.check("s", 5) == (True, None)  # first seen: no history, no gap
    assert tracker.check("s", 6) == (True, None)
    assert tracker.check("s", 6) == (False, None)
    assert tracker.check("s", 9) == (True, SeqGap("s", 7, 8))
    assert tracker.check("s", 7) == (True, None)  # late arrival fills the gap
    assert tracker.check("s", 7) == (False, None)
    assert tracker.check("other", 1) == (True, None)  # per site
    assert tracker.last_seq("s") == 9


def test_tracker_floor_from_a_previous_run_and_site_restart() -> None:
    tracker = SeqTracker(floors={"s": 10})
    assert tracker.check("s", 10) == (False, None)  # already stored before the restart
    assert tracker.check("s", 12) == (True, SeqGap("s", 11, 11))
    assert tracker.check("s", 1) == (True, None)  # the site's outbox was reset
    assert tracker.check("s", 2) == (True, None)


def test_tracker_window_forgets_but_refuses_very_old() -> None:
    tracker = SeqTracker(window=10)
    for seq in range(1, 31):
        tracker.check("s", seq)
    assert tracker.check("s", 15) == (False, None)


async def test_invalid_and_forged_payloads_are_counted_not_delivered(
    mosquitto: MosquittoBroker, viewer: ViewerLink
) -> None:
    raw = RawClient(mosquitto, "site-a", "forger")
    try:
        raw.publish("dozor/site-a/events", b"{garbage")
        other_site = EventMessage("site-b", "cam1", "ev1", "new", time.time(), seq=1)
        raw.publish("dozor/site-a/events", other_site.to_json())  # lies about its site
        raw.publish("dozor/site-a/status", b"maybe")
        good = EventMessage("site-a", "cam1", "ev2", "new", time.time(), seq=2)
        raw.publish("dozor/site-a/events", good.to_json())
        assert (await next_of(viewer, EventMessage)).event_id == "ev2"
        assert viewer.invalid_count == 3
    finally:
        raw.close()


async def test_retained_status_is_delivered_on_subscribe_without_breaking_seq(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink]
) -> None:
    site = make_site()
    site.set_camera_status(CameraStatusMessage("site-a", "cam1", "recording", time.time()))
    time.sleep(0.3)
    late = ViewerLink(mosquitto.settings("viewer", client_id="late-viewer"))
    await late.start()
    try:
        status = await next_of(late, CameraStatusMessage)
        assert (status.state, status.seq) == ("recording", 1)
        site.publish_event(EventMessage("site-a", "cam1", "ev1", "new", time.time()))
        assert (await next_of(late, EventMessage)).seq == 2
        assert late.last_seq("site-a") == 2
    finally:
        await late.stop()


async def test_request_to_an_absent_site_times_out(viewer: ViewerLink) -> None:
    t0 = time.monotonic()
    with pytest.raises(RequestTimeout) as err:
        await viewer.request("site-c", "ack", {"event_id": "e", "user": "u"}, timeout_s=0.3)
    assert err.value.site == "site-c" and time.monotonic() - t0 < 2


async def test_request_without_connection_fails_at_once(mosquitto: MosquittoBroker) -> None:
    link = ViewerLink(mosquitto.settings("viewer", client_id="never"))
    with pytest.raises(LinkError):
        await link.request("site-a", "ack", {"event_id": "e", "user": "u"})


async def test_viewer_rides_out_a_broker_restart(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    mosquitto.stop()
    site.publish_event(EventMessage("site-a", "cam1", "ev1", "new", time.time()))
    await asyncio.sleep(0.5)
    mosquitto.start()
    assert (await next_of(viewer, EventMessage, timeout_s=10)).event_id == "ev1"
    assert await viewer.wait_connected(5)
    result = await viewer.request("site-a", "ack", {"event_id": "ev1", "user": "u"})
    assert result == {}


async def test_alerts_sent_while_the_viewer_is_down_wait_in_its_session(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink]
) -> None:
    settings = mosquitto.settings("viewer", client_id="restarting-viewer")
    first = ViewerLink(settings)
    await first.start()
    assert await first.wait_connected(10)
    await first.stop()
    site = make_site()
    for i in range(1500):  # more than mosquitto's default max_queued_messages (1000)
        site.publish_event(EventMessage("site-a", "cam1", f"ev{i}", "new", time.time()))
    deadline = time.monotonic() + 20
    while site.stats().outbox_pending and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert site.stats().outbox_pending == 0
    second = ViewerLink(settings, last_seqs={})
    await second.start()
    try:
        seqs = [(await next_of(second, EventMessage)).seq for _ in range(1500)]
        assert seqs == list(range(1, 1501))
    finally:
        await second.stop()


async def test_restarted_viewer_gets_the_current_statuses_again(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink]
) -> None:
    site = make_site()
    site.set_camera_status(CameraStatusMessage("site-a", "cam2", "tamper", time.time()))
    settings = mosquitto.settings("viewer", client_id="status-viewer")
    for _ in range(2):  # the second start resumes the persistent session
        link = ViewerLink(settings)
        await link.start()
        try:
            seen: dict[type, object] = {}
            while len(seen) < 2:  # retained messages come in the broker's topic order
                message = await asyncio.wait_for(link.receive(), 5)
                seen[type(message)] = message
            assert seen[SiteStatus] == SiteStatus("site-a", True)
            status = seen[CameraStatusMessage]
            assert isinstance(status, CameraStatusMessage)
            assert (status.camera, status.state) == ("cam2", "tamper")
        finally:
            await link.stop()
