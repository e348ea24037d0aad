"""The site index: all SQL for cameras, runs, segments, gaps, holds, garbage and events.

SQLite in WAL mode through sqlite-utils, one connection behind a lock (calls are rare: about
one a minute per stream). Invariants are numbered as in docs/storage.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlite_utils

from recorder.errors import IndexCorrupt, IndexDbError, UnknownRow

__all__ = [
    "SCHEMA_VERSION",
    "AckRow",
    "CameraRow",
    "ClosedSegment",
    "EventRow",
    "GapRow",
    "HoldRow",
    "Index",
    "RetentionCandidate",
    "RunRow",
    "SegmentRow",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
SEGMENT_STATUSES: Final = ("complete", "recovered", "missing")
EVENT_SOURCES: Final = ("motion", "camera")


@dataclass(frozen=True)
class ClosedSegment:
    """A segment the writer closed; the flusher fills `bytes` and `sha256` from the file."""

    camera: str
    stream: str
    run_id: int
    path: str  # relative to the storage root
    start_wall: float
    end_wall: float
    duration_90k: int
    frames: int
    keyframes: int
    media_bytes: int  # sum of packet payloads
    codec: str
    width: int
    height: int
    discontinuity: bool = False
    status: str = "complete"
    bytes: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class CameraRow:
    name: str
    site: str
    onvif_url: str | None
    main_url: str | None
    sub_url: str | None
    clock_offset_s: float | None  # camera clock minus ours, when last measured
    updated_at: float


@dataclass(frozen=True)
class SegmentRow:
    id: int
    camera: str
    stream: str
    run_id: int | None
    path: str
    start_wall: float
    end_wall: float
    duration_90k: int
    bytes: int
    media_bytes: int
    frames: int
    keyframes: int
    sha256: str
    codec: str
    width: int
    height: int
    status: str
    discontinuity: bool


@dataclass(frozen=True)
class RunRow:
    id: int
    camera: str
    stream: str
    start_wall: float
    end_wall: float | None
    end_reason: str | None


@dataclass(frozen=True)
class GapRow:
    camera: str
    stream: str
    start_wall: float
    end_wall: float
    reason: str


@dataclass(frozen=True)
class HoldRow:
    id: int
    camera: str
    start_wall: float
    end_wall: float
    reason: str
    who: str
    created_wall: float


@dataclass(frozen=True)
class AckRow:
    """A police officer's acknowledgement of an event, as it reached the site."""

    id: int
    event_id: str
    user: str
    comment: str
    sender: str  # the viewer instance that relayed it
    received_wall: float


@dataclass(frozen=True)
class EventRow:
    id: str  # uuid
    camera: str
    source: str  # "motion" | "camera"
    kind: str
    start_wall: float
    end_wall: float | None = None  # None while the event is open
    preroll_s: float = 0.0
    postroll_s: float = 0.0
    peak_area: float | None = None
    score: float | None = None
    zones: tuple[str, ...] = ()
    snapshot_path: str | None = None


@dataclass(frozen=True)
class RetentionCandidate:
    """A segment as retention sees it (oldest first)."""

    id: int
    camera: str
    path: str
    start_wall: float
    end_wall: float
    bytes: int
    event_linked: bool  # linked to at least one event (invariant 9)


MAX_SEGMENT_SPAN_S: Final = 86400.0
_UNSET: Any = object()
_T = TypeVar("_T")


def _row(cls: type[_T], d: dict[str, Any]) -> _T:
    return cls(**{f.name: d[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def _segment_row(d: dict[str, Any]) -> SegmentRow:
    d = dict(d)
    d["discontinuity"] = bool(d["discontinuity"])
    return _row(SegmentRow, d)


def _event_row(d: dict[str, Any]) -> EventRow:
    d = dict(d)
    d["zones"] = tuple(json.loads(d["zones"] or "[]"))
    return _row(EventRow, d)


def _where(*conds: tuple[str, Any]) -> tuple[str, list[Any]]:
    """' WHERE a AND b' of the conditions whose value is not None, and their parameters
    (a tuple value fills as many placeholders as it has items, none for ())."""
    sql: list[str] = []
    params: list[Any] = []
    for cond, value in conds:
        if value is None:
            continue
        sql.append(cond)
        params.extend(value if isinstance(value, tuple) else (value,))
    return (" WHERE " + " AND ".join(sql) if sql else ""), params


# --- schema: one upgrade function per version (invariant 10) ---------------------------


def _upgrade_to_1(db: sqlite_utils.Database) -> None:
    db.table("cameras").create(
        {
            "name": str,
            "site": str,
            "onvif_url": str,
            "main_url": str,
            "sub_url": str,
            "clock_offset_s": float,
            "updated_at": float,
        },
        pk="name",
        not_null=["site", "updated_at"],
    )
    db.table("runs").create(
        {
            "id": int,
            "camera": str,
            "stream": str,
            "start_wall": float,
            "end_wall": float,
            "end_reason": str,
        },
        pk="id",
        not_null=["camera", "stream", "start_wall"],
    )
    db.table("segments").create(
        {
            "id": int,
            "camera": str,
            "stream": str,
            "run_id": int,
            "path": str,
            "start_wall": float,
            "end_wall": float,
            "duration_90k": int,
            "bytes": int,
            "media_bytes": int,
            "frames": int,
            "keyframes": int,
            "sha256": str,
            "codec": str,
            "width": int,
            "height": int,
            "status": str,
            "discontinuity": int,
        },
        pk="id",
        not_null=[
            "camera", "stream", "path", "start_wall", "end_wall", "duration_90k", "bytes",
            "media_bytes", "frames", "keyframes", "sha256", "codec", "width", "height",
            "status", "discontinuity",
        ],
    )
    db.table("segments").create_index(["path"], unique=True)
    db.table("segments").create_index(["camera", "stream", "start_wall"])
    db.table("segments").create_index(["start_wall"])
    db.table("segments").create_index(["camera", "start_wall"])
    db.table("gaps").create(
        {
            "id": int,
            "camera": str,
            "stream": str,
            "start_wall": float,
            "end_wall": float,
            "reason": str,
        },
        pk="id",
        not_null=["camera", "stream", "start_wall", "end_wall", "reason"],
    )
    db.table("gaps").create_index(["camera", "stream", "start_wall"])
    db.table("holds").create(
        {
            "id": int,
            "camera": str,
            "start_wall": float,
            "end_wall": float,
            "reason": str,
            "who": str,
            "created_wall": float,
        },
        pk="id",
        not_null=["camera", "start_wall", "end_wall", "reason", "who", "created_wall"],
    )
    db.table("holds").create_index(["camera"])
    db.table("garbage").create({"path": str, "reason": str}, pk="path", not_null=["reason"])
    db.table("events").create(
        {
            "id": str,
            "camera": str,
            "source": str,
            "kind": str,
            "start_wall": float,
            "end_wall": float,
            "preroll_s": float,
            "postroll_s": float,
            "peak_area": float,
            "score": float,
            "zones": str,
            "snapshot_path": str,
        },
        pk="id",
        not_null=["camera", "source", "kind", "start_wall", "preroll_s", "postroll_s"],
    )
    db.table("events").create_index(["camera", "start_wall"])
    db.table("event_segments").create(
        {"event_id": str, "segment_id": int}, pk=("event_id", "segment_id")
    )
    db.table("event_segments").create_index(["segment_id"])


def _upgrade_to_2(db: sqlite_utils.Database) -> None:
    """Acknowledgements from the police station, kept with the events they answer."""
    db.table("acks").create(
        {
            "id": int,
            "event_id": str,
            "user": str,
            "comment": str,
            "sender": str,
            "received_wall": float,
        },
        pk="id",
        not_null=["event_id", "user", "comment", "sender", "received_wall"],
        foreign_keys=[("event_id", "events", "id")],
    )
    db.table("acks").create_index(["event_id"])


_UPGRADES: Final[Sequence[Callable[[sqlite_utils.Database], None]]] = (
    _upgrade_to_1,
    _upgrade_to_2,
)


class Index:
    """The site index. Thread-safe: one connection behind a lock."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._wall = clock
        self._lock = threading.RLock()
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
            self._db = sqlite_utils.Database(conn)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise IndexDbError(f"index {self.path}: cannot enable WAL (mode {mode!r})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._upgrade()
        except sqlite3.DatabaseError as err:
            raise IndexCorrupt(f"index {self.path}: {err}") from err

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.conn.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _upgrade(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IndexCorrupt(
                f"index {self.path}: schema version {version} is newer than this code "
                f"({SCHEMA_VERSION})"
            )
        if version == 0 and self._db.table_names():
            raise IndexCorrupt(f"index {self.path}: not a Dozor index (tables without version)")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._db.conn:
                # sqlite3 does not open a transaction for DDL by itself: without this BEGIN
                # a crash mid-upgrade would leave half a schema (invariant 10).
                self._db.execute("BEGIN IMMEDIATE")
                _UPGRADES[target - 1](self._db)
                self._db.execute(f"PRAGMA user_version={target}")
            log.info("index %s: upgraded schema to version %d", self.path, target)

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        """One transaction under the lock; sqlite3 errors become IndexDbError."""
        with self._lock:
            try:
                with self._db.conn:
                    yield self._db
            except sqlite3.Error as err:
                raise IndexDbError(f"index {self.path}: {err}") from err

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict]:
        with self._lock:
            try:
                return list(self._db.query(sql, params))
            except sqlite3.Error as err:
                raise IndexDbError(f"index {self.path}: {err}") from err

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # --- cameras and runs ---------------------------------------------------------------

    def upsert_camera(
        self,
        name: str,
        *,
        site: str,
        onvif_url: str | None = None,
        main_url: str | None = None,
        sub_url: str | None = None,
        clock_offset_s: float | None = None,
    ) -> None:
        """Insert or update a camera; None leaves a stored value unchanged."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO cameras (name, site, onvif_url, main_url, sub_url, clock_offset_s,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " site = excluded.site,"
                " onvif_url = coalesce(excluded.onvif_url, onvif_url),"
                " main_url = coalesce(excluded.main_url, main_url),"
                " sub_url = coalesce(excluded.sub_url, sub_url),"
                " clock_offset_s = coalesce(excluded.clock_offset_s, clock_offset_s),"
                " updated_at = excluded.updated_at",
                [name, site, onvif_url, main_url, sub_url, clock_offset_s, self._wall()],
            )

    def cameras(self) -> list[CameraRow]:
        return [_row(CameraRow, r) for r in self._query("SELECT * FROM cameras ORDER BY name")]

    def start_run(self, camera: str, stream: str, start_wall: float) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (camera, stream, start_wall) VALUES (?, ?, ?)",
                [camera, stream, start_wall],
            )
            return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, end_wall: float, reason: str) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET end_wall = ?, end_reason = ? WHERE id = ?",
                [end_wall, reason, run_id],
            )
            if cur.rowcount == 0:
                raise UnknownRow(f"index {self.path}: no run {run_id}")

    def runs(self, camera: str | None = None, *, open_only: bool = False) -> list[RunRow]:
        sql = "SELECT * FROM runs WHERE (:camera IS NULL OR camera = :camera)"
        if open_only:
            sql += " AND end_wall IS NULL"
        rows = self._query(sql + " ORDER BY id", {"camera": camera})
        return [_row(RunRow, r) for r in rows]

    def close_open_runs(self, reason: str) -> int:
        """End every open run at the end of its last segment (or its start). Returns count."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET end_reason = ?, end_wall = max(start_wall, coalesce("
                " (SELECT max(s.end_wall) FROM segments s WHERE s.run_id = runs.id),"
                " start_wall)) WHERE end_wall IS NULL",
                [reason],
            )
            return cur.rowcount

    # --- gaps ---------------------------------------------------------------------------

    def add_gap(
        self, camera: str, stream: str, start_wall: float, end_wall: float, reason: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO gaps (camera, stream, start_wall, end_wall, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                [camera, stream, start_wall, end_wall, reason],
            )

    def gaps(
        self, camera: str | None = None, stream: str | None = None, reason: str | None = None
    ) -> list[GapRow]:
        rows = self._query(
            "SELECT * FROM gaps WHERE (:camera IS NULL OR camera = :camera)"
            " AND (:stream IS NULL OR stream = :stream) AND (:reason IS NULL OR reason = :reason)"
            " ORDER BY start_wall, id",
            {"camera": camera, "stream": stream, "reason": reason},
        )
        return [_row(GapRow, r) for r in rows]

    # --- segments -----------------------------------------------------------------------

    def insert_segment(self, seg: ClosedSegment) -> int:
        """Insert a durable segment (invariant 1: the caller fsynced and hashed the file)
        and link it to the events it overlaps, pre- and post-roll included."""
        if not seg.sha256:
            raise ValueError(f"segment {seg.path}: sha256 missing (flusher must hash it)")
        if seg.status not in SEGMENT_STATUSES:
            raise ValueError(f"segment {seg.path}: bad status {seg.status!r}")
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO segments (camera, stream, run_id, path, start_wall, end_wall,"
                " duration_90k, bytes, media_bytes, frames, keyframes, sha256, codec, width,"
                " height, status, discontinuity)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    seg.camera, seg.stream, seg.run_id, seg.path, seg.start_wall,
                    seg.end_wall, seg.duration_90k, seg.bytes, seg.media_bytes, seg.frames,
                    seg.keyframes, seg.sha256, seg.codec, seg.width, seg.height, seg.status,
                    int(seg.discontinuity),
                ],
            )
            seg_id = int(cur.lastrowid or 0)
            db.execute(
                "INSERT OR IGNORE INTO event_segments (event_id, segment_id)"
                " SELECT e.id, ? FROM events e WHERE e.camera = ?"
                " AND e.start_wall - e.preroll_s < ?"
                " AND (e.end_wall IS NULL OR e.end_wall + e.postroll_s > ?)",
                [seg_id, seg.camera, seg.end_wall, seg.start_wall],
            )
            return seg_id

    def segments(
        self,
        camera: str | None = None,
        stream: str | None = None,
        start: float | None = None,
        end: float | None = None,
        *,
        status: str | None = None,
    ) -> list[SegmentRow]:
        """Segments overlapping [start, end), ordered by start time.

        The SQL names only the conditions given, so SQLite can use its indexes; a segment
        is assumed to span less than MAX_SEGMENT_SPAN_S (rotation needs a keyframe).
        """
        where, params = _where(
            ("camera = ?", camera),
            ("stream = ?", stream),
            ("start_wall < ?", end),
            ("end_wall > ?", start),
            ("start_wall > ?", None if start is None else start - MAX_SEGMENT_SPAN_S),
            ("status = ?", status),
        )
        rows = self._query(f"SELECT * FROM segments{where} ORDER BY start_wall, id", params)
        return [_segment_row(r) for r in rows]

    def segment_by_path(self, path: str) -> SegmentRow | None:
        rows = self._query("SELECT * FROM segments WHERE path = ?", [path])
        return _segment_row(rows[0]) if rows else None

    def segment_paths_in(self, directory: str) -> dict[str, tuple[int, str]]:
        """path -> (id, status) of the segments directly in `directory` (relative, no
        trailing slash): a range search on the unique path index."""
        low = directory.rstrip("/") + "/"
        high = low[:-1] + chr(ord("/") + 1)
        rows = self._query(
            "SELECT id, path, status FROM segments WHERE path >= ? AND path < ?", [low, high]
        )
        return {
            r["path"]: (r["id"], r["status"])
            for r in rows
            if "/" not in r["path"][len(low):]
        }

    def present_segments(
        self, *, after_id: int = 0, limit: int = 5000
    ) -> list[tuple[int, str]]:
        """(id, path) of segments not marked missing, by id after `after_id` (a page)."""
        rows = self._query(
            "SELECT id, path FROM segments WHERE status != 'missing' AND id > ?"
            " ORDER BY id LIMIT ?",
            [after_id, limit],
        )
        return [(r["id"], r["path"]) for r in rows]

    def segment_cameras(self) -> list[str]:
        return [r["camera"] for r in self._query("SELECT DISTINCT camera FROM segments")]

    def mark_missing(self, segment_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE segments SET status = 'missing' WHERE id = ?", [segment_id])

    def total_segment_bytes(self) -> int:
        return int(self._query("SELECT coalesce(sum(bytes), 0) AS b FROM segments")[0]["b"])

    # --- retention and garbage (invariant 4) --------------------------------------------

    _HELD_SQL: Final = (
        "EXISTS (SELECT 1 FROM holds h WHERE h.camera = s.camera"
        " AND h.start_wall < s.end_wall AND h.end_wall > s.start_wall)"
    )
    _LINKED_SQL: Final = "EXISTS (SELECT 1 FROM event_segments es WHERE es.segment_id = s.id)"

    def retention_candidates(
        self,
        *,
        camera: str | None = None,
        ended_before: float | None = None,
        after: tuple[float, int] | None = None,
        limit: int = 500,
        event_linked: bool | None = None,
        keep_event_linked_ended_after: float | None = None,
    ) -> list[RetentionCandidate]:
        """Deletable segments oldest first (by start_wall, id), after the (start_wall, id)
        cursor. Held segments are never candidates (invariant 5). `event_linked` selects
        only linked (True) or unlinked (False) ones; `keep_event_linked_ended_after` leaves
        out linked ones that ended after that time (invariant 9). The filtering is in SQL,
        so kept footage costs no Python work however much of it there is."""
        a_start, a_id = after if after is not None else (float("-inf"), -1)
        linked: tuple[str, Any] = ("", None)  # no condition
        if event_linked is not None:
            linked = (("" if event_linked else "NOT ") + self._LINKED_SQL, ())
        where, params = _where(
            ("s.camera = ?", camera),
            ("s.end_wall < ?", ended_before),
            ("(s.start_wall, s.id) > (?, ?)", (a_start, a_id)),
            (f"NOT {self._HELD_SQL}", ()),
            linked,
            (f"NOT ({self._LINKED_SQL} AND s.end_wall >= ?)", keep_event_linked_ended_after),
        )
        rows = self._query(
            "SELECT s.id, s.camera, s.path, s.start_wall, s.end_wall, s.bytes,"
            f" {self._LINKED_SQL} AS event_linked FROM segments s{where}"
            " ORDER BY s.start_wall, s.id LIMIT ?",
            [*params, limit],
        )
        return [
            RetentionCandidate(
                id=r["id"], camera=r["camera"], path=r["path"], start_wall=r["start_wall"],
                end_wall=r["end_wall"], bytes=r["bytes"], event_linked=bool(r["event_linked"]),
            )
            for r in rows
        ]

    def count_held_segments(
        self, *, camera: str | None = None, ended_before: float | None = None
    ) -> int:
        """Segments under at least one hold (searched from the holds side: holds are few)."""
        where, params = _where(("s.camera = ?", camera), ("s.end_wall < ?", ended_before))
        rows = self._query(
            "SELECT count(DISTINCT s.id) AS n FROM holds h JOIN segments s"
            " ON s.camera = h.camera AND s.start_wall < h.end_wall"
            " AND s.end_wall > h.start_wall"
            f" AND s.start_wall > h.start_wall - {MAX_SEGMENT_SPAN_S}{where}",
            params,
        )
        return int(rows[0]["n"])

    def move_segments_to_garbage(self, segment_ids: Sequence[int], reason: str) -> list[str]:
        """Step 1 of invariant 4: in one transaction, delete the rows (and their event links)
        and list their paths in garbage. Returns the paths. Held segments are refused."""
        if not segment_ids:
            return []
        marks = ",".join("?" * len(segment_ids))
        with self._tx() as db:
            held = db.execute(
                f"SELECT s.path FROM segments s JOIN holds h ON h.camera = s.camera"
                f" AND h.start_wall < s.end_wall AND h.end_wall > s.start_wall"
                f" WHERE s.id IN ({marks}) LIMIT 1",
                list(segment_ids),
            ).fetchone()
            if held is not None:
                raise IndexDbError(f"segment {held[0]} is under a hold (invariant 5)")
            paths = [
                r[0]
                for r in db.execute(
                    f"SELECT path FROM segments WHERE id IN ({marks})", list(segment_ids)
                ).fetchall()
            ]
            db.execute(
                f"DELETE FROM event_segments WHERE segment_id IN ({marks})", list(segment_ids)
            )
            db.execute(f"DELETE FROM segments WHERE id IN ({marks})", list(segment_ids))
            db.conn.executemany(
                "INSERT OR REPLACE INTO garbage (path, reason) VALUES (?, ?)",
                [(p, reason) for p in paths],
            )
            return paths

    def add_garbage(self, path: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO garbage (path, reason) VALUES (?, ?)", [path, reason]
            )

    def garbage(self) -> list[tuple[str, str]]:
        return [(r["path"], r["reason"]) for r in self._query("SELECT * FROM garbage")]

    def remove_garbage(self, paths: Sequence[str]) -> None:
        with self._tx() as db:
            db.conn.executemany("DELETE FROM garbage WHERE path = ?", [(p,) for p in paths])

    # --- holds --------------------------------------------------------------------------

    def add_hold(
        self, camera: str, start_wall: float, end_wall: float, reason: str, who: str
    ) -> int:
        if end_wall <= start_wall:
            raise ValueError(f"hold on {camera}: end {end_wall} is not after start {start_wall}")
        if not reason.strip() or not who.strip():
            raise ValueError(f"hold on {camera}: reason and who are required")
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO holds (camera, start_wall, end_wall, reason, who, created_wall)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [camera, start_wall, end_wall, reason, who, self._wall()],
            )
            return int(cur.lastrowid or 0)

    def remove_hold(self, hold_id: int) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM holds WHERE id = ?", [hold_id]).rowcount == 0:
                raise UnknownRow(f"index {self.path}: no hold {hold_id}")

    def holds(self, camera: str | None = None) -> list[HoldRow]:
        rows = self._query(
            "SELECT * FROM holds WHERE (:camera IS NULL OR camera = :camera) ORDER BY id",
            {"camera": camera},
        )
        return [_row(HoldRow, r) for r in rows]

    # --- events -------------------------------------------------------------------------

    _LINK_EVENT_SQL: Final = (
        "INSERT OR IGNORE INTO event_segments (event_id, segment_id)"
        " SELECT e.id, s.id FROM events e JOIN segments s ON s.camera = e.camera"
        " WHERE e.id = ? AND s.end_wall > e.start_wall - e.preroll_s"
        f" AND s.start_wall > e.start_wall - e.preroll_s - {MAX_SEGMENT_SPAN_S}"
        " AND (e.end_wall IS NULL OR s.start_wall < e.end_wall + e.postroll_s)"
    )

    def insert_event(self, event: EventRow) -> None:
        """Insert an event and link the segments already indexed that it overlaps."""
        if event.source not in EVENT_SOURCES:
            raise ValueError(f"event {event.id}: bad source {event.source!r}")
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (id, camera, source, kind, start_wall, end_wall, preroll_s,"
                " postroll_s, peak_area, score, zones, snapshot_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    event.id, event.camera, event.source, event.kind, event.start_wall,
                    event.end_wall, event.preroll_s, event.postroll_s, event.peak_area,
                    event.score, json.dumps(list(event.zones)), event.snapshot_path,
                ],
            )
            db.execute(self._LINK_EVENT_SQL, [event.id])

    def update_event(
        self,
        event_id: str,
        *,
        end_wall: float | None = _UNSET,
        peak_area: float | None = _UNSET,
        score: float | None = _UNSET,
        zones: Sequence[str] = _UNSET,
        snapshot_path: str | None = _UNSET,
    ) -> None:
        """Update the given fields; when the event gets its end, link overlapping segments."""
        changes: dict[str, Any] = {}
        if end_wall is not _UNSET:
            changes["end_wall"] = end_wall
        if peak_area is not _UNSET:
            changes["peak_area"] = peak_area
        if score is not _UNSET:
            changes["score"] = score
        if zones is not _UNSET:
            changes["zones"] = json.dumps(list(zones))
        if snapshot_path is not _UNSET:
            changes["snapshot_path"] = snapshot_path
        with self._tx() as db:
            if db.execute("SELECT 1 FROM events WHERE id = ?", [event_id]).fetchone() is None:
                raise UnknownRow(f"index {self.path}: no event {event_id}")
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                db.execute(f"UPDATE events SET {sets} WHERE id = ?", [*changes.values(), event_id])
            db.execute(self._LINK_EVENT_SQL, [event_id])

    def event(self, event_id: str) -> EventRow:
        rows = self._query("SELECT * FROM events WHERE id = ?", [event_id])
        if not rows:
            raise UnknownRow(f"index {self.path}: no event {event_id}")
        return _event_row(rows[0])

    def events(
        self, camera: str | None = None, start: float | None = None, end: float | None = None
    ) -> list[EventRow]:
        rows = self._query(
            "SELECT * FROM events WHERE (:camera IS NULL OR camera = :camera)"
            " AND (:end IS NULL OR start_wall < :end)"
            " AND (:start IS NULL OR end_wall IS NULL OR end_wall > :start)"
            " ORDER BY start_wall, id",
            {"camera": camera, "start": start, "end": end},
        )
        return [_event_row(r) for r in rows]

    def add_ack(
        self, event_id: str, *, user: str, comment: str, sender: str, received_wall: float
    ) -> int:
        """Record an acknowledgement; UnknownRow if the event is not in this index."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM events WHERE id = ?", [event_id]).fetchone() is None:
                raise UnknownRow(f"index {self.path}: no event {event_id}")
            cur = db.execute(
                "INSERT INTO acks (event_id, user, comment, sender, received_wall)"
                " VALUES (?, ?, ?, ?, ?)",
                [event_id, user, comment, sender, received_wall],
            )
            return int(cur.lastrowid or 0)

    def acks(self, event_id: str) -> list[AckRow]:
        rows = self._query(
            "SELECT * FROM acks WHERE event_id = ? ORDER BY received_wall, id", [event_id]
        )
        return [_row(AckRow, r) for r in rows]

    def event_segments(self, event_id: str) -> list[SegmentRow]:
        rows = self._query(
            "SELECT s.* FROM segments s JOIN event_segments es ON es.segment_id = s.id"
            " WHERE es.event_id = ? ORDER BY s.start_wall, s.id",
            [event_id],
        )
        return [_segment_row(r) for r in rows]
