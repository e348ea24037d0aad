"""Login throttling and lock-out, session cookies, session expiry and CSRF, over HTTPS."""

from __future__ import annotations

import re

from viewer.accounts import Role
from viewer.audit import Action
from viewer.auth import Throttle

from .conftest import TEST_PASSWORD, ShiftClock


def test_throttle_delay_grows_after_free_failures():
    clock = ShiftClock()
    throttle = Throttle(clock, free_failures=3, base_delay_s=1.0, max_delay_s=8.0)
    assert [throttle.delay_s(n) for n in range(8)] == [0, 0, 0, 1, 2, 4, 8, 8]
    for _ in range(3):
        throttle.fail("k")
    assert 0.9 < throttle.retry_after_s("k") <= 1.0
    clock.advance(1.0)
    assert throttle.retry_after_s("k") == 0
    throttle.fail("k")
    assert 1.9 < throttle.retry_after_s("k") <= 2.0
    throttle.reset("k")
    assert throttle.retry_after_s("k") == 0


async def test_login_sets_secure_session_cookie(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    resp = await b.login("officer")
    assert resp.status == 303
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if "dozor_session" in c)
    assert cookie.startswith("__Host-dozor_session=")
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert flag.lower() in cookie.lower(), (flag, cookie)
    assert "domain" not in cookie.lower()
    entries = viewer.ctx.audit.query(username="officer")
    assert [e.action for e in entries] == ["login"]
    assert entries[0].address == "127.0.0.1"


async def test_wrong_password_is_throttled_then_locked(start_viewer, browser_factory):
    viewer = await start_viewer(max_failed_logins=6)
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    statuses = []
    for _ in range(3):  # the free failures
        statuses.append((await b.login("officer", "wrong password!")).status)
    assert statuses == [401, 401, 401]
    resp = await b.login("officer", "wrong password!")  # 4th counted failure? no: refused
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    # Even the right password is refused while throttled, without being checked.
    assert (await b.login("officer")).status == 429
    failures = 3
    while failures < 6:
        viewer.clock.advance(120)
        resp = await b.login("officer", "wrong password!")
        failures += 1
        assert resp.status == (403 if failures == 6 else 401), failures
    viewer.clock.advance(3600)
    resp = await b.login("officer")  # right password, but locked
    assert resp.status == 403
    assert viewer.ctx.accounts.require("officer").locked
    outcomes = [e.outcome for e in viewer.ctx.audit.query(action=None, username="officer")]
    assert outcomes.count("throttled") == 2 and outcomes.count("locked") == 2
    viewer.ctx.accounts.unlock("officer")
    assert (await b.login("officer")).status == 303


async def test_unknown_users_are_throttled_per_address(start_viewer, browser_factory):
    viewer = await start_viewer(throttle_free_failures=1)
    b = browser_factory(viewer)
    statuses = [(await b.login(f"ghost{i}", "whatever pass")).status for i in range(6)]
    # Per user: one free failure each; per address: 5 free failures, then a delay.
    assert statuses[:5] == [401] * 5 and statuses[5] == 429


async def test_idle_session_expires(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    await b.login("officer")
    assert (await b.get("/api/state")).status == 200
    viewer.clock.advance(viewer.ctx.config.security.session_idle_s + 1)
    assert (await b.get("/api/state")).status == 401


async def test_disabling_a_user_ends_the_session(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    await b.login("officer")
    viewer.ctx.accounts.set_disabled("officer", True)
    assert (await b.get("/api/state")).status == 401
    assert (await b.login("officer")).status == 401


async def test_csrf_rejected(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("admin", Role.ADMINISTRATOR)
    b = browser_factory(viewer)
    await b.login("admin")
    form = {"username": "newbie", "password": "long enough pw", "role": "reviewer"}
    # no token, wrong token, right token but a foreign Origin
    assert (await b.post("/users", csrf=False, data=form)).status == 403
    assert (await b.post("/users", csrf=False, data={**form, "csrf_token": "x" * 43})).status == 403
    resp = await b.post("/users", data=form, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    assert viewer.ctx.accounts.by_name("newbie") is None
    resp = await b.post("/users", data=form)  # X-CSRF-Token header from the page
    assert resp.status == 303
    assert viewer.ctx.accounts.by_name("newbie") is not None
    changes = viewer.ctx.audit.query(action=None, username="admin")
    assert any(e.action == "config_change" and e.detail["target"] == "newbie" for e in changes)


async def test_login_form_needs_its_prelogin_token(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    resp = await b.post("/login", csrf=False, data={
        "username": "officer", "password": "correct horse battery", "csrf_token": "forged"})
    assert resp.status == 403
    assert "dozor_session" not in " ".join(resp.headers.getall("Set-Cookie", []))


async def test_logout_ends_session(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    await b.login("officer")
    resp = await b.post("/logout", data={"csrf_token": b.csrf})
    assert resp.status == 303
    assert (await b.get("/api/state")).status == 401
    assert re.search(r"logout", str([e.action for e in viewer.ctx.audit.query()]))


async def test_expired_sessions_are_purged(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    await b.login("officer")
    db = viewer.ctx.db.db
    assert db["sessions"].count == 1
    viewer.ctx.sessions.purge()
    assert db["sessions"].count == 1
    viewer.clock.advance(viewer.ctx.config.security.session_max_s + 1)
    viewer.ctx.sessions.purge()
    assert db["sessions"].count == 0


async def test_change_own_password(start_viewer, browser_factory):
    viewer = await start_viewer()
    viewer.add_user("officer", Role.DUTY_OFFICER)
    b = browser_factory(viewer)
    await b.login("officer")
    assert "current-password" in await (await b.get("/account")).text()
    form = {"current": "wrong password!", "new": "brand new secret", "repeat": "brand new secret"}
    resp = await b.post("/account/password", data=form)
    assert resp.status == 400
    resp = await b.post("/account/password", data={**form, "current": TEST_PASSWORD,
                                                   "repeat": "different secret"})
    assert resp.status == 400
    resp = await b.post("/account/password", data={**form, "current": TEST_PASSWORD})
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await b.get("/api/state")).status == 401  # every session ended
    assert (await b.login("officer")).status == 401
    assert (await b.login("officer", "brand new secret")).status == 303
    outcomes = [(e.outcome, e.detail.get("change")) for e in
                viewer.ctx.audit.query(username="officer", action=Action.CONFIG_CHANGE)]
    assert outcomes == [("ok", "own_password"), ("wrong_current_password", "own_password")]


async def test_admin_resets_a_password_shown_once(start_viewer, browser_factory):
    viewer = await start_viewer(max_failed_logins=3)
    viewer.add_user("admin", Role.ADMINISTRATOR)
    viewer.add_user("officer", Role.DUTY_OFFICER)
    officer = browser_factory(viewer)
    for _ in range(3):
        await officer.login("officer", "wrong password!")
        viewer.clock.advance(120)
    assert viewer.ctx.accounts.require("officer").locked
    admin = browser_factory(viewer)
    await admin.login("admin")
    html = await (await admin.post("/users/officer/password")).text()
    found = re.search(r"officer: (\S+) \(", html)
    assert found, html
    assert (await officer.login("officer", found.group(1))).status == 303
    assert "user_password_reset" in str(
        [e.detail for e in viewer.ctx.audit.query(username="admin")])
    assert found.group(1) not in await (await admin.get("/users")).text()
