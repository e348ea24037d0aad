"""Ingest against Debian's GStreamer RTSP server, with faults injected by a TCP proxy."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import av
import pytest

from recorder.backoff import Backoff
from recorder.health import HealthRegistry, StreamState
from recorder.ingest import IngestSettings, PyavOpener, SourceError, StreamIngest
from recorder.stream_types import StreamInfo

FAST = IngestSettings(
    open_timeout_s=5.0, read_timeout_s=1.0, healthy_run_s=2.0, backoff_initial_s=0.2
)


class ListRunLog:
    """A RunLog kept in lists (the index's own tests cover the SQL side)."""

    def __init__(self) -> None:
        self.runs: dict[int, dict[str, object]] = {}
        self.gaps: list[tuple[str, str, float, float, str]] = []
        self._lock = threading.Lock()

    def start_run(self, camera: str, stream: str, start_wall: float) -> int:
        with self._lock:
            run_id = len(self.runs) + 1
            self.runs[run_id] = {"camera": camera, "stream": stream, "start": start_wall}
            return run_id

    def end_run(self, run_id: int, end_wall: float, reason: str) -> None:
        self.runs[run_id].update(end=end_wall, reason=reason)

    def add_gap(self, camera: str, stream: str, start: float, end: float, reason: str) -> None:
        self.gaps.append((camera, stream, start, end, reason))


class CollectSink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.infos: list[StreamInfo] = []
        self.packets = 0
        self.keyframes = 0
        self.ends: list[str] = []
        self.fail_after = fail_after
        self.first: tuple[bool, int | None, int | None] | None = None  # keyframe, dts, pts
        self.second_dts: int | None = None

    def on_run_start(self, info: StreamInfo) -> None:
        self.infos.append(info)

    def on_packet(self, packet: av.Packet) -> None:
        if self.first is None:
            self.first = (packet.is_keyframe, packet.dts, packet.pts)
        elif self.second_dts is None:
            self.second_dts = packet.dts
        self.packets += 1
        self.keyframes += packet.is_keyframe
        if self.fail_after is not None and self.packets > self.fail_after:
            raise RuntimeError("sink broke")

    def on_run_end(self, reason: str) -> None:
        self.ends.append(reason)


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def make_ingest(url: str, sinks: list, run_log: ListRunLog, registry: HealthRegistry,
                camera: str = "cam1") -> StreamIngest:
    return StreamIngest(
        site="test", camera=camera, stream="main", url=url,
        opener=PyavOpener(open_timeout_s=FAST.open_timeout_s,
                          read_timeout_s=FAST.read_timeout_s),
        sinks=sinks, run_log=run_log, health=registry.stream(camera, "main"), settings=FAST,
    )


def test_backoff_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0, rng=random.Random(7))
    delays = [backoff.next_delay_s() for _ in range(20)]
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert max(delays[-5:]) > 15.0  # grew to the cap...
    assert len({round(d, 6) for d in delays[-5:]}) == 5  # ...with jitter
    backoff.reset()
    assert backoff.next_delay_s() <= 0.5


def test_run_from_gstreamer_reaches_sinks_and_ends_on_stop(gst_rtsp) -> None:
    url = gst_rtsp(fps=15)
    run_log, registry, sink = ListRunLog(), HealthRegistry("test"), CollectSink()
    ingest = make_ingest(url, [sink], run_log, registry)
    ingest.start()
    health = registry.stream("cam1", "main")
    wait_for(lambda: sink.packets >= 30, 15, "30 packets")
    assert health.state == StreamState.RECORDING
    t0 = time.monotonic()
    ingest.request_stop()
    assert ingest.join(5)
    assert time.monotonic() - t0 < 2.0  # the stop flag is checked between packets
    (info,) = sink.infos
    assert (info.codec, info.width, info.height) == ("h264", 640, 360)
    assert (info.time_base_num, info.time_base_den) == (1, 90000)
    assert abs(info.run_start_wall - time.time()) < 10
    assert sink.ends == ["shutdown"]
    assert run_log.runs[1]["reason"] == "shutdown"
    assert health.packets >= sink.packets and health.bytes_received > 10_000
    assert health.reconnects == 0 and not run_log.gaps


def first_packets_of_a_run(url: str) -> CollectSink:
    run_log, registry, sink = ListRunLog(), HealthRegistry("test"), CollectSink()
    ingest = make_ingest(url, [sink], run_log, registry)
    ingest.start()
    try:
        wait_for(lambda: sink.packets >= 3, 15, "3 packets")
    finally:
        ingest.request_stop()
        assert ingest.join(5)
    return sink


def test_first_packet_of_a_simulator_run_gets_its_timestamps(camsim) -> None:
    """FFmpeg hands out a session's first packet (the keyframe) without pts/dts; without
    them the writer would drop the run's whole first GOP."""
    (cam,) = camsim(cameras=1, loop_s=20)
    sink = first_packets_of_a_run(cam.with_credentials(cam.rtsp_sub))
    assert sink.first is not None and sink.second_dts is not None
    keyframe, dts, pts = sink.first
    assert keyframe and dts is not None and pts is not None
    assert 0 < sink.second_dts - dts <= 90000 // 5  # one frame earlier (>= 5 fps)


def test_first_packet_of_a_gstreamer_run_gets_its_timestamps(gst_rtsp) -> None:
    sink = first_packets_of_a_run(gst_rtsp(fps=15))
    assert sink.first is not None and sink.second_dts is not None
    keyframe, dts, _pts = sink.first
    assert keyframe and dts is not None and 0 < sink.second_dts - dts <= 90000 // 5


@pytest.mark.parametrize("read_interrupt", [False, True], ids=["ffmpeg-socket", "pyav-interrupt"])
def test_read_timeout_fires_on_a_stalled_stream(gst_rtsp, fault_proxy, read_interrupt) -> None:
    url = gst_rtsp()
    host_port = urlsplit(url)
    proxy = fault_proxy(host_port.hostname, host_port.port)
    opener = PyavOpener(open_timeout_s=5, read_timeout_s=1.0, read_interrupt=read_interrupt)
    source = opener.open(proxy.url_for(url))
    stalled_at = None
    try:
        with pytest.raises(SourceError, match="timed out"):
            for n, _packet in enumerate(source.packets()):
                if n == 20:
                    proxy.stall()
                    stalled_at = time.monotonic()
    finally:
        source.close()
    assert stalled_at is not None
    # measured: the interrupt fires after about twice read_timeout_s (docs/ingest.md)
    assert time.monotonic() - stalled_at < 4.0


@pytest.mark.parametrize("fault", ["stall", "drop"])
def test_fault_causes_reconnect_and_gap_then_recording_resumes(
    gst_rtsp, fault_proxy, fault: str
) -> None:
    url = gst_rtsp()
    parts = urlsplit(url)
    proxy = fault_proxy(parts.hostname, parts.port)
    run_log, registry, sink = ListRunLog(), HealthRegistry("test"), CollectSink()
    ingest = make_ingest(proxy.url_for(url), [sink], run_log, registry)
    health = registry.stream("cam1", "main")
    ingest.start()
    try:
        wait_for(lambda: sink.packets >= 20, 15, "first packets")
        if fault == "stall":
            proxy.stall()
            wait_for(lambda: 1 in run_log.runs and "reason" in run_log.runs[1], 6, "run end")
            proxy.stall(False)
        else:
            proxy.drop()
        wait_for(lambda: len(sink.infos) >= 2, 15, "a second run")
        before = sink.packets
        wait_for(lambda: sink.packets >= before + 15, 10, "packets of the second run")
        assert health.state == StreamState.RECORDING
    finally:
        ingest.request_stop()
        assert ingest.join(5)
    end_reason, expected_gap = ("timeout", "stall") if fault == "stall" else ("eof", "reconnect")
    assert run_log.runs[1]["reason"] == end_reason
    ((camera, stream, gap_start, gap_end, gap_reason),) = run_log.gaps
    assert (camera, stream) == ("cam1", "main")
    assert gap_end > gap_start and gap_reason == expected_gap
    assert gap_start == run_log.runs[1]["end"] and gap_end == run_log.runs[2]["start"]
    assert health.reconnects >= 1 and health.gaps == 1 and proxy.connections >= 2


def test_unreachable_camera_retries_and_does_not_disturb_another(gst_rtsp) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    run_log, registry = ListRunLog(), HealthRegistry("test")
    good_sink, bad_sink = CollectSink(), CollectSink()
    good = make_ingest(gst_rtsp(), [good_sink], run_log, registry, camera="good")
    bad = make_ingest(f"rtsp://127.0.0.1:{dead_port}/x", [bad_sink], run_log, registry,
                      camera="bad")
    bad.start()
    good.start()
    try:
        wait_for(lambda: good_sink.packets >= 30, 15, "the good camera's packets")
        wait_for(lambda: registry.stream("bad", "main").reconnects >= 3, 15, "retries")
        t0, p0 = time.monotonic(), good_sink.packets
        time.sleep(2.0)
        fps = (good_sink.packets - p0) / (time.monotonic() - t0)
    finally:
        for ingest in (good, bad):
            ingest.request_stop()
        assert good.join(5) and bad.join(5)
    assert 12 <= fps <= 18  # the 15 fps camera is undisturbed
    bad_health = registry.stream("bad", "main")
    assert bad_health.state == StreamState.OFFLINE and bad_health.last_error
    assert bad_sink.infos == [] and bad_health.runs == 0


def test_failing_sink_is_detached_while_the_others_continue(gst_rtsp) -> None:
    run_log, registry = ListRunLog(), HealthRegistry("test")
    broken, healthy = CollectSink(fail_after=5), CollectSink()
    ingest = make_ingest(gst_rtsp(), [broken, healthy], run_log, registry)
    ingest.start()
    try:
        wait_for(lambda: healthy.packets >= 30, 15, "packets")
    finally:
        ingest.request_stop()
        assert ingest.join(5)
    assert broken.packets == 6 and broken.ends == ["sink error: sink broke"]
    assert healthy.ends == ["shutdown"] and len(run_log.runs) == 1


def test_passwords_never_reach_error_messages() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    opener = PyavOpener(open_timeout_s=2, read_timeout_s=1)
    with pytest.raises(SourceError) as info:
        opener.open(f"rtsp://admin:s3cr%40t@127.0.0.1:{dead_port}/main")
    assert "s3cr" not in str(info.value) and "admin:***@" in str(info.value)


def test_a_batched_packets_arrival_follows_media_time_within_the_batch() -> None:
    """Three frames read together at t=10.2: they arrived 1/15 s apart, not all at 10.2; a
    frame after a pause arrived at most one batch before its read."""
    from recorder.ingest import _arrival

    tb_s, step = 1 / 90000, 6000  # 15 fps
    first = _arrival(10.2, 10.0, 0, step, tb_s, 0.2)
    assert first == pytest.approx(10.0 + 1 / 15)
    second = _arrival(10.2, first, step, 2 * step, tb_s, 0.2)
    assert second == pytest.approx(10.0 + 2 / 15)
    assert _arrival(10.2, 10.19, 0, step, tb_s, 0.2) == 10.2  # never after its read
    assert _arrival(15.0, 10.0, 0, step, tb_s, 0.2) == pytest.approx(14.8)  # after a pause
    assert _arrival(10.2, 10.0, step, step, tb_s, 0.2) == 10.2  # no media step: the read
