"""All SQL of the viewer's database (sqlite-utils, WAL): users, sessions, audit, alerts,
acknowledgements, and the sites and cameras seen on the broker.

Used from the event loop thread only; every statement is small.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from viewer.errors import DatabaseError

Row = dict[str, Any]


def _pk(table: sqlite_utils.db.Table) -> int:
    """The rowid of the row just inserted."""
    return int(table.last_pk)  # type: ignore[arg-type]


@contextmanager
def _converted(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as err:
        raise DatabaseError(f"viewer database: {what}: {err}") from err


class ViewerDB:
    def __init__(self, path: Path | str) -> None:
        with _converted(f"open {path}"):
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), isolation_level=None)
            self.db = sqlite_utils.Database(self._conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._create()

    def _t(self, name: str) -> sqlite_utils.db.Table:
        return self.db.table(name)

    def _rows(
        self, table: str, where: str | None = None, args: list[Any] | None = None, **kw: Any
    ) -> list[Row]:
        with _converted(f"read {table}"):
            return list(self._t(table).rows_where(where, args or [], **kw))

    def _first(self, table: str, where: str, args: list[Any]) -> Row | None:
        rows = self._rows(table, where, args, limit=1)
        return rows[0] if rows else None

    def close(self) -> None:
        self._conn.close()

    def _create(self) -> None:
        self._t("users").create(
            {
                "id": int, "username": str, "password_hash": str, "role": str,
                "sites": str, "cameras": str, "language": str, "disabled": int,
                "failed_logins": int, "locked": int, "created_at": float,
                "password_changed_at": float,
            },
            pk="id", not_null={"username", "password_hash", "role"},
            defaults={"disabled": 0, "failed_logins": 0, "locked": 0, "sites": "[]",
                      "cameras": "[]"},
            if_not_exists=True,
        )
        self._t("users").create_index(["username"], unique=True, if_not_exists=True)
        self._t("sessions").create(
            {
                "token_hash": str, "user_id": int, "csrf_token": str, "address": str,
                "created_at": float, "last_seen_at": float,
            },
            pk="token_hash", foreign_keys=[("user_id", "users", "id")], if_not_exists=True,
        )
        self._t("audit").create(
            {
                "id": int, "at": float, "username": str, "address": str, "action": str,
                "outcome": str, "site": str, "camera": str, "detail": str,
            },
            pk="id", if_not_exists=True,
        )
        self._t("audit").create_index(["at"], if_not_exists=True)
        self._t("alerts").create(
            {
                "id": int, "site": str, "camera": str, "event_id": str, "kind": str,
                "started_at": float, "ended_at": float, "zones": str, "received_at": float,
                "snapshot": bytes, "snapshot_type": str, "acked_at": float,
                "acked_by": str, "ack_comment": str, "ack_delivered": int,
            },
            pk="id", defaults={"ack_delivered": 0, "zones": "[]"}, if_not_exists=True,
        )
        self._t("alerts").create_index(["site", "event_id"], unique=True, if_not_exists=True)
        self._t("alerts").create_index(["received_at"], if_not_exists=True)
        self._t("acknowledgements").create(
            {
                "id": int, "alert_id": int, "username": str, "address": str, "comment": str,
                "at": float, "delivered": int, "error": str,
            },
            pk="id", foreign_keys=[("alert_id", "alerts", "id")], if_not_exists=True,
        )
        self._t("sites").create(
            {"site": str, "online": int, "last_seen_at": float, "status": str},
            pk="site", if_not_exists=True,
        )
        self._t("cameras").create(
            {"site": str, "camera": str, "state": str, "since": float,
             "detail": str},
            pk=("site", "camera"), if_not_exists=True,
        )

    # users

    def insert_user(self, row: Row) -> int:
        with _converted("insert user"):
            return _pk(self._t("users").insert(row))

    def user_by_name(self, username: str) -> Row | None:
        return self._first("users", "username = ?", [username])

    def user_by_id(self, user_id: int) -> Row | None:
        return self._first("users", "id = ?", [user_id])

    def list_users(self) -> list[Row]:
        return self._rows("users", order_by="username")

    def count_users(self) -> int:
        with _converted("count users"):
            return self._t("users").count

    def update_user(self, user_id: int, fields: Row) -> None:
        with _converted("update user"):
            self._t("users").update(user_id, fields)

    def add_failed_login(self, user_id: int) -> int:
        """Increment the consecutive failure counter atomically and return it."""
        with _converted("count failed login"):
            self.db.execute(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?", [user_id]
            )
            row = self.user_by_id(user_id)
        return int(row["failed_logins"]) if row else 0

    # sessions

    def insert_session(self, row: Row) -> None:
        with _converted("insert session"):
            self._t("sessions").insert(row)

    def session(self, token_hash: str) -> Row | None:
        return self._first("sessions", "token_hash = ?", [token_hash])

    def touch_session(self, token_hash: str, now: float) -> None:
        with _converted("touch session"):
            self.db.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", [now, token_hash]
            )

    def delete_session(self, token_hash: str) -> None:
        with _converted("delete session"):
            self.db.execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash])

    def delete_user_sessions(self, user_id: int) -> None:
        with _converted("delete sessions"):
            self.db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id])

    def purge_sessions(self, idle_before: float, created_before: float) -> None:
        with _converted("purge sessions"):
            self.db.execute(
                "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
                [idle_before, created_before],
            )

    # audit

    def insert_audit(self, row: Row) -> int:
        with _converted("insert audit"):
            return _pk(self._t("audit").insert(row))

    def query_audit(
        self,
        *,
        username: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
    ) -> list[Row]:
        where, args = [], []
        for column, op, value in (
            ("username", "=", username), ("action", "=", action),
            ("at", ">=", since), ("at", "<", until),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        return self._rows(
            "audit", " AND ".join(where) or None, args, order_by="at DESC, id DESC", limit=limit
        )

    # alerts and acknowledgements

    def upsert_alert(self, row: Row) -> tuple[int, bool]:
        """Insert an alert or update its end time; return (id, created)."""
        with _converted("store alert"):
            existing = self._rows(
                "alerts", "site = ? AND event_id = ?", [row["site"], row["event_id"]], limit=1
            )
            if existing:
                update = {k: v for k, v in row.items() if v is not None and k in (
                    "started_at", "ended_at", "zones", "snapshot", "snapshot_type", "kind")}
                if update:
                    self._t("alerts").update(existing[0]["id"], update)
                return int(existing[0]["id"]), False
            return _pk(self._t("alerts").insert(row)), True

    def alert(self, alert_id: int) -> Row | None:
        return self._first("alerts", "id = ?", [alert_id])

    def alert_by_event(self, site: str, event_id: str) -> Row | None:
        return self._first("alerts", "site = ? AND event_id = ?", [site, event_id])

    def recent_alerts(self, limit: int) -> list[Row]:
        return self._rows(
            "alerts",
            select="id, site, camera, event_id, kind, started_at, ended_at, zones, "
            "received_at, snapshot IS NOT NULL AS has_snapshot, acked_at, acked_by, "
            "ack_comment, ack_delivered",
            order_by="received_at DESC, id DESC",
            limit=limit,
        )

    def update_alert(self, alert_id: int, fields: Row) -> None:
        with _converted("update alert"):
            self._t("alerts").update(alert_id, fields)

    def insert_ack(self, row: Row) -> int:
        with _converted("store acknowledgement"):
            return _pk(self._t("acknowledgements").insert(row))

    def pending_acks(self, site: str) -> list[Row]:
        """Acknowledgements of `site` not yet confirmed, oldest first, with their alert."""
        with _converted("read pending acknowledgements"):
            cursor = self.db.execute(
                "SELECT alerts.*, acknowledgements.id AS ack_id, "
                "acknowledgements.username AS ack_username, "
                "acknowledgements.comment AS ack_comment_text "
                "FROM acknowledgements JOIN alerts ON alerts.id = acknowledgements.alert_id "
                "WHERE alerts.site = ? AND acknowledgements.delivered = 0 "
                "AND alerts.ack_delivered = 0 ORDER BY acknowledgements.id",
                [site],
            )
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]

    def mark_acks_delivered(self, alert_id: int) -> None:
        with _converted("confirm acknowledgements"):
            self.db.execute(
                "UPDATE acknowledgements SET delivered = 1, error = NULL WHERE alert_id = ?",
                [alert_id],
            )

    def update_ack(self, ack_id: int, fields: Row) -> None:
        with _converted("update acknowledgement"):
            self._t("acknowledgements").update(ack_id, fields)

    def prune_alerts(self, received_before: float) -> int:
        """Delete alerts (with their snapshots and acknowledgements) received before."""
        with _converted("prune alerts"):
            self.db.execute(
                "DELETE FROM acknowledgements WHERE alert_id IN "
                "(SELECT id FROM alerts WHERE received_at < ?)",
                [received_before],
            )
            cursor = self.db.execute(
                "DELETE FROM alerts WHERE received_at < ?", [received_before]
            )
            return int(cursor.rowcount)

    # sites and cameras

    def upsert_site(self, site: str, online: bool, last_seen_at: float, status: Row) -> None:
        with _converted("store site"):
            self._t("sites").upsert(
                {"site": site, "online": int(online), "last_seen_at": last_seen_at,
                 "status": json.dumps(status)},
                pk="site",
            )

    def upsert_camera(
        self, site: str, camera: str, state: str, since: float, detail: str
    ) -> None:
        with _converted("store camera"):
            self._t("cameras").upsert(
                {"site": site, "camera": camera, "state": state,
                 "since": since, "detail": detail},
                pk=("site", "camera"),
            )

    def sites(self) -> list[Row]:
        return self._rows("sites", order_by="site")

    def cameras(self) -> list[Row]:
        return self._rows("cameras", order_by="site, camera")
