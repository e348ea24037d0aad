"""Every role against every page and endpoint, over real HTTPS."""

from __future__ import annotations

import asyncio

import pytest

from viewer.accounts import Role
from viewer.audit import Action
from viewer.auth import ROLE_PERMISSIONS, Permission
from viewer.desk import IncomingEvent

# (method, path, permission needed); POSTs carry a valid CSRF token.
ENDPOINTS = [
    ("GET", "/", Permission.WALL),
    ("GET", "/health", Permission.HEALTH),
    ("GET", "/audit", Permission.AUDIT),
    ("GET", "/users", Permission.USERS),
    ("GET", "/account", Permission.ACCOUNT),
    ("POST", "/account/password", Permission.ACCOUNT),
    ("POST", "/users/nobody/password", Permission.USERS),
    ("GET", "/api/state", Permission.WALL),
    ("GET", "/api/alerts/1/snapshot", Permission.ALERTS),
    ("POST", "/api/alerts/1/ack", Permission.ACKNOWLEDGE),
    ("POST", "/users/nobody/state", Permission.USERS),
]

EXPECTED = {
    Role.DUTY_OFFICER: {Permission.WALL, Permission.ALERTS, Permission.ACKNOWLEDGE,
                        Permission.LIVE, Permission.HEALTH, Permission.ACCOUNT},
    Role.REVIEWER: {Permission.WALL, Permission.ALERTS, Permission.ACCOUNT},
    Role.TECHNICIAN: {Permission.WALL, Permission.HEALTH, Permission.LIVE, Permission.ACCOUNT},
    Role.ADMINISTRATOR: set(Permission),
}


def test_role_table_is_the_documented_one():
    assert {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()} == EXPECTED


@pytest.mark.parametrize("role", list(Role))
async def test_every_page_for_role(role, start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("someone", role)
    viewer.ctx.desk.on_event(IncomingEvent("village", "gate", "ev1", "motion", 1.0, None, ()))
    viewer.ctx.desk.on_snapshot("village", "gate", "ev1", b"\xff\xd8fake-jpeg")
    b = browser_factory(viewer)
    assert (await b.login("someone")).status == 303
    for method, path, permission in ENDPOINTS:
        if method == "GET":
            resp = await b.get(path)
        else:
            resp = await b.post(path, json={"comment": ""},
                                data=None) if "ack" in path else await b.post(
                path, data={"state": "enabled", "csrf_token": b.csrf})
        allowed = permission in EXPECTED[role]
        if allowed:
            assert resp.status not in (401, 403), (role, path, resp.status)
        else:
            assert resp.status == 403, (role, path, resp.status)
    audit = viewer.ctx.audit.query(action=None)
    denied = [e for e in audit if e.action == "permission_denied"]
    assert len(denied) == sum(1 for _, _, p in ENDPOINTS if p not in EXPECTED[role])


async def test_anonymous_is_sent_to_login(start_viewer, browser_factory):
    viewer = await start_viewer()
    b = browser_factory(viewer)
    for path in ("/", "/health", "/audit", "/users"):
        resp = await b.get(path)
        assert resp.status == 303 and resp.headers["Location"] == "/login", path
    for path in ("/api/state", "/api/alerts/1/snapshot", "/ws"):
        assert (await b.get(path)).status == 401, path
    resp = await b.post("/api/alerts/1/ack", json={})
    assert resp.status == 401


async def test_scope_hides_other_sites(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER, sites=["village"], cameras=["village/*"])
    desk = viewer.ctx.desk
    mine = desk.on_event(IncomingEvent("village", "gate", "e1", "motion", 1.0, None, ()))
    theirs = desk.on_event(IncomingEvent("school", "yard", "e2", "motion", 2.0, None, ()))
    desk.on_snapshot("school", "yard", "e2", b"\xff\xd8x")
    viewer.ctx.health.set_site_online("village", True)
    viewer.ctx.health.set_site_online("school", True)
    b = browser_factory(viewer)
    await b.login("officer")
    state = await (await b.get("/api/state")).json()
    assert [a["id"] for a in state["alerts"]] == [mine]
    assert [s["site"] for s in state["sites"]] == ["village"]
    assert (await b.get(f"/api/alerts/{theirs}/snapshot")).status == 403
    assert (await b.post(f"/api/alerts/{theirs}/ack", json={})).status == 403


async def test_live_view_is_mounted_and_guarded(mosquitto, start_viewer, browser_factory,
                                                tmp_path):
    """With a police link, /ws/live is served; only live-permitted roles and scopes pass,
    and every attempt is audited."""
    import json

    from police_link.errors import CommandError
    from police_link.site_client import SiteLink
    from police_link.viewer_client import ViewerLink
    from recorder.live import LIVE_COMMAND_SCHEMAS

    link = ViewerLink(mosquitto.settings("viewer"))
    await link.start()
    site = SiteLink("site-a", mosquitto.settings("site-a"), str(tmp_path / "outbox.db"),
                    cameras=["gate"])

    def refuse(request):
        raise CommandError("busy", "no live view in this test")

    site.on_command("live.start", refuse, LIVE_COMMAND_SCHEMAS["live.start"])
    site.start()
    try:
        assert await link.wait_connected(10) and site.wait_connected(10)
        viewer = await start_viewer(link=link)
        viewer.add_user("tech", Role.TECHNICIAN, sites=["site-a"])
        viewer.add_user("reader", Role.REVIEWER)
        reader = browser_factory(viewer)
        await reader.login("reader")
        assert (await reader.get("/ws/live/site-a/gate")).status == 403
        tech = browser_factory(viewer)
        await tech.login("tech")
        assert (await tech.get("/ws/live/site-b/gate")).status == 403  # not tech's site
        async with tech.http.ws_connect(tech.url("/ws/live/site-a/gate")) as ws:
            reply = json.loads((await ws.receive(timeout=10)).data)
        assert reply["type"] == "error" and "busy" in reply["message"]
        for _ in range(50):  # written right after the refusal is sent
            entries = viewer.ctx.audit.query(username="tech", action=Action.LIVE_VIEW)
            if entries:
                break
            await asyncio.sleep(0.05)
        assert entries[0].site == "site-a" and "busy" in entries[0].outcome
        denied = viewer.ctx.audit.query(username="tech", action=Action.PERMISSION_DENIED)
        assert denied[0].site == "site-b"
    finally:
        site.stop()
        await link.stop()
