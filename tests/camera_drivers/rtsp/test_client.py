"""RtspSession against real servers: the camera simulator, Debian's GStreamer RTSP server,
and a scripted camera on a loopback socket for what neither does (Basic and qop digest
authentication, keep-alives answered inside the media stream, odd channel numbers, junk)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from camera_drivers.rtsp.client import RtspSession, split_credentials
from camera_drivers.rtsp.errors import (
    RtspAuthError,
    RtspConnectionError,
    RtspEndOfStream,
    RtspTimeout,
    RtspUnsupported,
)
from camera_drivers.sim.rtp import PacketizedFrame, interleave, packetize

FRAME_TICKS = 6000  # 90 kHz at 15 fps


def read_units(session: RtspSession, count: int, timeout_s: float = 10.0) -> list:
    units = []
    deadline = time.monotonic() + timeout_s
    for unit in session.access_units():
        units.append(unit)
        if len(units) >= count or time.monotonic() > deadline:
            break
    return units


# --- the simulator and GStreamer ---------------------------------------------------------


def test_reads_the_simulators_h264_stream_from_a_keyframe_on(camsim_one) -> None:
    session = RtspSession(camsim_one.with_credentials(camsim_one.rtsp_main))
    try:
        media = session.open()
        units = read_units(session, 20)
    finally:
        session.close()
    assert media.codec == "h264" and media.clock_rate_hz == 90000
    assert len(units) == 20
    assert units[0].is_keyframe  # the simulator starts a client at a keyframe
    assert units[0].data.startswith(b"\x00\x00\x00\x01")
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(units)}
    assert steps == {FRAME_TICKS}
    counters = session.counters()
    assert counters.lost_packets == 0 and counters.skipped_bytes == 0
    assert counters.rtp_packets > 20


def test_reads_the_simulators_h265_stream(camsim) -> None:
    (cam,) = camsim(codec="h265", loop_s=4, motion=[(1, 3)], onvif=False)
    session = RtspSession(cam.rtsp_sub, user=cam.user, password=cam.password)
    try:
        media = session.open()
        units = read_units(session, 10)
    finally:
        session.close()
    assert media.codec == "hevc"
    assert units[0].is_keyframe and len(units) == 10
    nal_type = (units[0].data[4] >> 1) & 0x3F
    assert nal_type in (32, 33, 34) or 16 <= nal_type <= 21  # parameter sets or IRAP


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_reads_gstreamer_streams(gst_rtsp, codec: str) -> None:
    session = RtspSession(gst_rtsp(codec=codec))
    try:
        media = session.open()
        units = read_units(session, 30)
    finally:
        session.close()
    assert media.codec == {"h264": "h264", "h265": "hevc"}[codec]
    assert len(units) == 30
    assert any(u.is_keyframe for u in units)
    assert not any(u.damaged for u in units)


def test_an_mjpeg_camera_is_unsupported_by_name(gst_rtsp) -> None:
    session = RtspSession(gst_rtsp(codec="mjpeg"))
    with pytest.raises(RtspUnsupported, match="JPEG"):
        session.open()
    session.close()


def test_a_wrong_password_is_an_auth_error(camsim_one) -> None:
    session = RtspSession(camsim_one.rtsp_main, user=camsim_one.user, password="wrong")
    with pytest.raises(RtspAuthError, match="rejected") as err:
        session.open()
    session.close()
    assert err.value.status == 401


def test_no_credentials_for_a_camera_that_wants_them(camsim_one) -> None:
    session = RtspSession(camsim_one.rtsp_main)
    with pytest.raises(RtspAuthError, match="needs credentials"):
        session.open()
    session.close()


def test_a_stalled_camera_ends_the_stream_within_the_read_timeout(camsim) -> None:
    """The simulator's stall keeps the connection (and its RTCP reports) but stops video."""
    (cam,) = camsim(loop_s=4, motion=[(1, 3)], onvif=False)
    session = RtspSession(cam.rtsp_sub, user=cam.user, password=cam.password, read_timeout_s=1.5)
    try:
        session.open()
        assert len(read_units(session, 5)) == 5
        cam.fault(stall=True)
        started = time.monotonic()
        with pytest.raises(RtspTimeout):
            for _ in session.access_units():
                pass
        waited_s = time.monotonic() - started
    finally:
        session.close()
    assert waited_s < 1.5 + 1.0


def test_a_refused_connection(unused_tcp_port: int) -> None:
    session = RtspSession(f"rtsp://127.0.0.1:{unused_tcp_port}/x")
    with pytest.raises(RtspConnectionError, match="cannot connect"):
        session.open()


def test_a_camera_that_never_answers_times_out() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        session = RtspSession(f"rtsp://127.0.0.1:{port}/x", open_timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(RtspTimeout):
            session.open()
        assert time.monotonic() - started < 2.0
        session.close()


def test_rtsps_is_left_to_ffmpeg() -> None:
    with pytest.raises(RtspUnsupported, match="rtsps"):
        RtspSession("rtsps://cam.example/stream")


def test_credentials_are_split_off_the_url() -> None:
    assert split_credentials("rtsp://ad%3Amin:p%40ss@10.0.0.5:554/s?a=1") == (
        "rtsp://10.0.0.5:554/s?a=1", "ad:min", "p@ss",
    )  # fmt: skip
    assert split_credentials("rtsp://10.0.0.5/s") == ("rtsp://10.0.0.5/s", None, None)


# --- a scripted camera ---------------------------------------------------------------------

SPS = bytes([0x67, 0x64, 0x00, 0x1F]) + bytes(range(20))
PPS = bytes([0x68, 0xEE, 0x3C, 0x80])
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1;sprop-parameter-sets="
    f"{base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}\r\n"
    "a=control:track1\r\n"
)


def frame_bytes(index: int, channel: int) -> bytes:
    """Access unit `index` on `channel`: a keyframe (fragmented IDR) every 5th, else a P slice."""
    if index % 5 == 0:
        nals = [SPS, PPS, bytes([0x65]) + bytes([index % 256]) * 3000]
    else:
        nals = [bytes([0x41]) + bytes([index % 256]) * 200]
    frame = PacketizedFrame(packetize("h264", nals), 96, keyframe=index % 5 == 0)
    return frame.stamp(first_seq=index * 10, timestamp=index * FRAME_TICKS, ssrc=7, channel=channel)


@dataclass
class ScriptedCamera:
    """A one-connection RTSP server on loopback that plays `frames` access units.

    `auth`: None, "basic" or "digest-qop". `session_timeout_s` goes into the Session header.
    `between_frames(i)` may return bytes to send before frame i (RTCP, junk, responses).
    """

    auth: str | None = None
    channel: int = 0
    session_timeout_s: int = 60
    frames: int = 40
    frame_interval_s: float = 0.02
    between_frames: Callable[[int], bytes] = lambda i: b""
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"rtsp://user:pw@127.0.0.1:{self.port}/live"

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            reader = conn.makefile("rb")
            playing = False
            frame = 0
            while True:
                if playing:
                    if frame >= self.frames:
                        time.sleep(0.2)
                        return
                    conn.sendall(self.between_frames(frame) + frame_bytes(frame, self.channel))
                    frame += 1
                    time.sleep(self.frame_interval_s)
                    conn.setblocking(False)
                    try:
                        pending = conn.recv(4096, socket.MSG_PEEK)
                    except BlockingIOError:
                        pending = b""
                    finally:
                        conn.setblocking(True)
                    if not pending:
                        continue
                request = self._read_request(reader)
                if request is None:
                    return
                playing = self._answer(conn, request) or playing

    @staticmethod
    def _read_request(reader) -> str | None:
        lines = []
        while True:
            line = reader.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                return b"".join(lines).decode()
            lines.append(line)

    def _answer(self, conn: socket.socket, request: str) -> bool:
        self.requests.append(request)
        method, url = request.split(" ")[:2]
        cseq = re.search(r"CSeq: (\d+)", request)
        head = f"CSeq: {cseq.group(1) if cseq else 0}\r\n"
        if not self._authorized(method, url, request):
            challenge = (
                'Basic realm="cam"' if self.auth == "basic"
                else 'Digest realm="cam", nonce="n0nce", qop="auth", opaque="op"'
            )  # fmt: skip
            conn.sendall(
                f"RTSP/1.0 401 Unauthorized\r\n{head}WWW-Authenticate: {challenge}\r\n\r\n".encode()
            )
            return False
        body = b""
        if method == "OPTIONS":
            head += "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = SDP.encode()
            head += "Content-Type: application/sdp\r\n"
        elif method == "SETUP":
            assert url.endswith("/live/track1"), url
            ch = self.channel
            head += (
                f"Session: 4711;timeout={self.session_timeout_s}\r\n"
                f"Transport: RTP/AVP/TCP;unicast;interleaved={ch}-{ch + 1}\r\n"
            )
        conn.sendall(
            f"RTSP/1.0 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        return method == "PLAY"

    def _authorized(self, method: str, url: str, request: str) -> bool:
        if self.auth is None:
            return True
        match = re.search(r"Authorization: (.*)\r\n", request)
        if not match:
            return False
        value = match.group(1)
        if self.auth == "basic":
            return value == "Basic " + base64.b64encode(b"user:pw").decode()
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', value))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1, ha2 = md5("user:cam:pw"), md5(f"{method}:{url}")
        expected = md5(f"{ha1}:n0nce:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
        return fields.get("response") == expected and fields.get("opaque") == "op"


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedCamera]]:
    cameras: list[ScriptedCamera] = []

    def start(**options: object) -> ScriptedCamera:
        camera = ScriptedCamera(**options)  # type: ignore[arg-type]
        cameras.append(camera)
        return camera

    yield start
    for camera in cameras:
        camera.close()


def play_all(camera: ScriptedCamera, **options: float) -> tuple[list, RtspSession]:
    session = RtspSession(camera.url, **options)  # type: ignore[arg-type]
    try:
        session.open()
        units = []
        with pytest.raises(RtspEndOfStream):
            for unit in session.access_units():
                units.append(unit)
    finally:
        session.close()
    return units, session


@pytest.mark.parametrize("auth", ["basic", "digest-qop"])
def test_basic_and_qop_digest_authentication(scripted, auth: str) -> None:
    camera = scripted(auth=auth, frames=5)
    units, _ = play_all(camera)
    assert len(units) == 5
    assert [r.split(" ")[0] for r in camera.requests[:2]] == ["OPTIONS", "OPTIONS"]


def test_keepalives_are_sent_and_their_answers_skipped_in_the_stream(scripted) -> None:
    camera = scripted(session_timeout_s=2, frames=60, frame_interval_s=0.05)
    units, session = play_all(camera)
    assert len(units) == 60  # no frame lost around the answers
    assert [u.timestamp for u in units] == [i * FRAME_TICKS for i in range(60)]
    keepalives = [r for r in camera.requests if r.startswith("GET_PARAMETER")]
    assert len(keepalives) >= 2 and session.counters().keepalives_sent == len(keepalives)
    assert all("Session: 4711" in r for r in keepalives)


def test_the_channel_the_camera_chose_is_read_and_rtcp_and_junk_are_skipped(scripted) -> None:
    def extras(i: int) -> bytes:
        if i == 3:
            return b"\r\n\r\n garbage that is not RTSP "
        return interleave(4 + 1, b"\x80\xc8" + bytes(26))  # an RTCP sender report

    camera = scripted(channel=4, frames=10, between_frames=extras)
    units, session = play_all(camera)
    assert len(units) == 10
    assert [u.is_keyframe for u in units] == [i % 5 == 0 for i in range(10)]
    counters = session.counters()
    assert counters.rtcp_packets == 9 and counters.skipped_bytes > 0
    assert units[0].data == b"".join(
        b"\x00\x00\x00\x01" + n for n in (SPS, PPS, bytes([0x65]) + bytes(3000))
    )


def test_time_spent_by_the_consumer_is_not_camera_silence(scripted) -> None:
    """A sink that blocks (an index write, a slow disk) must not end the run as a stall."""
    camera = scripted(frames=20, frame_interval_s=0.05)
    session = RtspSession(camera.url, read_timeout_s=1.0)
    units = []
    try:
        session.open()
        with pytest.raises(RtspEndOfStream):
            for unit in session.access_units():
                units.append(unit)
                if len(units) == 3:
                    time.sleep(1.5)
    finally:
        session.close()
    assert len(units) == 20


def test_a_request_from_the_camera_is_answered(scripted) -> None:
    ping = b"OPTIONS rtsp://127.0.0.1/live RTSP/1.0\r\nCSeq: 99\r\n\r\n"
    camera = scripted(frames=8, between_frames=lambda i: ping if i == 4 else b"")
    units, _ = play_all(camera)
    assert len(units) == 8
    # the scripted camera records every message it reads, the client's answer too
    assert any(r.startswith("RTSP/1.0 200 OK") and "CSeq: 99" in r for r in camera.requests)


def test_batched_reads_take_several_frames_a_wake_up_and_lose_none(scripted) -> None:
    camera = scripted(frames=50, frame_interval_s=0.02)  # 50 frames in about 1 s
    session = RtspSession(camera.url, read_batch_s=0.25)
    opened = time.monotonic()
    units, first_after_s = [], None
    try:
        session.open()
        with pytest.raises(RtspEndOfStream):
            for unit in session.access_units():
                if first_after_s is None:
                    first_after_s = time.monotonic() - opened
                units.append(unit)
    finally:
        session.close()
    assert [u.timestamp for u in units] == [i * FRAME_TICKS for i in range(50)]
    assert first_after_s is not None and first_after_s < 0.2  # the first read is not delayed
    assert session.counters().reads <= 12  # about 1.2 s / 0.25 s, against ~50 unbatched
