"""LiveSink on packets from real encoded streams (PyAV-made H.264 and H.265 files)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from police_link.commands import CommandError, CommandRequest, check_args
from police_link.errors import ValidationError
from recorder.live import (
    HEADER_BYTES,
    LIVE_COMMAND_SCHEMAS,
    ChunkKind,
    LiveController,
    LiveError,
    LiveMode,
    LivePayload,
    LiveRequestError,
    LiveSink,
    _trun_sample_count,
    codec_string,
    decode_payload,
    parse_live_command,
)
from recorder.stream_types import ReadLatency, StreamInfo

FPS = 15
GOP = 15


class StepClock:
    """A Clock the test moves by hand (recorder.clock.Clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


def make_clip(
    path: Path, codec: str, seconds: float = 3.0, size: tuple[int, int] = (320, 180)
) -> Path:
    """A clip with a moving box, GOP of one second, no B-frames, in MPEG-TS (Annex B, like RTSP)."""
    width, height = size
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264" if codec == "h264" else "libx265", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.max_b_frames = 0
        if codec == "h265":
            stream.codec_context.options = {"x265-params": "log-level=error"}
        for i in range(int(seconds * FPS)):
            img = np.full((height, width, 3), 120, np.uint8)
            x = (i * 6) % (width - 30)
            img[height // 3 : height // 3 + 40, x : x + 30] = 20
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("live") / "sub.ts", "h264")


@pytest.fixture(scope="module")
def h265_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("live") / "sub265.ts", "h265", seconds=2.0)


class Replay:
    """Feeds a file's packets to a sink the way an ingest thread does."""

    def __init__(self, path: Path, sink: LiveSink, clock: StepClock) -> None:
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.sink = sink
        self.clock = clock
        self.packets: Iterator[av.Packet] = (
            p for p in self.container.demux(self.stream) if p.dts is not None
        )
        tb: Fraction = self.stream.time_base
        ctx = self.stream.codec_context
        self.info = StreamInfo(
            site="village", camera="gate", stream="sub", run_id=1, codec=ctx.name,
            width=ctx.width, height=ctx.height, time_base_num=tb.numerator,
            time_base_den=tb.denominator, run_start_wall=clock.wall(), av_stream=self.stream,
            read_latency=ReadLatency(),
        )
        sink.on_run_start(self.info)

    def feed(self, count: int) -> list[av.Packet]:
        fed = []
        for _ in range(count):
            packet = next(self.packets, None)
            if packet is None:
                break
            self.clock.now += 1 / FPS
            self.sink.on_packet(packet)
            fed.append(packet)
        return fed

    def close(self) -> None:
        self.container.close()


def collect(published: list[LivePayload]) -> Any:
    """A LiveSink publish function that keeps what it is given."""

    def publish(payload: bytes, droppable: bool) -> bool:
        published.append(decode_payload(payload))
        return True

    return publish


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def published() -> list[LivePayload]:
    return []


@pytest.fixture
def sink(clock: StepClock, published: list[LivePayload]) -> LiveSink:
    return LiveSink(site="village", camera="gate", stream="sub", fragment_s=0.0,
                    publish=collect(published), clock=clock)


@pytest.fixture
def replay(h264_clip: Path, sink: LiveSink, clock: StepClock) -> Iterator[Replay]:
    r = Replay(h264_clip, sink, clock)
    yield r
    r.close()


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,codec_name", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return int(json.loads(out.stdout)["streams"][0]["nb_read_frames"])


def test_nobody_watching_publishes_nothing(replay: Replay, published: list[LivePayload]) -> None:
    replay.feed(30)
    assert published == []


def test_init_then_fragments_that_play_in_ffprobe(
    replay: Replay, sink: LiveSink, published: list[LivePayload], tmp_path: Path
) -> None:
    replay.feed(5)  # mid-GOP: the view must wait for the next keyframe
    sink.request("v1", LiveMode.MSE, ttl_s=30)
    fed = replay.feed(30)
    kinds = [c.kind for c in published]
    assert kinds[0] is ChunkKind.INIT
    assert set(kinds[1:]) == {ChunkKind.MEDIA}
    init = published[0]
    assert init.meta is not None and init.meta["codec"].startswith("avc1.")
    assert init.meta["width"] == 320
    media = published[1:]
    assert media[0].keyframe, "the first fragment must start with a keyframe"
    # One fragment per frame, held back by one frame: the muxer cuts on the next packet.
    first_key = next(i for i, p in enumerate(fed) if p.is_keyframe)
    assert len(media) == len(fed) - first_key - 1
    keyframes = [i for i, p in enumerate(fed[first_key:]) if p.is_keyframe]
    assert [i for i, c in enumerate(media) if c.keyframe] == keyframes[: len(
        [k for k in keyframes if k < len(media)])]
    assert [c.seq for c in published] == list(range(1, len(published) + 1))
    assert all(c.recv_wall_us > 0 and c.sample_wall_us > 0 for c in media)
    out = tmp_path / "live.mp4"
    out.write_bytes(init.body + b"".join(c.body for c in media))
    assert ffprobe_frames(out) == len(media)
    assert sink.stats().fragments == len(media)
    assert sink.stats().bytes_published == sum(
        len(c.encode()) for c in published)


def test_grouped_fragments_start_on_keyframes(
    h264_clip: Path, clock: StepClock, published: list[LivePayload], tmp_path: Path
) -> None:
    sink = LiveSink(site="village", camera="gate", stream="sub", clock=clock, fragment_s=0.2,
                    publish=collect(published))
    r = Replay(h264_clip, sink, clock)
    sink.request("v1")
    fed = r.feed(40)
    r.close()
    media = [c for c in published if c.kind is ChunkKind.MEDIA]
    assert 8 <= len(media) <= 14  # about 3 frames a fragment
    out = tmp_path / "grouped.mp4"
    out.write_bytes(published[0].body + b"".join(c.body for c in media))
    assert ffprobe_frames(out) >= len(fed) - 4


@pytest.mark.parametrize(("bitrate_bps", "frames"), [(2_000_000, 1), (256_000, 2), (50_000, 3)])
def test_automatic_fragmenting_follows_the_bitrate(
    h264_clip: Path, clock: StepClock, bitrate_bps: int, frames: int, tmp_path: Path
) -> None:
    published: list[LivePayload] = []
    sink = LiveSink(site="village", camera="gate", stream="sub", clock=clock,
                    publish=collect(published))
    r = Replay(h264_clip, sink, clock)
    seen = r.feed(29)  # two seconds of stream before anybody watches, up to a keyframe
    # Pretend the stream ran at bitrate_bps: the choice depends on nothing else.
    span_s = (seen[-1].dts - seen[0].dts + 6000) * r.stream.time_base
    sink._seen_bytes = int(bitrate_bps * span_s / 8)
    sink.request("v1")
    r.feed(16)
    r.close()
    media = [c for c in published if c.kind is ChunkKind.MEDIA]
    assert media[0].keyframe
    counts = [_trun_sample_count(c.body) for c in media]
    assert max(set(counts), key=counts.count) == frames, counts
    out = tmp_path / "auto.mp4"
    out.write_bytes(published[0].body + b"".join(c.body for c in media))
    assert ffprobe_frames(out) == sum(counts)


def test_sample_wall_times_follow_the_run_anchor(
    replay: Replay, sink: LiveSink, clock: StepClock, published: list[LivePayload]
) -> None:
    run_start_us = int(clock.wall() * 1e6)
    replay.feed(20)  # nobody watches yet
    sink.request("v1")
    replay.feed(20)
    media = [c for c in published if c.kind is ChunkKind.MEDIA]
    offset_s = (media[0].sample_wall_us - run_start_us) / 1e6
    assert offset_s == pytest.approx(30 / FPS, abs=0.01)  # the keyframe at packet 30


def test_ttl_expiry_stops_publishing(
    replay: Replay, sink: LiveSink, clock: StepClock, published: list[LivePayload]
) -> None:
    sink.request("v1", ttl_s=2.0)
    replay.feed(15)  # 1 s
    assert published
    replay.feed(20)  # past 2 s: expired
    assert published[-1].kind is ChunkKind.END
    assert published[-1].meta == {"reason": "no viewers", "mode": "mse"}
    count = len(published)
    replay.feed(10)
    assert len(published) == count
    assert sink.stats().views == 0


def test_renewal_keeps_it_going(
    replay: Replay, sink: LiveSink, published: list[LivePayload]
) -> None:
    sink.request("v1", ttl_s=2.0)
    for _ in range(3):
        replay.feed(15)
        sink.request("v1", ttl_s=2.0)
    assert all(c.kind is not ChunkKind.END for c in published)
    assert sum(c.kind is ChunkKind.MEDIA for c in published) >= 40


def test_stop_of_last_view_stops(
    replay: Replay, sink: LiveSink, published: list[LivePayload]
) -> None:
    sink.request("v1")
    sink.request("v2")
    replay.feed(10)
    assert sink.release("v1")
    replay.feed(5)
    assert published[-1].kind is ChunkKind.MEDIA
    sink.release("v2")
    replay.feed(5)
    assert published[-1].kind is ChunkKind.END


def test_frames_are_read_unbatched_only_while_someone_watches(
    replay: Replay, sink: LiveSink
) -> None:
    latency = replay.info.read_latency
    assert latency is not None
    replay.feed(3)
    assert not latency.low
    sink.request("v1")
    replay.feed(3)
    assert latency.low
    sink.release("v1")
    replay.feed(3)
    assert not latency.low
    sink.request("v2")
    replay.feed(3)
    sink.on_run_end("eof")
    assert not latency.low


def test_second_view_gets_the_init_again(
    replay: Replay, sink: LiveSink, published: list[LivePayload]
) -> None:
    sink.request("v1")
    replay.feed(10)
    sink.request("v2")
    replay.feed(1)
    inits = [c for c in published if c.kind is ChunkKind.INIT]
    assert len(inits) == 2 and inits[0].body == inits[1].body


def test_run_end_announces_end(
    replay: Replay, sink: LiveSink, published: list[LivePayload]
) -> None:
    sink.request("v1")
    replay.feed(5)
    sink.on_run_end("camera stalled")
    assert published[-1].kind is ChunkKind.END
    assert "camera stalled" in published[-1].meta["reason"]


def test_jpeg_fallback_for_h265(
    h265_clip: Path, clock: StepClock, published: list[LivePayload]
) -> None:
    sink = LiveSink(site="village", camera="gate", stream="sub", clock=clock,
                    publish=collect(published))
    r = Replay(h265_clip, sink, clock)
    sink.request("v1", LiveMode.JPEG)
    r.feed(30)  # 2 s, two keyframes
    r.close()
    assert [c.kind for c in published] == [ChunkKind.JPEG, ChunkKind.JPEG]
    for chunk in published:
        image = cv2.imdecode(np.frombuffer(chunk.body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (180, 320, 3)


def test_h265_codec_string_for_mse(
    h265_clip: Path, clock: StepClock, published: list[LivePayload]
) -> None:
    sink = LiveSink(site="village", camera="gate", stream="sub", clock=clock,
                    publish=collect(published))
    r = Replay(h265_clip, sink, clock)
    sink.request("v1")
    r.feed(3)
    r.close()
    assert published[0].meta["codec"].startswith("hvc1.1.6.L")
    assert b"hvc1" in published[0].body


def test_codec_string_of_avc_init() -> None:
    avcc = b"\x00\x00\x00\x10avcC\x01\x64\x00\x1f\xff\xe1"
    assert codec_string(avcc) == "avc1.64001f"
    with pytest.raises(LiveError, match="neither avcC nor hvcC"):
        codec_string(b"\x00\x00\x00\x08moov")


def test_chunk_round_trip_and_bad_chunks() -> None:
    chunk = LivePayload(ChunkKind.INIT, 7, b"body", 1, 11, 22, {"codec": "avc1.64001f"})
    assert decode_payload(chunk.encode()) == chunk
    with pytest.raises(LiveError, match="shorter than the header"):
        decode_payload(b"DZL1")
    with pytest.raises(LiveError, match="bad magic"):
        decode_payload(b"XXXX" + bytes(HEADER_BYTES))
    bad_kind = bytearray(chunk.encode())
    bad_kind[4] = 9
    with pytest.raises(LiveError, match="unknown kind 9"):
        decode_payload(bytes(bad_kind))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"camera": ""}, "camera"),
        ({"camera": "gate", "stream": "third"}, "stream"),
        ({"camera": "gate", "mode": "webrtc"}, "mode"),
        ({"camera": "gate", "ttl_s": 0}, "ttl_s"),
        ({"camera": "gate", "ttl_s": 1e6}, "ttl_s"),
    ],
)
def test_bad_live_commands_name_the_field(args: dict, field: str) -> None:
    with pytest.raises(LiveRequestError) as info:
        parse_live_command(args, "viewer1")
    assert info.value.field == field


def test_live_schemas_accept_mode() -> None:
    args = {"camera": "gate", "stream": "sub", "ttl_s": 30, "mode": "jpeg"}
    checked = check_args(args, LIVE_COMMAND_SCHEMAS["live.start"], frozenset({"gate"}))
    assert checked == args
    with pytest.raises(ValidationError, match="mode"):
        check_args({**args, "mode": "gif"}, LIVE_COMMAND_SCHEMAS["live.renew"],
                   frozenset({"gate"}))


def test_controller_routes_commands(h264_clip: Path, clock: StepClock) -> None:
    sent: list[tuple[str, str, bytes]] = []
    controller = LiveController("village", lambda c, s, p, **_: sent.append((c, s, p)), clock=clock)
    sink = controller.sink("gate", "sub")
    assert controller.sink("gate", "sub") is sink
    r = Replay(h264_clip, sink, clock)
    args = {"camera": "gate", "stream": "sub", "ttl_s": 5}
    start = CommandRequest("village", "live.start", "viewer1", args, 0.0)
    assert controller.handle_request(start) == {"ttl_s": 5.0, "mode": "mse"}
    r.feed(20)
    r.close()
    assert sent and {(c, s) for c, s, _ in sent} == {("gate", "sub")}
    assert sink.stats().views == 1
    stop = CommandRequest("village", "live.stop", "viewer1", {"camera": "gate", "stream": "sub"},
                          0.0)
    assert controller.handle_request(stop) == {"stopped": True}
    assert sink.stats().views == 0
    with pytest.raises(CommandError) as info:
        controller.handle_request(
            CommandRequest("village", "live.start", "viewer1", {"camera": "yard"}, 0.0))
    assert info.value.code == "unknown_camera"
    with pytest.raises(LiveRequestError, match="not a live command"):
        controller.handle("live.pause", {"camera": "gate"}, "viewer1")


def test_controller_wiring_helpers(clock: StepClock) -> None:
    class Camera:
        name = "gate"

    class Link:
        def __init__(self) -> None:
            self.handlers: dict[str, Any] = {}

        def on_command(self, kind: str, handler: Any, schema: Any) -> None:
            self.handlers[kind] = (handler, schema)

    controller = LiveController("village", lambda c, s, p, **_: True, clock=clock)
    assert controller.sink_factory(Camera(), "main") == [controller.sink("gate", "main")]
    link = Link()
    controller.register(link)
    assert {k: v[1] for k, v in link.handlers.items()} == LIVE_COMMAND_SCHEMAS


def test_a_fragment_not_sent_skips_to_the_next_keyframe(
    replay: Replay, clock: StepClock
) -> None:
    sent: list[LivePayload] = []
    refuse = {"on": False}

    def publish(payload: bytes, droppable: bool) -> bool:
        if refuse["on"] and droppable:
            return False  # SiteLink.publish_live with drop_if_backlogged on a slow link
        sent.append(decode_payload(payload))
        return True

    sink = LiveSink(site="village", camera="gate", stream="sub", fragment_s=0.0, clock=clock,
                    publish=publish)
    replay.sink = sink
    sink.on_run_start(replay.info)
    sink.request("v1")
    replay.feed(5)
    refuse["on"] = True
    replay.feed(2)
    refuse["on"] = False
    replay.feed(20)  # the keyframe at packet 15 resumes it
    media = [c for c in sent if c.kind is ChunkKind.MEDIA]
    resumed = next(i for i, c in enumerate(media) if c.seq != media[0].seq + i)
    assert media[resumed].keyframe
    # fragments 4 (refused) to 14; the muxer holds each frame until the next packet
    assert sink.stats().fragments_skipped == 11
