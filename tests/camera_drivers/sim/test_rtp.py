"""RTP packetization: FU-A / H.265 FU fragments reassemble to the original NAL units (read
back by Dozor's own depacketizer, an independent implementation)."""

from __future__ import annotations

import os
import struct

import pytest

from camera_drivers.rtsp.depacketize import Depacketizer
from camera_drivers.sim.errors import BitstreamError
from camera_drivers.sim.rtp import (
    INTERLEAVE_HEADER_BYTES,
    PacketizedFrame,
    fragment_nal,
    packetize,
    parse_rtp,
    split_annexb,
)

H264_IDR = bytes([0x65]) + os.urandom(5000)
H264_SPS = bytes([0x67, 0x64, 0x00, 0x28]) + os.urandom(20)
H265_IDR = bytes([0x26, 0x01]) + os.urandom(4000)  # type 19 (IDR_W_RADL)
H265_VPS = bytes([0x40, 0x01]) + os.urandom(20)


def split_interleaved(data: bytes) -> list[tuple[int, bytes]]:
    """(channel, RTP packet) of each interleaved frame ('$', channel, 16-bit length, packet)."""
    packets, pos = [], 0
    while pos < len(data):
        assert data[pos] == 0x24
        channel, size = struct.unpack_from(">BH", data, pos + 1)
        pos += INTERLEAVE_HEADER_BYTES
        packets.append((channel, data[pos : pos + size]))
        pos += size
    return packets


def test_split_annexb_handles_3_and_4_byte_start_codes():
    data = b"\x00\x00\x00\x01" + H264_SPS + b"\x00\x00\x01" + b"\x68\xee" + b"\x00\x00\x01\x65ab"
    assert split_annexb(data) == [H264_SPS, b"\x68\xee", b"\x65ab"]


def test_split_annexb_rejects_data_without_start_code():
    with pytest.raises(BitstreamError):
        split_annexb(b"\x65\x01\x02")


def test_small_nal_is_sent_as_a_single_nal_unit_packet():
    assert fragment_nal("h264", H264_SPS) == [H264_SPS]


@pytest.mark.parametrize(
    ("codec", "nals"), [("h264", [H264_SPS, H264_IDR]), ("h265", [H265_VPS, H265_IDR])]
)
def test_fragments_reassemble_to_the_original_nals(codec, nals):
    payloads = packetize(codec, nals, max_payload_bytes=1000)
    assert len(payloads) > 5
    assert all(len(p) <= 1000 for p in payloads)
    data = PacketizedFrame(payloads, 96, keyframe=True).stamp(first_seq=7, timestamp=9, ssrc=1)
    depacketizer = Depacketizer("hevc" if codec == "h265" else codec, 96)
    (unit,) = [u for _, packet in split_interleaved(data) for u in depacketizer.push(packet)]
    assert unit.data == b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)
    assert unit.is_keyframe and not unit.damaged


def test_h264_fu_a_headers_carry_start_end_and_type():
    fragments = fragment_nal("h264", H264_IDR, 1400)
    assert fragments[0][0] & 0x1F == 28 and fragments[0][0] & 0x60 == 0x60  # FU-A, NRI kept
    assert fragments[0][1] == 0x80 | 5  # S bit, IDR type
    assert fragments[-1][1] == 0x40 | 5  # E bit
    assert all(f[1] & 0xC0 == 0 for f in fragments[1:-1])


def test_h265_fu_headers_carry_start_end_and_type():
    fragments = fragment_nal("h265", H265_IDR, 1400)
    assert (fragments[0][0] >> 1) & 0x3F == 49 and fragments[0][1] == 0x01
    assert fragments[0][2] == 0x80 | 19 and fragments[-1][2] == 0x40 | 19


def test_packetized_frame_stamps_sequence_timestamp_ssrc_and_marker():
    payloads = packetize("h264", [H264_SPS, H264_IDR])
    frame = PacketizedFrame(payloads, 96, keyframe=True)
    data = frame.stamp(first_seq=65534, timestamp=2**32 + 5, ssrc=0xDEADBEEF, channel=2)
    packets = [parse_rtp(channel, packet) for channel, packet in split_interleaved(data)]
    assert [p.seq for p in packets] == [(65534 + i) & 0xFFFF for i in range(len(payloads))]
    assert {p.timestamp for p in packets} == {5}
    assert {p.ssrc for p in packets} == {0xDEADBEEF}
    assert {p.channel for p in packets} == {2}
    assert [p.marker for p in packets] == [False] * (len(payloads) - 1) + [True]
    assert [p.payload for p in packets] == payloads
