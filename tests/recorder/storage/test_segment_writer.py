"""SegmentWriter + Flusher with real FFmpeg (PyAV) and real files."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from recorder.index import Index
from recorder.storage import fmp4
from recorder.storage.flusher import Flusher, hash_file
from recorder.storage.segment_writer import SegmentWriter

from .conftest import FPS, ClipSource, decoded_frames, ffprobe_errors, ffprobe_info

WALL0 = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL0 + self.t


def record(src: ClipSource, writer: SegmentWriter, *, skip: int = 0, **info) -> int:
    writer.on_run_start(src.info(**info))
    n = 0
    for i, p in enumerate(src.packets()):
        if i >= skip:
            writer.on_packet(p)
            n += 1
    writer.on_run_end("eof")
    return n


def check_index_matches_files(root: Path, index: Index) -> None:
    for seg in index.segments():
        path = root / seg.path
        assert seg.status == "complete"
        assert (seg.bytes, seg.sha256) == hash_file(path)
        assert ffprobe_errors(path) == ""
        frames, keys = decoded_frames(path)
        assert frames == seg.frames
        assert keys == seg.keyframes >= 1


@pytest.mark.parametrize("encoder", ["libx264", "libx265"])
def test_segments_play_rotate_on_keyframes_and_durations_add_up(
    encoder, clips, open_clip, storage_root, index, flusher
):
    clip = clips(encoder, seconds=8)
    src = open_clip(clip)
    writer = SegmentWriter(
        storage_root, flusher, target_duration_s=3.0, first_segment_duration_s=1.5
    )
    record(src, writer)
    assert flusher.wait_idle(30)
    segs = index.segments(camera="cam1", stream="main")
    # 1.5 s target -> rotates at the 2 s keyframe; then every 3 s: 2 + 3 + 3
    assert [round(s.duration_90k / 90000, 3) for s in segs] == [2.0, 3.0, 3.0]
    total_s = sum(s.duration_90k for s in segs) / 90000
    assert abs(total_s - clip.seconds) / clip.seconds < 0.01
    assert sum(s.frames for s in segs) == clip.frames
    assert sum(s.media_bytes for s in segs) == writer.stats().media_bytes_written
    # contiguous wall times from the anchor (invariants 6 and 8)
    assert segs[0].start_wall == pytest.approx(WALL0)
    for a, b in itertools.pairwise(segs):
        assert b.start_wall == pytest.approx(a.end_wall, abs=1e-6)
    check_index_matches_files(storage_root, index)
    info = ffprobe_info(storage_root / segs[0].path)
    stream = info["streams"][0]
    assert stream["codec_tag_string"] == ("hvc1" if encoder == "libx265" else "avc1")
    assert (stream["width"], stream["height"]) == (320, 240)
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.01)
    assert segs[0].codec == clip.codec


def test_leading_non_keyframes_are_dropped_and_counted(clips, open_clip, storage_root, index,
                                                       flusher):
    src = open_clip(clips())
    writer = SegmentWriter(storage_root, flusher)
    fed = record(src, writer, skip=5)  # the first packets of a run are usually not keyframes
    assert flusher.wait_idle(30)
    stats = writer.stats()
    assert stats.dropped_before_keyframe == 10  # packets 5..14 precede the keyframe at 1 s
    (seg,) = index.segments()
    assert seg.frames == fed - 10
    # wall start = run anchor + media offset of the first keyframe from the run's first dts
    assert seg.start_wall == pytest.approx(WALL0 + (15 - 5) / FPS, abs=1e-6)
    check_index_matches_files(storage_root, index)


def test_dts_going_backwards_starts_a_new_segment_flagged_discontinuity(
    clips, open_clip, storage_root, index, flusher
):
    src = open_clip(clips(seconds=4))
    packets = list(src.packets())
    writer = SegmentWriter(storage_root, flusher, clock=FakeClock())
    writer.on_run_start(src.info())
    for p in packets:
        writer.on_packet(p)
    for p in packets:  # the camera restarts its clock: DTS jumps back to 0
        writer.on_packet(p)
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    segs = index.segments()
    assert [s.discontinuity for s in segs] == [False, True]
    assert [s.frames for s in segs] == [len(packets), len(packets)]
    assert segs[1].start_wall >= segs[0].end_wall
    assert writer.stats().discontinuities == 1
    check_index_matches_files(storage_root, index)


def test_dts_jumping_forward_records_a_discontinuity_gap(clips, open_clip, storage_root,
                                                         index, flusher):
    src = open_clip(clips(seconds=4))
    packets = list(src.packets())
    clock = FakeClock()
    writer = SegmentWriter(storage_root, flusher, clock=clock, max_dts_jump_s=5.0)
    writer.on_run_start(src.info())
    for p in packets[:30]:
        writer.on_packet(p)
    clock.t += 12.0  # 12 s pass with nothing received (mono clock), DTS jumps 10 s
    for p in packets[30:]:
        p.dts += 900_000
        p.pts += 900_000
        writer.on_packet(p)
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    segs = index.segments()
    assert len(segs) == 2 and segs[1].discontinuity
    (gap,) = index.gaps(reason="discontinuity")
    assert gap.start_wall == pytest.approx(segs[0].end_wall)
    assert gap.end_wall == pytest.approx(segs[1].start_wall)
    assert gap.end_wall - gap.start_wall == pytest.approx(12.0 - 2.0, abs=0.1)
    check_index_matches_files(storage_root, index)


def test_fragments_reach_the_file_before_close(clips, open_clip, storage_root, index, flusher):
    src = open_clip(clips(seconds=6))
    writer = SegmentWriter(storage_root, flusher)
    writer.on_run_start(src.info())
    for i, p in enumerate(src.packets()):
        writer.on_packet(p)
        if i == 3 * 15:  # the 4th keyframe has just been muxed
            break
    (path,) = list(storage_root.rglob("*.mp4"))
    result = fmp4.scan(path)  # read while the writer still holds the file open
    assert result.fragments == 3 and result.frames == 45 and not result.torn
    writer.close()
    assert flusher.wait_idle(30)
    assert index.segments()[0].frames == 46


def test_packets_are_unchanged_for_the_next_sink(clips, open_clip, storage_root, flusher):
    src = open_clip(clips(seconds=4))
    writer = SegmentWriter(storage_root, flusher)
    writer.on_run_start(src.info())
    for p in src.packets():
        before = (p.dts, p.pts, p.time_base, p.size)
        writer.on_packet(p)
        assert (p.dts, p.pts, p.time_base, p.size) == before
    writer.close()


def test_flusher_fsyncs_open_segments_periodically(clips, open_clip, storage_root, index):
    """The open file is tracked (for the periodic fsync) until it is closed and indexed."""
    f = Flusher(storage_root, index, flush_interval_s=0.05, site="test")
    f.start()
    try:
        src = open_clip(clips(seconds=4))
        writer = SegmentWriter(storage_root, f)
        writer.on_run_start(src.info())
        for p in list(src.packets())[:20]:
            writer.on_packet(p)
        assert len(f._open) == 1
        writer.close()
        assert f.wait_idle(10)
        assert not f._open and f.stats().errors == 0
    finally:
        f.stop()


def test_bad_camera_name_is_refused(clips, open_clip, storage_root, flusher):
    from recorder.errors import BadCameraName

    src = open_clip(clips())
    writer = SegmentWriter(storage_root, flusher)
    with pytest.raises(BadCameraName, match=r"camera name '\.\./x'"):
        writer.on_run_start(src.info(camera="../x"))
    assert not any(os.scandir(storage_root))


def test_an_existing_file_is_never_overwritten(clips, open_clip, storage_root, index, flusher):
    """Run ids restart when an index is rebuilt: the same name must not clobber footage."""
    for _ in range(2):
        src = open_clip(clips(seconds=2))
        record(src, SegmentWriter(storage_root, flusher), run_id=7)
    assert flusher.wait_idle(30)
    a, b = index.segments()
    assert a.path != b.path and a.path.endswith("-r7-00001.mp4")
    assert b.path.endswith("-r7-00002.mp4")
    check_index_matches_files(storage_root, index)


def test_writers_on_many_threads_share_one_flusher_and_guard(clips, open_clip, storage_root,
                                                             index, flusher):
    import threading

    from recorder.storage.disk import DiskGuard

    guard = DiskGuard(storage_root, stop_below_free_bytes=0, resume_above_free_bytes=0)
    clip = clips(seconds=4)
    sources = [open_clip(clip) for _ in range(6)]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            w = SegmentWriter(storage_root, flusher, disk_guard=guard, target_duration_s=1.0,
                              first_segment_duration_s=0.5 + k / 6)
            record(sources[k], w, camera=f"cam{k}", stream="main" if k % 2 else "sub")
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and flusher.wait_idle(60)
    for k in range(6):
        segs = index.segments(camera=f"cam{k}")
        assert sum(s.frames for s in segs) == clip.frames
        assert sum(s.duration_90k for s in segs) == clip.seconds * 90000
    assert flusher.stats().errors == 0
    for s in index.segments():  # (playability is checked by the tests above)
        assert (s.bytes, s.sha256) == hash_file(storage_root / s.path)


def test_write_errors_pause_recording_and_it_resumes_with_a_gap(clips, open_clip, storage_root,
                                                                index, flusher):
    """Not ENOSPC (here: a file where the camera's directory must go): no exception reaches
    the ingest thread, packets are dropped and counted, and the next keyframe retries."""
    blocker = storage_root / "cam1"
    blocker.write_bytes(b"not a directory")
    src = open_clip(clips(seconds=4))
    packets = list(src.packets())
    writer = SegmentWriter(storage_root, flusher)
    writer.on_run_start(src.info())
    for p in packets[:35]:
        writer.on_packet(p)
    stats = writer.stats()
    assert stats.write_errors == 3 and stats.dropped_write_error == 35
    blocker.unlink()
    for p in packets[35:]:
        writer.on_packet(p)
    writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    (seg,) = index.segments()
    assert seg.frames == len(packets) - 45 and seg.start_wall == pytest.approx(WALL0 + 3.0)
    (gap,) = index.gaps(reason="write_error")
    assert (gap.start_wall, gap.end_wall) == (pytest.approx(WALL0), pytest.approx(WALL0 + 3.0))
    check_index_matches_files(storage_root, index)
