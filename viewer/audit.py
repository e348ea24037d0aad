"""The audit trail: who did what, when, from where. Administrators read and filter it."""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any

from recorder.clock import Clock
from viewer.db import ViewerDB

log = logging.getLogger(__name__)


class Action(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    LIVE_VIEW = "live_view"
    ACKNOWLEDGE = "acknowledge"
    CONFIG_CHANGE = "config_change"  # users, roles, scopes, passwords (web or CLI)
    PERMISSION_DENIED = "permission_denied"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    username: str
    address: str
    action: str
    outcome: str
    site: str | None
    camera: str | None
    detail: dict[str, Any]


class AuditLog:
    def __init__(self, db: ViewerDB, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def record(
        self,
        action: Action,
        *,
        username: str,
        address: str,
        outcome: str = "ok",
        site: str | None = None,
        camera: str | None = None,
        **detail: Any,
    ) -> None:
        self._db.insert_audit(
            {
                "at": self._clock.wall(),
                "username": username,
                "address": address,
                "action": action.value,
                "outcome": outcome,
                "site": site,
                "camera": camera,
                "detail": json.dumps(detail, ensure_ascii=False, default=str),
            }
        )
        log.info(
            "viewer audit: %s %s by %s from %s site=%s camera=%s %s",
            action.value, outcome, username, address, site or "-", camera or "-", detail or "",
        )

    def query(
        self,
        *,
        username: str | None = None,
        action: Action | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        rows = self._db.query_audit(
            username=username, action=action.value if action else None, since=since,
            until=until, limit=limit,
        )
        return [
            AuditEntry(
                id=r["id"], at=r["at"], username=r["username"], address=r["address"],
                action=r["action"], outcome=r["outcome"], site=r["site"], camera=r["camera"],
                detail=json.loads(r["detail"] or "{}"),
            )
            for r in rows
        ]
