"""The aiohttp application factory: middlewares (errors, security headers, sessions, CSRF),
routes, and the start-up and shutdown of the desk, the health board and the police link."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from recorder.clock import Clock, SystemClock
from viewer import admin, api, views
from viewer.accounts import SCRYPT_N, Accounts
from viewer.audit import AuditLog
from viewer.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Authenticator,
    SessionStore,
    tokens_match,
)
from viewer.config import ViewerConfig
from viewer.db import ViewerDB
from viewer.desk import AlertDesk
from viewer.errors import DatabaseError, RequestInvalid
from viewer.feed import Feed
from viewer.health import HealthBoard
from viewer.push import Broadcaster
from viewer.web import CTX, SESSION_KEY, ViewerContext, current_session, json_error

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOUSEKEEPING_INTERVAL_S = 3600.0
CSRF_EXEMPT = frozenset({"/login"})  # checked in the handler against the pre-login cookie

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes form POSTs send Origin: null
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except RequestInvalid as err:
        return json_error(400, "invalid", str(err), field=err.field)
    except DatabaseError:
        log.exception("viewer: database error on %s %s", request.method, request.path)
        return json_error(500, "database", "the viewer's database failed; see its log")


@web.middleware
async def _session(request: web.Request, handler: Any) -> web.StreamResponse:
    ctx = request.app[CTX]
    request[SESSION_KEY] = ctx.sessions.lookup(request.cookies.get(SESSION_COOKIE))
    return await handler(request)  # type: ignore[no-any-return]


def same_origin(request: web.Request) -> bool:
    """True when the request carries no Origin (non-browser client) or our own."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def _csrf(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every state-changing request needs a same-site Origin and the session's token."""
    if request.method in UNSAFE_METHODS:
        if not same_origin(request):
            return json_error(403, "csrf", "cross-site request refused (Origin)")
        if request.path not in CSRF_EXEMPT:
            session = current_session(request)
            if session is None:
                return json_error(401, "not_logged_in", "log in first")
            token = request.headers.get(CSRF_HEADER)
            if token is None and request.content_type in (
                "application/x-www-form-urlencoded", "multipart/form-data"
            ):
                form_token = (await request.post()).get(CSRF_FIELD)
                token = form_token if isinstance(form_token, str) else None
            if not tokens_match(session.csrf_token, token):
                return json_error(403, "csrf", "missing or wrong CSRF token")
    return await handler(request)  # type: ignore[no-any-return]


def build_context(
    config: ViewerConfig,
    *,
    db: ViewerDB | None = None,
    clock: Clock | None = None,
    link: Any | None = None,
    hash_n: int = SCRYPT_N,
) -> ViewerContext:
    clock = clock or SystemClock()
    db = db or ViewerDB(config.database_path)
    accounts = Accounts(db, hash_n=hash_n)
    audit = AuditLog(db, clock)
    broadcaster = Broadcaster()
    desk = AlertDesk(db, broadcaster, audit, clock, link)
    health = HealthBoard(
        db, broadcaster, clock, offline_after_s=config.health_offline_after_s,
        disk_low_free_bytes=config.health_disk_low_free_bytes,
    )
    return ViewerContext(
        config=config,
        clock=clock,
        db=db,
        accounts=accounts,
        authenticator=Authenticator(accounts, clock, config.security),
        sessions=SessionStore(db, accounts, clock, config.security),
        audit=audit,
        broadcaster=broadcaster,
        desk=desk,
        health=health,
        feed=Feed(desk, health),
        link=link,
    )


def create_app(ctx: ViewerContext) -> web.Application:
    """The application. The caller creates ctx.link (police_link.ViewerLink) delivering to
    ctx.feed.handle, and starts and stops it (see cli.serve)."""
    app = web.Application(
        middlewares=[_errors, _session, _csrf], client_max_size=256 * 1024
    )
    app[CTX] = ctx
    app.on_response_prepare.append(_security_headers)
    views.add_routes(app)
    admin.add_routes(app)
    api.add_routes(app)
    if importlib.util.find_spec("viewer.live") is not None:
        from viewer import live

        hub = live.setup_live_routes(app, ctx)
        if hub is not None:
            ctx.feed.live_handler = hub.handle
    app.router.add_static("/static", STATIC_DIR, follow_symlinks=False)

    tasks: list[asyncio.Task[None]] = []

    async def housekeeping() -> None:
        while True:
            try:
                ctx.sessions.purge()
                ctx.desk.prune(ctx.config.alert_retain_days)
            except DatabaseError:
                log.exception("viewer: housekeeping (sessions, old alerts) failed")
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    async def start(app: web.Application) -> None:
        await ctx.health.start()
        tasks.append(asyncio.get_running_loop().create_task(housekeeping()))
        if ctx.link is not None:
            tasks.append(asyncio.get_running_loop().create_task(ctx.feed.pump(ctx.link)))

    async def stop(app: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await ctx.desk.close()
        await ctx.health.stop()
        await ctx.broadcaster.close_all()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app
