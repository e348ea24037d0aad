"""Start-up recovery: SIGKILL of a real writer process, orphans, missing files, garbage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.index import Index
from recorder.storage.flusher import hash_file
from recorder.storage.recovery import recover
from recorder.storage.segment_writer import SegmentWriter

from .conftest import GOP, decoded_frames, ffprobe_errors

REPO = Path(__file__).resolve().parents[3]


def run_and_kill(clip, root: Path, index_path: Path, packets: int) -> int:
    """Run writer_child until it has fed `packets`, SIGKILL it; returns packets fed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.recorder.storage.writer_child", str(clip.path),
         str(root), str(index_path), clip.codec, str(packets)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("FED "), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        return int(line.split()[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("encoder", ["libx264", "libx265"])
def test_sigkill_mid_segment_loses_at_most_one_gop(encoder, clips, storage_root, tmp_path):
    clip = clips(encoder, seconds=8)
    index_path = tmp_path / "kill.sqlite3"
    fed = run_and_kill(clip, storage_root, index_path, packets=5 * 15 + 8)  # 5.5 s
    with Index(index_path) as index:
        before = index.segments()
        assert len(before) == 1  # the 2 s first segment was closed and indexed
        report = recover(storage_root, index, site="test")
        assert report.recovered == 1 and report.runs_closed == 1 and report.missing == 0
        segs = index.segments()
        assert [s.status for s in segs] == ["complete", "recovered"]
        frames = sum(s.frames for s in segs)
        assert fed - GOP <= frames <= fed
        assert segs[1].start_wall == pytest.approx(segs[0].end_wall, abs=0.001)
        assert segs[1].duration_90k == 3 * 90000
        for s in segs:  # no corrupt indexed segment
            path = storage_root / s.path
            assert ffprobe_errors(path) == ""
            assert decoded_frames(path) == (s.frames, s.keyframes)
            assert (s.bytes, s.sha256) == hash_file(path)
        (run,) = index.runs()
        assert run.end_reason == "crash" and run.end_wall == pytest.approx(segs[1].end_wall)
        # a second pass finds nothing to do
        again = recover(storage_root, index, site="test")
        assert (again.recovered, again.deleted, again.missing, again.runs_closed) == (0, 0, 0, 0)


def test_orphan_without_a_complete_fragment_is_deleted(clips, storage_root, tmp_path):
    clip = clips(seconds=4)
    index_path = tmp_path / "kill.sqlite3"
    run_and_kill(clip, storage_root, index_path, packets=2 * 15 + 8)  # 2.5 s: seg 2 unfinished
    orphans = [p for p in storage_root.rglob("*.mp4")]
    assert len(orphans) == 2
    with Index(index_path) as index:
        report = recover(storage_root, index, site="test")
        assert (report.recovered, report.deleted) == (0, 1)
        (seg,) = index.segments()
        assert [p.relative_to(storage_root).as_posix() for p in storage_root.rglob("*.mp4")] == [
            seg.path
        ]


def test_row_whose_file_is_gone_is_marked_missing(clips, open_clip, storage_root, index,
                                                  flusher):
    src = open_clip(clips(seconds=4))
    writer = SegmentWriter(storage_root, flusher, target_duration_s=2.0)
    writer.on_run_start(src.info())
    for p in src.packets():
        writer.on_packet(p)
    writer.close()
    assert flusher.wait_idle(30)
    first, _second = index.segments()
    (storage_root / first.path).unlink()
    report = recover(storage_root, index, site="test")
    assert report.missing == 1 and report.recovered == 0
    assert [s.status for s in index.segments()] == ["missing", "complete"]
    assert index.segments(status="missing")[0].id == first.id


def test_garbage_is_finished_first(clips, open_clip, storage_root, index, flusher):
    src = open_clip(clips(seconds=4))
    writer = SegmentWriter(storage_root, flusher, target_duration_s=2.0)
    writer.on_run_start(src.info())
    for p in src.packets():
        writer.on_packet(p)
    writer.close()
    assert flusher.wait_idle(30)
    first, second = index.segments()
    # a crash after step 1 of the deletion order: row gone, path in garbage, file still there
    assert index.move_segments_to_garbage([first.id], "age") == [first.path]
    assert (storage_root / first.path).exists()
    report = recover(storage_root, index, site="test")
    assert report.garbage_removed == 1
    assert report.recovered == 0  # the garbage file is not mistaken for an orphan
    assert not (storage_root / first.path).exists()
    assert index.garbage() == []
    assert [s.id for s in index.segments()] == [second.id]


def test_unknown_files_are_left_alone(storage_root, index):
    stray = storage_root / "cam1" / "main" / "notes.mp4"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not a segment")
    report = recover(storage_root, index, site="test")
    assert report.unknown_files == 1 and stray.exists()


def test_unreadable_orphan_is_deleted(storage_root, index):
    rel = "cam1/main/2023-11-14/20231114T221320.000Z-r1-00001.mp4"
    path = storage_root / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x00\x00\x10moofxxxxxxxx\x00\x00\x00\x08mdat")
    report = recover(storage_root, index, site="test")
    assert report.deleted == 1 and not path.exists() and index.segments() == []


def test_rows_of_a_removed_directory_are_marked_missing(clips, open_clip, storage_root, index,
                                                        flusher):
    import shutil

    src = open_clip(clips(seconds=4))
    writer = SegmentWriter(storage_root, flusher, target_duration_s=2.0)
    writer.on_run_start(src.info())
    for p in src.packets():
        writer.on_packet(p)
    writer.close()
    assert flusher.wait_idle(30)
    shutil.rmtree(storage_root / "cam1")  # someone removed a camera's footage by hand
    report = recover(storage_root, index, site="test")
    assert report.missing == 2
    assert {s.status for s in index.segments()} == {"missing"}
    assert recover(storage_root, index, site="test").missing == 0  # marked once


def test_segment_paths_in_a_directory(index):
    from recorder.index import ClosedSegment

    for rel in ["cam/main/d1/a.mp4", "cam/main/d1/b.mp4", "cam/main/d10/c.mp4",
                "cam-1/main/d1/e.mp4"]:
        index.insert_segment(ClosedSegment(
            camera="cam", stream="main", run_id=1, path=rel, start_wall=0.0, end_wall=1.0,
            duration_90k=90000, frames=1, keyframes=1, media_bytes=1, codec="h264", width=1,
            height=1, bytes=1, sha256="00"))
    assert sorted(index.segment_paths_in("cam/main/d1")) == [
        "cam/main/d1/a.mp4", "cam/main/d1/b.mp4"]
