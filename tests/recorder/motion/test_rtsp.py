"""MotionSink on a live RTSP stream from Debian's GStreamer server (a bouncing ball)."""

from __future__ import annotations

import time

import av
import pytest

from recorder.motion.config import MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.sink import MotionSink
from recorder.stream_types import StreamInfo

pytestmark = pytest.mark.gstreamer


def test_live_stream_moving_ball_starts_an_event_at_media_wall_time(gst_rtsp):
    url = gst_rtsp(width=640, height=360, fps=15, gop=15)
    changes: list[EventChange] = []
    sink = MotionSink("ball", MotionConfig(), changes.append)
    opened = time.time()
    container = av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"},
                        timeout=(10.0, 5.0))
    try:
        st = container.streams.video[0]
        run_start = opened  # av.open buffers ~2 s of packets while probing: anchor before it
        sink.on_run_start(StreamInfo(
            site="test", camera="ball", stream="sub", run_id=1, codec=st.codec_context.name,
            width=st.codec_context.width, height=st.codec_context.height,
            time_base_num=st.time_base.numerator, time_base_den=st.time_base.denominator,
            run_start_wall=run_start, av_stream=st,
        ))
        deadline = time.monotonic() + 8.0
        for pkt in container.demux(st):
            if pkt.dts is not None:
                sink.on_packet(pkt)
            if time.monotonic() > deadline or any(c.change == "new" for c in changes):
                break
    finally:
        container.close()
    sink.on_run_end("test over")
    new = next(c for c in changes if c.change == "new")
    # calibration takes 2 s of media time; wall times follow media time from the anchor,
    # not the arrival of the burst of probed packets
    assert run_start + 1.9 <= new.start_wall <= time.time() + 0.5
    assert sink.frames_processed >= 10
