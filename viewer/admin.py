"""Administrators' pages: the audit log (read and filter) and user management."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web

from viewer.accounts import Role, generate_password, parse_scope
from viewer.audit import Action
from viewer.auth import CSRF_FIELD, Permission
from viewer.errors import AccountError, RequestInvalid
from viewer.i18n import translate
from viewer.templates import escape, render
from viewer.views import language_of, page
from viewer.web import client_address, context, int_param, require, text_field


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_day(value: str, name: str) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError as err:
        raise RequestInvalid(name, f"{value[:20]!r} is not a date YYYY-MM-DD") from err


async def audit_page(request: web.Request) -> web.Response:
    session = require(request, Permission.AUDIT)
    ctx = context(request)
    language = language_of(request)
    q = request.query
    username = text_field(q, "user", max_len=64, required=False).strip().lower() or None
    action_raw = text_field(q, "action", max_len=32, required=False)
    try:
        action = Action(action_raw) if action_raw else None
    except ValueError as err:
        raise RequestInvalid("action", f"{action_raw!r} is not a known action") from err
    since_s = text_field(q, "since", max_len=10, required=False)
    until_s = text_field(q, "until", max_len=10, required=False)
    since = _parse_day(since_s, "since")
    until = _parse_day(until_s, "until")
    if until is not None:
        until += 24 * 3600  # the whole day
    limit = int_param(q.get("limit", "200"), "limit", minimum=1, maximum=5000)
    entries = ctx.audit.query(username=username, action=action, since=since, until=until,
                              limit=limit)
    rows = "".join(
        "<tr>"
        f"<td>{escape(_time(e.at))}</td><td>{escape(e.username)}</td>"
        f"<td>{escape(e.address)}</td><td>{escape(translate(language, 'action.' + e.action))}"
        f"</td><td>{escape(e.outcome)}</td>"
        f"<td>{escape('/'.join(x for x in (e.site, e.camera) if x))}</td>"
        f"<td>{escape(json.dumps(e.detail, ensure_ascii=False) if e.detail else '')}</td>"
        "</tr>"
        for e in entries
    )
    options = '<option value="">*</option>' + "".join(
        f'<option value="{a.value}"{" selected" if a == action else ""}>'
        f"{escape(translate(language, 'action.' + a.value))}</option>"
        for a in Action
    )
    body = render("audit.html", language, user=username or "", since=since_s, until=until_s,
                  actions=options, rows=rows, count=len(entries))
    return page(request, session, name="audit", title_key="nav.audit", body=body)


async def users_page(
    request: web.Request, error: str = "", status: int = 200, notice: str = ""
) -> web.Response:
    session = require(request, Permission.USERS)
    ctx = context(request)
    language = language_of(request)
    csrf = escape(session.csrf_token)
    rows = []
    for u in ctx.accounts.list():
        state = "disabled" if u.disabled else "locked" if u.locked else "active"
        actions = (
            f'<form method="post" action="/users/{escape(u.username)}/state">'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf}">'
            + (f'<button name="state" value="enabled">{escape(translate(language, "users.enable"))}'
               "</button>" if u.disabled else
               f'<button name="state" value="disabled">'
               f'{escape(translate(language, "users.disable"))}</button>')
            + (f'<button name="state" value="unlocked">'
               f'{escape(translate(language, "users.unlock"))}</button>' if u.locked else "")
            + "</form>"
            + f'<form method="post" action="/users/{escape(u.username)}/password">'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf}">'
            f'<button>{escape(translate(language, "users.reset"))}</button></form>'
        )
        rows.append(
            f"<tr><td>{escape(u.username)}</td>"
            f"<td>{escape(translate(language, 'role.' + u.role.value))}</td>"
            f"<td>{escape(', '.join(u.sites))}</td><td>{escape(', '.join(u.cameras))}</td>"
            f"<td>{escape(translate(language, 'users.state.' + state))}</td><td>{actions}</td></tr>"
        )
    roles = "".join(
        f'<option value="{r.value}">{escape(translate(language, "role." + r.value))}</option>'
        for r in Role
    )
    message = (f'<p class="error" role="alert">{escape(error)}</p>' if error else "") + (
        f'<p class="notice" role="status">{escape(notice)}</p>' if notice else "")
    body = render("users.html", language, rows="".join(rows), roles=roles,
                  csrf=session.csrf_token, error=message)
    response = page(request, session, name="users", title_key="nav.users", body=body)
    response.set_status(status)
    return response


async def users_add(request: web.Request) -> web.Response:
    session = require(request, Permission.USERS)
    ctx = context(request)
    form = await request.post()
    username = text_field(form, "username", max_len=32).strip().lower()
    password = text_field(form, "password", max_len=256)
    role = text_field(form, "role", max_len=32)
    sites = text_field(form, "sites", max_len=1000, required=False, default="*")
    cameras = text_field(form, "cameras", max_len=4000, required=False, default="*")
    try:
        ctx.accounts.add(username, password, role, sites=parse_scope(sites, "sites"),
                         cameras=parse_scope(cameras, "cameras"), now=ctx.clock.wall())
    except AccountError as err:
        return await users_page(request, str(err), status=400)
    ctx.audit.record(Action.CONFIG_CHANGE, username=session.user.username,
                     address=client_address(request), change="user_add", target=username,
                     role=role, sites=sites, cameras=cameras)
    raise web.HTTPSeeOther("/users")


async def users_state(request: web.Request) -> web.Response:
    session = require(request, Permission.USERS)
    ctx = context(request)
    username = request.match_info["username"]
    form = await request.post()
    state = text_field(form, "state", max_len=16)
    try:
        if state == "disabled":
            if username == session.user.username:
                raise AccountError("state: you cannot disable your own account")
            ctx.accounts.set_disabled(username, True)
        elif state == "enabled":
            ctx.accounts.set_disabled(username, False)
        elif state == "unlocked":
            ctx.accounts.unlock(username)
        else:
            raise RequestInvalid("state", "must be disabled, enabled or unlocked")
    except AccountError as err:
        return await users_page(request, str(err), status=400)
    ctx.audit.record(Action.CONFIG_CHANGE, username=session.user.username,
                     address=client_address(request), change=f"user_{state}", target=username)
    raise web.HTTPSeeOther("/users")


async def users_reset_password(request: web.Request) -> web.Response:
    """Give a user a generated password, shown to the administrator once."""
    session = require(request, Permission.USERS)
    ctx = context(request)
    username = request.match_info["username"]
    password = generate_password()
    try:
        ctx.accounts.set_password(username, password, now=ctx.clock.wall())
    except AccountError as err:
        return await users_page(request, str(err), status=400)
    ctx.audit.record(Action.CONFIG_CHANGE, username=session.user.username,
                     address=client_address(request), change="user_password_reset",
                     target=username)
    language = language_of(request)
    return await users_page(
        request,
        notice=translate(language, "users.reset_done", user=username, password=password),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page)
    app.router.add_get("/users", users_page)
    app.router.add_post("/users", users_add)
    app.router.add_post("/users/{username}/state", users_state)
    app.router.add_post("/users/{username}/password", users_reset_password)
