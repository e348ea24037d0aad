"""JSON endpoints and the WebSocket that pushes alerts and health to browsers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from viewer.auth import Permission, has_permission
from viewer.desk import MAX_COMMENT_LEN
from viewer.errors import AcknowledgeError, RequestInvalid
from viewer.push import Client
from viewer.web import (
    client_address,
    context,
    current_session,
    int_param,
    json_error,
    require,
    text_field,
)

log = logging.getLogger(__name__)
WS_HEARTBEAT_S = 20.0
WS_SESSION_CHECK_S = 30.0  # an open wall keeps its session alive; a dead session closes it
WS_CLOSE_SESSION_ENDED = 4401


def state_for(request: web.Request) -> dict[str, Any]:
    ctx = context(request)
    session = current_session(request)
    assert session is not None
    user = session.user
    return {
        "type": "state",
        "user": {"username": user.username, "role": user.role.value,
                 "permissions": sorted(p.value for p in Permission if has_permission(user, p))},
        "sites": ctx.health.sites_for(user),
        "alerts": ctx.desk.recent_for(user),
    }


async def get_state(request: web.Request) -> web.Response:
    require(request, Permission.WALL)
    return web.json_response(state_for(request))


async def post_ack(request: web.Request) -> web.Response:
    session = require(request, Permission.ACKNOWLEDGE)
    ctx = context(request)
    alert_id = int_param(request.match_info["alert_id"], "alert_id", minimum=1)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestInvalid("body", "not valid JSON") from err
    comment = text_field(body, "comment", max_len=MAX_COMMENT_LEN, required=False).strip()
    row = ctx.desk.alert(alert_id)
    if row is None:
        return json_error(404, "not_found", f"alert {alert_id} does not exist")
    require(request, Permission.ACKNOWLEDGE, site=row["site"], camera=row["camera"])
    try:
        view = await ctx.desk.acknowledge(alert_id, session.user, client_address(request),
                                          comment)
    except AcknowledgeError as err:
        return json_error(409, "conflict", str(err))
    return web.json_response({"alert": view})


async def get_snapshot(request: web.Request) -> web.Response:
    require(request, Permission.ALERTS)
    ctx = context(request)
    alert_id = int_param(request.match_info["alert_id"], "alert_id", minimum=1)
    found = ctx.desk.snapshot(alert_id)
    if found is None:
        return json_error(404, "not_found", f"alert {alert_id} has no snapshot")
    row, data, content_type = found
    require(request, Permission.ALERTS, site=row["site"], camera=row["camera"])
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "private, max-age=86400"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Pushes {"type": "state"} once, then "alert" and "site" messages as they happen."""
    session = require(request, Permission.WALL)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-site WebSocket refused")
    ctx = context(request)
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=4096)
    await ws.prepare(request)
    client = Client(ws=ws, user=session.user, address=client_address(request))
    ctx.broadcaster.add(client)
    log.info("viewer: %s connected from %s (%d browsers)", session.user.username,
             client.address, ctx.broadcaster.count)

    async def sender() -> None:
        await ws.send_json(state_for(request))
        while True:
            message = await client.queue.get()
            await ws.send_json(message)

    async def session_watch() -> None:
        while True:
            await asyncio.sleep(WS_SESSION_CHECK_S)
            if not ctx.sessions.refresh(session):
                log.info("viewer: session of %s at %s ended; closing its WebSocket",
                         session.user.username, client.address)
                await ws.close(code=WS_CLOSE_SESSION_ENDED, message=b"session ended")
                return

    loop = asyncio.get_running_loop()
    send_task = loop.create_task(sender())
    watch_task = loop.create_task(session_watch())
    try:
        async for msg in ws:  # the browser only sends pings; anything else is ignored
            if msg.type == WSMsgType.ERROR:
                break
            if send_task.done():
                break
    finally:
        for task in (send_task, watch_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        ctx.broadcaster.remove(client)
        log.info("viewer: %s disconnected from %s", session.user.username, client.address)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/state", get_state)
    app.router.add_post("/api/alerts/{alert_id}/ack", post_ack)
    app.router.add_get("/api/alerts/{alert_id}/snapshot", get_snapshot)
    app.router.add_get("/ws", websocket)
