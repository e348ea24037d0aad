"""The police-station (viewer) end of the link, for asyncio applications.

paho's network thread parses and validates every message (off the event loop) and hands
typed messages to the loop with call_soon_threadsafe; request futures are created,
resolved and removed on the loop only. The session is persistent (clean_start False,
`session_expiry_s`), so the broker keeps queueing QoS 1 messages while the viewer restarts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ._mqtt import connect_properties, make_client, publish_properties, reason_text
from .commands import decode_response, encode_request
from .errors import LinkError, RequestTimeout, ValidationError
from .messages import (
    SITE_OFFLINE,
    SITE_ONLINE,
    AckMessage,
    AlarmMessage,
    CameraStatusMessage,
    DropReport,
    EventMessage,
    JsonMessage,
    LiveChunk,
    SeqGap,
    SequencedMessage,
    SiteStatus,
    Snapshot,
    StatsMessage,
    ViewerMessage,
)
from .settings import BrokerSettings
from .topics import ParsedTopic, TopicKind, Topics, check_name

log = logging.getLogger(__name__)

_JSON_TYPES: dict[TopicKind, type[JsonMessage]] = {
    TopicKind.EVENTS: EventMessage,
    TopicKind.ALARMS: AlarmMessage,
    TopicKind.ACKS: AckMessage,
    TopicKind.DROPPED: DropReport,
    TopicKind.CAMERA_STATUS: CameraStatusMessage,
    TopicKind.STATS: StatsMessage,
}


class SeqTracker:
    """Per-site dedupe and gap detection over sequence numbers (docs/mqtt.md).

    `check` answers whether a message is new, and the gap its arrival reveals. Seqs at or
    below a site's `floor` (what the application had already stored before a restart) and
    those seen among the last `window` are duplicates. A seq of 1 below what was seen
    means the site's outbox was reset: the site starts over.
    """

    def __init__(self, *, window: int = 8192, floors: Mapping[str, int] | None = None) -> None:
        self._window = window
        self._floor: dict[str, int] = dict(floors or {})
        self._hi: dict[str, int] = dict(floors or {})
        self._seen: dict[str, set[int]] = {}
        self._order: dict[str, collections.deque[int]] = {}

    def last_seq(self, site: str) -> int | None:
        return self._hi.get(site)

    def check(self, site: str, seq: int) -> tuple[bool, SeqGap | None]:
        seen = self._seen.setdefault(site, set())
        order = self._order.setdefault(site, collections.deque())
        hi = self._hi.get(site)
        gap = None
        if hi is not None and seq == 1 and hi > 1 and 1 not in seen:
            log.warning("site %s: sequence restarted at 1 (was %d): outbox reset", site, hi)
            seen.clear()
            order.clear()
            self._floor.pop(site, None)
            hi = None
        if seq in seen or seq <= self._floor.get(site, 0):
            return False, None
        if hi is not None and seq <= hi - self._window:
            return False, None  # too old to tell: a redelivery
        if hi is None or seq > hi:
            if hi is not None and seq > hi + 1:
                gap = SeqGap(site, hi + 1, seq - 1)
            self._hi[site] = seq
        seen.add(seq)
        order.append(seq)
        while len(order) > self._window:
            seen.discard(order.popleft())
        return True, gap


class ViewerLink:
    """Receives everything under `<prefix>/#` as typed messages; sends command requests.

    The MQTT client id (settings.client_id, default dozor-viewer-<host name>) names the
    broker session: two viewer processes must not share one.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        prefix: str | None = None,
        sender: str = "viewer",
        last_seqs: Mapping[str, int] | None = None,
        session_expiry_s: int = 24 * 3600,
        queue_max: int = 100_000,
    ) -> None:
        self.settings = settings
        self._topics = Topics(prefix or settings.prefix)
        self.sender = check_name(sender, "sender")
        client_id = settings.client_id or f"dozor-viewer-{socket.gethostname()}"
        # The reply level of the topic tree is this client's name (NAME_RE-safe).
        self.client_name = re.sub(r"[^A-Za-z0-9_-]", "-", client_id)[:64].lstrip("-_") or "v"
        self._client_id = client_id
        self._session_expiry_s = session_expiry_s
        self._queue_max = queue_max
        self._tracker = SeqTracker(floors=last_seqs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[ViewerMessage] | None = None
        self._pending: dict[bytes, tuple[asyncio.Future[bytes], str, str]] = {}
        self._connected: asyncio.Event | None = None
        self._client: mqtt.Client | None = None
        self.invalid_count = 0
        self._invalid_logged: dict[str, tuple[float, int]] = {}  # site -> (time, suppressed)
        self.duplicate_count = 0

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background (retrying forever); see wait_connected()."""
        if self._client is not None:
            raise LinkError("viewer link already started")
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._connected = asyncio.Event()
        client = make_client(self.settings, self._client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        s = self.settings
        try:
            client.connect_async(
                s.host, s.port, keepalive=s.keepalive_s, clean_start=False,
                properties=connect_properties(self._session_expiry_s),
            )
        except (OSError, ValueError) as err:
            raise LinkError(f"viewer: cannot connect to {s.host}:{s.port}: {err}") from err
        client.loop_start()
        self._client = client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        for future, site, kind in list(self._pending.values()):
            if not future.done():
                future.set_exception(LinkError(f"viewer link stopped during {site} {kind}"))
        if self._connected is not None:
            self._connected.clear()

    async def __aenter__(self) -> ViewerLink:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def wait_connected(self, timeout_s: float) -> bool:
        assert self._connected is not None, "start() first"
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for (see request)
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    def last_seq(self, site: str) -> int | None:
        """Highest sequence number seen from `site` (to persist, and pass back as last_seqs)."""
        return self._tracker.last_seq(site)

    # -- receiving ----------------------------------------------------------------------
    async def receive(self) -> ViewerMessage:
        assert self._queue is not None, "start() first"
        return await self._queue.get()

    async def messages(self) -> AsyncIterator[ViewerMessage]:
        """Every message, in arrival order, deduplicated; SeqGap right before the message
        whose arrival revealed the gap."""
        while True:
            yield await self.receive()

    # -- requests -----------------------------------------------------------------------
    async def request(
        self, site: str, kind: str, args: Mapping[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> dict[str, Any]:
        """Send a command; return the site's result dict. Raises RequestFailed (the site
        refused: .code), RequestTimeout, or LinkError (not connected)."""
        if self._client is None or self._loop is None or not self.connected:
            raise LinkError(f"viewer: not connected to the broker, cannot send {kind} to {site}")
        topic = self._topics.command(site, kind)
        correlation = uuid.uuid4().bytes
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._pending[correlation] = (future, site, kind)
        try:
            props = publish_properties(
                correlation=correlation,
                response_topic=self._topics.reply(site, self.client_name),
                expiry_s=timeout_s,
                content_type="application/json",
            )
            info = self._client.publish(
                topic, encode_request(self.sender, args or {}), qos=1, properties=props
            )
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise LinkError(f"viewer: publish of {kind} to {site} failed: rc {info.rc}")
            # not wait_for: on Python 3.11 it drops a cancellation that arrives in the same
            # loop turn as the reply (CPython gh-86296), and the caller would not stop
            async with asyncio.timeout(timeout_s):
                payload = await future
        except TimeoutError:
            raise RequestTimeout(site, kind, timeout_s) from None
        finally:
            self._pending.pop(correlation, None)
        return decode_response(site, kind, payload)

    # -- paho callbacks (network thread) ------------------------------------------------
    def _to_loop(self, callback: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                    _p: Any) -> None:
        if reason.is_failure:
            log.error("viewer: broker %s:%d refused the connection: %s",
                      self.settings.host, self.settings.port, reason_text(reason))
            return
        # retainHandling 0: the retained site and camera statuses and stats come again on
        # every (re)connect, so a restarted viewer (or one back from an outage) has the
        # current state at once; retained copies never count for dedupe or gaps.
        client.subscribe(self._topics.everything(),
                         options=SubscribeOptions(qos=1, retainHandling=0))
        log.info("viewer: connected to %s:%d", self.settings.host, self.settings.port)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[ReasonCode],
                      _p: Any) -> None:
        """`connected` only once messages can reach us: after the SUBACK."""
        if any(reason.is_failure for reason in reasons):
            log.error("viewer: broker refused the subscription to %s: %s (check the ACL)",
                      self._topics.everything(), ", ".join(reason_text(r) for r in reasons))
        self._to_loop(self._set_connected, True)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._to_loop(self._set_connected, False)
        if self._client is not None:
            log.warning("viewer: disconnected from broker (%s); retrying", reason_text(reason))

    def _set_connected(self, up: bool) -> None:
        if self._connected is not None:
            (self._connected.set if up else self._connected.clear)()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = self._topics.parse(msg.topic)
            self._dispatch(parsed, bytes(msg.payload), bool(msg.retain), msg.properties)
        except ValidationError as err:
            self.invalid_count += 1
            self._log_invalid(msg.topic, err)
        except Exception:  # never kill paho's thread
            log.exception("viewer: failed to handle %s", msg.topic)

    def _log_invalid(self, topic: str, err: ValidationError) -> None:
        """At most one line a minute per site: a misbehaving site must not flood the log."""
        levels, depth = topic.split("/"), len(self._topics.prefix.split("/"))
        site = levels[depth] if len(levels) > depth else topic
        now = time.monotonic()
        last, suppressed = self._invalid_logged.get(site, (-math.inf, 0))
        if now - last < 60.0:
            self._invalid_logged[site] = (last, suppressed + 1)
            return
        self._invalid_logged[site] = (now, 0)
        log.warning("viewer: site %s: invalid message on %s: %s (%d more suppressed)",
                    site, topic, err, suppressed)

    def _dispatch(self, parsed: ParsedTopic, payload: bytes, retained: bool,
                  props: Any) -> None:
        kind, site = parsed.kind, parsed.site
        if kind is TopicKind.REPLY:
            correlation = getattr(props, "CorrelationData", None)
            if parsed.client == self.client_name and correlation is not None:
                self._to_loop(self._resolve, bytes(correlation), site, payload)
            return
        if kind is TopicKind.COMMAND:
            return  # requests (ours or another viewer's)
        if kind is TopicKind.SITE_STATUS:
            if payload not in (SITE_ONLINE, SITE_OFFLINE):
                raise ValidationError("payload", "site status must be 'online' or 'offline'")
            self._deliver(SiteStatus(site, payload == SITE_ONLINE))
        elif kind is TopicKind.SNAPSHOT:
            assert parsed.camera is not None and parsed.event_id is not None
            self._deliver(Snapshot(site, parsed.camera, parsed.event_id, payload))
        elif kind is TopicKind.LIVE:
            assert parsed.camera is not None and parsed.stream is not None
            self._deliver(LiveChunk(site, parsed.camera, parsed.stream, payload))
        else:
            message = _JSON_TYPES[kind].from_json(payload)
            if getattr(message, "site", None) != site:
                raise ValidationError("site", f"payload names another site than {site!r}")
            if parsed.camera is not None and getattr(message, "camera", None) != parsed.camera:
                raise ValidationError("camera", "payload names another camera than its topic")
            seq = getattr(message, "seq", 0)
            if seq and not retained:
                self._deliver_sequenced(message, seq)  # type: ignore[arg-type]
            else:
                self._deliver(message)  # type: ignore[arg-type]

    def _deliver_sequenced(self, message: SequencedMessage, seq: int) -> None:
        is_new, gap = self._tracker.check(message.site, seq)
        if gap is not None:
            log.warning("viewer: site %s: sequence gap %d..%d", gap.site, gap.first_seq,
                        gap.last_seq)
            self._deliver(gap)
        if is_new:
            self._deliver(message)
        else:
            self.duplicate_count += 1

    def _deliver(self, message: ViewerMessage) -> None:
        self._to_loop(self._enqueue, message)

    def _enqueue(self, message: ViewerMessage) -> None:
        assert self._queue is not None
        if isinstance(message, LiveChunk) and self._queue.qsize() >= self._queue_max:
            return  # a consumer that lags that far cannot use live video anyway
        self._queue.put_nowait(message)

    def _resolve(self, correlation: bytes, site: str, payload: bytes) -> None:
        pending = self._pending.get(correlation)
        if pending is None:
            return  # late (timed out) or another instance's
        future, want_site, _kind = pending
        if site != want_site:
            log.warning("viewer: reply for a %s request arrived from site %s: ignored",
                        want_site, site)
            return
        if not future.done():
            future.set_result(payload)
