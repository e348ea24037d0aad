"""The alert desk fed with police_link messages: dedup by event id, snapshots, site acks."""

from __future__ import annotations

from police_link.messages import AckMessage, EventMessage, Snapshot
from viewer.accounts import Role

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


async def test_event_updates_and_snapshot_make_one_alert(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    feed = viewer.ctx.feed
    feed.handle(EventMessage(site="village", camera="gate", event_id="e1", type="new",
                             start_unix_s=10.0, zones=("door",)))
    feed.handle(Snapshot("village", "gate", "e1", JPEG))
    feed.handle(Snapshot("village", "gate", "e1", b"not a jpeg"))  # ignored
    feed.handle(EventMessage(site="village", camera="gate", event_id="e1", type="end",
                             start_unix_s=10.0, end_unix_s=25.0, zones=("door", "road")))
    b = browser_factory(viewer)
    await b.login("officer")
    alerts = (await (await b.get("/api/state")).json())["alerts"]
    assert len(alerts) == 1
    a = alerts[0]
    assert a["ended_at"] == 25.0 and a["zones"] == ["door", "road"] and a["has_snapshot"]
    resp = await b.get(f"/api/alerts/{a['id']}/snapshot")
    assert resp.status == 200 and resp.content_type == "image/jpeg"
    assert await resp.read() == JPEG


async def test_snapshot_before_its_event_is_kept(start_viewer):
    viewer = await start_viewer()
    feed = viewer.ctx.feed
    feed.handle(Snapshot("village", "gate", "e2", JPEG))
    feed.handle(EventMessage(site="village", camera="gate", event_id="e2", type="new",
                             start_unix_s=10.0))
    row = viewer.ctx.db.alert_by_event("village", "e2")
    assert row["snapshot"] == JPEG and row["started_at"] == 10.0


async def test_ack_from_another_viewer_is_shown(start_viewer):
    viewer = await start_viewer()
    feed = viewer.ctx.feed
    feed.handle(EventMessage(site="village", camera="gate", event_id="e3", type="new",
                             start_unix_s=10.0))
    feed.handle(AckMessage(site="village", event_id="e3", user="night-officer",
                           acked_unix_s=12.0, sender="viewer2", comment="checked"))
    row = viewer.ctx.db.alert_by_event("village", "e3")
    assert (row["acked_by"], row["ack_comment"], row["ack_delivered"]) == (
        "night-officer", "checked", 1)


async def test_ack_not_delivered_is_resent_when_the_site_returns(
    mosquitto, start_viewer, browser_factory, tmp_path
):
    import asyncio
    import threading

    from police_link.site_client import SiteLink
    from police_link.viewer_client import ViewerLink

    link = ViewerLink(mosquitto.settings("viewer"))
    await link.start()
    try:
        assert await link.wait_connected(10)
        viewer = await start_viewer(link=link)
        viewer.ctx.desk.ack_timeout_s = 0.5
        viewer.add_user("officer", Role.DUTY_OFFICER)
        viewer.ctx.feed.handle(EventMessage(site="site-a", camera="gate", event_id="e7",
                                            type="new", start_unix_s=10.0))
        alert_id = viewer.ctx.db.alert_by_event("site-a", "e7")["id"]
        b = browser_factory(viewer)
        await b.login("officer")
        body = await (await b.post(f"/api/alerts/{alert_id}/ack",
                                   json={"comment": "on my way"})).json()
        assert body["alert"]["ack_delivered"] is False
        assert body["alert"]["ack_error"] == "site did not answer"

        received: list[dict] = []
        got = threading.Event()

        def on_ack(request):
            received.append(dict(request.args))
            got.set()
            return {}

        site = SiteLink("site-a", mosquitto.settings("site-a"), str(tmp_path / "o.db"),
                        cameras=["gate"])
        site.on_command("ack", on_ack)
        site.start()
        try:
            assert await asyncio.to_thread(got.wait, 10)
            assert received[0]["comment"] == "on my way" and received[0]["user"] == "officer"
            for _ in range(50):
                if viewer.ctx.db.alert(alert_id)["ack_delivered"]:
                    break
                await asyncio.sleep(0.05)
            assert viewer.ctx.db.alert(alert_id)["ack_delivered"] == 1
            assert viewer.ctx.db.pending_acks("site-a") == []
        finally:
            site.stop()
    finally:
        await link.stop()


async def test_old_alerts_are_pruned(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    feed = viewer.ctx.feed
    feed.handle(EventMessage(site="village", camera="gate", event_id="old", type="new",
                             start_unix_s=10.0))
    feed.handle(Snapshot("village", "gate", "old", JPEG))
    b = browser_factory(viewer)
    await b.login("officer")
    old_id = viewer.ctx.db.alert_by_event("village", "old")["id"]
    await b.post(f"/api/alerts/{old_id}/ack", json={"comment": "done"})
    viewer.clock.advance(91 * 86400)
    feed.handle(EventMessage(site="village", camera="gate", event_id="new", type="new",
                             start_unix_s=20.0))
    assert viewer.ctx.desk.prune(90) == 1
    assert viewer.ctx.db.alert_by_event("village", "old") is None
    assert viewer.ctx.db.alert_by_event("village", "new") is not None
    assert viewer.ctx.db.db["acknowledgements"].count == 0
    assert viewer.ctx.audit.query(action=None, username="officer")[0].action == "acknowledge"
