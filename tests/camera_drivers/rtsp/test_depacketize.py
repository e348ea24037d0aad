"""RTP packets to access units. Packets are made by the camera simulator's packetizer (an
independent implementation) where it can make them, by `rtp()` where a test needs a packet
the simulator never sends."""

from __future__ import annotations

import random
import struct

import pytest

from camera_drivers.rtsp.depacketize import AccessUnit, Depacketizer
from camera_drivers.rtsp.errors import RtspProtocolError, RtspUnsupported
from camera_drivers.sim.rtp import INTERLEAVE_HEADER_BYTES, PacketizedFrame, packetize

PT = 96
SSRC = 0x1234ABCD
SIM_CODEC = {"h264": "h264", "hevc": "h265"}  # FFmpeg's name -> the simulator's
_random = random.Random(6184)

H264_SPS = bytes([0x67, 0x64, 0x00, 0x16]) + _random.randbytes(12)
H264_PPS = bytes([0x68, 0xEE, 0x3C, 0xB0])
H264_SEI = bytes([0x06, 0x05]) + _random.randbytes(30)
H264_IDR = bytes([0x65]) + _random.randbytes(5000)  # 4 FU-A fragments
H264_P = bytes([0x41]) + _random.randbytes(3000)
H264_SMALL_P = bytes([0x41]) + _random.randbytes(100)

H265_VPS = bytes([0x40, 0x01]) + _random.randbytes(20)
H265_SPS = bytes([0x42, 0x01]) + _random.randbytes(30)
H265_PPS = bytes([0x44, 0x01, 0xC1, 0x72])
H265_IDR = bytes([0x26, 0x01]) + _random.randbytes(5000)  # type 19, IDR_W_RADL
H265_TRAIL = bytes([0x02, 0x01]) + _random.randbytes(3000)  # type 1, TRAIL_R
H265_SMALL_TRAIL = bytes([0x02, 0x01]) + _random.randbytes(100)

# Per codec: a keyframe access unit with parameter sets, then two inter frames.
STREAMS = {
    "h264": [[H264_SPS, H264_PPS, H264_SEI, H264_IDR], [H264_P], [H264_SMALL_P]],
    "hevc": [[H265_VPS, H265_SPS, H265_PPS, H265_IDR], [H265_TRAIL], [H265_SMALL_TRAIL]],
}
FRAME_TICKS = 6000  # 15 fps at 90 kHz


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def sim_packets(codec: str, nals: list[bytes], first_seq: int = 0, timestamp: int = 0,
                payload_type: int = PT) -> list[bytes]:
    """The RTP packets the camera simulator sends for one access unit (marker on the last)."""
    frame = PacketizedFrame(packetize(SIM_CODEC[codec], nals), payload_type, keyframe=False)
    data = frame.stamp(first_seq, timestamp, SSRC)
    packets, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">H", data, pos + 2)
        pos += INTERLEAVE_HEADER_BYTES
        packets.append(data[pos : pos + size])
        pos += size
    return packets


def sim_stream(codec: str, first_seq: int = 0) -> list[bytes]:
    """The packets of `STREAMS[codec]`, one access unit every FRAME_TICKS."""
    packets: list[bytes] = []
    for i, nals in enumerate(STREAMS[codec]):
        packets += sim_packets(codec, nals, first_seq + len(packets), i * FRAME_TICKS)
    return packets


def rtp(payload: bytes, seq: int, timestamp: int = 0, *, marker: bool = False,
        payload_type: int = PT, csrcs: tuple[int, ...] = (), extension_words: int | None = None,
        padding_bytes: int = 0, version: int = 2) -> bytes:
    """An RTP packet (RFC 3550 5.1) around `payload`."""
    first = version << 6 | len(csrcs)
    header = b"".join(struct.pack(">I", c) for c in csrcs)
    if extension_words is not None:
        first |= 0x10
        header += struct.pack(">HH", 0xBEDE, extension_words) + b"\xee" * 4 * extension_words
    tail = b""
    if padding_bytes:
        first |= 0x20
        tail = b"\x00" * (padding_bytes - 1) + bytes([padding_bytes])
    second = (0x80 if marker else 0) | payload_type
    fixed = struct.pack(">BBHII", first, second, seq & 0xFFFF, timestamp, SSRC)
    return fixed + header + payload + tail


def push_all(depacketizer: Depacketizer, packets: list[bytes]) -> list[AccessUnit]:
    return [unit for packet in packets for unit in depacketizer.push(packet)]


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_access_units_round_trip_to_the_exact_annexb_stream(codec):
    packets = sim_stream(codec)
    assert len(packets) == 11  # 4 + 3 of them fragments of the IDR and the big inter frame
    depacketizer = Depacketizer(codec, PT)
    units = push_all(depacketizer, packets)
    assert [bytes(u.data) for u in units] == [annexb(nals) for nals in STREAMS[codec]]
    assert [u.timestamp for u in units] == [0, FRAME_TICKS, 2 * FRAME_TICKS]
    assert [u.is_keyframe for u in units] == [True, False, False]
    assert not any(u.damaged for u in units)
    assert all(isinstance(u.data, bytearray) for u in units)
    assert depacketizer.packets == len(packets)
    assert depacketizer.lost_packets == depacketizer.ignored_packets == 0


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_packets_given_as_bytearray_or_memoryview_give_the_same_access_units(codec):
    packets = sim_stream(codec)
    expected = [annexb(nals) for nals in STREAMS[codec]]
    for wrap in (bytearray, memoryview):
        units = push_all(Depacketizer(codec, PT), [wrap(p) for p in packets])
        assert [bytes(u.data) for u in units] == expected


def test_sequence_numbers_wrapping_from_65535_to_0_lose_nothing():
    packets = sim_stream("h264", first_seq=65530)
    assert len(packets) > 6
    depacketizer = Depacketizer("h264", PT)
    units = push_all(depacketizer, packets)
    assert [bytes(u.data) for u in units] == [annexb(nals) for nals in STREAMS["h264"]]
    assert not any(u.damaged for u in units)
    assert depacketizer.lost_packets == 0


def test_h264_stap_a_unpacks_in_order_and_flags_its_idr():
    stap = bytes([0x78]) + b"".join(struct.pack(">H", len(n)) + n for n in (H264_SPS, H264_PPS))
    stap_with_idr = bytes([0x78]) + struct.pack(">H", 50) + H264_IDR[:50]
    depacketizer = Depacketizer("h264", PT)
    (unit,) = push_all(depacketizer, [rtp(stap, 1), rtp(stap_with_idr, 2, marker=True)])
    assert bytes(unit.data) == annexb([H264_SPS, H264_PPS, H264_IDR[:50]])
    assert unit.is_keyframe and not unit.damaged


def test_h265_aggregation_packet_unpacks_in_order():
    ap = bytes([48 << 1, 0x01]) + b"".join(
        struct.pack(">H", len(n)) + n for n in (H265_VPS, H265_SPS, H265_PPS)
    )
    packets = [rtp(ap, 7), *sim_packets("hevc", [H265_IDR], first_seq=8)]
    (unit,) = push_all(Depacketizer("hevc", PT), packets)
    assert bytes(unit.data) == annexb([H265_VPS, H265_SPS, H265_PPS, H265_IDR])
    assert unit.is_keyframe


@pytest.mark.parametrize(
    ("codec", "nal_header", "keyframe"),
    [
        ("h264", b"\x65", True),  # IDR slice
        ("h264", b"\x41", False),  # non-IDR slice
        ("h264", b"\x01", False),  # non-IDR slice, NRI 0
        ("hevc", bytes([16 << 1, 1]), True),  # BLA_W_LP
        ("hevc", bytes([19 << 1, 1]), True),  # IDR_W_RADL
        ("hevc", bytes([21 << 1, 1]), True),  # CRA
        ("hevc", bytes([1 << 1, 1]), False),  # TRAIL_R
        ("hevc", bytes([22 << 1, 1]), False),  # reserved IRAP type, not an IRAP picture
    ],
)
@pytest.mark.parametrize("fragmented", [False, True])
def test_keyframe_flag_follows_the_nal_unit_type(codec, nal_header, keyframe, fragmented):
    nal = nal_header + _random.randbytes(3000 if fragmented else 100)
    packets = sim_packets(codec, [nal])
    assert len(packets) == (3 if fragmented else 1)
    (unit,) = push_all(Depacketizer(codec, PT), packets)
    assert bytes(unit.data) == annexb([nal])
    assert unit.is_keyframe is keyframe


# -- access unit boundaries ----------------------------------------------------------------


def without_marker(packet: bytes) -> bytes:
    return packet[:1] + bytes([packet[1] & 0x7F]) + packet[2:]


def test_a_new_timestamp_ends_an_access_unit_that_had_no_marker():
    first = [without_marker(p) for p in sim_packets("h264", [H264_SPS, H264_IDR], 10, 0)]
    second = sim_packets("h264", [H264_P], 10 + len(first), FRAME_TICKS)
    depacketizer = Depacketizer("h264", PT)
    assert push_all(depacketizer, first) == []
    (unit,) = depacketizer.push(second[0])
    assert bytes(unit.data) == annexb([H264_SPS, H264_IDR])
    assert unit.timestamp == 0 and unit.is_keyframe and not unit.damaged
    (unit,) = push_all(depacketizer, second[1:])
    assert bytes(unit.data) == annexb([H264_P]) and unit.timestamp == FRAME_TICKS


def test_one_packet_can_complete_two_access_units():
    first = [without_marker(p) for p in sim_packets("hevc", [H265_VPS, H265_IDR], 0, 0)]
    (second,) = sim_packets("hevc", [H265_SMALL_TRAIL], len(first), FRAME_TICKS)
    depacketizer = Depacketizer("hevc", PT)
    assert push_all(depacketizer, first) == []
    units = depacketizer.push(second)
    assert [bytes(u.data) for u in units] == [
        annexb([H265_VPS, H265_IDR]),
        annexb([H265_SMALL_TRAIL]),
    ]
    assert [u.timestamp for u in units] == [0, FRAME_TICKS]
    assert [u.is_keyframe for u in units] == [True, False]
    assert not any(u.damaged for u in units)


def test_flush_returns_the_access_unit_in_progress_once():
    packets = [without_marker(p) for p in sim_packets("h264", [H264_SPS, H264_P], 0, 42)]
    depacketizer = Depacketizer("h264", PT)
    assert push_all(depacketizer, packets) == []
    (unit,) = depacketizer.flush()
    assert bytes(unit.data) == annexb([H264_SPS, H264_P]) and unit.timestamp == 42
    assert not unit.damaged
    assert depacketizer.flush() == []


def test_flush_drops_a_fragmented_nal_unit_whose_end_never_came():
    packets = sim_packets("h264", [H264_SPS, H264_IDR], 0, 0)
    depacketizer = Depacketizer("h264", PT)
    assert push_all(depacketizer, packets[:-1]) == []
    (unit,) = depacketizer.flush()
    assert bytes(unit.data) == annexb([H264_SPS]) and unit.damaged
    assert not unit.is_keyframe


def test_an_access_unit_with_no_whole_nal_unit_is_not_emitted():
    packets = sim_packets("h264", [H264_IDR], 100, 0)
    depacketizer = Depacketizer("h264", PT)
    assert push_all(depacketizer, packets[1:]) == []  # joined after the first fragment
    assert depacketizer.flush() == []


# -- loss and disorder ---------------------------------------------------------------------


def test_a_gap_inside_a_fragmented_nal_unit_removes_it_and_keeps_the_rest():
    packets = sim_stream("h264")
    assert len(sim_packets("h264", STREAMS["h264"][0])) == 7  # SPS, PPS, SEI, 4 IDR fragments
    lost = 4  # the IDR's second fragment
    depacketizer = Depacketizer("h264", PT)
    units = push_all(depacketizer, packets[:lost] + packets[lost + 1 :])
    assert bytes(units[0].data) == annexb([H264_SPS, H264_PPS, H264_SEI])
    assert units[0].damaged and not units[0].is_keyframe
    assert [bytes(u.data) for u in units[1:]] == [annexb(n) for n in STREAMS["h264"][1:]]
    assert not any(u.damaged for u in units[1:])
    assert depacketizer.lost_packets == 1


def test_a_gap_before_an_access_unit_marks_it_damaged_and_not_the_one_before():
    first = sim_packets("hevc", [H265_VPS, H265_SMALL_TRAIL], 0, 0)
    second = sim_packets("hevc", [H265_PPS, H265_SMALL_TRAIL], 2, FRAME_TICKS)
    depacketizer = Depacketizer("hevc", PT)
    units = push_all(depacketizer, first + second[1:])
    assert [bytes(u.data) for u in units] == [
        annexb([H265_VPS, H265_SMALL_TRAIL]),
        annexb([H265_SMALL_TRAIL]),
    ]
    assert [u.damaged for u in units] == [False, True]
    assert depacketizer.lost_packets == 1


def test_an_access_unit_whose_fragments_all_follow_a_gap_is_not_emitted():
    packets = sim_stream("hevc")
    idr_packets = len(sim_packets("hevc", STREAMS["hevc"][0]))
    depacketizer = Depacketizer("hevc", PT)
    # The first fragment of the big inter frame is lost; its other fragments are dropped.
    units = push_all(depacketizer, packets[:idr_packets] + packets[idr_packets + 1 :])
    assert [bytes(u.data) for u in units] == [
        annexb(STREAMS["hevc"][0]),
        annexb(STREAMS["hevc"][2]),
    ]
    assert [u.damaged for u in units] == [False, False]
    assert depacketizer.lost_packets == 1


def test_a_gap_that_loses_a_whole_small_nal_unit_marks_its_access_unit_damaged():
    packets = sim_packets("h264", [H264_SPS, H264_PPS, H264_SMALL_P])
    depacketizer = Depacketizer("h264", PT)
    (unit,) = push_all(depacketizer, [packets[0], packets[2]])
    assert bytes(unit.data) == annexb([H264_SPS, H264_SMALL_P]) and unit.damaged


def test_a_gap_that_loses_the_marker_packet_damages_both_neighbours():
    """Whether the lost packet ended the first access unit or began the second is unknown."""
    first = sim_packets("h264", [H264_SPS, H264_SMALL_P], 0, 0)
    second = sim_packets("h264", [H264_SMALL_P], 2, FRAME_TICKS)
    units = push_all(Depacketizer("h264", PT), first[:1] + second)
    assert [bytes(u.data) for u in units] == [annexb([H264_SPS]), annexb([H264_SMALL_P])]
    assert [u.damaged for u in units] == [True, True]


def test_a_fragment_whose_start_was_never_received_is_dropped_and_marks_damage():
    packets = sim_packets("hevc", [H265_IDR, H265_PPS], 500, 0)
    depacketizer = Depacketizer("hevc", PT)
    # the stream was joined mid-NAL unit; a marker after a PPS does not end the unit
    (unit,) = [*push_all(depacketizer, packets[1:]), *depacketizer.flush()]
    assert bytes(unit.data) == annexb([H265_PPS]) and unit.damaged
    assert depacketizer.lost_packets == 0


def test_duplicate_and_late_packets_are_ignored():
    packets = sim_stream("h264")
    depacketizer = Depacketizer("h264", PT)
    replayed = [*packets[:3], packets[2], packets[0], packets[1], *packets[3:]]
    units = push_all(depacketizer, replayed)
    assert [bytes(u.data) for u in units] == [annexb(nals) for nals in STREAMS["h264"]]
    assert not any(u.damaged for u in units)
    assert depacketizer.ignored_packets == 3 and depacketizer.lost_packets == 0


def test_a_sequence_restart_is_believed_after_two_packets_in_a_row():
    """RFC 3550 A.1: a jump too large to be loss is a sender restart once confirmed."""
    before = sim_packets("h264", [H264_SMALL_P], 100, 0)
    after = sim_packets("h264", [H264_SPS, H264_PPS, H264_SMALL_P], 40_000, FRAME_TICKS)
    depacketizer = Depacketizer("h264", PT)
    units = push_all(depacketizer, before + after)
    assert [bytes(u.data) for u in units] == [
        annexb([H264_SMALL_P]),
        annexb([H264_PPS, H264_SMALL_P]),  # the first packet after the jump is not trusted
    ]
    assert [u.damaged for u in units] == [False, True]
    assert depacketizer.lost_packets == 0 and depacketizer.ignored_packets == 1


# -- RTP header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"padding_bytes": 1},
        {"padding_bytes": 7},
        {"extension_words": 0},
        {"extension_words": 3},
        {"csrcs": (1, 2)},
        {"csrcs": (9,), "extension_words": 1, "padding_bytes": 4},
    ],
)
def test_csrcs_header_extension_and_padding_are_not_payload(options):
    stap = bytes([0x78]) + struct.pack(">H", len(H264_SPS)) + H264_SPS
    fragments = [p[12:] for p in sim_packets("h264", [H264_IDR])]
    packets = [rtp(stap, 1, **options)] + [
        rtp(f, 2 + i, marker=i == len(fragments) - 1, **options) for i, f in enumerate(fragments)
    ]
    (unit,) = push_all(Depacketizer("h264", PT), packets)
    assert bytes(unit.data) == annexb([H264_SPS, H264_IDR]) and not unit.damaged


def test_packets_of_another_payload_type_are_ignored_and_do_not_count_as_a_gap():
    packets = sim_packets("h264", [H264_SPS, H264_IDR], 0, 0)
    audio = rtp(b"\xff" * 160, 9_999, 0, payload_type=0, marker=True)
    depacketizer = Depacketizer("h264", PT)
    units = push_all(depacketizer, [*packets[:2], audio, *packets[2:]])
    assert [bytes(u.data) for u in units] == [annexb([H264_SPS, H264_IDR])]
    assert not units[0].damaged
    assert depacketizer.ignored_packets == 1 and depacketizer.packets == len(packets) + 1


def with_first_byte(first: int, packet: bytes) -> bytes:
    return bytes([first]) + packet[1:]


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (rtp(H264_SPS, 1, version=1), "version 1"),
        (rtp(H264_SPS, 1, version=0), "version 0"),
        (rtp(b"", 1)[:11], "shorter"),
        (rtp(H264_SPS, 1, csrcs=(1, 2, 3))[:20], "shorter"),
        (rtp(b"", 1, extension_words=0)[:14], "shorter"),
        (rtp(b"", 1, extension_words=5)[:20], "shorter"),
        (with_first_byte(0xA0, rtp(b"\x41\x00\x20", 1)), "shorter"),  # 32 bytes of padding
        (with_first_byte(0xA0, rtp(b"\x41\x00\x00", 1)), "padding count of 0"),
    ],
)
def test_malformed_rtp_headers_raise_protocol_errors(packet, message):
    with pytest.raises(RtspProtocolError, match=message):
        Depacketizer("h264", PT).push(packet)


# -- payloads this client does not read, or reads around ------------------------------------


@pytest.mark.parametrize(("nal_type", "name"), [(25, "STAP-B"), (26, "MTAP16"), (27, "MTAP24"),
                                                (29, "FU-B")])
def test_interleaved_h264_packetization_is_unsupported(nal_type, name):
    depacketizer = Depacketizer("h264", PT)
    with pytest.raises(RtspUnsupported, match=name):
        depacketizer.push(rtp(bytes([0x60 | nal_type, 0x80, 0x00, 0x01, 0x65]), 1))


@pytest.mark.parametrize(
    ("codec", "payload"),
    [
        ("h264", b"\x00\x01\x02"),
        ("h264", b"\x1e\x01\x02"),
        ("h264", b"\x1f\x01\x02"),
        ("hevc", bytes([50 << 1, 1, 0, 0])),  # PACI
        ("hevc", bytes([55 << 1, 1, 0, 0])),  # unspecified
    ],
)
def test_ignorable_nal_types_are_counted_and_skipped(codec, payload):
    depacketizer = Depacketizer(codec, PT)
    assert depacketizer.push(rtp(payload, 1, marker=True)) == []
    assert depacketizer.ignored_packets == 1


def test_an_aggregation_size_running_past_the_payload_keeps_the_whole_nal_units():
    stap = (bytes([0x78]) + struct.pack(">H", len(H264_SPS)) + H264_SPS
            + struct.pack(">H", 1000) + H264_PPS)
    depacketizer = Depacketizer("h264", PT)
    (unit,) = [*depacketizer.push(rtp(stap, 1, marker=True)), *depacketizer.flush()]
    assert bytes(unit.data) == annexb([H264_SPS]) and unit.damaged


@pytest.mark.parametrize(
    "tail", [b"\x00", struct.pack(">H", 0) + H264_PPS], ids=["half-size", "zero-size"]
)
def test_a_malformed_aggregation_tail_marks_damage(tail):
    ap = bytes([48 << 1, 1]) + struct.pack(">H", len(H265_VPS)) + H265_VPS + tail
    depacketizer = Depacketizer("hevc", PT)
    (unit,) = [*depacketizer.push(rtp(ap, 1, marker=True)), *depacketizer.flush()]
    assert bytes(unit.data) == annexb([H265_VPS]) and unit.damaged


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_marker_after_a_parameter_set_does_not_end_the_access_unit(codec):
    """Some cameras (Reolink) set the marker on SPS and PPS packets of a keyframe."""
    sets = [H264_SPS, H264_PPS] if codec == "h264" else [H265_VPS, H265_PPS]
    picture = H264_SMALL_P if codec == "h264" else H265_IDR
    depacketizer = Depacketizer(codec, PT)
    units = []
    for seq, nal in enumerate([*sets, picture], start=1):
        units += depacketizer.push(rtp(nal, seq, marker=True))
    (unit,) = units
    assert bytes(unit.data) == annexb([*sets, picture]) and not unit.damaged


@pytest.mark.parametrize(
    ("codec", "payload"),
    [
        ("h264", bytes([0x7C])),  # FU indicator only
        ("h264", bytes([0x7C, 0x85])),  # no fragment data
        ("hevc", bytes([49 << 1, 1, 0x93])),
    ],
)
def test_a_truncated_fragment_is_dropped_and_marks_damage(codec, payload):
    depacketizer = Depacketizer(codec, PT)
    small = STREAMS[codec][2][0]
    units = push_all(depacketizer, [rtp(payload, 1), rtp(small, 2, marker=True)])
    assert [bytes(u.data) for u in units] == [annexb([small])]
    assert units[0].damaged and not units[0].is_keyframe


def test_a_new_fragment_start_drops_an_unfinished_one():
    fragments = [p[12:] for p in sim_packets("h264", [H264_IDR])]
    packets = [rtp(fragments[0], 1)] + [
        rtp(f, 2 + i, marker=i == len(fragments) - 1) for i, f in enumerate(fragments)
    ]
    (unit,) = push_all(Depacketizer("h264", PT), packets)
    assert bytes(unit.data) == annexb([H264_IDR]) and unit.damaged


def test_codec_names_are_ffmpegs():
    Depacketizer("hevc", PT)
    for name in ("h265", "H264", "mjpeg"):
        with pytest.raises(ValueError, match="h264 or hevc"):
            Depacketizer(name, PT)
