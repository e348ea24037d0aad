"""Run the motion sink over a video file, as if its packets came from a camera.

Times are seconds from the start of the file (the run starts at wall time 0.0).
Used by `dozor-motion`, the tests and `bench.motion`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from recorder.motion.config import MotionConfig
from recorder.motion.detector import Detection
from recorder.motion.errors import MotionInputError
from recorder.motion.events import EventChange
from recorder.motion.sink import MotionSink
from recorder.motion.tamper import AlarmChange
from recorder.stream_types import StreamInfo


@dataclass(frozen=True)
class FileResult:
    changes: tuple[EventChange, ...]  # every change, in order
    alarms: tuple[AlarmChange, ...]
    frames_decoded: int
    frames_processed: int
    duration_s: float
    cpu_s: float  # process CPU time spent in demux + sink

    @property
    def events(self) -> tuple[EventChange, ...]:
        """The final ('end') state of each event."""
        return tuple(c for c in self.changes if c.change == "end")


def stream_info_for(container: av.container.InputContainer, camera: str) -> StreamInfo:
    if not container.streams.video:
        raise MotionInputError(f"{container.name}: no video stream")
    st = container.streams.video[0]
    tb = st.time_base
    if tb is None:
        raise MotionInputError(f"{container.name}: video stream has no time base")
    return StreamInfo(
        site="offline", camera=camera, stream="sub", run_id=0, codec=st.codec_context.name,
        width=st.codec_context.width, height=st.codec_context.height,
        time_base_num=tb.numerator, time_base_den=tb.denominator, run_start_wall=0.0,
        av_stream=st,
    )


def detect_file(
    path: str | Path,
    cfg: MotionConfig,
    *,
    camera: str = "file",
    on_detection: Callable[[Detection], None] | None = None,
    sink_factory: Callable[..., MotionSink] = MotionSink,
) -> FileResult:
    """Demux `path` and feed every packet to a MotionSink; collect its changes and alarms."""
    changes: list[EventChange] = []
    alarms: list[AlarmChange] = []
    sink = sink_factory(camera, cfg, changes.append, alarms.append, on_detection=on_detection)
    cpu0 = time.process_time()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise MotionInputError(f"{path}: cannot open video: {err}") from err
    duration_s = 0.0
    try:
        info = stream_info_for(container, camera)
        sink.on_run_start(info)
        tb = info.time_base_num / info.time_base_den
        first = None
        for packet in container.demux(info.av_stream):
            if packet.dts is None:
                continue
            first = packet.dts if first is None else first
            duration_s = max(duration_s, (packet.dts - first) * tb)
            sink.on_packet(packet)
        sink.on_run_end("end of file")
    except av.FFmpegError as err:
        raise MotionInputError(f"{path}: cannot read video: {err}") from err
    finally:
        container.close()
    return FileResult(
        tuple(changes), tuple(alarms), sink.frames_decoded, sink.frames_processed, duration_s,
        time.process_time() - cpu0,
    )
