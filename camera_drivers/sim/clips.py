"""Pre-encoded looping clips: each (scene, profile, codec) is encoded ONCE and cached on disk.

The clip covers exactly one scene loop (`scene.frame_count` frames). Frame 0 is an IDR and
keyframes come every `scene.gop_s` seconds with closed GOPs and no B-frames, so playing
frame N-1 then frame 0 again is a seamless loop that any decoder can also join at a keyframe.

Cache: ``$DOZOR_CAMSIM_CACHE`` or ``~/.cache/dozor/camsim``, one file per parameter hash.
Several processes may ask for the same clip at once (parallel tests): a lock file makes
only one of them encode, and the file appears atomically (write to a temp name, rename).
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from camera_drivers.sim.errors import ClipError
from camera_drivers.sim.render import SceneRenderer
from camera_drivers.sim.rtp import nal_type, split_annexb
from camera_drivers.sim.scene import SceneSpec

log = logging.getLogger(__name__)

CLIP_FORMAT_VERSION = 1  # bump when render.py changes the picture: cached clips go stale
_MAGIC = b"DZCLIP1\n"
_ENCODERS = {"h264": "libx264", "h265": "libx265"}
# Parameter-set NAL types, in SDP order: H.264 SPS, PPS; H.265 VPS, SPS, PPS.
_PARAMETER_SET_TYPES = {"h264": (7, 8), "h265": (32, 33, 34)}


@dataclass(frozen=True)
class StreamProfile:
    name: str  # "main" or "sub": the last part of the RTSP path
    width: int
    height: int
    bitrate_bps: int


MAIN_PROFILE = StreamProfile("main", 1920, 1080, 3_000_000)
SUB_PROFILE = StreamProfile("sub", 640, 360, 500_000)
PROFILES = {p.name: p for p in (MAIN_PROFILE, SUB_PROFILE)}


@dataclass(frozen=True)
class EncodedFrame:
    nals: tuple[bytes, ...]
    keyframe: bool

    @property
    def size_bytes(self) -> int:
        return sum(len(n) for n in self.nals)


@dataclass(frozen=True)
class Clip:
    codec: str  # "h264" or "h265"
    width: int
    height: int
    fps: int
    gop_frames: int
    frames: tuple[EncodedFrame, ...]
    parameter_sets: tuple[bytes, ...]  # H.264: (SPS, PPS); H.265: (VPS, SPS, PPS)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps

    @property
    def bitrate_bps(self) -> float:
        return sum(f.size_bytes for f in self.frames) * 8 / self.duration_s

    def sdp_fmtp(self) -> str:
        """The a=fmtp parameters announcing this clip (sprop parameter sets)."""
        b64 = [base64.b64encode(p).decode("ascii") for p in self.parameter_sets]
        if self.codec == "h264":
            sps = self.parameter_sets[0]
            return (
                f"packetization-mode=1;profile-level-id={sps[1:4].hex().upper()};"
                f"sprop-parameter-sets={b64[0]},{b64[1]}"
            )
        return f"sprop-vps={b64[0]};sprop-sps={b64[1]};sprop-pps={b64[2]}"

    @property
    def rtpmap_name(self) -> str:
        return "H264" if self.codec == "h264" else "H265"


def cache_dir() -> Path:
    env = os.environ.get("DOZOR_CAMSIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dozor" / "camsim"


def _encoder_options(codec: str, gop_frames: int, bitrate_bps: int) -> dict[str, str]:
    kbit = bitrate_bps // 1000
    common = (
        f"keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0:open-gop=0:bframes=0:"
        f"repeat-headers=1:vbv-maxrate={kbit * 3 // 2}:vbv-bufsize={kbit}"
    )
    if codec == "h264":
        return {
            "preset": "superfast",
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": common,
        }
    return {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "forced-idr": "1",
        "x265-params": common + ":log-level=error:info=0",
    }


def clip_key(scene: SceneSpec, profile: StreamProfile, codec: str) -> str:
    gop_frames = _gop_frames(scene)
    params = {
        "version": CLIP_FORMAT_VERSION,
        "scene": dataclasses.asdict(scene),
        "profile": dataclasses.asdict(profile),
        "codec": codec,
        "encoder": _encoder_options(codec, gop_frames, profile.bitrate_bps),
    }
    blob = json.dumps(_floats(params), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _floats(value: object) -> object:
    """Numbers as floats, so loop_s=20 and loop_s=20.0 name the same clip."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _gop_frames(scene: SceneSpec) -> int:
    return max(1, round(scene.gop_s * scene.fps))


def load_clip(
    scene: SceneSpec, profile: StreamProfile, codec: str = "h264", directory: Path | None = None
) -> Clip:
    """The clip for these parameters, from the cache or encoded now (and cached)."""
    if codec not in _ENCODERS:
        raise ClipError(f"unsupported codec {codec!r}: use h264 or h265")
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = clip_key(scene, profile, codec)
    path = directory / f"{codec}-{profile.width}x{profile.height}-{key}.clip"
    with open(directory / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be encoding this very clip
        if path.exists():
            try:
                return read_clip(path)
            except ClipError as err:
                log.warning("camsim: cached clip %s unreadable (%s), encoding again", path, err)
        log.info(
            "camsim: encoding the %s %dx%d clip (%d frames) once; later runs use the cache",
            codec, profile.width, profile.height, scene.frame_count,
        )
        started = time.monotonic()
        clip = encode_clip(scene, profile, codec)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        write_clip(clip, tmp)
        os.replace(tmp, path)
        log.info(
            "camsim: encoded %s %dx%d clip of %d frames (%.0f kbit/s) in %.1f s -> %s",
            codec, profile.width, profile.height, len(clip.frames),
            clip.bitrate_bps / 1000, time.monotonic() - started, path,
        )
        return clip


def encode_clip(scene: SceneSpec, profile: StreamProfile, codec: str = "h264") -> Clip:
    gop_frames = _gop_frames(scene)
    renderer = SceneRenderer(scene, profile.width, profile.height)
    try:
        ctx = cast(VideoCodecContext, av.CodecContext.create(_ENCODERS[codec], "w"))
        ctx.width = profile.width
        ctx.height = profile.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, scene.fps)
        ctx.framerate = Fraction(scene.fps, 1)
        ctx.bit_rate = profile.bitrate_bps
        ctx.gop_size = gop_frames
        ctx.max_b_frames = 0
        ctx.options = _encoder_options(codec, gop_frames, profile.bitrate_bps)
        packets: list[av.Packet] = []
        for n in range(scene.frame_count):
            frame = av.VideoFrame.from_ndarray(renderer.frame_i420(n), format="yuv420p")
            frame.pts = n
            if n % gop_frames == 0:
                frame.pict_type = PictureType.I
            packets.extend(ctx.encode(frame))
        packets.extend(ctx.encode(None))
    except av.FFmpegError as err:
        size = f"{profile.width}x{profile.height}"
        raise ClipError(f"encoding a {codec} {size} clip failed: {err}") from err

    if len(packets) != scene.frame_count:
        raise ClipError(f"encoder returned {len(packets)} packets for {scene.frame_count} frames")
    frames = tuple(
        EncodedFrame(nals=tuple(split_annexb(bytes(p))), keyframe=bool(p.is_keyframe))
        for p in sorted(packets, key=lambda p: p.pts or 0)
    )
    return _make_clip(codec, profile.width, profile.height, scene.fps, gop_frames, frames)


def _make_clip(
    codec: str, width: int, height: int, fps: int, gop_frames: int, frames: tuple[EncodedFrame, ...]
) -> Clip:
    if not frames or not frames[0].keyframe:
        raise ClipError("a clip must start with a keyframe so that it loops seamlessly")
    found: dict[int, bytes] = {}
    for nal in frames[0].nals:
        found.setdefault(nal_type(codec, nal), nal)
    wanted = _PARAMETER_SET_TYPES[codec]
    missing = [t for t in wanted if t not in found]
    if missing:
        raise ClipError(f"first {codec} keyframe lacks parameter sets of NAL types {missing}")
    return Clip(
        codec=codec,
        width=width,
        height=height,
        fps=fps,
        gop_frames=gop_frames,
        frames=frames,
        parameter_sets=tuple(found[t] for t in wanted),
    )


def write_clip(clip: Clip, path: Path) -> None:
    header = json.dumps(
        {
            "codec": clip.codec,
            "width": clip.width,
            "height": clip.height,
            "fps": clip.fps,
            "gop_frames": clip.gop_frames,
            "frame_count": len(clip.frames),
        }
    ).encode()
    with open(path, "wb") as f:
        f.write(_MAGIC + struct.pack(">I", len(header)) + header)
        for frame in clip.frames:
            f.write(struct.pack(">BH", int(frame.keyframe), len(frame.nals)))
            for nal in frame.nals:
                f.write(struct.pack(">I", len(nal)))
                f.write(nal)
        f.flush()
        os.fsync(f.fileno())


def read_clip(path: Path) -> Clip:
    data = path.read_bytes()
    try:
        if not data.startswith(_MAGIC):
            raise ClipError(f"{path} is not a camsim clip (bad magic)")
        pos = len(_MAGIC)
        (header_len,) = struct.unpack_from(">I", data, pos)
        pos += 4
        header = json.loads(data[pos : pos + header_len])
        pos += header_len
        frames = []
        for _ in range(header["frame_count"]):
            key, count = struct.unpack_from(">BH", data, pos)
            pos += 3
            nals = []
            for _ in range(count):
                (size,) = struct.unpack_from(">I", data, pos)
                pos += 4
                nals.append(data[pos : pos + size])
                pos += size
            frames.append(EncodedFrame(nals=tuple(nals), keyframe=bool(key)))
        if pos != len(data):
            raise ClipError(f"{path}: {len(data) - pos} trailing bytes")
    except (struct.error, ValueError, KeyError) as err:
        raise ClipError(f"{path}: truncated or corrupt clip: {err}") from err
    return _make_clip(
        header["codec"], header["width"], header["height"], header["fps"],
        header["gop_frames"], tuple(frames),
    )
