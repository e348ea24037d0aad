"""Retention: by age per camera, by quota, by minimum free space; oldest first.

Invariant 4 (deletion order), 5 (holds) and 9 (event-linked footage) of docs/storage.md.
May run while writers run: open segments have no row yet, so they are never candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
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
    kept_by_hold: int  # distinct segments a criterion wanted but a hold kept
    kept_by_event: int  # distinct segments kept past age because linked to an event


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
        held: set[int] = set()
        kept_by_event: set[int] = set()
        by_age = self._by_age(held, kept_by_event)
        by_quota = self._by_space(self._quota_need(), "quota", held)
        by_free = self._by_space(self._free_need(), "free_space", held)
        report = RetentionReport(
            deleted=by_age[0] + by_quota[0] + by_free[0],
            deleted_bytes=by_age[1] + by_quota[1] + by_free[1],
            deleted_by_age=by_age[0],
            deleted_by_quota=by_quota[0],
            deleted_by_free_space=by_free[0],
            kept_by_hold=len(held),
            kept_by_event=len(kept_by_event),
        )
        if report.deleted or report.kept_by_hold:
            log.info("site %s: retention: %s", self._site, report)
        return report

    # --- criteria -----------------------------------------------------------------------

    def _by_age(self, held: set[int], kept_by_event: set[int]) -> tuple[int, int]:
        now = self._clock.wall()
        count = nbytes = 0
        cameras = set(self._index.segment_cameras()) | set(self.policy.retain_days_by_camera)
        for camera in sorted(cameras):
            days = self.policy.days_for(camera)
            if days is None:
                continue
            event_cutoff = now - max(days, self.policy.event_retain_days) * DAY_S
            for batch in self._batches(camera=camera, ended_before=now - days * DAY_S):
                doomed = []
                for c in batch:
                    if c.held:  # invariant 5
                        held.add(c.id)
                    elif c.event_linked and c.end_wall >= event_cutoff:  # invariant 9
                        kept_by_event.add(c.id)
                    else:
                        doomed.append(c)
                n, b = self._delete(doomed, "age")
                count, nbytes = count + n, nbytes + b
        return count, nbytes

    def _quota_need(self) -> int:
        if self.policy.quota_bytes is None:
            return 0
        return max(0, self._index.total_segment_bytes() - self.policy.quota_bytes)

    def _free_need(self) -> int:
        if self.policy.min_free_bytes is None:
            return 0
        free = self._free_bytes(self.root)
        return max(0, self.policy.min_free_bytes - free)

    def _by_space(self, need_bytes: int, reason: str, held: set[int]) -> tuple[int, int]:
        """Delete oldest first until `need_bytes` are freed: footage not linked to events
        first, then event-linked footage (invariant 9); never held footage (invariant 5)."""
        count = nbytes = 0
        for take_event_linked in (False, True):
            for batch in self._batches():
                if nbytes >= need_bytes:
                    return count, nbytes
                doomed = []
                planned = nbytes
                for c in batch:
                    if planned >= need_bytes:
                        break
                    if c.held:
                        held.add(c.id)
                    elif c.event_linked == take_event_linked:
                        doomed.append(c)
                        planned += c.bytes
                n, b = self._delete(doomed, reason)
                count, nbytes = count + n, nbytes + b
        if nbytes < need_bytes:
            log.error(
                "site %s: retention (%s) could free only %d of %d bytes: the rest is held",
                self._site, reason, nbytes, need_bytes,
            )
        return count, nbytes

    # --- helpers ------------------------------------------------------------------------

    def _batches(
        self, *, camera: str | None = None, ended_before: float | None = None
    ) -> Iterator[list[RetentionCandidate]]:
        after: tuple[float, int] | None = None
        while True:
            batch = self._index.retention_candidates(
                camera=camera, ended_before=ended_before, after=after, limit=_BATCH
            )
            if not batch:
                return
            after = (batch[-1].start_wall, batch[-1].id)
            yield batch

    def _delete(self, doomed: list[RetentionCandidate], reason: str) -> tuple[int, int]:
        """Invariant 4: rows to garbage in one transaction, unlink, drop garbage rows."""
        if not doomed:
            return 0, 0
        paths = self._index.move_segments_to_garbage([c.id for c in doomed], reason)
        unlink_garbage(self.root, self._index, paths, site=self._site)
        return len(doomed), sum(c.bytes for c in doomed)
