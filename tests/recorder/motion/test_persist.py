"""Events recorded in the real index, linked to real segments (pre-roll included)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from recorder.index import Index
from recorder.motion.config import EventConfig, MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.offline import stream_info_for
from recorder.motion.persist import EventRecorder
from recorder.motion.sink import MotionSink
from recorder.storage.flusher import Flusher
from recorder.storage.segment_writer import SegmentWriter

WALL0 = 1_700_000_000.0


def frame_walls(path: Path, start_wall: float) -> list[float]:
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        tb = float(st.time_base)
        first = None
        walls = []
        for pkt in c.demux(st):
            if pkt.dts is None:
                continue
            first = pkt.dts if first is None else first
            walls.append(start_wall + (pkt.dts - first) * tb)
        return walls


def test_event_linked_to_segments_covering_pre_roll(clip, tmp_path):
    c = clip("person_walk")  # person enters at 3.1 s; keyframe every 2 s
    root = tmp_path / "storage"
    root.mkdir()
    index = Index(tmp_path / "index.sqlite3")
    flusher = Flusher(root, index, flush_interval_s=0.5, site="test")
    flusher.start()
    recorder = EventRecorder(index, root, site="test")
    recorder.start()
    writer = SegmentWriter(root, flusher, target_duration_s=2.0)
    seen: list[EventChange] = []

    def on_event(ch: EventChange) -> None:
        seen.append(ch)
        recorder.submit(ch)

    cfg = MotionConfig(events=EventConfig(pre_roll_s=1.0, post_roll_s=3.0))
    sink = MotionSink("cam1", cfg, on_event)
    try:
        with av.open(str(c.path)) as container:
            info = stream_info_for(container, "cam1")
            from dataclasses import replace

            info = replace(info, site="test", stream="sub", run_id=1, run_start_wall=WALL0)
            for s in (writer, sink):  # the ingest thread's order: segments, then motion
                s.on_run_start(info)
            for pkt in container.demux(info.av_stream):
                if pkt.dts is None:
                    continue
                writer.on_packet(pkt)
                sink.on_packet(pkt)
            for s in (writer, sink):
                s.on_run_end("eof")
        assert flusher.wait_idle(30) and recorder.wait_idle(30)
    finally:
        recorder.stop()
        flusher.stop()

    (ev,) = index.events(camera="cam1")
    (truth,) = c.truth
    assert ev.source == "motion" and ev.kind == "motion"
    assert ev.start_wall - WALL0 == pytest.approx(truth.enter_s, abs=0.5)
    assert ev.end_wall is not None and ev.end_wall > ev.start_wall
    assert ev.preroll_s == 1.0 and ev.postroll_s == 3.0
    assert ev.peak_area and ev.peak_area > 0.004 and ev.score and ev.score > 0
    assert recorder.errors == 0
    # the snapshot JPEG was written off the ingest thread, under the storage root
    assert ev.snapshot_path is not None
    snap = root / ev.snapshot_path
    assert snap.read_bytes()[:2] == b"\xff\xd8"
    assert snap.read_bytes() == [ch.snapshot_jpeg for ch in seen if ch.snapshot_jpeg][-1]

    linked = index.event_segments(ev.id)
    all_segs = index.segments(camera="cam1")
    assert len(all_segs) == 7  # 14 s in 2 s segments
    footage_from = ev.start_wall - ev.preroll_s
    footage_to = ev.end_wall + ev.postroll_s
    expected = [s.id for s in all_segs if s.end_wall > footage_from and s.start_wall < footage_to]
    assert [s.id for s in linked] == expected
    assert all_segs[0].id not in expected  # [0, 2) s ends before the pre-roll starts
    # pre-roll footage is really in the first linked segment: frames before the event
    walls = frame_walls(root / linked[0].path, linked[0].start_wall)
    pre = [w for w in walls if footage_from <= w < ev.start_wall]
    assert len(pre) >= round(ev.preroll_s * c.spec.fps) - 1
