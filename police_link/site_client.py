"""The site (recorder) end of the police link.

Threads: callers (ingest, motion, health threads) only put work on a queue and return;
one worker thread owns the outbox (append, take, remove) and hands rows to paho, whose
network thread runs the connection (reconnecting forever with back-off) and calls back
into queues; one command thread validates requests and runs handlers.

    publish_event / set_camera_status / publish_alarm   -> work queue -> outbox (fsync)
        -> paho publish QoS 1 (at most `inflight_max` rows in flight)
        -> PUBACK: success code deletes the row, a failure code (e.g. 0x87 not authorized)
           deletes it too but is logged and counted as rejected: retrying cannot help.
    publish_stats / publish_live / command replies  -> straight to paho (not durable)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from ._mqtt import is_success, make_client, publish_properties, reason_text
from .commands import (
    COMMAND_SCHEMAS,
    CommandHandler,
    CommandRequest,
    CommandSchema,
    ErrorCode,
    encode_error,
    encode_response,
    known_cameras,
    parse_request,
)
from .errors import CommandError, LinkError, OutboxError, ValidationError
from .messages import (
    SITE_OFFLINE,
    SITE_ONLINE,
    AckMessage,
    AlarmMessage,
    CameraStatusMessage,
    EventMessage,
    StatsMessage,
)
from .outbox import Outbox, OutboxEntry, OutboxRow
from .settings import BrokerSettings
from .topics import TopicKind, Topics, check_camera_name, check_name

log = logging.getLogger(__name__)

_STOP = ("stop",)
BACKLOG_MAX = 10_000  # messages kept in memory while the outbox cannot be written


@dataclass(frozen=True)
class LinkStats:
    """Counters for the site's own health report (StatsMessage.outbox_*)."""

    connected: bool
    outbox_pending: int
    outbox_bytes: int
    published: int  # rows acknowledged by the broker
    rejected: int  # rows the broker refused (logged, removed)
    dropped: int  # messages discarded to keep the outbox (or the memory backlog) bounded
    commands_ok: int
    commands_failed: int
    live_dropped: int  # fragments too big, or dropped by publish_live(drop_if_backlogged=True)


class SiteLink:
    """One site's outbound MQTT connection. All publish_* methods are thread-safe and
    return at once; the durable ones may be called before start() (they wait in the
    outbox)."""

    def __init__(
        self,
        site: str,
        settings: BrokerSettings,
        outbox_path: str,
        *,
        outbox_max_bytes: int = 256 * 1024 * 1024,
        cameras: Iterable[str] = (),
        allowed_senders: Iterable[str] | None = None,
        inflight_max: int = 32,
        reply_ttl_s: float = 30.0,
        command_queue_max: int = 64,
        max_message_bytes: int = 4 * 1024 * 1024,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.site = check_name(site, "site")
        # Must stay under the broker's max_packet_size (8 MiB in config/mosquitto): mosquitto
        # disconnects a client that sends a bigger packet, and paho would resend it forever.
        self._max_message_bytes = max_message_bytes
        self.settings = settings
        self._topics = Topics(settings.prefix)
        self._wall = wall
        self._cameras = known_cameras(cameras)
        self._allowed_senders = None if allowed_senders is None else frozenset(allowed_senders)
        if not 1 <= inflight_max <= 1000:
            raise ValidationError("inflight_max", "must be 1..1000")
        self._inflight_max = inflight_max
        self._reply_ttl_s = reply_ttl_s
        self._outbox = Outbox(
            outbox_path, site=site, max_bytes=outbox_max_bytes, topics=self._topics, wall=wall
        )
        self._handlers: dict[str, tuple[CommandHandler | None, CommandSchema]] = {
            "ack": (None, COMMAND_SCHEMAS["ack"]),  # accepted and broadcast even unhandled
        }
        self._handlers_lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._commands: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=command_queue_max)
        self._inflight: dict[int, OutboxRow] = {}  # mid -> row; worker thread only
        self._connected = threading.Event()
        self._started = False
        self._stopped = False
        self._published = self._rejected = self._dropped = 0
        self._commands_ok = self._commands_failed = 0
        self._live_dropped = 0
        self._store_failing = False
        self._store_error_logged = -math.inf  # monotonic time of the last "cannot store" line
        self._mem_dropped: dict[str, int] = {}  # dropped before reaching the outbox
        self._mem_dropped_bytes = 0
        self._client = make_client(settings, settings.client_id or f"dozor-site-{site}")
        self._client.will_set(
            self._topics.site_status(site), SITE_OFFLINE, qos=1, retain=True
        )
        self._client.max_inflight_messages_set(inflight_max)
        self._client.max_queued_messages_set(0)  # bounded by our window instead
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._worker = threading.Thread(
            target=self._run_worker, name=f"police-link-{site}", daemon=True
        )
        self._command_thread = threading.Thread(
            target=self._run_commands, name=f"police-link-cmd-{site}", daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the threads and connect in the background (retrying forever)."""
        if self._started:
            raise LinkError(f"site {self.site}: already started")
        self._started = True
        self._worker.start()
        self._command_thread.start()
        s = self.settings
        try:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
        except (OSError, ValueError) as err:
            raise LinkError(f"site {self.site}: cannot connect to {s.host}:{s.port}: {err}") \
                from err
        self._client.loop_start()
        log.info("site %s: police link starting (%s:%d, outbox %d rows pending)",
                 self.site, s.host, s.port, self._outbox.pending_count)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Store what was queued, say "offline" (if connected), disconnect. Undelivered rows
        stay in the outbox for the next start."""
        if self._stopped:
            return
        self._stopped = True
        if not self._started:
            self._outbox.close()
            return
        self._commands.put(_STOP)
        self._command_thread.join(timeout_s)
        self._work.put(_STOP)
        self._worker.join(timeout_s)
        if self._connected.is_set():
            info = self._client.publish(
                self._topics.site_status(self.site), SITE_OFFLINE, qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(min(timeout_s, 2.0))
        self._client.disconnect()
        self._client.loop_stop()
        self._outbox.close()
        log.info("site %s: police link stopped", self.site)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stats(self) -> LinkStats:
        return LinkStats(
            connected=self.connected,
            outbox_pending=self._outbox.pending_count,
            outbox_bytes=self._outbox.pending_bytes,
            published=self._published,
            rejected=self._rejected,
            dropped=self._dropped,
            commands_ok=self._commands_ok,
            commands_failed=self._commands_failed,
            live_dropped=self._live_dropped,
        )

    # -- durable messages ---------------------------------------------------------------
    def publish_event(self, msg: EventMessage, snapshot_jpeg: bytes | None = None) -> None:
        """Queue an event change (and its JPEG, published right after it; a JPEG over
        max_message_bytes is left out, with an error logged)."""
        self._check_site(msg.site)
        entries = []
        if snapshot_jpeg is not None and len(snapshot_jpeg) > self._max_message_bytes:
            # the alert matters more than its picture: send it without one
            log.error("site %s camera %s: snapshot of event %s is %d bytes, more than "
                      "max_message_bytes (%d): alert sent without it", self.site, msg.camera,
                      msg.event_id, len(snapshot_jpeg), self._max_message_bytes)
            snapshot_jpeg = None
        if snapshot_jpeg is not None:
            topic = self._topics.snapshot(self.site, msg.camera, msg.event_id)
            if msg.snapshot is None:
                msg = dataclasses.replace(msg, snapshot=topic)
            entries.append(OutboxEntry("snapshot", topic, payload=bytes(snapshot_jpeg)))
        entries.insert(0, self._sequenced("event", self._topics.events(self.site), msg))
        self._submit(entries)

    def set_camera_status(self, msg: CameraStatusMessage) -> None:
        self._check_site(msg.site)
        topic = self._topics.camera_status(self.site, msg.camera)
        self._submit([self._sequenced("camera_status", topic, msg, retain=True)])

    def publish_alarm(self, msg: AlarmMessage) -> None:
        self._check_site(msg.site)
        self._submit([self._sequenced("alarm", self._topics.alarms(self.site), msg)])

    def _sequenced(
        self,
        drop_class: str,
        topic: str,
        msg: EventMessage | CameraStatusMessage | AlarmMessage | AckMessage,
        *,
        retain: bool = False,
    ) -> OutboxEntry:
        def build(seq: int) -> bytes:
            return dataclasses.replace(msg, seq=seq).to_json()

        return OutboxEntry(drop_class, topic, build=build, retain=retain)

    def _check_site(self, site: str) -> None:
        if site != self.site:
            raise ValidationError("site", f"message for {site!r} given to site {self.site!r}")

    def _submit(self, entries: list[OutboxEntry]) -> None:
        if self._stopped:
            raise LinkError(f"site {self.site}: police link is stopped")
        self._work.put(("add", entries))

    # -- best-effort messages -----------------------------------------------------------
    def publish_stats(self, msg: StatsMessage) -> bool:
        """Retained, QoS 1, only while connected (the next one replaces a missed one)."""
        self._check_site(msg.site)
        if not self._connected.is_set():
            return False
        info = self._client.publish(self._topics.stats(self.site), msg.to_json(), qos=1,
                                    retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_live(
        self, camera: str, stream: str, payload: bytes, *, drop_if_backlogged: bool = False
    ) -> bool:
        """One fMP4 fragment, QoS 0, never stored: False when not connected.

        Live video shares the site's one connection with alerts. On a slow link a caller
        that can resume at its next keyframe should pass drop_if_backlogged=True: the
        fragment is then dropped (False) while earlier data still waits to be written, so
        video never queues up ahead of alerts."""
        if not self._connected.is_set():
            return False
        if len(payload) > self._max_message_bytes or (
            drop_if_backlogged and self._client.want_write()
        ):
            self._live_dropped += 1
            return False
        topic = self._topics.live(self.site, camera, stream)
        info = self._client.publish(topic, payload, qos=0)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- commands -----------------------------------------------------------------------
    def on_command(
        self, kind: str, handler: CommandHandler, schema: CommandSchema | None = None
    ) -> None:
        """Register the handler of a command kind. It runs on the command thread, gets a
        validated CommandRequest and returns the response payload (a JSON-able dict), or
        raises CommandError(code, message). Kinds not in COMMAND_SCHEMAS need a schema."""
        if schema is None:
            if kind not in COMMAND_SCHEMAS:
                raise ValidationError("schema", f"command {kind!r} needs an argument schema")
            schema = COMMAND_SCHEMAS[kind]
        self._topics.command(self.site, kind)  # validates the kind
        with self._handlers_lock:
            self._handlers[kind] = (handler, schema)

    def set_cameras(self, cameras: Iterable[str]) -> None:
        """Replace the camera names commands may name (after a configuration change)."""
        names = known_cameras(cameras)
        for name in names:
            check_camera_name(name)
        self._cameras = names

    # -- paho callbacks (network thread: never block) ------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                    _p: Any) -> None:
        if reason.is_failure:
            log.error("site %s: broker %s:%d refused the connection: %s", self.site,
                      self.settings.host, self.settings.port, reason_text(reason))
            return
        client.subscribe(self._topics.command_filter(self.site), qos=1)
        self._work.put(("wake",))
        log.info("site %s: connected to %s:%d", self.site, self.settings.host,
                 self.settings.port)

    def _on_subscribe(self, client: mqtt.Client, _u: Any, _mid: int,
                      reasons: list[ReasonCode], _p: Any) -> None:
        """Online (and `connected`) only once commands can reach us: after the SUBACK."""
        if any(reason.is_failure for reason in reasons):
            log.error("site %s: broker refused the command subscription: %s (check the ACL)",
                      self.site, ", ".join(reason_text(r) for r in reasons))
        client.publish(self._topics.site_status(self.site), SITE_ONLINE, qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopped:
            log.warning("site %s: disconnected from broker (%s); retrying with back-off",
                        self.site, reason_text(reason))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._work.put(("acked", mid, reason))

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        received = self._wall()
        props = msg.properties
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        item = ("cmd", msg.topic, bytes(msg.payload), response_topic, correlation, received)
        try:
            self._commands.put_nowait(item)
        except queue.Full:
            log.warning("site %s: command queue full, refusing %s", self.site, msg.topic)
            self._reply(response_topic, correlation, "?", encode_error(
                "?", ErrorCode.BUSY, "site is busy, try again"))

    # -- worker thread: the outbox --------------------------------------------------------
    def _run_worker(self) -> None:
        stopping = False
        # Entries the outbox could not take (disk full, I/O error): kept in memory, oldest
        # first, retried every second, at most BACKLOG_MAX of them.
        backlog: list[OutboxEntry] = []
        while not stopping:
            items: list[tuple[Any, ...]] = []
            try:
                items.append(self._work.get(timeout=1.0 if backlog else None))
                while True:
                    items.append(self._work.get_nowait())
            except queue.Empty:
                pass
            entries: list[OutboxEntry] = []
            done: list[int] = []
            for item in items:
                if item[0] == "add":
                    entries.extend(item[1])
                elif item[0] == "acked":
                    self._settle(item[1], item[2], done)
                elif item[0] == "stop":
                    stopping = True
            backlog = self._store(backlog + entries)
            try:
                self._outbox.remove(done)  # if this fails the rows are sent again: deduped
                self._pump()
            except Exception:  # never let the worker die: log and go on
                log.exception("site %s: outbox worker error", self.site)
                time.sleep(0.5)
        if backlog:
            log.error("site %s: stopping with %d messages the outbox could not store: lost",
                      self.site, len(backlog))

    def _store(self, entries: list[OutboxEntry]) -> list[OutboxEntry]:
        """Append; on failure return what must be retried (bounded: oldest dropped)."""
        if not entries:
            return []
        try:
            if self._mem_dropped:
                self._outbox.record_drop(self._mem_dropped, self._mem_dropped_bytes)
                self._mem_dropped, self._mem_dropped_bytes = {}, 0
            result = self._outbox.append(entries)
        except OutboxError as err:
            self._store_failing = True
            now = time.monotonic()
            if now - self._store_error_logged > 60.0:
                self._store_error_logged = now
                log.error("site %s: cannot store %d messages in the outbox (%s); keeping "
                          "them in memory and retrying every second", self.site,
                          len(entries), err)
            excess = len(entries) - BACKLOG_MAX
            for entry in entries[:max(0, excess)]:
                self._mem_dropped[entry.drop_class] = self._mem_dropped.get(
                    entry.drop_class, 0) + 1
                self._mem_dropped_bytes += len(entry.payload or b"")
                self._dropped += 1
            return entries[max(0, excess):]
        if self._store_failing:
            self._store_failing = False
            self._store_error_logged = -math.inf
            log.warning("site %s: outbox writable again", self.site)
        if result.dropped:
            self._dropped += sum(result.dropped.values())
            log.warning("site %s: outbox full (%d bytes): dropped %s (%d bytes); "
                        "a drop report is queued", self.site, self._outbox.max_bytes,
                        result.dropped, result.dropped_bytes)
        return []

    def _settle(self, mid: int, reason: ReasonCode, done: list[int]) -> None:
        row = self._inflight.pop(mid, None)
        if row is None:
            return
        done.append(row.id)
        if is_success(reason):
            self._published += 1
        else:
            self._rejected += 1
            log.error("site %s: broker refused %s (seq %s): %s; message removed", self.site,
                      row.topic, row.seq, reason_text(reason))

    def _pump(self) -> None:
        room = self._inflight_max - len(self._inflight)
        for row in self._outbox.take(room):
            if len(row.payload) > self._max_message_bytes:  # stored by an older setting
                self._rejected += 1
                log.error("site %s: %s of %d bytes exceeds max_message_bytes: removed",
                          self.site, row.topic, len(row.payload))
                self._outbox.remove([row.id])
                continue
            info = self._client.publish(row.topic, row.payload, qos=1, retain=row.retain)
            self._inflight[info.mid] = row

    # -- command thread ---------------------------------------------------------------------
    def _run_commands(self) -> None:
        while True:
            item = self._commands.get()
            if item == _STOP:
                return
            _, topic, payload, response_topic, correlation, received = item
            try:
                self._handle_command(topic, payload, response_topic, correlation, received)
            except Exception:  # a handler bug must not stop the command loop
                log.exception("site %s: command %s crashed", self.site, topic)

    def _handle_command(self, topic: str, payload: bytes, response_topic: str | None,
                        correlation: bytes | None, received: float) -> None:
        kind = "?"
        try:
            parsed = self._topics.parse(topic)
            if parsed.kind is not TopicKind.COMMAND or parsed.command is None:
                raise CommandError(ErrorCode.BAD_TOPIC, f"{topic} is not a command topic")
            kind = parsed.command
            if parsed.site != self.site:
                raise CommandError(ErrorCode.UNKNOWN_SITE, f"this is site {self.site}")
        except (ValidationError, CommandError) as err:
            log.warning("site %s: bad command topic %s: %s", self.site, topic, err)
            return
        if not self._reply_topic_ok(response_topic):
            log.warning("site %s: command %s without a usable response topic (%r) ignored",
                        self.site, kind, response_topic)
            self._commands_failed += 1
            return
        with self._handlers_lock:
            handler, schema = self._handlers.get(kind, (None, None))
        try:
            request = parse_request(
                site=self.site, kind=kind, payload=payload, schema=schema,
                cameras=self._cameras, allowed_senders=self._allowed_senders,
                received_unix_s=received,
            )
            result = handler(request) if handler is not None else {}
            if not isinstance(result, dict):
                raise CommandError(ErrorCode.INTERNAL, "handler returned no dict")
            if kind == "ack":
                self._broadcast_ack(request)
            body = encode_response(kind, result)
            self._commands_ok += 1
        except CommandError as err:
            self._commands_failed += 1
            log.warning("site %s: command %s refused: %s", self.site, kind, err)
            body = encode_error(kind, err.code, err.message)
        except Exception as err:
            self._commands_failed += 1
            log.exception("site %s: command %s handler failed", self.site, kind)
            body = encode_error(kind, ErrorCode.INTERNAL, f"{type(err).__name__}")
        self._reply(response_topic, correlation, kind, body)

    def _reply_topic_ok(self, response_topic: str | None) -> bool:
        if not response_topic:
            return False
        try:
            parsed = self._topics.parse(response_topic)
        except ValidationError:
            return False
        return parsed.kind is TopicKind.REPLY and parsed.site == self.site

    def _reply(self, response_topic: str | None, correlation: bytes | None, kind: str,
               body: bytes) -> None:
        if not self._reply_topic_ok(response_topic):
            return
        props = publish_properties(
            correlation=correlation, expiry_s=self._reply_ttl_s, content_type="application/json"
        )
        self._client.publish(response_topic, body, qos=1, properties=props)  # type: ignore[arg-type]

    def _broadcast_ack(self, request: CommandRequest) -> None:
        args = request.args
        msg = AckMessage(
            site=self.site, event_id=args["event_id"], user=args["user"],
            acked_unix_s=request.received_unix_s, sender=request.sender,
            comment=args.get("comment", ""), camera=args.get("camera"),
        )
        self._submit([self._sequenced("ack", self._topics.acks(self.site), msg)])
