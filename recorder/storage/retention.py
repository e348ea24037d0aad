"""Retention: by age per camera, by quota, by minimum free space; oldest first.

Invariant 4 (deletion order), 5 (holds) and 9 (event-linked footage) of docs/storage.md.
May run while writers run: open segments have no row yet, so they are never candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recorder.clock import Clock, SystemClock
from recorder.index import Index, RetentionCandidate
from recorder.storage.disk import free_bytes
from recorder.storage.garbage import unlink_garbage

log = logging.getLogger(__name__)

DAY_S = 86400.0
_BATCH = 500


@dataclass(frozen=True)
class RetentionPolicy:
    retain_days: float | None = None  # continuous footage, every camera; None: no age limit
    retain_days_by_camera: Mapping[str, float] = field(default_factory=dict)
    event_retain_days: float = 30.0  # footage linked to events (invariant 9)
    quota_bytes: int | None = None  # over all segments
    min_free_bytes: int | None = None  # statvfs of the storage root

    def days_for(self, camera: str) -> float | None:
        return self.retain_days_by_camera.get(camera, self.retain_days)


@dataclass(frozen=True)
class RetentionReport:
    deleted: int
    deleted_bytes: int
    deleted_by_age: int
    deleted_by_quota: int
    deleted_by_free_space: int
    # Held segments a criterion would otherwise have deleted: those past their camera's
    # age limit, or every held segment when quota or free space could not be met.
    kept_by_hold: int


class Retention:
    def __init__(
        self,
        root: str | Path,
        index: Index,
        policy: RetentionPolicy,
        *,
        site: str = "",
        clock: Clock | None = None,
        free_bytes_fn: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.root = Path(root)
        self._index = index
        self.policy = policy
        self._site = site
        self._clock = clock or SystemClock()
        self._free_bytes = free_bytes_fn

    def run(self) -> RetentionReport:
        by_age, held_past_age = self._by_age()
        by_quota, quota_met = self._by_space(self._quota_need(), "quota")
        by_free, free_met = self._by_space(self._free_need(), "free_space")
        kept_by_hold = (
            held_past_age if quota_met and free_met else self._index.count_held_segments()
        )
        report = RetentionReport(
            deleted=by_age[0] + by_quota[0] + by_free[0],
            deleted_bytes=by_age[1] + by_quota[1] + by_free[1],
            deleted_by_age=by_age[0],
            deleted_by_quota=by_quota[0],
            deleted_by_free_space=by_free[0],
            kept_by_hold=kept_by_hold,
        )
        if report.deleted or report.kept_by_hold:
            log.info("site %s: retention: %s", self._site, report)
        return report

    # --- criteria -----------------------------------------------------------------------

    def _by_age(self) -> tuple[tuple[int, int], int]:
        """((deleted, bytes), held segments past their age limit)."""
        now = self._clock.wall()
        count = nbytes = held = 0
        cameras = set(self._index.segment_cameras()) | set(self.policy.retain_days_by_camera)
        for camera in sorted(cameras):
            days = self.policy.days_for(camera)
            if days is None:
                continue
            cutoff = now - days * DAY_S
            event_cutoff = now - max(days, self.policy.event_retain_days) * DAY_S
            # Invariants 5 and 9: held and recent event-linked segments are filtered in SQL.
            while batch := self._index.retention_candidates(
                camera=camera, ended_before=cutoff, keep_event_linked_ended_after=event_cutoff,
                limit=_BATCH,
            ):
                n, b = self._delete(batch, "age")
                count, nbytes = count + n, nbytes + b
            held += self._index.count_held_segments(camera=camera, ended_before=cutoff)
        return (count, nbytes), held

    def _quota_need(self) -> int:
        if self.policy.quota_bytes is None:
            return 0
        return max(0, self._index.total_segment_bytes() - self.policy.quota_bytes)

    def _free_need(self) -> int:
        if self.policy.min_free_bytes is None:
            return 0
        return max(0, self.policy.min_free_bytes - self._free_bytes(self.root))

    def _by_space(self, need_bytes: int, reason: str) -> tuple[tuple[int, int], bool]:
        """Delete oldest first until `need_bytes` are freed: footage not linked to events
        first, then event-linked footage (invariant 9); never held footage (invariant 5).
        Returns ((deleted, bytes), whether the need was met)."""
        count = nbytes = 0
        for event_linked in (False, True):
            while nbytes < need_bytes and (
                batch := self._index.retention_candidates(
                    event_linked=event_linked, limit=_BATCH
                )
            ):
                doomed = []
                planned = nbytes
                for c in batch:
                    if planned >= need_bytes:
                        break
                    doomed.append(c)
                    planned += c.bytes
                n, b = self._delete(doomed, reason)
                count, nbytes = count + n, nbytes + b
        met = nbytes >= need_bytes
        if not met:
            log.error(
                "site %s: retention (%s) could free only %d of %d bytes: the rest is held",
                self._site, reason, nbytes, need_bytes,
            )
        return (count, nbytes), met

    # --- helpers ------------------------------------------------------------------------

    def _delete(self, doomed: list[RetentionCandidate], reason: str) -> tuple[int, int]:
        """Invariant 4: rows to garbage in one transaction, unlink, drop garbage rows."""
        if not doomed:
            return 0, 0
        paths = self._index.move_segments_to_garbage([c.id for c in doomed], reason)
        unlink_garbage(self.root, self._index, paths, site=self._site)
        return len(doomed), sum(c.bytes for c in doomed)
