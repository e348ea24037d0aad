"""Where segment files live under the storage root (docs/storage.md, "Layout on disk")."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recorder.errors import BadCameraName, StorageError

CAMERA_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
STREAMS = ("main", "sub")
_FILE_RE = re.compile(
    r"(?P<ts>\d{8}T\d{6}\.\d{3})Z-r(?P<run>\d+)-(?P<seq>\d{5,})\.mp4"
)
_TS_FMT = "%Y%m%dT%H%M%S.%f"


@dataclass(frozen=True)
class SegmentName:
    camera: str
    stream: str
    start_wall: float  # to the millisecond
    run_id: int
    seq: int


def check_camera_name(camera: str) -> None:
    if not CAMERA_NAME_RE.fullmatch(camera):
        raise BadCameraName(
            f"camera name {camera!r} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )


def segment_relpath(camera: str, stream: str, start_wall: float, run_id: int, seq: int) -> str:
    """`<camera>/<stream>/<YYYY-MM-DD>/<YYYYmmddTHHMMSS.fffZ>-r<run>-<seq>.mp4` (UTC)."""
    check_camera_name(camera)
    if stream not in STREAMS:
        raise StorageError(f"camera {camera}: stream {stream!r} is not one of {STREAMS}")
    ms = round(start_wall * 1000)
    t = datetime.fromtimestamp(ms / 1000, UTC)
    ts = t.strftime("%Y%m%dT%H%M%S.") + f"{ms % 1000:03d}"
    return f"{camera}/{stream}/{t:%Y-%m-%d}/{ts}Z-r{run_id}-{seq:05d}.mp4"


def parse_segment_relpath(relpath: str) -> SegmentName | None:
    """The inverse of segment_relpath, or None when the path is not a segment's."""
    parts = relpath.split("/")
    if len(parts) != 4:
        return None
    camera, stream, _day, name = parts
    m = _FILE_RE.fullmatch(name)
    if m is None or stream not in STREAMS or not CAMERA_NAME_RE.fullmatch(camera):
        return None
    t = datetime.strptime(m["ts"], _TS_FMT).replace(tzinfo=UTC)
    return SegmentName(camera, stream, t.timestamp(), int(m["run"]), int(m["seq"]))


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (created, renamed or removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
