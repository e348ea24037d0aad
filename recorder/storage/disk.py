"""Free-space checks with hysteresis, shared by the writers of one storage root."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from recorder.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiskStatus:
    free_bytes: int
    total_bytes: int
    storage_full: bool


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use under `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskGuard:
    """Says whether writers may write (docs/storage.md, "Disk full").

    Full when free space drops under `stop_below_free_bytes` or a writer reported ENOSPC;
    not full again until free space exceeds `resume_above_free_bytes`. `statvfs` is called
    at most once per `check_interval_s`, so asking on every keyframe is cheap.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        stop_below_free_bytes: int,
        resume_above_free_bytes: int,
        check_interval_s: float = 1.0,
        clock: Clock | None = None,
        site: str = "",
    ) -> None:
        if resume_above_free_bytes < stop_below_free_bytes:
            raise ValueError(
                f"resume_above_free_bytes ({resume_above_free_bytes}) must be at least "
                f"stop_below_free_bytes ({stop_below_free_bytes})"
            )
        self.root = Path(root)
        self.stop_below_free_bytes = stop_below_free_bytes
        self.resume_above_free_bytes = resume_above_free_bytes
        self.check_interval_s = check_interval_s
        self._clock = clock or SystemClock()
        self._site = site
        self._lock = threading.Lock()
        self._full = False
        self._next_check = float("-inf")
        self._free = 0
        self._total = 0

    @property
    def storage_full(self) -> bool:
        """The site-wide alarm state the health layer reads."""
        return self._full

    def status(self) -> DiskStatus:
        self.ok_to_write()
        return DiskStatus(self._free, self._total, self._full)

    def ok_to_write(self, *, force: bool = False) -> bool:
        now = self._clock.monotonic()
        if not force and now < self._next_check:
            return not self._full
        with self._lock:
            self._next_check = now + self.check_interval_s
            try:
                st = os.statvfs(self.root)
            except OSError as err:
                log.error("site %s: statvfs %s failed: %s", self._site, self.root, err)
                return not self._full
            self._free = st.f_bavail * st.f_frsize
            self._total = st.f_blocks * st.f_frsize
            if self._full and self._free > self.resume_above_free_bytes:
                self._full = False
                log.warning(
                    "site %s: storage %s has room again (%d bytes free): recording resumes",
                    self._site, self.root, self._free,
                )
            elif not self._full and self._free < self.stop_below_free_bytes:
                self._set_full(f"{self._free} bytes free < {self.stop_below_free_bytes}")
            return not self._full

    def report_enospc(self) -> None:
        """A writer hit ENOSPC: full until free space exceeds the resume threshold."""
        with self._lock:
            if not self._full:
                self._set_full("a write failed with ENOSPC")
            self._next_check = self._clock.monotonic() + self.check_interval_s

    def _set_full(self, why: str) -> None:
        self._full = True
        log.error("site %s: storage %s is full (%s): recording stops", self._site, self.root, why)
