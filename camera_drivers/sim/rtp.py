"""NAL units and RTP: Annex-B splitting, RFC 6184 (H.264) and RFC 7798 (H.265) payloads.

Each clip frame is packetized ONCE into a `PacketizedFrame`: its RTP-over-RTSP interleaved
packets laid out back to back in one bytearray. Sending a frame then only patches the
sequence number, timestamp and SSRC of each packet (`struct.pack_into`) and hands the whole
frame to every client's transport in one `write`.

Only single NAL unit packets and fragmentation units (FU-A / H.265 FU) are produced;
aggregation packets are not needed for a camera that sends parameter sets with each keyframe.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from camera_drivers.sim.errors import BitstreamError

RTP_VERSION_BYTE = 0x80  # V=2, no padding, no extension, no CSRC
MAX_PAYLOAD_BYTES = 1400  # fits an Ethernet MTU; FFmpeg's RTSP/TCP reader accepts this size
RTP_HEADER_BYTES = 12
INTERLEAVE_HEADER_BYTES = 4
H264_FU_A = 28
H265_FU = 49

_INTERLEAVE = struct.Struct(">BBHBB")  # '$', channel, length, V/P/X/CC, M/PT
_SEQ_TS_SSRC = struct.Struct(">HII")


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (start codes 00 00 01 or 00 00 00 01)."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    if start < 0:
        if data:
            raise BitstreamError("no Annex-B start code in encoded frame")
        return []
    start += 3
    while True:
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        nal = data[start:end].rstrip(b"\x00") if nxt >= 0 else data[start:end]
        if nal:
            nals.append(nal)
        if nxt < 0:
            return nals
        start = nxt + 3


def nal_type(codec: str, nal: bytes) -> int:
    if codec == "h264":
        return nal[0] & 0x1F
    if codec == "h265":
        return (nal[0] >> 1) & 0x3F
    raise ValueError(f"unsupported codec {codec!r} (h264 or h265)")


def fragment_nal(codec: str, nal: bytes, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> list[bytes]:
    """RTP payloads carrying one NAL unit: the NAL itself, or fragmentation units."""
    if len(nal) <= max_payload_bytes:
        return [nal]
    if codec == "h264":
        header_len = 1
        prefix = bytes([(nal[0] & 0xE0) | H264_FU_A])
        unit_type = nal[0] & 0x1F
    elif codec == "h265":
        header_len = 2
        prefix = bytes([(nal[0] & 0x81) | (H265_FU << 1), nal[1]])
        unit_type = (nal[0] >> 1) & 0x3F
    else:
        raise ValueError(f"unsupported codec {codec!r} (h264 or h265)")
    body = memoryview(nal)[header_len:]
    chunk = max_payload_bytes - len(prefix) - 1
    payloads = []
    for pos in range(0, len(body), chunk):
        fu_header = unit_type
        if pos == 0:
            fu_header |= 0x80  # S
        if pos + chunk >= len(body):
            fu_header |= 0x40  # E
        payloads.append(prefix + bytes([fu_header]) + body[pos : pos + chunk])
    return payloads


def packetize(
    codec: str, nals: Iterable[bytes], max_payload_bytes: int = MAX_PAYLOAD_BYTES
) -> list[bytes]:
    """RTP payloads of one access unit, in order; the last one carries the marker bit."""
    payloads: list[bytes] = []
    for nal in nals:
        payloads.extend(fragment_nal(codec, nal, max_payload_bytes))
    return payloads


@dataclass(frozen=True)
class RtpPacket:
    channel: int
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(channel: int, data: bytes) -> RtpPacket:
    if len(data) < RTP_HEADER_BYTES or data[0] >> 6 != 2:
        raise BitstreamError(f"not an RTP version 2 packet ({len(data)} bytes)")
    seq, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
    header_len = RTP_HEADER_BYTES + 4 * (data[0] & 0x0F)
    return RtpPacket(
        channel=channel,
        marker=bool(data[1] & 0x80),
        payload_type=data[1] & 0x7F,
        seq=seq,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[header_len:]),
    )


class PacketizedFrame:
    """One access unit as ready-to-send interleaved RTP packets.

    `data` is shared by every stream that plays the same clip; `stamp` patches it and copies
    it out in one go, with no await in between, so sharing is safe on one event loop.
    """

    __slots__ = ("data", "keyframe", "offsets", "packet_count")

    def __init__(self, payloads: Sequence[bytes], payload_type: int, keyframe: bool) -> None:
        if not payloads:
            raise BitstreamError("an access unit needs at least one RTP payload")
        size = sum(INTERLEAVE_HEADER_BYTES + RTP_HEADER_BYTES + len(p) for p in payloads)
        self.data = bytearray(size)
        offsets = []
        pos = 0
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == len(payloads) - 1 else 0
            rtp_len = RTP_HEADER_BYTES + len(payload)
            _INTERLEAVE.pack_into(
                self.data, pos, 0x24, 0, rtp_len, RTP_VERSION_BYTE, marker | payload_type
            )
            start = pos + INTERLEAVE_HEADER_BYTES + RTP_HEADER_BYTES
            self.data[start : start + len(payload)] = payload
            offsets.append(pos)
            pos += INTERLEAVE_HEADER_BYTES + rtp_len
        self.offsets = tuple(offsets)
        self.packet_count = len(offsets)
        self.keyframe = keyframe

    def stamp(self, first_seq: int, timestamp: int, ssrc: int, channel: int = 0) -> bytes:
        """The frame's interleaved packets with these header fields, as one bytes object."""
        buf = self.data
        timestamp &= 0xFFFFFFFF
        seq = first_seq
        pack = _SEQ_TS_SSRC.pack_into
        for off in self.offsets:
            pack(buf, off + 6, seq & 0xFFFF, timestamp, ssrc)
            seq += 1
            buf[off + 1] = channel
        return bytes(buf)


def rtcp_sender_report(
    ssrc: int, ntp_s: float, rtp_timestamp: int, packet_count: int, octet_count: int
) -> bytes:
    """An RTCP SR (RFC 3550 6.4.1) with no report blocks; `ntp_s` is seconds since 1970."""
    ntp = ntp_s + 2_208_988_800  # 1900 epoch
    ntp_sec = int(ntp)
    ntp_frac = int((ntp - ntp_sec) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack(
        ">BBHIIIIII",
        0x80,
        200,
        6,
        ssrc,
        ntp_sec & 0xFFFFFFFF,
        ntp_frac,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )


def interleave(channel: int, packet: bytes) -> bytes:
    return struct.pack(">BBH", 0x24, channel, len(packet)) + packet
