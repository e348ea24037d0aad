"""Routes what the police link delivers (police_link.messages, already validated) to the
alert desk and the health board."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from police_link.messages import (
    AckMessage,
    AlarmMessage,
    CameraStatusMessage,
    DropReport,
    EventMessage,
    LiveChunk,
    SeqGap,
    SiteStatus,
    Snapshot,
    StatsMessage,
)
from viewer.desk import AlertDesk, IncomingEvent
from viewer.health import HealthBoard

log = logging.getLogger(__name__)


class Feed:
    def __init__(self, desk: AlertDesk, health: HealthBoard) -> None:
        self._desk = desk
        self._health = health
        # viewer.live's LiveHub.handle, set by create_app when live view is mounted
        self.live_handler: Callable[[object], bool] | None = None

    def handle(self, message: object) -> None:
        """One message from ViewerLink; unknown types (live chunks...) are not ours."""
        match message:
            case SiteStatus(site=site, online=online):
                self._health.set_site_online(site, online)
                if online:
                    self._desk.schedule_resend(site)
            case EventMessage():
                self._health.site_seen(message.site)
                self._desk.on_event(
                    IncomingEvent(
                        site=message.site, camera=message.camera, event_id=message.event_id,
                        kind="motion", started_at=message.start_unix_s,
                        ended_at=message.end_unix_s, zones=tuple(message.zones),
                    )
                )
            case Snapshot(site=site, camera=camera, event_id=event_id, jpeg=jpeg):
                self._health.site_seen(site)
                self._desk.on_snapshot(site, camera, event_id, jpeg)
            case CameraStatusMessage():
                self._health.set_camera(message.site, message.camera, message.state,
                                        message.since_unix_s, message.detail)
            case AlarmMessage():
                self._health.set_alarm(message.site, message.kind, message.camera,
                                       message.active, message.since_unix_s, message.detail)
            case StatsMessage():
                self._health.set_disk(message.site, free_bytes=message.disk_free_bytes,
                                      total_bytes=message.disk_total_bytes)
            case AckMessage():
                self._health.site_seen(message.site)
                self._desk.on_site_ack(message.site, message.event_id, message.user,
                                       message.acked_unix_s, message.comment)
            case DropReport():
                log.warning("viewer: site %s dropped messages to stay within its outbox: %s "
                            "(%d bytes)", message.site, dict(message.counts),
                            message.dropped_bytes)
            case SeqGap(site=site, first_seq=first, last_seq=last):
                log.warning("viewer: site %s messages %d..%d missing", site, first, last)
            case LiveChunk():
                if self.live_handler is not None:
                    self.live_handler(message)
            case _:
                log.debug("viewer: ignoring %s", type(message).__name__)

    async def pump(self, link: Any) -> None:
        """Feed every message of a started ViewerLink until cancelled."""
        try:
            async for message in link.messages():
                try:
                    self.handle(message)
                except Exception:
                    log.exception("viewer: could not handle %s from site %s",
                                  type(message).__name__, getattr(message, "site", "?"))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("viewer: the police link feed stopped; alerts will not arrive")
            raise
