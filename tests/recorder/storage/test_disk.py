"""DiskGuard on the real filesystem: thresholds, hysteresis, rate of statvfs calls."""

from __future__ import annotations

import pytest

from recorder.storage.disk import DiskGuard, free_bytes


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


def test_thresholds_with_hysteresis_and_cached_statvfs(tmp_path):
    clock = Clock()
    free = free_bytes(tmp_path)
    guard = DiskGuard(tmp_path, stop_below_free_bytes=free // 2,
                      resume_above_free_bytes=free // 2, check_interval_s=1.0, clock=clock)
    assert guard.ok_to_write() and not guard.storage_full
    guard.stop_below_free_bytes = free * 2  # as if the disk had filled
    guard.resume_above_free_bytes = free * 3
    assert guard.ok_to_write()  # within check_interval_s: no new statvfs
    clock.t += 1.0
    assert not guard.ok_to_write() and guard.storage_full
    guard.stop_below_free_bytes = free // 2  # space back above stop, but not above resume
    clock.t += 1.0
    assert not guard.ok_to_write()
    guard.resume_above_free_bytes = free // 2
    clock.t += 1.0
    assert guard.ok_to_write() and not guard.storage_full
    status = guard.status()
    assert status.free_bytes > 0 and status.total_bytes >= status.free_bytes


def test_enospc_report_holds_until_resume_threshold(tmp_path):
    clock = Clock()
    free = free_bytes(tmp_path)
    guard = DiskGuard(tmp_path, stop_below_free_bytes=0, resume_above_free_bytes=free * 2,
                      check_interval_s=1.0, clock=clock)
    guard.report_enospc()
    assert guard.storage_full
    clock.t += 5
    assert not guard.ok_to_write()
    guard.resume_above_free_bytes = 0
    clock.t += 5
    assert guard.ok_to_write()


def test_resume_below_stop_is_refused(tmp_path):
    with pytest.raises(ValueError, match="resume_above_free_bytes"):
        DiskGuard(tmp_path, stop_below_free_bytes=10, resume_above_free_bytes=5)
