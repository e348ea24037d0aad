"""A full disk (a real 8 MiB tmpfs) stops recording cleanly and resumes with a gap."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recorder.index import Index
from recorder.storage.disk import DiskGuard, free_bytes
from recorder.storage.flusher import Flusher, hash_file
from recorder.storage.segment_writer import SegmentWriter

from .conftest import decoded_frames, ffprobe_errors

MIB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (free_bytes(disk) - leave_bytes))
    return filler


@dataclass
class Rig:
    """A writer on the small disk, filled to 3.5 MiB free; its index lives elsewhere."""

    index: Index
    flusher: Flusher
    guard: DiskGuard
    writer: SegmentWriter
    clip: Any  # the clip fed, about 1.5 MiB a second
    src: Any  # the clip opened: .info(), .packets()
    filler: Path


@pytest.fixture
def make_rig(small_disk, clips, open_clip, tmp_path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(*, stop_below_free_bytes: int = 2 * MIB,
             resume_above_free_bytes: int = 4 * MIB) -> Rig:
        clip = clips(seconds=8, noise=True)
        index = Index(tmp_path / "index.sqlite3")  # elsewhere: only segments fill the disk
        flusher = Flusher(small_disk, index, flush_interval_s=0.5, site="test")
        flusher.start()
        guard = DiskGuard(small_disk, stop_below_free_bytes=stop_below_free_bytes,
                          resume_above_free_bytes=resume_above_free_bytes,
                          check_interval_s=0, site="test")
        filler = fill(small_disk, leave_bytes=int(3.5 * MIB))
        writer = SegmentWriter(small_disk, flusher, disk_guard=guard)
        rig = Rig(index, flusher, guard, writer, clip, open_clip(clip), filler)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.flusher.stop()
        rig.index.close()


def feed_until_full(rig: Rig) -> Iterator[Any]:
    """Start a run and feed packets until the writer stops; the rest of the clip's packets."""
    packets = rig.src.packets()
    rig.writer.on_run_start(rig.src.info())
    for p in packets:
        rig.writer.on_packet(p)
        if rig.writer.storage_full:
            break
    return packets


def check_indexed_segments_play(root: Path, index: Index) -> None:
    for s in index.segments():
        path = root / s.path
        assert ffprobe_errors(path) == ""
        assert decoded_frames(path) == (s.frames, s.keyframes)
        assert (s.bytes, s.sha256) == hash_file(path)


@pytest.mark.parametrize("trigger", ["threshold", "enospc"])
def test_full_disk_stops_and_resumes_with_a_gap(trigger, small_disk, make_rig):
    # "enospc": no threshold, only a failing write tells
    rig = make_rig(stop_below_free_bytes=2 * MIB if trigger == "threshold" else 0)
    index, flusher, guard, writer = rig.index, rig.flusher, rig.guard, rig.writer
    packets = feed_until_full(rig)
    assert writer.storage_full and guard.storage_full
    for _ in range(20):  # recording stays stopped while the disk is full
        writer.on_packet(next(packets))
    assert writer.stats().dropped_disk_full >= 20
    assert flusher.wait_idle(30)
    first = index.segments()
    assert len(first) == 1  # what was written up to the last complete fragment is kept
    assert first[0].status == ("complete" if trigger == "threshold" else "recovered")
    rig.filler.unlink()  # retention freed space
    for _ in range(35):  # resumes at the next keyframe
        writer.on_packet(next(packets))
    assert not writer.storage_full and not guard.storage_full
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    segs = index.segments()
    assert len(segs) == 2
    (gap,) = index.gaps(reason="disk_full")
    assert gap.start_wall == pytest.approx(segs[0].end_wall, abs=1e-3)
    assert gap.end_wall == pytest.approx(segs[1].start_wall, abs=1e-3)
    assert gap.end_wall - gap.start_wall >= 1.0
    total_frames = sum(s.frames for s in segs)
    assert total_frames < rig.clip.frames
    check_indexed_segments_play(small_disk, index)
    assert flusher.stats().errors == 0


def test_retention_frees_a_full_disk_and_recording_resumes(small_disk, make_rig):
    """The whole loop with real statvfs: full -> retention by free space -> resume."""
    from recorder.storage.retention import Retention, RetentionPolicy

    rig = make_rig(resume_above_free_bytes=3 * MIB)
    index, flusher, writer = rig.index, rig.flusher, rig.writer
    packets = feed_until_full(rig)
    assert flusher.wait_idle(30)
    (old,) = index.segments()
    report = Retention(small_disk, index, RetentionPolicy(min_free_bytes=3 * MIB + 1),
                       site="test").run()
    assert report.deleted_by_free_space == 1 and report.deleted_bytes == old.bytes
    assert not (small_disk / old.path).exists()
    for _ in range(20):
        writer.on_packet(next(packets))
    assert not writer.storage_full
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    (new,) = index.segments()
    (gap,) = index.gaps(reason="disk_full")
    assert gap.start_wall == pytest.approx(old.end_wall, abs=1e-3)
    assert gap.end_wall == pytest.approx(new.start_wall, abs=1e-3)
    check_indexed_segments_play(small_disk, index)


def test_flusher_retries_a_row_the_full_index_disk_refused(small_disk, clips, open_clip,
                                                            storage_root):
    index = Index(small_disk / "index.sqlite3")
    flusher = Flusher(storage_root, index, flush_interval_s=0.2, site="test")
    flusher.start()
    filler = small_disk / "filler"
    try:
        with open(filler, "wb") as f:  # fill the index's disk to the last byte
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        src = open_clip(clips(seconds=2))
        writer = SegmentWriter(storage_root, flusher)
        writer.on_run_start(src.info())
        for p in src.packets():
            writer.on_packet(p)
        writer.close()
        assert flusher.wait_idle(30)
        assert flusher.stats().errors >= 1 and index.segments() == []
        filler.unlink()
        deadline = time.monotonic() + 10
        while not index.segments() and time.monotonic() < deadline:
            time.sleep(0.1)
        (seg,) = index.segments()
        assert (seg.bytes, seg.sha256) == hash_file(storage_root / seg.path)
    finally:
        flusher.stop()
        index.close()


def test_run_ending_while_full_records_the_gap_up_to_its_end(make_rig):
    rig = make_rig()
    index, flusher, writer, src = rig.index, rig.flusher, rig.writer, rig.src
    writer.on_run_start(src.info())
    fed = 0
    for p in src.packets():
        writer.on_packet(p)
        fed += 1
    assert writer.storage_full
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    (seg,) = index.segments()
    (gap,) = index.gaps(reason="disk_full")
    assert gap.start_wall == pytest.approx(seg.end_wall, abs=1e-3)
    assert gap.end_wall == pytest.approx(1_700_000_000.0 + fed / 15, abs=1e-3)
