"""EventRecorder: writes event rows and snapshot JPEGs off the ingest thread.

`submit()` only queues (the ingest thread calls it through the event callback); a worker
thread writes the snapshot file (temporary name, then rename) and then the index row. The
index links each event to the segments overlapping [start - pre-roll, end + post-roll], both
when the event row changes and when a later segment is inserted, so footage written after the
event (post-roll) is linked too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path

from recorder.errors import RecorderError
from recorder.index import EventRow, Index
from recorder.motion.events import EventChange
from recorder.worker_queue import wait_queue_idle

log = logging.getLogger(__name__)

_STOP = object()


class EventRecorder:
    """One per site. `snapshot_root`: where JPEGs go; rows store paths relative to it."""

    def __init__(self, index: Index, snapshot_root: str | Path, *, site: str = "") -> None:
        self._index = index
        self.snapshot_root = Path(snapshot_root)
        self._site = site
        self._q: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._known: set[str] = set()  # events inserted (an update before new is an error)
        self.errors = 0

    # ---- called on ingest threads (never blocks) ---------------------------------------------

    def submit(self, change: EventChange) -> None:
        self._q.put(change)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("event recorder already started")
        self._thread = threading.Thread(target=self._run, name=f"events-{self._site or 'site'}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then end the thread."""
        if self._thread is None:
            return
        self._q.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("site %s: event recorder did not finish within %.0f s", self._site,
                      timeout_s)
        self._thread = None

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        return wait_queue_idle(self._q, timeout_s)

    # ---- worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, EventChange)
                self._write(item)
            except (RecorderError, OSError, ValueError) as err:
                self.errors += 1
                ch = item if isinstance(item, EventChange) else None
                log.error("site %s camera %s: event %s not recorded: %s", self._site,
                          ch.camera if ch else "?", ch.event_id if ch else "?", err)
            finally:
                self._q.task_done()

    def _write(self, ch: EventChange) -> None:
        snap = self._save_snapshot(ch) if ch.snapshot_jpeg else None
        if ch.change == "new" or ch.event_id not in self._known:
            self._index.insert_event(EventRow(
                id=ch.event_id, camera=ch.camera, source=ch.source, kind="motion",
                start_wall=ch.start_wall, end_wall=ch.end_wall, preroll_s=ch.pre_roll_s,
                postroll_s=ch.post_roll_s, peak_area=ch.peak_area, score=ch.score,
                zones=ch.zones, snapshot_path=snap,
            ))
            self._known.add(ch.event_id)
            return
        fields: dict[str, object] = {"peak_area": ch.peak_area, "score": ch.score,
                                     "zones": ch.zones}
        if snap is not None:
            fields["snapshot_path"] = snap
        if ch.change == "end":
            fields["end_wall"] = ch.end_wall
            self._known.discard(ch.event_id)
        self._index.update_event(ch.event_id, **fields)  # type: ignore[arg-type]

    def _save_snapshot(self, ch: EventChange) -> str:
        day = time.strftime("%Y%m%d", time.gmtime(ch.start_wall))
        rel = Path("snapshots") / ch.camera / day / f"{ch.event_id}.jpg"
        path = self.snapshot_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".jpg.tmp")
        assert ch.snapshot_jpeg is not None
        tmp.write_bytes(ch.snapshot_jpeg)
        os.replace(tmp, path)
        return rel.as_posix()
