"""Live view relay: browsers watch a camera over a WebSocket; the site is asked over MQTT.

    GET /ws/live/{site}/{camera}?stream=sub&mode=mse     (WebSocket)

One `LiveFeed` per (site, camera, stream, mode) serves every browser watching it: the
first watcher sends "live.start" to the site, a task renews the request before its TTL runs
out, and the last one to leave sends "live.stop". Payloads from the site (recorder.live wire
format) are relayed to the browsers unchanged as binary messages; a late joiner gets the
cached init segment and the fragments since the last keyframe, so its picture starts at
once. A browser too slow to keep up loses fragments up to the next keyframe, never blocks
the others. Every second each browser gets a text message with its own bandwidth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from police_link.errors import PoliceLinkError
from police_link.topics import check_camera_name, check_name
from recorder.live import ChunkKind, LiveError, LiveMode, LivePayload, decode_payload

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30
REQUEST_TIMEOUT_S = 5.0
WATCHER_QUEUE = 256  # payloads: about 15 s of sub stream fragments
GOP_CACHE_MAX = 300  # fragments kept since the last keyframe
STATS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class FeedKey:
    site: str
    camera: str
    stream: str
    mode: LiveMode

    def __str__(self) -> str:
        return f"site {self.site} camera {self.camera}/{self.stream} ({self.mode})"


# Ask the site: request(site, kind, args, timeout_s) -> result (police_link.ViewerLink.request).
Requester = Callable[[str, str, dict[str, Any], float], Awaitable[dict[str, Any]]]


@dataclass(eq=False)  # identity: watchers live in sets
class Watcher:
    """One browser's queue. `need_keyframe`: skip media until a fragment starts with one."""

    key: FeedKey
    queue: asyncio.Queue[bytes | str] = field(
        default_factory=lambda: asyncio.Queue(WATCHER_QUEUE))
    need_keyframe: bool = True
    bytes_sent: int = 0
    messages_dropped: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)

    def offer(self, payload: bytes | str, keyframe: bool = False, media: bool = True) -> None:
        if media:
            if self.need_keyframe and not keyframe:
                return
            self.need_keyframe = False
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.messages_dropped += 1
            self.need_keyframe = media


class LiveFeed:
    """Watchers of one stream in one mode, the site request behind them, and the cache."""

    def __init__(self, key: FeedKey, request: Requester, ttl_s: int) -> None:
        self.key = key
        self._request = request
        self.ttl_s = ttl_s
        self.watchers: set[Watcher] = set()
        self.init: bytes | None = None  # the INIT payload as received
        self.init_segment: bytes | None = None  # its body: ftyp+moov
        self.gop: list[bytes] = []  # payloads since the last keyframe (MSE) or the last JPEG
        self.last_seq: int | None = None
        self.bytes_received = 0
        self._renewer: asyncio.Task[None] | None = None
        self._stopped = False

    def _args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"camera": self.key.camera, "stream": self.key.stream,
                                "ttl_s": self.ttl_s}
        if self.key.mode is not LiveMode.MSE:
            # Only when needed: a site registered with police_link's plain live schemas
            # (no "mode") still serves MSE.
            args["mode"] = self.key.mode.value
        return args

    async def start(self) -> None:
        """Ask the site; PoliceLinkError (RequestFailed, RequestTimeout) goes to the caller."""
        await self._request(self.key.site, "live.start", self._args(), REQUEST_TIMEOUT_S)
        self._renewer = asyncio.create_task(self._renew_loop(), name=f"live renew {self.key}")

    async def _renew_loop(self) -> None:
        # Renew at a third of the TTL: two renewals may be lost before the site gives up.
        # The flag ends the loop, not only stop()'s cancel: on Python 3.11 asyncio.wait_for
        # (in ViewerLink.request) drops a cancellation that arrives in the same loop turn as
        # the reply (CPython gh-86296), and the loop went on renewing the view for ever while
        # stop(), and with it the browser's WebSocket handler, waited for it.
        while not self._stopped:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self._request(self.key.site, "live.renew", self._args(), REQUEST_TIMEOUT_S)
            except PoliceLinkError as err:
                log.warning("viewer: %s: live renewal failed: %s", self.key, err)

    async def stop(self) -> None:
        self._stopped = True
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        args = self._args()
        del args["ttl_s"]
        try:
            await self._request(self.key.site, "live.stop", args, REQUEST_TIMEOUT_S)
        except PoliceLinkError as err:
            # The view expires on its own after ttl_s.
            log.info("viewer: %s: live.stop not confirmed: %s", self.key, err)

    def join(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        if self.key.mode is LiveMode.MSE and self.init is not None:
            watcher.offer(self.init, media=False)
            for payload in self.gop:  # empty after a loss: the watcher waits for a keyframe
                watcher.offer(payload, keyframe=payload is self.gop[0])
        elif self.key.mode is LiveMode.JPEG and self.gop:
            watcher.offer(self.gop[-1], keyframe=True)

    def deliver(self, chunk: LivePayload, payload: bytes) -> None:
        self.bytes_received += len(payload)
        lost = self.last_seq is not None and chunk.seq != (self.last_seq + 1) & 0xFFFFFFFF
        self.last_seq = chunk.seq
        if chunk.kind is ChunkKind.INIT:
            # The site re-sends the init segment when another viewer joins: the same
            # segment changes nothing here, and must not freeze anybody's picture.
            if chunk.body != self.init_segment:
                self.init, self.init_segment = payload, chunk.body
                self.gop.clear()
                for w in self.watchers:
                    w.offer(payload, media=False)
                    w.need_keyframe = True
            return
        if chunk.kind is ChunkKind.END:
            self.init = self.init_segment = None
            self.gop.clear()
            text = json.dumps({"type": "end", "reason": (chunk.meta or {}).get("reason", "")})
            for w in self.watchers:
                w.offer(text, media=False)
                w.need_keyframe = True
            return
        if lost:
            log.info("viewer: %s: live payload lost before seq %d", self.key, chunk.seq)
            self.gop.clear()
            for w in self.watchers:
                w.need_keyframe = True
        if chunk.keyframe or chunk.kind is ChunkKind.JPEG:
            self.gop.clear()
        if len(self.gop) < GOP_CACHE_MAX and (self.gop or chunk.keyframe):
            self.gop.append(payload)
        for w in self.watchers:
            w.offer(payload, keyframe=chunk.keyframe)


class LiveHub:
    """All live feeds of this viewer. Runs on the event loop; `deliver_threadsafe` from others."""

    def __init__(self, request: Requester, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._request = request
        self.ttl_s = ttl_s
        self.feeds: dict[FeedKey, LiveFeed] = {}
        # Start and stop of one feed do not interleave (a slow site delays only its own
        # feeds). One lock per key ever watched: cameras x streams x modes, a bounded set.
        self._locks: dict[FeedKey, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Open browser sockets: closed at shutdown, or aiohttp waits for them to go away.
        self.sockets: set[web.WebSocketResponse] = set()

    async def join(self, key: FeedKey) -> Watcher:
        """A new watcher of key; starts the feed at the site when it is the first."""
        self._loop = asyncio.get_running_loop()
        watcher = Watcher(key)
        async with self._locks.setdefault(key, asyncio.Lock()):
            feed = self.feeds.get(key)
            if feed is None:
                feed = LiveFeed(key, self._request, self.ttl_s)
                await feed.start()
                self.feeds[key] = feed
                log.info("viewer: %s: live feed started", key)
            feed.join(watcher)
        return watcher

    async def leave(self, watcher: Watcher) -> None:
        async with self._locks.setdefault(watcher.key, asyncio.Lock()):
            feed = self.feeds.get(watcher.key)
            if feed is None:
                return
            feed.watchers.discard(watcher)
            if not feed.watchers:
                del self.feeds[watcher.key]
                await feed.stop()
                log.info("viewer: %s: live feed stopped (%d bytes received)", watcher.key,
                         feed.bytes_received)

    def deliver(self, site: str, camera: str, stream: str, payload: bytes) -> None:
        """A payload from dozor/<site>/<camera>/live/<stream> (event loop thread)."""
        try:
            chunk = decode_payload(payload)
        except LiveError as err:
            log.warning("viewer: site %s camera %s/%s: bad live payload: %s",
                        site, camera, stream, err)
            return
        if chunk.kind is ChunkKind.END:
            mode = (chunk.meta or {}).get("mode")
            modes = tuple(m for m in LiveMode if mode in (None, m.value))
        else:
            modes = (LiveMode.JPEG,) if chunk.kind is ChunkKind.JPEG else (LiveMode.MSE,)
        for mode in modes:
            feed = self.feeds.get(FeedKey(site, camera, stream, mode))
            if feed is not None:
                feed.deliver(chunk, payload)

    def deliver_threadsafe(self, site: str, camera: str, stream: str, payload: bytes) -> None:
        """The same, from a thread that is not the event loop's (a paho callback)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.deliver, site, camera, stream, payload)

    def handle(self, message: object) -> bool:
        """Take a police_link.messages.LiveChunk; False for any other message."""
        data = getattr(message, "data", None)
        site, camera, stream = (getattr(message, a, None) for a in ("site", "camera", "stream"))
        if not (isinstance(data, bytes) and site and camera and stream):
            return False
        self.deliver(site, camera, stream, data)
        return True

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"viewer shutting down")
        for key in list(self.feeds):
            feed = self.feeds.pop(key, None)  # a closing socket may have ended it already
            if feed is None:
                continue
            for w in feed.watchers:
                w.offer(json.dumps({"type": "end", "reason": "viewer shutting down"}),
                        media=False)
            await feed.stop()


# --------------------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class LiveAccess:
    """Who watches: their name and address for the audit log and the logs."""

    username: str
    address: str


# Checks the request may watch (site, camera), raising web.HTTPException if not, and says
# who it is. The viewer app's is below; tests of the relay alone pass their own.
Authorize = Callable[[web.Request, str, str], LiveAccess]
# Records "live view" in the audit log: (access, site, camera, detail).
AuditHook = Callable[[LiveAccess, str, str, dict[str, Any]], None]

LIVE_HUB = web.AppKey("dozor_live_hub", LiveHub)


def parse_live_query(request: web.Request) -> FeedKey:
    """Site, camera, stream and mode of a live request; 400 naming the bad one."""
    try:
        site = check_name(request.match_info["site"], "site")
        camera = check_camera_name(request.match_info["camera"])
    except PoliceLinkError as err:
        raise _bad_request(str(err)) from err
    stream = request.query.get("stream", "sub")
    if stream not in ("main", "sub"):
        raise _bad_request(f"stream: must be main or sub (got {stream[:20]!r})")
    try:
        mode = LiveMode(request.query.get("mode", "mse"))
    except ValueError as err:
        raise _bad_request("mode: must be mse or jpeg") from err
    return FeedKey(site, camera, stream, mode)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "invalid", "message": message}),
                              content_type="application/json")


async def _pump(ws: web.WebSocketResponse, watcher: Watcher) -> None:
    """Queue to socket, with a stats message every STATS_INTERVAL_S."""
    window_bytes = 0
    window_start = time.monotonic()
    while not ws.closed:
        timeout = max(0.0, window_start + STATS_INTERVAL_S - time.monotonic())
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it may drop a cancel (above)
                item = await watcher.queue.get()
        except TimeoutError:
            item = None
        if isinstance(item, bytes):
            await ws.send_bytes(item)
            watcher.bytes_sent += len(item)
            window_bytes += len(item)
        elif isinstance(item, str):
            await ws.send_str(item)
        now = time.monotonic()
        if now - window_start >= STATS_INTERVAL_S:
            rate = window_bytes / (now - window_start)
            await ws.send_str(json.dumps({
                "type": "stats", "bytes_per_s": round(rate), "bytes_total": watcher.bytes_sent,
                "dropped": watcher.messages_dropped,
            }))
            window_bytes, window_start = 0, now


def make_live_handler(hub: LiveHub, authorize: Authorize, audit: AuditHook | None) -> Any:
    async def live_ws(request: web.Request) -> web.StreamResponse:
        key = parse_live_query(request)
        access = authorize(request, key.site, key.camera)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        hub.sockets.add(ws)
        try:
            return await _serve(ws, key, access)
        finally:
            hub.sockets.discard(ws)

    async def _serve(ws: web.WebSocketResponse, key: FeedKey, access: LiveAccess
                     ) -> web.WebSocketResponse:
        view = uuid.uuid4().hex[:8]
        tag = f"viewer: {key} live view {view} by {access.username}"
        try:
            watcher = await hub.join(key)
        except PoliceLinkError as err:
            log.warning("%s refused: %s", tag, err)
            await ws.send_str(json.dumps({"type": "error", "message": str(err)}))
            await ws.close()
            if audit is not None:
                audit(access, key.site, key.camera,
                      {"stream": key.stream, "mode": key.mode.value, "outcome": str(err)})
            return ws
        if audit is not None:
            audit(access, key.site, key.camera, {"stream": key.stream, "mode": key.mode.value})
        log.info("%s started", tag)
        pump = asyncio.create_task(_pump(ws, watcher), name=f"live pump {view}")
        try:
            async for msg in ws:  # the browser says nothing; this waits for the close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pump
            await hub.leave(watcher)
            seconds = max(time.monotonic() - watcher.started_monotonic, 1e-3)
            log.info("%s ended after %.0f s: %d bytes, %.1f kbit/s, %d dropped", tag, seconds,
                     watcher.bytes_sent, watcher.bytes_sent * 8 / seconds / 1000,
                     watcher.messages_dropped)
        return ws

    return live_ws


def add_live_routes(app: web.Application, hub: LiveHub, authorize: Authorize,
                    audit: AuditHook | None = None) -> None:
    """The endpoint and the hub's shutdown, for any app (the viewer's or a test's)."""
    app[LIVE_HUB] = hub
    app.router.add_get("/ws/live/{site}/{camera}", make_live_handler(hub, authorize, audit))

    async def close_hub(app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close_hub)


def setup_live_routes(app: web.Application, ctx: Any) -> LiveHub | None:
    """Mount live view on the viewer app (viewer.app.create_app calls this).

    Needs ctx.link (police_link.ViewerLink); without a broker there is no live view. The
    caller routes police_link.messages.LiveChunk deliveries to app[LIVE_HUB].handle.
    """
    from viewer.app import same_origin
    from viewer.audit import Action
    from viewer.auth import Permission
    from viewer.web import client_address, require

    if ctx.link is None:
        log.info("viewer: no police link: live view is not available")
        return None

    async def request(site: str, kind: str, args: dict[str, Any], timeout_s: float
                      ) -> dict[str, Any]:
        result: dict[str, Any] = await ctx.link.request(site, kind, args, timeout_s=timeout_s)
        return result

    def authorize(req: web.Request, site: str, camera: str) -> LiveAccess:
        session = require(req, Permission.LIVE, site=site, camera=camera)
        if not same_origin(req):  # a WebSocket is a GET: the CSRF middleware does not see it
            raise web.HTTPForbidden(
                text='{"error": "csrf", "message": "cross-site live view refused (Origin)"}',
                content_type="application/json")
        return LiveAccess(session.user.username, client_address(req))

    def audit(access: LiveAccess, site: str, camera: str, detail: dict[str, Any]) -> None:
        outcome = detail.pop("outcome", "ok")
        ctx.audit.record(Action.LIVE_VIEW, username=access.username, address=access.address,
                         outcome=outcome, site=site, camera=camera, **detail)

    hub = LiveHub(request)
    add_live_routes(app, hub, authorize, audit)
    return hub


__all__ = [
    "LIVE_HUB",
    "FeedKey",
    "LiveAccess",
    "LiveFeed",
    "LiveHub",
    "Watcher",
    "add_live_routes",
    "parse_live_query",
    "setup_live_routes",
]
