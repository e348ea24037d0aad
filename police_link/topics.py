"""Topic names of the protocol (docs/mqtt.md) and their parsing. No I/O here.

Layout under the prefix (default "dozor"), one subtree per site:

    <p>/<site>/status                      "online" / "offline" (retained, the will)
    <p>/<site>/events | alarms | acks | dropped    JSON, through the outbox
    <p>/<site>/stats                       JSON, periodic, retained
    <p>/<site>/cmd/<kind>                  command requests (viewer -> site)
    <p>/<site>/reply/<client>              command responses (site -> viewer)
    <p>/<site>/<camera>/status             JSON (retained)
    <p>/<site>/<camera>/snapshot/<event>   JPEG
    <p>/<site>/<camera>/live/<stream>      fMP4 fragments (QoS 0)

Responses stay inside the answering site's subtree so a site's ACL never needs to
reach outside `<p>/<site>/#` (docs/security.md).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,95}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,23}(\.[a-z][a-z0-9_]{0,23}){0,2}$")

# Words used at the camera level of the tree: a camera may not be called so.
RESERVED_CAMERA_NAMES = frozenset(
    {"status", "events", "stats", "alarms", "acks", "dropped", "cmd", "reply"}
)


def check_name(value: object, field: str, *, exc: type[ValidationError] = ValidationError) -> str:
    """A site, camera, stream or client name: one topic level, no wildcards."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise exc(field, f"must match {NAME_RE.pattern} (got {value!r})")
    return value


def check_camera_name(value: object, field: str = "camera") -> str:
    check_name(value, field)
    if value in RESERVED_CAMERA_NAMES:
        raise ValidationError(field, f"{value!r} is a reserved topic word")
    return str(value)


def check_event_id(value: object, field: str = "event_id") -> str:
    if not isinstance(value, str) or not EVENT_ID_RE.match(value):
        raise ValidationError(field, f"must match {EVENT_ID_RE.pattern} (got {value!r})")
    return value


def check_kind(value: object, field: str = "kind") -> str:
    if not isinstance(value, str) or not KIND_RE.match(value):
        raise ValidationError(field, f"must match {KIND_RE.pattern} (got {value!r})")
    return value


def check_prefix(value: object, field: str = "prefix") -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty topic prefix")
    for level in value.split("/"):
        check_name(level, field)
    return value


class TopicKind(enum.Enum):
    SITE_STATUS = "site_status"
    EVENTS = "events"
    ALARMS = "alarms"
    ACKS = "acks"
    DROPPED = "dropped"
    STATS = "stats"
    COMMAND = "command"
    REPLY = "reply"
    CAMERA_STATUS = "camera_status"
    SNAPSHOT = "snapshot"
    LIVE = "live"


_SITE_LEVEL = {
    "status": TopicKind.SITE_STATUS,
    "events": TopicKind.EVENTS,
    "alarms": TopicKind.ALARMS,
    "acks": TopicKind.ACKS,
    "dropped": TopicKind.DROPPED,
    "stats": TopicKind.STATS,
}


@dataclass(frozen=True)
class ParsedTopic:
    kind: TopicKind
    site: str
    camera: str | None = None
    event_id: str | None = None
    stream: str | None = None
    command: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class Topics:
    """Builds and parses topic names under one prefix."""

    prefix: str = "dozor"

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    # -- builders (arguments are checked: a bad name must never become a topic) --
    def _site(self, site: str) -> str:
        return f"{self.prefix}/{check_name(site, 'site')}"

    def site_status(self, site: str) -> str:
        return f"{self._site(site)}/status"

    def events(self, site: str) -> str:
        return f"{self._site(site)}/events"

    def alarms(self, site: str) -> str:
        return f"{self._site(site)}/alarms"

    def acks(self, site: str) -> str:
        return f"{self._site(site)}/acks"

    def dropped(self, site: str) -> str:
        return f"{self._site(site)}/dropped"

    def stats(self, site: str) -> str:
        return f"{self._site(site)}/stats"

    def command(self, site: str, kind: str) -> str:
        return f"{self._site(site)}/cmd/{check_kind(kind)}"

    def command_filter(self, site: str) -> str:
        return f"{self._site(site)}/cmd/+"

    def reply(self, site: str, client: str) -> str:
        return f"{self._site(site)}/reply/{check_name(client, 'client')}"

    def reply_filter(self, client: str) -> str:
        return f"{self.prefix}/+/reply/{check_name(client, 'client')}"

    def camera_status(self, site: str, camera: str) -> str:
        return f"{self._site(site)}/{check_camera_name(camera)}/status"

    def snapshot(self, site: str, camera: str, event_id: str) -> str:
        return f"{self._site(site)}/{check_camera_name(camera)}/snapshot/{check_event_id(event_id)}"

    def live(self, site: str, camera: str, stream: str) -> str:
        return f"{self._site(site)}/{check_camera_name(camera)}/live/{check_name(stream, 'stream')}"

    def everything(self) -> str:
        return f"{self.prefix}/#"

    # -- parsing --
    def parse(self, topic: str) -> ParsedTopic:
        """Classify a topic of this protocol; ValidationError("topic", ...) otherwise."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise ValidationError("topic", f"{topic!r} is not under {self.prefix!r}")
        levels = topic[len(head):].split("/")
        try:
            return self._parse_levels(levels)
        except ValidationError as err:
            raise ValidationError("topic", f"{topic!r}: {err}") from err

    def _parse_levels(self, levels: list[str]) -> ParsedTopic:
        site = check_name(levels[0], "site")
        if len(levels) == 2 and levels[1] in _SITE_LEVEL:
            return ParsedTopic(_SITE_LEVEL[levels[1]], site)
        if len(levels) == 3 and levels[1] == "cmd":
            return ParsedTopic(TopicKind.COMMAND, site, command=check_kind(levels[2]))
        if len(levels) == 3 and levels[1] == "reply":
            return ParsedTopic(TopicKind.REPLY, site, client=check_name(levels[2], "client"))
        if len(levels) >= 3:
            camera = check_camera_name(levels[1])
            if len(levels) == 3 and levels[2] == "status":
                return ParsedTopic(TopicKind.CAMERA_STATUS, site, camera=camera)
            if len(levels) == 4 and levels[2] == "snapshot":
                return ParsedTopic(
                    TopicKind.SNAPSHOT, site, camera=camera, event_id=check_event_id(levels[3])
                )
            if len(levels) == 4 and levels[2] == "live":
                return ParsedTopic(
                    TopicKind.LIVE, site, camera=camera, stream=check_name(levels[3], "stream")
                )
        raise ValidationError("topic", "unknown topic shape")
