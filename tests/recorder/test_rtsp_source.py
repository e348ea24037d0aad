"""RtspOpener (Dozor's RTSP client as an ingest source) and FallbackOpener (FFmpeg for what
the client cannot read), against the simulator and Debian's GStreamer RTSP server."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from camera_drivers.rtsp.client import RtspSession
from recorder.ingest import IngestSettings, PyavOpener, SourceError
from recorder.rtsp_source import FallbackOpener, RtspOpener, RtspSource, make_opener
from recorder.stream_types import ReadLatency


def first_packets(source, count: int) -> list[av.Packet]:
    return list(itertools.islice(source.packets(), count))


def test_packets_start_at_a_keyframe_and_count_in_the_rtp_clock(camsim_one) -> None:
    source = RtspOpener().open(camsim_one.with_credentials(camsim_one.rtsp_main))
    try:
        packets = first_packets(source, 20)
        video = source.video
        assert isinstance(source, RtspSource)
        assert source.time_base == Fraction(1, 90000) == video.time_base
        assert (video.codec_context.name, video.codec_context.width) == ("h264", 1920)
        assert video.codec_context.height == 1080 and video.codec_context.extradata
        assert packets[0].is_keyframe and packets[0].dts == 0
        assert [p.dts for p in packets] == [i * 6000 for i in range(20)]
        assert all(p.pts == p.dts and p.time_base == Fraction(1, 90000) for p in packets)
        # what FFmpeg would do with the same bytes: decode the keyframe with the template
        ctx = av.CodecContext.create("h264", "r")
        ctx.extradata = video.codec_context.extradata
        frames = ctx.decode(packets[0]) + ctx.decode(None)
        assert frames and (frames[0].width, frames[0].height) == (1920, 1080)
    finally:
        source.close()


def open_as_ingest_does(opener: FallbackOpener, url: str, tries: int = 4):
    """Open, retrying after a pause like the ingest's back-off: right after Dozor's client
    tore its session down, GStreamer's shared media may answer the next SETUP with 503."""
    for attempt in range(tries):
        try:
            return opener.open(url)
        except SourceError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def test_an_mjpeg_camera_is_read_through_ffmpeg(gst_rtsp) -> None:
    url = gst_rtsp(codec="mjpeg")
    opener = FallbackOpener(RtspOpener(), PyavOpener())
    source = open_as_ingest_does(opener, url)
    try:
        assert opener.uses_fallback(url)
        assert source.video.codec_context.name == "mjpeg"
        assert len(first_packets(source, 5)) == 5
    finally:
        source.close()


@pytest.fixture(scope="module")
def bframes_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of 640x360 H.264 with two B-frames between references."""
    path = tmp_path_factory.mktemp("bframes") / "bframes.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"bf": "2", "g": "15", "x264-params": "b-adapt=0"}
        for i in range(60):
            img = np.zeros((360, 640, 3), np.uint8)
            img[:, (i * 8) % 600 : (i * 8) % 600 + 40] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_b_frames_switch_the_stream_to_ffmpeg_for_good(gst_rtsp, bframes_mp4: Path) -> None:
    url = gst_rtsp(file=str(bframes_mp4))
    opener = FallbackOpener(RtspOpener(), PyavOpener())
    first = opener.open(url)
    try:
        with pytest.raises(SourceError, match="B-frames") as err:
            first_packets(first, 30)
        assert err.value.unsupported
    finally:
        first.close()
    assert opener.uses_fallback(url)
    second = open_as_ingest_does(opener, url)
    try:
        packets = first_packets(second, 10)
        assert len(packets) == 10
        assert any(p.pts != p.dts for p in packets)  # FFmpeg's parser knows the decode order
    finally:
        second.close()


def test_unreachable_is_not_unsupported(unused_tcp_port: int) -> None:
    opener = FallbackOpener(RtspOpener(open_timeout_s=1.0), PyavOpener(open_timeout_s=1.0))
    url = f"rtsp://127.0.0.1:{unused_tcp_port}/x"
    with pytest.raises(SourceError, match="cannot connect") as err:
        opener.open(url)
    assert not err.value.unsupported and not opener.uses_fallback(url)


def test_the_opener_follows_the_setting() -> None:
    assert isinstance(make_opener(IngestSettings()), FallbackOpener)
    assert isinstance(make_opener(IngestSettings(rtsp_client="ffmpeg")), PyavOpener)
    with pytest.raises(ValueError, match="rtsp_client"):
        make_opener(IngestSettings(rtsp_client="gstreamer"))


def test_reads_are_unbatched_while_a_sink_asks(camsim_one) -> None:
    """A live viewer's sink asks the stream's ReadLatency; the source reads frames as they
    arrive then, and in batches again afterwards (15 fps: 20 frames take 1.3 s)."""
    session = RtspSession(camsim_one.with_credentials(camsim_one.rtsp_sub), read_batch_s=0.25)
    session.open()
    source = RtspSource(session)
    latency = ReadLatency()
    source.follow(latency)
    packets = source.packets()
    try:
        list(itertools.islice(packets, 5))  # the keyframe and the start are read at once
        start = session.counters().reads
        list(itertools.islice(packets, 20))
        batched = session.counters().reads - start
        latency.ask("viewer", True)
        list(itertools.islice(packets, 20))
        unbatched = session.counters().reads - start - batched
        latency.ask("viewer", False)
        list(itertools.islice(packets, 20))
    finally:
        packets.close()
        source.close()
    assert batched <= 7  # read every 0.25 s
    assert unbatched >= 15  # about one read a frame
