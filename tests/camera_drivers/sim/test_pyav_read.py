"""One PyAV reader, two servers: the simulator's main stream and Debian's GStreamer server."""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
import pytest


@dataclass(frozen=True)
class ReadReport:
    frames: int
    decode_errors: int
    max_keyframe_gap_s: float
    width: int
    height: int
    codec: str


def read_rtsp(url: str, seconds: float) -> ReadReport:
    """Read and decode `url` for `seconds` of media time; count errors and keyframe gaps."""
    container = av.open(
        url,
        options={"rtsp_transport": "tcp", "timeout": "5000000"},
        timeout=(10.0, 5.0),
    )
    try:
        stream = container.streams.video[0]
        frames = errors = 0
        first_pts: int | None = None
        last_key_s: float | None = None
        max_gap_s = 0.0
        deadline = time.monotonic() + seconds + 10.0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            # FFmpeg gives the first RTSP packet (a keyframe, here) no pts: count it as 0.
            pts = packet.pts if packet.pts is not None else (first_pts or 0)
            t_s = float(pts * stream.time_base)
            if first_pts is None:
                first_pts = pts
            if packet.is_keyframe:
                if last_key_s is not None:
                    max_gap_s = max(max_gap_s, t_s - last_key_s)
                last_key_s = t_s
            if last_key_s is None:
                continue  # decoding starts at the first keyframe
            try:
                frames += len(packet.decode())
            except av.FFmpegError:
                errors += 1
            if (pts - first_pts) * stream.time_base >= seconds:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: {seconds} s of media took too long")
        try:
            frames += len(stream.decode(None))  # frame threads hold the last frames back
        except av.FFmpegError:
            errors += 1
        return ReadReport(
            frames=frames,
            decode_errors=errors,
            max_keyframe_gap_s=max_gap_s,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


@pytest.mark.gstreamer
def test_pyav_reads_gstreamer_stream(gst_rtsp):
    url = gst_rtsp(width=640, height=360, fps=15, gop=15)
    report = read_rtsp(url, seconds=4.0)
    assert report.codec == "h264"
    assert (report.width, report.height) == (640, 360)
    assert report.decode_errors == 0
    assert report.frames >= 45
    assert 0 < report.max_keyframe_gap_s <= 2.0


def test_pyav_reads_simulator_main_stream_for_10_s(camsim_one):
    report = read_rtsp(camsim_one.with_credentials(camsim_one.rtsp_main), seconds=10.0)
    assert report.codec == "h264"
    assert (report.width, report.height) == (1920, 1080)
    assert report.decode_errors == 0
    assert report.frames >= 10 * 15 - 2
    assert 0 < report.max_keyframe_gap_s <= 2.0
