"""Real-time pacing: ONE clock tick for every stream of every camera in the process.

Timing model (exact, so tests know when motion is on screen):
- A camera's absolute frame number F counts frames since its epoch (`SimCamera.epoch_monotonic`):
  frame F is due at ``epoch + F / fps`` and shows clip frame ``F % frame_count``, that is clip
  frame n of loop k is shown at ``epoch + k * loop_s + n / fps``.
- Its RTP timestamp is ``F * 90000 / fps`` (+ the "jump" fault offset), modulo 2**32.
- Its first RTP sequence number is a pure function of F too (packets per clip loop are fixed),
  so a stall or a late tick leaves a gap in sequence numbers, like a real camera would.

One task wakes when the next frame of any playing stream is due, stamps each due frame once
(`PacketizedFrame.stamp`) and writes the same bytes to every client of that stream. A client
that joins starts at the next keyframe. A client whose transport buffers more than
`max_buffered_bytes` is dropped: a slow reader never makes the simulator buffer without bound.
RTCP sender reports (right after a client's first frame, then every 5 s) map RTP time to the
camera's wall clock, including its configured `clock_offset_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.clips import Clip
from camera_drivers.sim.rtp import PacketizedFrame, interleave, packetize, rtcp_sender_report

log = logging.getLogger(__name__)

RTP_CLOCK_HZ = 90_000
PAYLOAD_TYPE = 96
MAX_CATCH_UP_FRAMES = 5  # after a long stall of the event loop, skip rather than burst
SENDER_REPORT_INTERVAL_S = 5.0
DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024


class PacketizedClip:
    """A clip's frames as ready-to-stamp RTP packets, shared by all streams playing it."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.frames = tuple(
            PacketizedFrame(packetize(clip.codec, f.nals), PAYLOAD_TYPE, f.keyframe)
            for f in clip.frames
        )
        first_packet = []
        total = 0
        for frame in self.frames:
            first_packet.append(total)
            total += frame.packet_count
        self.first_packet_in_loop = tuple(first_packet)
        self.packets_per_loop = total
        self.keyframes = tuple(i for i, f in enumerate(self.frames) if f.keyframe)


@dataclass(eq=False)
class StreamClient:
    """One PLAYing RTSP session: where and how to write the stream's packets."""

    transport: asyncio.Transport
    channel: int
    label: str  # for logs: camera, stream and peer
    on_drop: Callable[[str], None]  # called with the reason when the streamer drops it
    waiting_for_keyframe: bool = True
    report_due: bool = False  # an RTCP SR goes right after its first frame, then every 5 s
    bytes_sent: int = 0
    packets_sent: int = 0


@dataclass(eq=False)
class MediaStream:
    """One profile (main or sub) of one camera, playing its clip from the camera epoch."""

    camera: SimCamera
    name: str  # "main" or "sub"
    packets: PacketizedClip
    clients: list[StreamClient] = field(default_factory=list)
    next_frame: int = -1  # absolute frame number F of the next frame to send; -1: not started
    next_sender_report_monotonic: float = 0.0
    frames_sent: int = 0

    def __post_init__(self) -> None:
        self.ssrc = zlib.crc32(f"{self.camera.name}/{self.name}".encode()) or 1
        self.fps = self.packets.clip.fps
        self.frame_count = len(self.packets.frames)

    @property
    def clip(self) -> Clip:
        return self.packets.clip

    def due_frame(self, now_monotonic: float) -> int:
        """Absolute frame number of the frame on screen at this instant."""
        return math.floor((now_monotonic - self.camera.epoch_monotonic) * self.fps)

    def due_time(self, frame: int) -> float:
        return self.camera.epoch_monotonic + frame / self.fps

    def rtp_timestamp(self, frame: int) -> int:
        ts = frame * RTP_CLOCK_HZ // self.fps + self.camera.faults.rtp_timestamp_offset_90k
        return ts & 0xFFFFFFFF

    def first_seq(self, frame: int) -> int:
        loop, n = divmod(frame, self.frame_count)
        seq = loop * self.packets.packets_per_loop + self.packets.first_packet_in_loop[n]
        return (seq + self.ssrc) & 0xFFFF

    def next_keyframe(self, frame: int) -> int:
        """The first absolute frame >= `frame` that is a keyframe."""
        loop, n = divmod(frame, self.frame_count)
        for k in self.packets.keyframes:
            if k >= n:
                return loop * self.frame_count + k
        return (loop + 1) * self.frame_count + self.packets.keyframes[0]

    def play_start(self, now_monotonic: float) -> tuple[int, int]:
        """(seq, rtptime) of the first packet a client joining now will get (for RTP-Info)."""
        start = max(self.next_frame, self.due_frame(now_monotonic) + 1)
        key = self.next_keyframe(start)
        return self.first_seq(key), self.rtp_timestamp(key)


class Streamer:
    """The shared clock: sends every due frame of every playing stream."""

    def __init__(self, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        self.max_buffered_bytes = max_buffered_bytes
        self.streams: list[MediaStream] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.frames_caught_up = 0  # frames sent late, in a burst, after a slow tick

    def add_stream(self, stream: MediaStream) -> None:
        self.streams.append(stream)

    def add_client(self, stream: MediaStream, client: StreamClient) -> None:
        stream.clients.append(client)
        self._wake.set()

    def remove_client(self, stream: MediaStream, client: StreamClient) -> None:
        if client in stream.clients:
            stream.clients.remove(client)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="camsim-streamer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            next_due = math.inf
            for stream in self.streams:
                if not stream.clients:
                    stream.next_frame = -1
                    continue
                try:
                    self._send_due(stream, now)
                except Exception:  # one broken stream must not stop the clock of all others
                    log.exception("camsim %s %s: sending failed", stream.camera.name, stream.name)
                    stream.next_frame = stream.due_frame(now) + 1
                next_due = min(next_due, stream.due_time(stream.next_frame))
            if next_due == math.inf:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = next_due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _send_due(self, stream: MediaStream, now: float) -> None:
        due = stream.due_frame(now)
        if stream.next_frame < 0:
            stream.next_frame = due
        if stream.next_frame > due:
            return
        faults = stream.camera.faults
        if faults.stall or faults.offline(now):
            stream.next_frame = due + 1  # time runs on; nothing is sent
            return
        first = max(stream.next_frame, due - MAX_CATCH_UP_FRAMES + 1)
        if due - first >= 1:
            self.frames_caught_up += due - first
        for frame in range(first, due + 1):
            self._send_frame(stream, frame)
        stream.next_frame = due + 1
        if now >= stream.next_sender_report_monotonic:
            self._send_sender_reports(stream, due, everyone=True)
            stream.next_sender_report_monotonic = now + SENDER_REPORT_INTERVAL_S
        elif any(c.report_due for c in stream.clients):
            self._send_sender_reports(stream, due, everyone=False)

    def _send_frame(self, stream: MediaStream, frame: int) -> None:
        packetized = stream.packets.frames[frame % stream.frame_count]
        stamped: dict[int, bytes] = {}  # per interleave channel, nearly always just one
        seq = stream.first_seq(frame)
        ts = stream.rtp_timestamp(frame)
        for client in list(stream.clients):
            if client.waiting_for_keyframe:
                if not packetized.keyframe:
                    continue
                client.waiting_for_keyframe = False
                client.report_due = True
            data = stamped.get(client.channel)
            if data is None:
                data = packetized.stamp(seq, ts, stream.ssrc, client.channel)
                stamped[client.channel] = data
            transport = client.transport
            if transport.is_closing():
                self._drop(stream, client, "connection closed")
                continue
            transport.write(data)
            client.bytes_sent += len(data)
            client.packets_sent += packetized.packet_count
            if transport.get_write_buffer_size() > self.max_buffered_bytes:
                limit = self.max_buffered_bytes
                self._drop(stream, client, f"slow reader: over {limit} bytes buffered")
        stream.frames_sent += 1

    def _send_sender_reports(self, stream: MediaStream, frame: int, everyone: bool) -> None:
        camera = stream.camera
        # Wall clock of the camera (with its configured offset) at the instant frame F was due.
        wall_s = time.time() - (time.monotonic() - stream.due_time(frame)) + camera.clock_offset_s
        for client in stream.clients:
            if client.waiting_for_keyframe or client.transport.is_closing():
                continue
            if not (everyone or client.report_due):
                continue
            client.report_due = False
            report = rtcp_sender_report(
                stream.ssrc, wall_s, stream.rtp_timestamp(frame), client.packets_sent,
                client.bytes_sent - client.packets_sent * 16,  # payload octets only
            )
            client.transport.write(interleave(client.channel + 1, report))

    def _drop(self, stream: MediaStream, client: StreamClient, reason: str) -> None:
        self.remove_client(stream, client)
        log.warning("camsim %s: dropping client: %s", client.label, reason)
        client.on_drop(reason)
