"""Retention on a real index and real files: age, quota, free space, holds, events."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.index import ClosedSegment, EventRow, Index
from recorder.storage.flusher import hash_file
from recorder.storage.layout import segment_relpath
from recorder.storage.retention import DAY_S, Retention, RetentionPolicy

NOW = 1_700_000_000.0


class Clock:
    def monotonic(self) -> float:
        return 0.0

    def wall(self) -> float:
        return NOW


def put(root: Path, index: Index, camera: str, age_days: float, nbytes: int = 1000,
        seq: int = 1) -> int:
    """A 60 s segment that ended `age_days` ago, as a real file and its row."""
    end = NOW - age_days * DAY_S
    start = end - 60
    rel = segment_relpath(camera, "main", start, 1, seq)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * nbytes)
    size, sha = hash_file(path)
    return index.insert_segment(ClosedSegment(
        camera=camera, stream="main", run_id=1, path=rel, start_wall=start, end_wall=end,
        duration_90k=60 * 90000, frames=900, keyframes=60, media_bytes=size, codec="h264",
        width=320, height=240, bytes=size, sha256=sha,
    ))


def ages(index: Index, camera: str | None = None) -> list[float]:
    return [round((NOW - s.end_wall) / DAY_S, 2) for s in index.segments(camera)]


def files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.mp4"))


def retention(root, index, **policy) -> Retention:
    return Retention(root, index, RetentionPolicy(**policy), site="test", clock=Clock())


def test_by_age_per_camera(storage_root, index):
    for i, age in enumerate([5, 2.5, 1.5, 0.5]):
        put(storage_root, index, "cam1", age, seq=i)
        put(storage_root, index, "cam2", age, seq=i)
    report = retention(storage_root, index, retain_days=3,
                       retain_days_by_camera={"cam1": 1}).run()
    assert ages(index, "cam1") == [0.5]
    assert ages(index, "cam2") == [2.5, 1.5, 0.5]
    assert (report.deleted, report.deleted_by_age, report.deleted_bytes) == (4, 4, 4000)
    assert files(storage_root) == 4  # deletion order finished: files gone with their rows
    assert index.garbage() == []


def test_empty_day_directories_are_removed(storage_root, index):
    put(storage_root, index, "cam1", 5)
    day_dir = (storage_root / index.segments()[0].path).parent
    retention(storage_root, index, retain_days=1).run()
    assert not day_dir.exists() and day_dir.parent.exists()


def test_hold_survives_age_quota_and_free_space(storage_root, index):
    held = put(storage_root, index, "cam1", 10, seq=1)
    put(storage_root, index, "cam1", 9, seq=2)
    seg = index.segments()[0]
    index.add_hold("cam1", seg.start_wall + 10, seg.start_wall + 20, "case 7", "officer")
    report = retention(storage_root, index, retain_days=1, quota_bytes=0,
                       min_free_bytes=10**18).run()
    assert [s.id for s in index.segments()] == [held]
    assert report.kept_by_hold == 1 and report.deleted == 1
    assert (storage_root / seg.path).exists()


def test_hold_on_another_camera_does_not_protect(storage_root, index):
    put(storage_root, index, "cam1", 10)
    s = index.segments()[0]
    index.add_hold("cam2", s.start_wall, s.end_wall, "case", "who")
    retention(storage_root, index, retain_days=1).run()
    assert index.segments() == []


def test_event_linked_segments_outlive_continuous_footage(storage_root, index):
    for i, age in enumerate([40, 20, 5]):
        put(storage_root, index, "cam1", age, seq=i)
    for s in index.segments():
        index.insert_event(EventRow(id=f"e{s.id}", camera="cam1", source="motion",
                                    kind="motion", start_wall=s.start_wall + 5,
                                    end_wall=s.start_wall + 10))
    put(storage_root, index, "cam1", 3, seq=9)  # no event
    report = retention(storage_root, index, retain_days=2, event_retain_days=30).run()
    assert ages(index) == [20, 5]  # the 40-day event footage went; no-event footage went
    assert report.deleted == 2 and report.kept_by_hold == 0


def test_quota_deletes_oldest_first_unlinked_before_event_linked(storage_root, index):
    for i in range(10):
        put(storage_root, index, "cam1", 10 - i, seq=i)  # ages 10..1 days
    oldest = index.segments()[0]
    index.insert_event(EventRow(id="e", camera="cam1", source="motion", kind="motion",
                                start_wall=oldest.start_wall, end_wall=oldest.end_wall))
    report = retention(storage_root, index, quota_bytes=6500).run()
    assert index.total_segment_bytes() <= 6500
    assert report.deleted_by_quota == 4 and report.deleted_bytes == 4000
    assert ages(index) == [10, 5, 4, 3, 2, 1]  # the event-linked 10-day one kept
    retention(storage_root, index, quota_bytes=1500).run()
    assert ages(index) == [10]  # all unlinked footage goes before event-linked footage
    retention(storage_root, index, quota_bytes=500).run()
    assert ages(index) == [] and files(storage_root) == 0  # then event-linked footage too


def test_min_free_space(storage_root, index):
    for i in range(6):
        put(storage_root, index, "cam1", 6 - i, seq=i)
    capacity = 10_000

    def free(root: Path) -> int:  # a disk of 10 kB holding these files
        return capacity - sum(p.stat().st_size for p in root.rglob("*.mp4"))

    ret = Retention(storage_root, index, RetentionPolicy(min_free_bytes=6500), site="t",
                    clock=Clock(), free_bytes_fn=free)
    report = ret.run()
    assert report.deleted_by_free_space == 3 and free(storage_root) >= 6500
    assert ages(index) == [3, 2, 1]
    assert ret.run().deleted == 0


def test_nothing_to_do(storage_root, index):
    put(storage_root, index, "cam1", 0.1)
    report = retention(storage_root, index, retain_days=1, quota_bytes=10**9).run()
    assert report.deleted == 0 and files(storage_root) == 1


@pytest.mark.parametrize("n", [600])
def test_many_segments_in_batches(storage_root, index, n):
    for i in range(n):
        put(storage_root, index, "cam1", 5 + i / 10000, nbytes=10, seq=i)
    report = retention(storage_root, index, retain_days=1).run()
    assert report.deleted == n and files(storage_root) == 0


def test_kept_by_hold_counts_held_segments_past_their_age(storage_root, index):
    for i in range(4):
        put(storage_root, index, "cam1", 10 - i, seq=i)  # ages 10, 9, 8, 7 days
    segs = index.segments()
    index.add_hold("cam1", segs[0].start_wall, segs[1].end_wall, "case", "who")  # 10 and 9
    index.add_hold("cam1", segs[1].start_wall, segs[1].end_wall, "other", "who")  # 9 again
    report = retention(storage_root, index, retain_days=7.5).run()
    assert report.kept_by_hold == 2 and report.deleted == 1  # the 8-day one
    assert ages(index) == [10, 9, 7]
