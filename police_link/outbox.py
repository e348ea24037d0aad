"""The durable store-and-forward outbox of a site (SQLite, WAL, fsync on every append).

Invariants (docs/mqtt.md "Store and forward"):
1. A message is committed here before it is handed to MQTT, and deleted only after the
   broker acknowledged it with a success reason code: a crash or an outage loses nothing
   that was appended.
2. Rows leave in `id` order (insertion order); `take` never returns a row twice in one
   process, a restart starts again from the oldest row (receivers dedupe by seq).
3. Sequence numbers come from a counter stored in the same transaction as the rows that
   carry them: they never repeat, even after a crash, and increase in row order.
4. The total payload size stays under `max_bytes` (rows already handed to MQTT, at most
   the in-flight window, may exceed it for a moment): undispatched rows are dropped by tier
   (snapshots, then camera statuses, then alerts: events, alarms, acks), oldest
   first, and every drop is recorded in one pending DropReport row (never dropped itself).
5. Deleting acknowledged rows is not fsynced on its own (the next append's fsync carries it):
   after a power cut a few delivered rows may be sent again, which receivers dedupe (seq),
   and it halves the fsyncs per alert.

Each method holds a lock, so any thread may call it; the site client drives it from one
worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .errors import OutboxError, ValidationError
from .messages import DropReport
from .topics import Topics

log = logging.getLogger(__name__)

# Drop tiers, lowest first. The drop report has the highest tier and is never dropped.
DROP_TIERS = {
    "snapshot": 0,
    "camera_status": 2,
    "event": 3,
    "alarm": 3,
    "ack": 3,
    "dropped": 9,
}
_REPORT_TIER = DROP_TIERS["dropped"]
MAX_REPORT_RANGES = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    drop_class TEXT NOT NULL,
    tier INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    seq INTEGER,
    correlation BLOB,
    expires_unix_s REAL,
    created_unix_s REAL NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_tier ON outbox (tier, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """A message to store. Give `payload`, or `build(seq)` for a message that carries a
    sequence number (the outbox assigns it inside the insert transaction)."""

    drop_class: str
    topic: str
    payload: bytes | None = None
    build: Callable[[int], bytes] | None = field(default=None, repr=False)
    retain: bool = False
    correlation: bytes | None = None
    expires_unix_s: float | None = None

    def __post_init__(self) -> None:
        if self.drop_class not in DROP_TIERS:
            raise ValidationError("drop_class", f"unknown class {self.drop_class!r}")
        if (self.payload is None) == (self.build is None):
            raise ValidationError("payload", "give exactly one of payload and build")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    drop_class: str
    topic: str
    payload: bytes = field(repr=False)
    retain: bool
    seq: int | None
    correlation: bytes | None
    expires_unix_s: float | None


@dataclass(frozen=True)
class AppendResult:
    seqs: tuple[int, ...]  # per entry, 0 for entries without a sequence number
    dropped: dict[str, int]  # what this append had to discard, by drop class
    dropped_bytes: int


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] -> [(1, 3), (7, 7)]"""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _merge_ranges(
    old: Sequence[tuple[int, int]], new: Sequence[tuple[int, int]]
) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted([*old, *new]):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    if len(merged) > MAX_REPORT_RANGES:
        # Bounded report: the tail collapses into one range (documented over-approximation).
        tail = (merged[MAX_REPORT_RANGES - 1][0], merged[-1][1])
        merged = [*merged[: MAX_REPORT_RANGES - 1], tail]
    return tuple(merged)


class Outbox:
    def __init__(
        self,
        path: str,
        *,
        site: str,
        max_bytes: int,
        topics: Topics | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 64 * 1024:
            raise ValidationError("outbox_max_bytes", "must be at least 64 KiB")
        self.site = site
        self.max_bytes = max_bytes
        self._topics = topics or Topics()
        self._wall = wall
        self._lock = threading.Lock()
        self._cursor = 0  # highest id handed out by take() in this process
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM outbox"
            ).fetchone()
        except sqlite3.Error as err:
            raise OutboxError(f"site {site}: cannot open outbox {path}: {err}") from err
        self._count, self._bytes = int(row[0]), int(row[1])

    # -- state --------------------------------------------------------------------------
    @property
    def pending_count(self) -> int:
        return self._count

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def last_seq(self) -> int:
        with self._lock:
            return self._get_meta("next_seq", 1) - 1

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ------------------------------------------------------------------------
    def append(self, entries: Sequence[OutboxEntry]) -> AppendResult:
        """Store entries in one transaction (one fsync), then enforce the size bound."""
        now = self._wall()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = [self._insert(entry, now) for entry in entries]
                dropped, dropped_bytes = self._enforce_bound(now)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"site {self.site}: outbox append failed: {err}") from err
            except BaseException:
                self._rollback()
                raise
        return AppendResult(tuple(seqs), dropped, dropped_bytes)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def _get_meta(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def _next_seq(self) -> int:
        seq = self._get_meta("next_seq", 1)
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (seq + 1,),
        )
        return seq

    def _insert(self, entry: OutboxEntry, now: float) -> int:
        seq = 0
        if entry.build is not None:
            seq = self._next_seq()
            payload = entry.build(seq)
        else:
            assert entry.payload is not None
            payload = entry.payload
        self._db.execute(
            "INSERT INTO outbox (drop_class, tier, topic, payload, retain, seq, correlation,"
            " expires_unix_s, created_unix_s, size_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                entry.drop_class, DROP_TIERS[entry.drop_class], entry.topic, payload,
                int(entry.retain), seq or None, entry.correlation, entry.expires_unix_s, now,
                len(payload),
            ),
        )
        self._count += 1
        self._bytes += len(payload)
        return seq

    def _enforce_bound(self, now: float) -> tuple[dict[str, int], int]:
        """Invariant 4. Runs inside append's transaction. Recording a drop grows the report
        row, which may push the total over again: hence the outer loop."""
        dropped: dict[str, int] = {}
        dropped_bytes = 0
        while True:
            counts, size, seqs = self._drop_oldest(self._bytes - self.max_bytes)
            if not counts:
                return dropped, dropped_bytes
            self._record_drop(counts, size, seq_ranges(seqs), now)
            for key, count in counts.items():
                dropped[key] = dropped.get(key, 0) + count
            dropped_bytes += size

    def _drop_oldest(self, excess: int) -> tuple[dict[str, int], int, list[int]]:
        """Delete undispatched rows, lowest tier and oldest first, until `excess` bytes went."""
        counts: dict[str, int] = {}
        size_total = 0
        seqs: list[int] = []
        while excess > 0:
            victims = self._db.execute(
                "SELECT id, drop_class, size_bytes, seq FROM outbox"
                " WHERE id > ? AND tier < ? ORDER BY tier, id LIMIT 256",
                (self._cursor, _REPORT_TIER),
            ).fetchall()
            if not victims:
                break  # everything left is in flight or a drop report
            chosen = []
            for row_id, drop_class, size, seq in victims:
                chosen.append(row_id)
                counts[drop_class] = counts.get(drop_class, 0) + 1
                size_total += size
                excess -= size
                if seq:
                    seqs.append(seq)
                if excess <= 0:
                    break
            self._delete(chosen)
        return counts, size_total, seqs

    def record_drop(self, counts: dict[str, int], dropped_bytes: int) -> None:
        """Report messages dropped before they reached the outbox (no seqs: no gaps)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._record_drop(counts, dropped_bytes, [], self._wall())
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"site {self.site}: outbox append failed: {err}") from err

    def _record_drop(
        self,
        counts: dict[str, int],
        dropped_bytes: int,
        ranges: list[tuple[int, int]],
        now: float,
    ) -> None:
        """Merge into the pending (undispatched) drop report, or start a new one."""
        row = self._db.execute(
            "SELECT id, payload, size_bytes FROM outbox"
            " WHERE drop_class = 'dropped' AND id > ? ORDER BY id DESC LIMIT 1",
            (self._cursor,),
        ).fetchone()
        if row is not None:
            old = DropReport.from_json(row[1])
            merged = dict(old.counts)
            for key, count in counts.items():
                merged[key] = merged.get(key, 0) + count
            report = DropReport(
                site=self.site,
                first_drop_unix_s=old.first_drop_unix_s,
                last_drop_unix_s=now,
                counts=merged,
                dropped_bytes=old.dropped_bytes + dropped_bytes,
                seq_ranges=_merge_ranges(old.seq_ranges, ranges),
                seq=old.seq,
            )
            payload = report.to_json()
            self._db.execute(
                "UPDATE outbox SET payload = ?, size_bytes = ? WHERE id = ?",
                (payload, len(payload), row[0]),
            )
            self._bytes += len(payload) - int(row[2])
            return

        def build(seq: int) -> bytes:
            return DropReport(
                site=self.site, first_drop_unix_s=now, last_drop_unix_s=now, counts=counts,
                dropped_bytes=dropped_bytes, seq_ranges=_merge_ranges((), ranges), seq=seq,
            ).to_json()

        self._insert(OutboxEntry("dropped", self._topics.dropped(self.site), build=build), now)

    # -- reading and acknowledging ------------------------------------------------------
    def take(self, limit: int) -> list[OutboxRow]:
        """The next `limit` rows not handed out yet (invariant 2); expired rows (stale
        command replies) are deleted instead of returned."""
        if limit <= 0:
            return []
        now = self._wall()
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, drop_class, topic, payload, retain, seq, correlation,"
                    " expires_unix_s FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (self._cursor, limit),
                ).fetchall()
                out = [OutboxRow(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5], r[6], r[7])
                       for r in rows]
                if out:
                    self._cursor = out[-1].id
                expired = {r.id for r in out if r.expires_unix_s is not None
                           and r.expires_unix_s < now}
                if expired:
                    self._delete(sorted(expired))
            except sqlite3.Error as err:
                raise OutboxError(f"site {self.site}: outbox read failed: {err}") from err
        return [r for r in out if r.id not in expired]

    def remove(self, ids: Sequence[int]) -> None:
        """Rows the broker acknowledged (or rejected for good)."""
        if not ids:
            return
        with self._lock:
            try:
                # Invariant 5: a delete needs no fsync of its own.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                self._delete(ids)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"site {self.site}: outbox delete failed: {err}") from err
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def rewind(self) -> None:
        """Hand out every stored row again from the oldest (a fresh MQTT client)."""
        with self._lock:
            self._cursor = 0

    def _delete(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM outbox WHERE id IN ({marks})",
                chunk,
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
            self._count -= int(row[0])
            self._bytes -= int(row[1])
