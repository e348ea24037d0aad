"""fmp4.scan/repair against files PyAV wrote, cut at every kind of place."""

from __future__ import annotations

import os
import shutil
import time

import av
import pytest

from recorder.errors import Mp4FormatError
from recorder.storage import fmp4
from recorder.storage.segment_writer import SegmentWriter

from .conftest import decoded_frames, ffprobe_errors


@pytest.fixture
def segment(clips, open_clip, storage_root, flusher, index):
    """One closed 4 s segment (4 fragments of 15 frames) and its index row."""
    src = open_clip(clips(seconds=4))
    writer = SegmentWriter(storage_root, flusher)
    writer.on_run_start(src.info())
    for p in src.packets():
        writer.on_packet(p)
    writer.close()
    assert flusher.wait_idle(30)
    (row,) = index.segments()
    return storage_root / row.path, row


def test_scan_counts_what_pyav_decodes(segment):
    path, row = segment
    t0 = time.perf_counter()
    result = fmp4.scan(path)
    scan_s = time.perf_counter() - t0
    assert (result.frames, result.keyframes, result.fragments) == (60, 4, 4)
    assert result.duration_90k == row.duration_90k == 4 * 90000
    assert (result.codec, result.width, result.height) == ("h264", 320, 240)
    assert not result.torn and result.complete_end == os.path.getsize(path)
    assert decoded_frames(path) == (60, 4)
    assert scan_s < 0.05


def fragment_ends(path):
    """Offsets just past each complete mdat."""
    data = path.read_bytes()
    ends, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"mdat":
            ends.append(pos + size)
        pos += size
    return ends


@pytest.mark.parametrize("cut", ["mid_mdat", "mid_moof", "after_moof", "mid_header"])
def test_repair_cuts_back_to_the_last_complete_fragment(segment, tmp_path, cut):
    path, _row = segment
    ends = fragment_ends(path)
    assert len(ends) == 4
    torn = tmp_path / "torn.mp4"
    shutil.copy(path, torn)
    data = path.read_bytes()
    moof3 = ends[1]  # the third fragment's moof starts where the second mdat ends
    moof3_size = int.from_bytes(data[moof3:moof3 + 4], "big")
    cut_at = {
        "mid_mdat": ends[2] - 100,
        "mid_moof": moof3 + 20,
        "after_moof": moof3 + moof3_size + 4,
        "mid_header": 30,
    }[cut]
    os.truncate(torn, cut_at)
    result = fmp4.repair(torn)
    if cut == "mid_header":
        assert result is None and not torn.exists()
        return
    assert result is not None
    assert result.fragments == 2 and result.frames == 30 and not result.torn
    assert os.path.getsize(torn) == ends[1]
    assert ffprobe_errors(torn) == ""
    assert decoded_frames(torn) == (30, 2)


def test_repair_leaves_a_complete_file_alone(segment):
    path, row = segment
    before = path.read_bytes()
    result = fmp4.repair(path)
    assert result is not None and result.frames == row.frames
    assert path.read_bytes() == before


def test_scan_names_the_file_that_is_not_mp4(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00\x00\x00\x10moofxxxxxxxx" + b"\x00\x00\x00\x08mdat")
    with pytest.raises(Mp4FormatError, match="moof before moov"):
        fmp4.scan(bad)


def test_scan_of_pyav_demux_comparison_is_faster(segment):
    """Why boxes and not PyAV (docs/storage.md): measured on the same file."""
    path, _row = segment
    t0 = time.perf_counter()
    for _ in range(20):
        fmp4.scan(path)
    t_scan = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        with av.open(str(path)) as c:
            sum(1 for _p in c.demux(video=0))
    t_demux = time.perf_counter() - t0
    print(f"scan {t_scan / 20 * 1e3:.2f} ms, demux {t_demux / 20 * 1e3:.2f} ms")
    assert t_scan < t_demux


def test_repair_deletes_an_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert fmp4.repair(empty) is None and not empty.exists()
