"""Data that crosses from the ingest thread to its packet sinks."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import av
    import av.video.stream


class ReadLatency:
    """One stream's wish for frames as they arrive, shared by its ingest and its sinks.

    Reads are batched (docs/ingest.md: up to `read_batch_s` late, for far less CPU). A sink
    serving a live viewer asks for unbatched reads while it does; any thread may ask, the
    ingest thread reads `low` between packets.
    """

    def __init__(self) -> None:
        self._askers: set[int] = set()
        self._lock = threading.Lock()

    def ask(self, asker: object, low: bool) -> None:
        with self._lock:
            if low:
                self._askers.add(id(asker))
            else:
                self._askers.discard(id(asker))

    @property
    def low(self) -> bool:
        return bool(self._askers)


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
    read_latency: ReadLatency | None = None  # the ingest's; None outside an ingest


class PacketSink(Protocol):
    """Receives one stream's packets on its ingest thread. Must never block on I/O."""

    def on_run_start(self, info: StreamInfo) -> None: ...

    def on_packet(self, packet: av.Packet) -> None: ...

    def on_run_end(self, reason: str) -> None: ...
