"""SiteLink against a real mosquitto (TLS, passwords, ACLs) and a real ViewerLink."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from police_link import (
    AckMessage,
    AlarmMessage,
    CameraStatusMessage,
    CommandError,
    CommandRequest,
    DropReport,
    EventMessage,
    LiveChunk,
    SeqGap,
    SiteLink,
    SiteStatus,
    Snapshot,
    StatsMessage,
    ValidationError,
    ViewerLink,
)
from tests.fixtures.mosquitto import Credentials, MosquittoBroker
from tests.police_link.conftest import next_of


def event(i: int, site: str = "site-a", camera: str = "cam1") -> EventMessage:
    return EventMessage(site, camera, f"ev{i}", "new", time.time(), zones=("gate",), score=0.4)


async def test_alert_reaches_subscriber_within_100_ms(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    await next_of(viewer, SiteStatus)
    latencies_ms = []
    for i in range(10):
        t0 = time.perf_counter()
        site.publish_event(event(i))
        received = await next_of(viewer, EventMessage)
        latencies_ms.append((time.perf_counter() - t0) * 1000)
        assert received.event_id == f"ev{i}" and received.seq == i + 1
    # the machine is shared with other test runs: allow one outlier out of ten
    assert sorted(latencies_ms)[8] < 100, latencies_ms


async def test_event_snapshot_status_alarm_stats_and_live_arrive_typed(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    site.publish_event(event(1), snapshot_jpeg=b"\xff\xd8fake-jpeg\xff\xd9")
    ev = await next_of(viewer, EventMessage)
    assert ev.snapshot == "dozor/site-a/cam1/snapshot/ev1"
    snap = await next_of(viewer, Snapshot)
    assert (snap.camera, snap.event_id, snap.jpeg) == ("cam1", "ev1", b"\xff\xd8fake-jpeg\xff\xd9")
    site.set_camera_status(CameraStatusMessage("site-a", "cam2", "stalled", time.time()))
    status = await next_of(viewer, CameraStatusMessage)
    assert (status.camera, status.state, status.seq) == ("cam2", "stalled", 2)
    site.publish_alarm(AlarmMessage("site-a", "disk_full", True, time.time()))
    assert (await next_of(viewer, AlarmMessage)).seq == 3
    assert site.publish_stats(StatsMessage("site-a", time.time(), 5.0, 10**12, 10**11,
                                           cameras={"cam1": {"fps": 15}}))
    stats = await next_of(viewer, StatsMessage)
    assert stats.cameras["cam1"]["fps"] == 15
    assert site.publish_live("cam1", "sub", b"moof-mdat")
    chunk = await next_of(viewer, LiveChunk)
    assert (chunk.camera, chunk.stream, chunk.data) == ("cam1", "sub", b"moof-mdat")


async def test_message_for_another_site_is_refused_at_the_call(
    make_site: Callable[..., SiteLink],
) -> None:
    site = make_site()
    with pytest.raises(ValidationError) as err:
        site.publish_event(event(1, site="site-b"))
    assert err.value.field == "site"


async def test_ack_command_is_answered_and_broadcast(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    seen: list[CommandRequest] = []

    def handler(request: CommandRequest) -> dict[str, object]:
        seen.append(request)
        if request.args["event_id"] == "missing":
            raise CommandError("unknown_event", "no such event")
        return {"stored": True}

    site.on_command("ack", handler)
    result = await viewer.request("site-a", "ack", {"event_id": "ev7", "user": "Petrenko",
                                                    "comment": "checked"})
    assert result == {"stored": True}
    ack = await next_of(viewer, AckMessage)
    assert (ack.event_id, ack.user, ack.comment, ack.sender) == ("ev7", "Petrenko", "checked",
                                                                  "viewer")
    assert seen[0].sender == "viewer" and seen[0].site == "site-a"
    with pytest.raises(CommandError) as err:
        await viewer.request("site-a", "ack", {"event_id": "missing", "user": "Petrenko"})
    assert err.value.code == "unknown_event"


async def test_broker_refusal_0x87_is_counted_as_rejected_not_delivered(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    # site-b's account publishing as site-a: the ACL refuses every PUBLISH with 0x87
    site = make_site("site-a", user="site-b")
    site.publish_event(event(1))
    deadline = time.monotonic() + 5
    while site.stats().rejected < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stats = site.stats()
    assert stats.rejected == 1 and stats.published == 0 and stats.outbox_pending == 0
    with pytest.raises(TimeoutError):
        await next_of(viewer, EventMessage, timeout_s=0.5)


async def test_publish_before_start_waits_in_the_outbox(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site(start=False)
    site.publish_event(event(1))
    site.start()
    assert (await next_of(viewer, EventMessage)).event_id == "ev1"


@pytest.mark.slow
async def test_broker_down_60_s_during_burst_of_500_all_arrive_in_order(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    received: list[EventMessage] = []

    async def collect() -> None:
        async for message in viewer.messages():
            if isinstance(message, EventMessage):
                received.append(message)
                if len(received) == 500:
                    return

    collector = asyncio.create_task(collect())
    for i in range(500):
        site.publish_event(event(i, camera=f"cam{1 + i % 2}"))
        if i == 150:
            await asyncio.sleep(0.05)
            mosquitto.stop()
            outage_start = time.monotonic()
        await asyncio.sleep(0.002)
    assert site.stats().outbox_pending > 300  # most of the burst waits in the outbox
    await asyncio.sleep(60 - (time.monotonic() - outage_start))
    mosquitto.start()
    await asyncio.wait_for(collector, 60)
    assert [m.seq for m in received] == list(range(1, 501))
    assert [m.event_id for m in received] == [f"ev{i}" for i in range(500)]
    await asyncio.sleep(0.5)
    assert site.stats().outbox_pending == 0


async def test_full_outbox_drops_snapshots_then_old_alerts_and_viewer_learns_why(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site(outbox_max_bytes=64 * 1024)
    site.publish_event(event(999))  # seq 1: from here on the viewer can tell what is missing
    assert (await next_of(viewer, EventMessage)).event_id == "ev999"
    mosquitto.stop()
    deadline = time.monotonic() + 10
    while (site.connected or viewer.connected) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Both know the broker is gone, so nothing is in flight: 400 x ~230 B of events and
    # 59 x 4 KiB of snapshots all go to the 64 KiB outbox, which must drop.
    snapshots = range(50, 400, 6)
    for i in range(400):
        site.publish_event(event(i), snapshot_jpeg=bytes(4096) if i in snapshots else None)
    site.stop()  # stores every queued event; what is left stays in the outbox file
    dropped = site.stats().dropped
    assert dropped > 0
    # The viewer must be back before the site sends again: messages the broker takes while
    # the viewer has not resubscribed would be lost to it (its session is gone with the
    # restarted broker), which is not what this test is about.
    mosquitto.start()
    assert await viewer.wait_connected(30), mosquitto.log_text()
    site = make_site(outbox_max_bytes=64 * 1024)
    events: list[EventMessage] = []
    gaps: list[SeqGap] = []
    reports: list[DropReport] = []
    # (the report follows the append that caused the drop: it may come after ev399)
    while not events or events[-1].event_id != "ev399" or not reports:
        message = await asyncio.wait_for(viewer.receive(), 10)
        if isinstance(message, EventMessage):
            events.append(message)
        elif isinstance(message, SeqGap):
            gaps.append(message)
        elif isinstance(message, DropReport):
            reports.append(message)
        elif isinstance(message, Snapshot):
            raise AssertionError("old snapshots must go before any alert")
    assert len(reports) == 1
    assert reports[0].counts["snapshot"] == len(snapshots) and reports[0].counts["event"] > 0
    reported = {s for first, last in reports[0].seq_ranges for s in range(first, last + 1)}
    missing = {s for gap in gaps for s in range(gap.first_seq, gap.last_seq + 1)}
    # every gap the viewer saw is explained by the report, newest alerts survived in order
    assert gaps and missing <= reported | {reports[0].seq}  # the report may come late
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert dropped == sum(reports[0].counts.values())


async def test_client_certificate_when_the_broker_requires_one(
    mosquitto_pki: tuple[Path, dict[str, Credentials]], tmp_path: Path
) -> None:
    pki, credentials = mosquitto_pki
    broker = MosquittoBroker(pki, tmp_path / "broker", credentials,
                             changes={"require_certificate": "true"})
    broker.start()
    cert_file, key_file = broker.client_cert("site-b")
    with_cert = SiteLink("site-b", broker.settings("site-b", cert_file=cert_file,
                                                   key_file=key_file),
                         str(tmp_path / "b.db"), cameras=["cam1"])
    without = SiteLink("site-a", broker.settings("site-a"), str(tmp_path / "a.db"))
    try:
        with_cert.start()
        without.start()
        assert with_cert.wait_connected(10)
        assert not without.wait_connected(1)
    finally:
        with_cert.stop()
        without.stop()
        broker.stop()


async def test_outbox_on_a_full_disk_keeps_alerts_in_memory_until_there_is_room(
    mosquitto: MosquittoBroker, viewer: ViewerLink, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    site = SiteLink("site-a", mosquitto.settings("site-a"), str(small / "outbox.db"))
    try:
        site.start()
        assert site.wait_connected(10)
        filler = small / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(bytes(4096))
                out.flush()
        for i in range(20):
            site.publish_event(event(i))
        with pytest.raises(TimeoutError):
            await next_of(viewer, EventMessage, timeout_s=1.0)
        filler.unlink()
        seqs = [(await next_of(viewer, EventMessage, timeout_s=5)).seq for _ in range(20)]
        assert seqs == list(range(1, 21))
    finally:
        site.stop()
        subprocess.run(["umount", str(small)], check=False)


async def test_oversized_snapshot_and_live_fragment_are_refused_not_sent(
    make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    # mosquitto would drop the connection on a packet over max_packet_size, and paho would
    # resend it forever: the link refuses what the broker cannot take
    site = make_site(max_message_bytes=64 * 1024)
    site.publish_event(event(1), snapshot_jpeg=bytes(65 * 1024))  # the alert goes, alone
    first = await next_of(viewer, EventMessage)
    assert (first.event_id, first.snapshot) == ("ev1", None)
    assert not site.publish_live("cam1", "main", bytes(65 * 1024))
    assert site.stats().live_dropped == 1
    site.publish_event(event(2), snapshot_jpeg=bytes(1024))
    assert (await next_of(viewer, EventMessage)).event_id == "ev2"
    assert (await next_of(viewer, Snapshot)).event_id == "ev2"


async def test_stored_message_too_big_for_the_broker_does_not_block_the_outbox(
    mosquitto: MosquittoBroker, viewer: ViewerLink, tmp_path: Path
) -> None:
    outbox = str(tmp_path / "a.db")
    mosquitto.stop()
    old = SiteLink("site-a", mosquitto.settings("site-a"), outbox, outbox_max_bytes=64 << 20,
                   max_message_bytes=16 << 20)
    old.start()
    old.publish_event(event(1), snapshot_jpeg=bytes(9 << 20))  # > max_packet_size 8 MiB
    old.publish_event(event(2))
    old.stop()
    mosquitto.start()
    site = SiteLink("site-a", mosquitto.settings("site-a"), outbox, outbox_max_bytes=64 << 20)
    site.start()
    try:
        assert [(await next_of(viewer, EventMessage)).event_id for _ in range(2)] == ["ev1",
                                                                                    "ev2"]
        assert site.stats().rejected == 1
    finally:
        site.stop()


async def test_publish_from_many_threads_never_blocks_even_with_the_broker_down(
    mosquitto: MosquittoBroker, make_site: Callable[..., SiteLink], viewer: ViewerLink
) -> None:
    site = make_site()
    mosquitto.stop()
    call_ms: list[float] = []
    lock = threading.Lock()

    def camera(index: int) -> None:
        for k in range(50):
            t0 = time.perf_counter()
            site.publish_event(event(index * 100 + k, camera=f"cam{1 + index % 2}"),
                               snapshot_jpeg=bytes(10_000))
            with lock:
                call_ms.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # no I/O in the call: an fsync alone takes 1-2 ms here; the scheduler may add outliers
    assert statistics.median(call_ms) < 0.5 and max(call_ms) < 200, sorted(call_ms)[-5:]
    mosquitto.start()
    seqs = [(await next_of(viewer, EventMessage, timeout_s=10)).seq for _ in range(800)]
    assert sorted(seqs) == list(range(1, 801)) and seqs == sorted(seqs)
