"""The writer on a live RTSP stream from Debian's GStreamer server (in-band SPS/PPS, 90 kHz)."""

from __future__ import annotations

import time

import av
import pytest

from recorder.storage.segment_writer import SegmentWriter
from recorder.stream_types import StreamInfo

from .conftest import decoded_frames, ffprobe_errors
from .test_segment_writer import check_index_matches_files

pytestmark = pytest.mark.gstreamer


def test_live_rtsp_stream_is_recorded_into_playable_segments(gst_rtsp, storage_root, index,
                                                             flusher):
    url = gst_rtsp(width=320, height=240, fps=15, gop=15)
    writer = SegmentWriter(storage_root, flusher, target_duration_s=2.0)
    fed = 0
    with av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"},
                 timeout=(10, 5)) as c:
        s = c.streams.video[0]
        writer.on_run_start(StreamInfo(
            site="test", camera="cam1", stream="main", run_id=1, codec=s.codec_context.name,
            width=s.codec_context.width, height=s.codec_context.height,
            time_base_num=s.time_base.numerator, time_base_den=s.time_base.denominator,
            run_start_wall=time.time(), av_stream=s,
        ))
        deadline = time.monotonic() + 5.5
        for p in c.demux(s):
            writer.on_packet(p)
            fed += p.dts is not None
            if time.monotonic() > deadline:
                break
        writer.on_run_end("eof")
    assert flusher.wait_idle(30)
    segs = index.segments()
    assert len(segs) >= 2
    stats = writer.stats()
    assert sum(s.frames for s in segs) == fed - stats.dropped_before_keyframe
    for seg in segs:
        path = storage_root / seg.path
        assert ffprobe_errors(path) == ""
        frames, keys = decoded_frames(path)
        assert frames == seg.frames and keys == seg.keyframes
    # rotation at the first keyframe after 2 s, with one keyframe a second
    assert all(abs(s.duration_90k / 90000 - 2.0) < 0.1 for s in segs[:-1])
    check_index_matches_files(storage_root, index)
