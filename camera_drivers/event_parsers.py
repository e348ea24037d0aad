"""ONVIF event notifications into CameraEvents: a registry keyed by topic.

Each vendor names the same thing differently (a motion alarm is `VideoSource/MotionAlarm`
on most cameras, `RuleEngine/CellMotionDetector/Motion` on Hikvision/Dahua-style
firmwares, with `IsMotion` instead of `State`), so each topic gets one small function.
Topics are matched without namespace prefixes (`tns1:`, `tnsaxis:`...), on whole path
segments, longest registered prefix first. An unknown topic is logged once per camera.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from camera_drivers.models import CameraEvent, CameraEventKind

log = logging.getLogger(__name__)

_TRUE = frozenset({"true", "1", "on", "yes"})


@dataclass(frozen=True)
class Notification:
    """One wsnt:NotificationMessage, decoded to plain values."""

    topic: str  # namespace prefixes removed: "VideoSource/MotionAlarm"
    property_operation: str | None = None  # "Initialized", "Changed", "Deleted" or None
    utc_time: dt.datetime | None = None
    source: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


Parser = Callable[[Notification], CameraEvent | None]
PARSERS: dict[str, Parser] = {}


def parser(*topics: str) -> Callable[[Parser], Parser]:
    """Register a function as the parser of the given topics (without prefixes)."""

    def register(func: Parser) -> Parser:
        for topic in topics:
            PARSERS[topic] = func
        return func

    return register


def normalize_topic(topic: str) -> str:
    """`tns1:RuleEngine/tnsaxis:Foo` -> `RuleEngine/Foo`."""
    return "/".join(part.rpartition(":")[2] for part in topic.strip().split("/") if part)


def find_parser(topic: str) -> Parser | None:
    parts = topic.split("/")
    for length in range(len(parts), 0, -1):
        found = PARSERS.get("/".join(parts[:length]))
        if found is not None:
            return found
    return None


def _flag(items: dict[str, str], *names: str) -> bool | None:
    for name in names:
        if name in items:
            return items[name].strip().lower() in _TRUE
    return None


def _first_source(n: Notification) -> str | None:
    for key in ("VideoSourceToken", "Source", "VideoSourceConfigurationToken", "Rule"):
        if key in n.source:
            return n.source[key]
    return next(iter(n.source.values()), None)


def _state_event(kind: CameraEventKind, n: Notification, *names: str) -> CameraEvent | None:
    active = _flag(n.data, *names)
    if active is None:
        log.debug("event %s without any of %s in its data: %s", n.topic, names, n.data)
        return None
    return CameraEvent(
        kind=kind,
        active=active,
        topic=n.topic,
        source=_first_source(n),
        camera_time=n.utc_time,
        initial=n.property_operation == "Initialized",
    )


@parser("VideoSource/MotionAlarm")
def _motion_alarm(n: Notification) -> CameraEvent | None:
    return _state_event(CameraEventKind.MOTION, n, "State")


@parser("RuleEngine/CellMotionDetector/Motion")
def _cell_motion(n: Notification) -> CameraEvent | None:
    return _state_event(CameraEventKind.MOTION, n, "IsMotion", "State")


@parser("RuleEngine/TamperDetector/Tamper")
def _tamper_rule(n: Notification) -> CameraEvent | None:
    return _state_event(CameraEventKind.TAMPER, n, "IsTamper", "State")


@parser("VideoSource/GlobalSceneChange")  # .../ImagingService, /AnalyticsService...
def _scene_change(n: Notification) -> CameraEvent | None:
    return _state_event(CameraEventKind.TAMPER, n, "State")


@parser("VideoSource/SignalLoss")
def _signal_loss(n: Notification) -> CameraEvent | None:
    return _state_event(CameraEventKind.SIGNAL_LOSS, n, "State")


class EventParser:
    """Parses one camera's notifications; remembers which unknown topics it has logged."""

    def __init__(self, camera_name: str):
        self.camera_name = camera_name
        self._unknown_logged: set[str] = set()

    def parse(self, notification: Notification) -> CameraEvent | None:
        found = find_parser(notification.topic)
        if found is None:
            if notification.topic not in self._unknown_logged:
                self._unknown_logged.add(notification.topic)
                log.info(
                    "camera %s: ignoring events on unknown topic %s (logged once)",
                    self.camera_name, notification.topic,
                )
            return None
        return found(notification)


# -- decoding zeep's objects (or raw XML where zeep did not know the schema) -------------


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    if hasattr(obj, "tag") and hasattr(obj, "attrib"):  # an lxml element
        if name in obj.attrib:
            return obj.attrib[name]
        for child in obj:
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == name:
                return child
        return None
    return getattr(obj, name, None)


def _items(container: Any) -> dict[str, str]:
    if container is None:
        return {}
    if hasattr(container, "tag"):
        simple = [c for c in container if str(c.tag).endswith("SimpleItem")]
    else:
        simple = _get(container, "SimpleItem") or []
    items = {}
    for item in simple:
        name, value = _get(item, "Name"), _get(item, "Value")
        if name is not None and value is not None:
            items[str(name)] = str(value)
    return items


def _utc(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def notification_from_zeep(message: Any) -> Notification:
    """A wsnt:NotificationMessage as zeep returns it from PullMessages."""
    topic_obj = _get(message, "Topic")
    topic = _get(topic_obj, "_value_1") if not isinstance(topic_obj, str) else topic_obj
    if topic is None and hasattr(topic_obj, "text"):
        topic = topic_obj.text
    body = _get(_get(message, "Message"), "_value_1")
    if body is None:
        body = _get(message, "Message")
    if hasattr(body, "tag") and not str(body.tag).endswith("}Message"):
        body = _get(body, "Message") or body  # wsnt:Message wrapping tt:Message
    return Notification(
        topic=normalize_topic(str(topic or "")),
        property_operation=_get(body, "PropertyOperation"),
        utc_time=_utc(_get(body, "UtcTime")),
        source=_items(_get(body, "Source")),
        data=_items(_get(body, "Data")),
    )
