"""Fixtures for storage tests: short clips encoded here with PyAV, fed packet by packet."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from recorder.index import Index
from recorder.storage.flusher import Flusher
from recorder.stream_types import StreamInfo

FPS = 15
GOP = 15  # one keyframe a second


@dataclass(frozen=True)
class Clip:
    path: Path
    codec: str  # FFmpeg decoder name of the packets: "h264" or "hevc"
    seconds: int
    fps: int = FPS
    gop: int = GOP

    @property
    def frames(self) -> int:
        return self.seconds * self.fps


def encode_clip(
    path: Path, *, encoder: str = "libx264", seconds: int = 6, noise: bool = False,
    size: tuple[int, int] = (320, 240),
) -> Clip:
    """Encode a clip into MPEG-TS (time base 1/90000, like RTSP) with a fixed GOP, no B-frames."""
    w, h = size
    out = av.open(str(path), "w", format="mpegts")
    s = out.add_stream(encoder, rate=FPS)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    if encoder == "libx265":
        s.options = {
            "x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=0:log-level=error"
        }
    else:
        s.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "0"}
        if noise:
            s.options = {**s.options, "crf": "0"}
    rng = np.random.default_rng(1)
    for i in range(seconds * FPS):
        if noise:
            arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        else:
            arr = np.full((h, w, 3), (i * 7) % 255, np.uint8)
            arr[:, (i * 5) % w] = 255
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts = i
        for p in s.encode(frame):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    return Clip(path, "hevc" if encoder == "libx265" else "h264", seconds)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Clip]:
    """clips(encoder="libx264", seconds=6, noise=False) -> Clip, encoded once per session."""
    cache: dict[tuple, Clip] = {}
    base = tmp_path_factory.mktemp("clips")

    def get(encoder: str = "libx264", seconds: int = 6, noise: bool = False) -> Clip:
        key = (encoder, seconds, noise)
        if key not in cache:
            name = f"{encoder}-{seconds}s{'-noise' if noise else ''}.ts"
            cache[key] = encode_clip(base / name, encoder=encoder, seconds=seconds, noise=noise)
        return cache[key]

    return get


class ClipSource:
    """An open clip: the demuxer's stream (template for remuxing) and its packets."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.container = av.open(str(clip.path))
        self.stream = self.container.streams.video[0]

    def info(self, *, camera: str = "cam1", stream: str = "main", run_id: int = 1,
             run_start_wall: float = 1_700_000_000.0, site: str = "test") -> StreamInfo:
        s = self.stream
        return StreamInfo(
            site=site, camera=camera, stream=stream, run_id=run_id, codec=self.clip.codec,
            width=s.codec_context.width, height=s.codec_context.height,
            time_base_num=s.time_base.numerator, time_base_den=s.time_base.denominator,
            run_start_wall=run_start_wall, av_stream=s,
        )

    def packets(self) -> Iterator[av.Packet]:
        for p in self.container.demux(self.stream):
            if p.size:
                yield p

    def close(self) -> None:
        self.container.close()


@pytest.fixture
def open_clip() -> Iterator[Callable[[Clip], ClipSource]]:
    opened: list[ClipSource] = []

    def opener(clip: Clip) -> ClipSource:
        src = ClipSource(clip)
        opened.append(src)
        return src

    yield opener
    for src in opened:
        src.close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    idx = Index(tmp_path / "index.sqlite3")
    yield idx
    idx.close()


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def flusher(storage_root: Path, index: Index) -> Iterator[Flusher]:
    f = Flusher(storage_root, index, flush_interval_s=0.5, site="test")
    f.start()
    yield f
    f.stop()


def ffprobe_errors(path: Path) -> str:
    """ffprobe -v error output while decoding every frame (empty when the file is clean)."""
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    return r.stderr.strip() if r.returncode == 0 else (r.stderr.strip() or "ffprobe failed")


def ffprobe_info(path: Path) -> dict:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,codec_tag_string,nb_read_frames,width,height:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(r.stdout)


def decoded_frames(path: Path) -> tuple[int, int]:
    """(frames decoded, keyframes among them) with PyAV; raises on a corrupt file."""
    n = keys = 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            n += 1
            keys += frame.key_frame
    return n, keys
