"""The alert desk: motion events from the sites become alerts, stored and pushed to every
permitted browser; acknowledgements are stored, sent to the site and shown to all officers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from police_link.errors import PoliceLinkError, RequestFailed, RequestTimeout
from recorder.clock import Clock
from viewer.accounts import User
from viewer.audit import Action, AuditLog
from viewer.auth import Permission, has_permission
from viewer.db import Row, ViewerDB
from viewer.errors import AcknowledgeError
from viewer.push import Broadcaster

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 5.0
MAX_COMMENT_LEN = 500
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class IncomingEvent:
    """A motion event as the desk needs it (built from police_link.EventMessage)."""

    site: str
    camera: str
    event_id: str
    kind: str  # "motion"
    started_at: float
    ended_at: float | None
    zones: tuple[str, ...]


def alert_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "site": row["site"],
        "camera": row["camera"],
        "event_id": row["event_id"],
        "kind": row["kind"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "zones": json.loads(row["zones"] or "[]"),
        "received_at": row["received_at"],
        "has_snapshot": bool(row.get("has_snapshot", row.get("snapshot") is not None)),
        "acked_at": row["acked_at"],
        "acked_by": row["acked_by"],
        "ack_comment": row["ack_comment"],
        "ack_delivered": bool(row["ack_delivered"]),
    }


def _may_see(user: User, site: str, camera: str) -> bool:
    return has_permission(user, Permission.ALERTS) and user.may_see_camera(site, camera)


class AlertDesk:
    def __init__(
        self, db: ViewerDB, broadcaster: Broadcaster, audit: AuditLog, clock: Clock,
        link: Any | None, *, ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self._db = db
        self._broadcaster = broadcaster
        self._audit = audit
        self._clock = clock
        self._link = link
        self.ack_timeout_s = ack_timeout_s
        self._resending: set[str] = set()  # sites whose pending acks are being resent
        self._tasks: set[asyncio.Task[None]] = set()

    def set_link(self, link: Any | None) -> None:
        self._link = link

    # from the sites

    def on_event(self, event: IncomingEvent) -> int:
        alert_id, created = self._db.upsert_alert(
            {
                "site": event.site, "camera": event.camera, "event_id": event.event_id,
                "kind": event.kind, "started_at": event.started_at, "ended_at": event.ended_at,
                "zones": json.dumps(list(event.zones)), "received_at": self._clock.wall(),
            }
        )
        if created:
            log.info("viewer: site %s camera %s new alert %s (event %s)", event.site,
                     event.camera, alert_id, event.event_id)
        self._publish(alert_id, new=created)
        return alert_id

    def on_snapshot(self, site: str, camera: str, event_id: str, jpeg: bytes) -> None:
        if len(jpeg) > MAX_SNAPSHOT_BYTES or not jpeg.startswith(b"\xff\xd8"):
            log.warning("viewer: site %s camera %s event %s: snapshot is not a JPEG under "
                        "%d bytes; ignored", site, camera, event_id, MAX_SNAPSHOT_BYTES)
            return
        row = self._db.alert_by_event(site, event_id)
        if row is None:  # the snapshot overtook its event: keep it for when it comes
            alert_id, _ = self._db.upsert_alert(
                {"site": site, "camera": camera, "event_id": event_id, "kind": "motion",
                 "started_at": self._clock.wall(), "ended_at": None, "zones": "[]",
                 "received_at": self._clock.wall(), "snapshot": jpeg,
                 "snapshot_type": "image/jpeg"}
            )
        else:
            alert_id = row["id"]
            self._db.update_alert(alert_id, {"snapshot": jpeg, "snapshot_type": "image/jpeg"})
        self._publish(alert_id, new=False)

    def on_site_ack(self, site: str, event_id: str, user: str, acked_at: float,
                    comment: str) -> None:
        """The site confirms an acknowledgement (ours or another viewer's)."""
        row = self._db.alert_by_event(site, event_id)
        if row is None:
            return
        self._db.mark_acks_delivered(row["id"])
        if row["acked_at"] is None or not row["ack_delivered"]:
            self._db.update_alert(
                row["id"],
                {"acked_at": row["acked_at"] or acked_at, "acked_by": row["acked_by"] or user,
                 "ack_comment": row["ack_comment"] if row["acked_at"] else comment,
                 "ack_delivered": 1},
            )
            self._publish(row["id"], new=False)

    # to the browsers

    def _publish(self, alert_id: int, *, new: bool) -> None:
        row = self._db.alert(alert_id)
        if row is None:
            return
        view = alert_view(row)
        message = {"type": "alert", "new": new, "alert": view}
        self._broadcaster.publish(
            lambda user: message if _may_see(user, view["site"], view["camera"]) else None
        )

    def recent_for(self, user: User, limit: int = 100) -> list[dict[str, Any]]:
        if not has_permission(user, Permission.ALERTS):
            return []
        rows = self._db.recent_alerts(limit * 4)
        views = [alert_view(r) for r in rows if user.may_see_camera(r["site"], r["camera"])]
        return views[:limit]

    def snapshot(self, alert_id: int) -> tuple[Row, bytes, str] | None:
        row = self._db.alert(alert_id)
        if row is None or row["snapshot"] is None:
            return None
        return row, row["snapshot"], row["snapshot_type"] or "image/jpeg"

    def alert(self, alert_id: int) -> Row | None:
        return self._db.alert(alert_id)

    # acknowledgement

    async def acknowledge(
        self, alert_id: int, user: User, address: str, comment: str
    ) -> dict[str, Any]:
        """Store the acknowledgement, show it to everybody, then send it to the site.

        Returns the alert view; `ack_delivered` tells whether the site confirmed it. An
        acknowledgement the site did not confirm stays stored and shown (with its error).
        """
        row = self._db.alert(alert_id)
        if row is None:
            raise AcknowledgeError(f"alert {alert_id} does not exist")
        if row["acked_at"] is not None:
            raise AcknowledgeError(
                f"alert {alert_id} was already acknowledged by {row['acked_by']}"
            )
        site, camera, now = row["site"], row["camera"], self._clock.wall()
        ack_id = self._db.insert_ack(
            {"alert_id": alert_id, "username": user.username, "address": address,
             "comment": comment, "at": now, "delivered": 0, "error": None}
        )
        self._db.update_alert(
            alert_id, {"acked_at": now, "acked_by": user.username, "ack_comment": comment}
        )
        self._publish(alert_id, new=False)
        self._audit.record(Action.ACKNOWLEDGE, username=user.username, address=address,
                           site=site, camera=camera, alert_id=alert_id,
                           event_id=row["event_id"], comment=comment)
        error = await self._send_ack(row, user.username, comment)
        self._db.update_ack(ack_id, {"delivered": int(error is None), "error": error})
        if error is None:
            self._db.update_alert(alert_id, {"ack_delivered": 1})
            self._publish(alert_id, new=False)
        else:
            log.warning("viewer: site %s camera %s alert %s: acknowledgement not delivered: %s",
                        site, camera, alert_id, error)
        updated = self._db.alert(alert_id)
        assert updated is not None
        view = alert_view(updated)
        view["ack_error"] = error
        return view

    async def _send_ack(self, row: Row, username: str, comment: str) -> str | None:
        if self._link is None:
            return "no broker configured"
        payload = {"event_id": row["event_id"], "camera": row["camera"],
                   "user": username, "comment": comment}
        try:
            await self._link.request(row["site"], "ack", payload, timeout_s=self.ack_timeout_s)
        except RequestTimeout:
            return "site did not answer"
        except RequestFailed as err:
            return f"site refused: {err.code}: {err.message}"
        except PoliceLinkError as err:
            return f"link error: {err}"
        return None

    def prune(self, retain_days: float) -> int:
        """Forget alerts older than retain_days (the audit log keeps who acknowledged)."""
        removed = self._db.prune_alerts(self._clock.wall() - retain_days * 86400)
        if removed:
            log.info("viewer: removed %d alerts older than %g days", removed, retain_days)
        return removed

    def schedule_resend(self, site: str) -> None:
        """The site is back: send the acknowledgements it has not confirmed (in order)."""
        if site in self._resending or self._link is None:
            return
        task = asyncio.get_running_loop().create_task(self._resend(site))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resend(self, site: str) -> None:
        self._resending.add(site)
        try:
            for row in self._db.pending_acks(site):
                error = await self._send_ack(row, row["ack_username"], row["ack_comment_text"])
                if error is not None:
                    log.warning("viewer: site %s camera %s alert %s: acknowledgement still "
                                "not delivered: %s", site, row["camera"], row["id"], error)
                    return
                log.info("viewer: site %s camera %s alert %s: acknowledgement delivered late",
                         site, row["camera"], row["id"])
                self._db.update_ack(row["ack_id"], {"delivered": 1, "error": None})
                self._db.update_alert(row["id"], {"ack_delivered": 1})
                self._publish(row["id"], new=False)
        finally:
            self._resending.discard(site)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
