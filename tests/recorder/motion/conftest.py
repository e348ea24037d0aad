"""Labelled clips for the motion tests, made once per session with bench.motion_clips."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av
import pytest

from bench.motion_clips import LabelledClip, make_clip, standard_clips
from recorder.motion.offline import stream_info_for
from recorder.motion.sink import MotionSink

NUISANCE_S = 15.0


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("motion-clips")


@pytest.fixture(scope="session")
def clip(clip_dir: Path) -> Callable[[str], LabelledClip]:
    specs = {s.name: s for s in standard_clips(NUISANCE_S)}

    def get(name: str) -> LabelledClip:
        return make_clip(specs[name], clip_dir)

    return get


def feed_clip(sink: MotionSink, path: Path, run_start_wall: float = 1_800_000_000.0) -> None:
    """One run of `sink` over a file's packets, in a burst, as the ingest thread would."""
    with av.open(str(path)) as container:
        info = stream_info_for(container, "cam")
        sink.on_run_start(replace(info, run_start_wall=run_start_wall))
        for pkt in container.demux(info.av_stream):
            if pkt.dts is not None:
                sink.on_packet(pkt)
        sink.on_run_end("eof")
