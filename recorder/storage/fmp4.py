"""Top-level box walking of fragmented MP4 segments, and truncation to the last complete
fragment (docs/storage.md, invariant 3).

Frames, keyframes and duration are counted from the `trun` boxes (with `tfhd` and `trex`
defaults) instead of demuxing: a few milliseconds for a 60 s segment, and exact for the last
sample. Only the boxes the mov muxer of FFmpeg writes for `frag_keyframe+empty_moov+
default_base_moof` with one video track are understood.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import Mp4FormatError
from recorder.storage.layout import fsync_dir, fsync_file

log = logging.getLogger(__name__)

_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample in sample flags (ISO 14496-12 8.8.3.1)
_KNOWN_TRAILERS = {b"mfra", b"free", b"skip", b"sidx", b"styp", b"udta"}


@dataclass(frozen=True)
class Mp4Scan:
    """What a segment file holds up to its last complete `moof`+`mdat` pair."""

    file_bytes: int
    complete_end: int  # offset just past the last complete top-level box worth keeping
    fragments: int
    frames: int
    keyframes: int
    duration_90k: int
    timescale: int
    codec: str
    width: int
    height: int

    @property
    def torn(self) -> bool:
        return self.complete_end < self.file_bytes


@dataclass
class _Defaults:
    duration: int = 0
    flags: int = 0


def _boxes(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each complete box in buf[start:end]."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(buf: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(buf, start, end):
        if k == kind:
            return s, e
    return None


def _path(buf: bytes, start: int, end: int, *kinds: bytes) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, end)
    for kind in kinds:
        assert span is not None
        span = _child(buf, span[0], span[1], kind)
        if span is None:
            return None
    return span


@dataclass
class _Track:
    timescale: int = 0
    codec: str = ""
    width: int = 0
    height: int = 0
    trex: _Defaults | None = None


def _parse_moov(buf: bytes) -> _Track:
    track = _Track()
    mdhd = _path(buf, 0, len(buf), b"trak", b"mdia", b"mdhd")
    if mdhd is None:
        raise Mp4FormatError("moov has no trak/mdia/mdhd")
    version = buf[mdhd[0]]
    off = mdhd[0] + (20 if version == 1 else 12)
    track.timescale = struct.unpack_from(">I", buf, off)[0]
    stsd = _path(buf, 0, len(buf), b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    if stsd is not None:
        for kind, s, _e in _boxes(buf, stsd[0] + 8, stsd[1]):  # skip version/flags/count
            track.codec = _CODECS.get(kind, kind.decode("latin-1"))
            track.width, track.height = struct.unpack_from(">HH", buf, s + 24)
            break
    trex = _path(buf, 0, len(buf), b"mvex", b"trex")
    if trex is not None:
        # version/flags, track_ID, default_sample_description_index, duration, size, flags
        _, _, _, dur, _, flags = struct.unpack_from(">IIIIII", buf, trex[0])
        track.trex = _Defaults(dur, flags)
    return track


def _parse_moof(buf: bytes, track: _Track) -> tuple[int, int, int]:
    """(samples, keyframes, duration in the track's timescale) of one moof."""
    samples = keyframes = ticks = 0
    for kind, s, e in _boxes(buf):
        if kind != b"traf":
            continue
        d = _Defaults(track.trex.duration, track.trex.flags) if track.trex else _Defaults()
        tfhd = _child(buf, s, e, b"tfhd")
        if tfhd is None:
            raise Mp4FormatError("traf has no tfhd")
        flags = struct.unpack_from(">I", buf, tfhd[0])[0] & 0xFFFFFF
        off = tfhd[0] + 8  # version/flags, track_ID
        if flags & 0x1:
            off += 8
        if flags & 0x2:
            off += 4
        if flags & 0x8:
            d.duration = struct.unpack_from(">I", buf, off)[0]
            off += 4
        if flags & 0x10:
            off += 4
        if flags & 0x20:
            d.flags = struct.unpack_from(">I", buf, off)[0]
        for k, ts, _te in _boxes(buf, s, e):
            if k != b"trun":
                continue
            tr_flags = struct.unpack_from(">I", buf, ts)[0] & 0xFFFFFF
            count = struct.unpack_from(">I", buf, ts + 4)[0]
            off = ts + 8
            if tr_flags & 0x1:
                off += 4
            first_flags = None
            if tr_flags & 0x4:
                first_flags = struct.unpack_from(">I", buf, off)[0]
                off += 4
            for i in range(count):
                dur, sflags = d.duration, d.flags
                if tr_flags & 0x100:
                    dur = struct.unpack_from(">I", buf, off)[0]
                    off += 4
                if tr_flags & 0x200:
                    off += 4
                if tr_flags & 0x400:
                    sflags = struct.unpack_from(">I", buf, off)[0]
                    off += 4
                if tr_flags & 0x800:
                    off += 4
                if i == 0 and first_flags is not None:
                    sflags = first_flags
                ticks += dur
                if not sflags & _NON_SYNC:
                    keyframes += 1
            samples += count
    return samples, keyframes, ticks


def scan(path: str | Path) -> Mp4Scan:
    """Walk the top-level boxes; count what the complete `moof`+`mdat` pairs hold."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _scan(f, size)
    except (OSError, struct.error) as err:
        raise Mp4FormatError(f"{path}: {err}") from err


def _scan(f, size: int) -> Mp4Scan:  # type: ignore[no-untyped-def]
    pos = complete_end = 0
    track: _Track | None = None
    fragments = frames = keyframes = ticks = 0
    pending_moof: tuple[int, int, int] | None = None
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box_size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if box_size == 1:
            if len(head) < 16:
                break
            box_size = struct.unpack_from(">Q", head, 8)[0]
            header = 16
        elif box_size == 0:
            break  # "to end of file": only an unfinished box is written like that
        if box_size < header or pos + box_size > size:
            break  # torn box
        end = pos + box_size
        if kind == b"mdat" and pending_moof is not None:
            n, k, t = pending_moof
            fragments += 1
            frames += n
            keyframes += k
            ticks += t
            pending_moof = None
            complete_end = end
        elif pending_moof is not None:
            break  # a moof not followed by its mdat: stop at the last complete pair
        elif kind in (b"ftyp", b"moov"):
            if kind == b"moov":
                f.seek(pos + header)
                track = _parse_moov(f.read(box_size - header))
            complete_end = end
        elif kind == b"moof":
            if track is None:
                raise Mp4FormatError("moof before moov")
            f.seek(pos + header)
            pending_moof = _parse_moof(f.read(box_size - header), track)
        elif kind in _KNOWN_TRAILERS:
            complete_end = end
        else:
            break
        pos = end
    if track is None or fragments == 0:
        return Mp4Scan(size, 0, 0, 0, 0, 0, track.timescale if track else 0,
                       track.codec if track else "", track.width if track else 0,
                       track.height if track else 0)
    duration_90k = round(ticks * 90000 / track.timescale) if track.timescale else 0
    return Mp4Scan(
        file_bytes=size,
        complete_end=complete_end,
        fragments=fragments,
        frames=frames,
        keyframes=keyframes,
        duration_90k=duration_90k,
        timescale=track.timescale,
        codec=track.codec,
        width=track.width,
        height=track.height,
    )


def repair(path: str | Path) -> Mp4Scan | None:
    """Cut a torn segment back to its last complete fragment (invariant 3) and fsync it.

    Returns the scan of the repaired file, or None when the file held no complete fragment
    and was deleted (nothing half-written is left looking playable).
    """
    path = Path(path)
    result = scan(path)
    if result.fragments == 0:
        log.warning("segment %s holds no complete fragment: deleted", path)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return None
    if result.torn:
        log.warning(
            "segment %s: cut from %d to %d bytes (last complete fragment)",
            path, result.file_bytes, result.complete_end,
        )
        os.truncate(path, result.complete_end)
        fsync_file(path)
        result = scan(path)
    return result
