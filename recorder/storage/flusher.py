"""The flusher thread: makes closed segments durable, hashes them, then indexes them.

Invariant 1 (docs/storage.md): file fsynced, directory fsynced, size and SHA-256 taken from
the closed file, and only then the index row. Invariant 7: writers only enqueue.
Every `flush_interval_s` it also fsyncs the open segment files, which bounds what a power
loss can take from an open segment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import IndexDbError, RecorderError
from recorder.index import ClosedSegment, GapRow, Index
from recorder.storage import fmp4
from recorder.storage.layout import fsync_dir, fsync_file
from recorder.worker_queue import wait_queue_idle

log = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


def hash_file(path: str | Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of the file as it is on disk."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


@dataclass(frozen=True)
class _SegmentJob:
    segment: ClosedSegment
    torn: bool


@dataclass(frozen=True)
class FlusherStats:
    segments_indexed: int
    segments_repaired: int
    segments_dropped: int  # torn with no complete fragment: deleted
    gaps_indexed: int
    errors: int
    queued: int


_STOP = object()


def _transient(err: IndexDbError) -> bool:
    """SQLite said 'disk full', 'locked' or 'I/O error': the row may go in later; a
    constraint violation never will."""
    return isinstance(err.__cause__, sqlite3.OperationalError)


class Flusher:
    """One per storage root. `start()` before writers run; `stop()` drains the queue."""

    def __init__(
        self,
        root: str | Path,
        index: Index,
        *,
        flush_interval_s: float = 10.0,
        site: str = "",
        on_indexed: Callable[[ClosedSegment, int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self._index = index
        self.flush_interval_s = flush_interval_s
        self._site = site
        self._on_indexed = on_indexed
        self._q: queue.Queue[object] = queue.Queue()
        self._open_lock = threading.Lock()
        self._open: set[str] = set()
        self._durable_dirs: set[Path] = set()
        # (camera, stream) -> end of its last segment, when that segment was torn and cut
        # back: the writer only estimates where a disk_full gap starts, the cut tells.
        self._torn_end: dict[tuple[str, str], float] = {}
        self._retry: list[_SegmentJob] = []  # index failures worth another try
        self._thread: threading.Thread | None = None
        self._indexed = self._repaired = self._dropped = self._gaps = self._errors = 0

    # --- called by writers (never blocks) -----------------------------------------------

    def submit_segment(self, segment: ClosedSegment, *, torn: bool = False) -> None:
        """A closed segment; `torn` when its close or a write failed (it gets repaired)."""
        self._q.put(_SegmentJob(segment, torn))

    def submit_gap(self, gap: GapRow) -> None:
        self._q.put(gap)

    def track_open(self, relpath: str) -> None:
        with self._open_lock:
            self._open.add(relpath)

    def untrack_open(self, relpath: str) -> None:
        with self._open_lock:
            self._open.discard(relpath)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("flusher already started")
        self._thread = threading.Thread(
            target=self._run, name=f"flusher-{self._site or 'site'}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Finish every queued job, then end the thread."""
        if self._thread is None:
            return
        self._q.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("site %s: flusher did not finish within %.0f s", self._site, timeout_s)
        self._thread = None

    def is_alive(self) -> bool:
        """True while the flusher thread runs (for the health watchdog)."""
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """True once every submitted job is done (for tests and orderly shutdown)."""
        return wait_queue_idle(self._q, timeout_s)

    def stats(self) -> FlusherStats:
        return FlusherStats(
            self._indexed, self._repaired, self._dropped, self._gaps, self._errors,
            self._q.qsize(),
        )

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval_s
        while True:
            try:
                job = self._q.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                job = None
            try:
                if job is _STOP:
                    return
                if isinstance(job, _SegmentJob):
                    self._finish_segment(job)
                elif isinstance(job, GapRow):
                    self._add_gap(job)
            except IndexDbError as err:
                self._errors += 1
                log.error("site %s: flusher could not index %s: %s", self._site, job, err)
                if isinstance(job, _SegmentJob) and _transient(err):
                    self._retry.append(job)  # e.g. the index's disk was full: try again
            except (OSError, RecorderError, ValueError) as err:
                self._errors += 1
                log.error("site %s: flusher failed on %s: %s", self._site, job, err)
            except Exception:  # a bug must not stop every later segment from being indexed
                self._errors += 1
                log.exception("site %s: flusher failed on %s", self._site, job)
            finally:
                if job is not None:
                    self._q.task_done()
            if time.monotonic() >= next_flush:
                self._flush_open()
                self._retry_failed()
                next_flush = time.monotonic() + self.flush_interval_s

    def _retry_failed(self) -> None:
        retry, self._retry = self._retry, []
        for job in retry:
            try:
                self._finish_segment(job)
            except IndexDbError as err:
                if _transient(err):
                    self._retry.append(job)
                else:
                    log.error("site %s: giving up indexing %s: %s", self._site, job, err)
            except (OSError, RecorderError, ValueError) as err:
                log.error("site %s: giving up indexing %s: %s", self._site, job, err)

    def _add_gap(self, gap: GapRow) -> None:
        start_wall = gap.start_wall
        torn_end = self._torn_end.pop((gap.camera, gap.stream), None)
        if gap.reason in ("disk_full", "write_error") and torn_end is not None:
            start_wall = torn_end
        self._index.add_gap(gap.camera, gap.stream, start_wall, gap.end_wall, gap.reason)
        self._gaps += 1

    def _finish_segment(self, job: _SegmentJob) -> None:
        seg = job.segment
        self._torn_end.pop((seg.camera, seg.stream), None)
        path = self.root / seg.path
        where = f"site {self._site} camera {seg.camera}/{seg.stream}"
        if job.torn:
            if not path.exists():  # the muxer never got to create it
                self._dropped += 1
                log.error("%s: segment %s was never written", where, seg.path)
                return
            scan = fmp4.repair(path)  # invariant 3
            if scan is None:
                self._dropped += 1
                log.error("%s: segment %s lost (no complete fragment)", where, seg.path)
                return
            self._repaired += 1
            seg = dataclasses.replace(
                seg,
                frames=scan.frames,
                keyframes=scan.keyframes,
                duration_90k=scan.duration_90k,
                end_wall=seg.start_wall + scan.duration_90k / 90000,
                status="recovered",
            )
            self._torn_end[(seg.camera, seg.stream)] = seg.end_wall
        # Invariant 1: durable file and directory entry before the row.
        fsync_file(path)
        self._fsync_dirs(path.parent)
        size, sha256 = hash_file(path)
        seg = dataclasses.replace(seg, bytes=size, sha256=sha256)
        seg_id = self._index.insert_segment(seg)
        self._indexed += 1
        log.debug("%s: indexed segment %d %s (%d bytes)", where, seg_id, seg.path, size)
        if self._on_indexed is not None:
            self._on_indexed(seg, seg_id)

    def _fsync_dirs(self, directory: Path) -> None:
        """fsync the directory; the first time, also its parents up to the root."""
        fsync_dir(directory)
        if directory in self._durable_dirs:
            return
        d = directory
        while d != self.root and self.root in d.parents:
            d = d.parent
            fsync_dir(d)
        self._durable_dirs.add(directory)

    def _flush_open(self) -> None:
        with self._open_lock:
            paths = list(self._open)
        for rel in paths:
            path = self.root / rel
            try:
                fsync_file(path)
                self._fsync_dirs(path.parent)
            except FileNotFoundError:
                continue  # not created yet (the muxer opens on the first packet) or closed
            except OSError as err:
                self._errors += 1
                log.error("site %s: fsync of open segment %s failed: %s", self._site, rel, err)
