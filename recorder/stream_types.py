"""Data that crosses from the ingest thread to its packet sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import av
    import av.video.stream


@dataclass(frozen=True)
class StreamInfo:
    """What a sink learns when a run (one continuous connection) starts."""

    site: str
    camera: str
    stream: str  # "main" or "sub"
    run_id: int
    codec: str  # FFmpeg codec name: "h264", "hevc"
    width: int
    height: int
    time_base_num: int
    time_base_den: int
    run_start_wall: float  # wall time anchored at the run's first packet
    av_stream: av.video.stream.VideoStream  # the demuxer's stream, template for remuxing


class PacketSink(Protocol):
    """Receives one stream's packets on its ingest thread. Must never block on I/O."""

    def on_run_start(self, info: StreamInfo) -> None: ...

    def on_packet(self, packet: av.Packet) -> None: ...

    def on_run_end(self, reason: str) -> None: ...
