"""RTP packets to Annex-B access units: RFC 3550 headers, RFC 6184 (H.264), RFC 7798 (H.265).

The hot path of Dozor's RTSP client: `Depacketizer.push` runs for every RTP packet (about 400
a second for a 1080p camera), so it reads header fields by indexing a memoryview, copies each
payload slice once, straight into the bytearray of the access unit being built, and keeps the
uncommon cases (header extension, padding, sequence gaps, broken fragments) out of line.

Only the non-interleaved packetizations are read (H.264 packetization-mode 0 and 1, H.265
without DONL fields); interleaved packets raise RtspUnsupported, and the recorder then falls
back to FFmpeg. Malformed RTP headers raise RtspProtocolError: over RTSP/TCP they mean the
interleaved framing is lost. A malformed payload only marks its access unit damaged: one bad
packet must not end a recording.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from camera_drivers.rtsp.errors import RtspProtocolError, RtspUnsupported

START_CODE = b"\x00\x00\x00\x01"
RTP_HEADER_BYTES = 12
_PLAIN_RTP_VERSION_BYTE = 0x80  # V=2, no padding, no extension, no CSRC: the common case
# RFC 3550 A.1: a jump ahead of up to MAX_DROPOUT packets is loss, up to MAX_MISORDER behind is
# a late or duplicate packet; anything else means the sender restarted its sequence numbers,
# which is believed once two packets in a row confirm it.
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_SEQ_MODULO = 1 << 16
_SEQ_AND_TIMESTAMP = struct.Struct(">HI").unpack_from

# What the first payload byte makes of a packet.
_SINGLE, _AGGREGATE, _FRAGMENT, _IGNORED, _INTERLEAVED = range(5)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    timestamp: int  # RTP timestamp as received (32-bit)
    data: bytearray  # Annex-B: each NAL unit after 00 00 00 01, in order; the consumer owns it
    is_keyframe: bool  # H.264: contains an IDR slice (type 5); H.265: an IRAP picture (16-21)
    damaged: bool  # an RTP sequence gap fell in or just before it (a NAL unit or fragment was lost)


@dataclass(frozen=True)
class _Codec:
    """What differs between H.264 and H.265 RTP payloads, as tables indexed by a header byte."""

    name: str
    payload_header_bytes: int  # = NAL unit header bytes: 1 (H.264) or 2 (H.265)
    kinds: tuple[int, ...]  # first payload header byte -> _SINGLE, _AGGREGATE...
    keyframes: tuple[bool, ...]  # first NAL unit header byte -> IDR / IRAP
    # first NAL unit header byte -> a unit that only ever comes before a picture (SEI,
    # parameter sets, AUD): a marker bit after one does not end the access unit
    prefix_units: tuple[bool, ...]
    # Rebuilt first NAL header byte of a fragmented NAL unit =
    # (payload header byte & fu_kept_bits) | ((FU header & fu_type_bits) << fu_type_shift)
    fu_kept_bits: int
    fu_type_bits: int
    fu_type_shift: int
    interleaved_names: dict[int, str]  # packet type -> name, for the error message


# H.264 packet types of packetization-mode=2 (they carry decoding order numbers)
_H264_INTERLEAVED = {25: "STAP-B", 26: "MTAP16", 27: "MTAP24", 29: "FU-B"}


def _h264_kind(nal_type: int) -> int:
    if 1 <= nal_type <= 23:
        return _SINGLE
    if nal_type == 24:  # STAP-A
        return _AGGREGATE
    if nal_type == 28:  # FU-A
        return _FRAGMENT
    if nal_type in _H264_INTERLEAVED:
        return _INTERLEAVED
    return _IGNORED  # 0, 30, 31: undefined


def _h265_kind(nal_type: int) -> int:
    if nal_type <= 47:
        return _SINGLE
    if nal_type == 48:  # AP
        return _AGGREGATE
    if nal_type == 49:  # FU
        return _FRAGMENT
    return _IGNORED  # 50: PACI; 51-63: unspecified


_BYTES = range(256)
_CODECS = {
    "h264": _Codec(
        name="H.264",
        payload_header_bytes=1,
        kinds=tuple(_h264_kind(b & 0x1F) for b in _BYTES),
        keyframes=tuple(b & 0x1F == 5 for b in _BYTES),
        prefix_units=tuple(b & 0x1F in (6, 7, 8, 9) for b in _BYTES),
        fu_kept_bits=0xE0,  # F, NRI
        fu_type_bits=0x1F,
        fu_type_shift=0,
        interleaved_names=_H264_INTERLEAVED,
    ),
    "hevc": _Codec(
        name="H.265",
        payload_header_bytes=2,
        kinds=tuple(_h265_kind((b >> 1) & 0x3F) for b in _BYTES),
        keyframes=tuple(16 <= (b >> 1) & 0x3F <= 21 for b in _BYTES),
        prefix_units=tuple((b >> 1) & 0x3F in (32, 33, 34, 35, 39) for b in _BYTES),
        fu_kept_bits=0x81,  # F, top bit of the layer id
        fu_type_bits=0x3F,
        fu_type_shift=1,
        interleaved_names={},
    ),
}


class Depacketizer:
    """Builds access units from the RTP packets of one video stream.

    An access unit ends at the marker bit, or when a packet with another timestamp arrives
    (some cameras never set the marker), so one `push` may complete two of them.
    """

    __slots__ = (
        "_au",
        "_codec",
        "_damaged",
        "_fu_start",
        "_header_bytes",
        "_keyframe",
        "_keyframes",
        "_kinds",
        "_last_nal",
        "_next_seq",
        "_payload_type",
        "_prefix_units",
        "_resync_seq",
        "_timestamp",
        "ignored_packets",
        "lost_packets",
        "packets",
    )

    def __init__(self, codec: str, payload_type: int) -> None:
        found = _CODECS.get(codec)
        if found is None:
            raise ValueError(f"unsupported codec {codec!r} (h264 or hevc)")
        self._codec = found
        # The tables the hot path reads, one attribute lookup away.
        self._kinds = found.kinds
        self._keyframes = found.keyframes
        self._prefix_units = found.prefix_units
        self._last_nal = 0  # header byte of the last NAL unit added
        self._header_bytes = found.payload_header_bytes
        self._payload_type = payload_type
        self._au = bytearray()  # the access unit being built
        self._timestamp = -1  # its RTP timestamp; -1: none in progress
        self._keyframe = False
        self._damaged = False
        self._fu_start = -1  # offset in _au of the fragmented NAL unit in progress; -1: none
        self._next_seq = -1  # -1: no packet yet
        self._resync_seq = -1  # after a jump: the number that confirms the sender restarted
        self.packets = 0  # every RTP packet pushed
        self.lost_packets = 0  # sum of the sequence gaps
        self.ignored_packets = 0  # other payload type, late or duplicate, ignorable NAL type

    def push(self, packet: bytes | bytearray | memoryview) -> list[AccessUnit]:
        """One whole RTP packet (12-byte header included). Returns the access units it
        completed, usually none."""
        mv = memoryview(packet)
        end = len(mv)
        if end < RTP_HEADER_BYTES:
            raise RtspProtocolError(f"RTP packet of {end} bytes is shorter than its header")
        b0 = mv[0]
        if b0 >> 6 != 2:
            raise RtspProtocolError(f"RTP version {b0 >> 6} packet (version 2 expected)")
        self.packets += 1
        b1 = mv[1]
        if b1 & 0x7F != self._payload_type:
            self.ignored_packets += 1
            return []
        if b0 == _PLAIN_RTP_VERSION_BYTE:
            start = RTP_HEADER_BYTES
        else:
            start, end = _payload_bounds(mv, b0, end)
        seq, timestamp = _SEQ_AND_TIMESTAMP(mv, 2)
        gap = False
        if seq != self._next_seq:
            accepted = self._out_of_sequence(seq)
            if accepted is None:
                return []
            gap = accepted
        self._next_seq = (seq + 1) & 0xFFFF

        units: list[AccessUnit] = []
        if timestamp != self._timestamp:
            if self._au:
                unit = self._finish()
                if unit is not None:
                    units.append(unit)
            self._timestamp = timestamp
            self._keyframe = False
            self._damaged = gap  # the lost packets may have been the start of this one

        header_bytes = self._header_bytes
        au = self._au
        if end - start < header_bytes:
            if end == start:
                self.ignored_packets += 1  # no payload (a keep-alive)
            else:
                self._damaged = True
        else:
            first = mv[start]
            kind = self._kinds[first]
            if kind == _FRAGMENT:
                fu = start + header_bytes  # the FU header
                if fu + 1 >= end:
                    self._damaged = True  # truncated: no FU header or no data
                else:
                    fu_header = mv[fu]
                    fu_start = self._fu_start
                    if fu_header & 0x80:  # S: the first fragment
                        if fu_start >= 0:
                            self._drop_fragment()
                        fu_start = self._fu_start = len(au)
                        codec = self._codec
                        au += START_CODE
                        au += mv[start:fu]  # the payload header, to become the NAL header
                        au[fu_start + 4] = (first & codec.fu_kept_bits) | (
                            (fu_header & codec.fu_type_bits) << codec.fu_type_shift
                        )
                        au += mv[fu + 1 : end]
                    elif fu_start >= 0:
                        au += mv[fu + 1 : end]
                    else:
                        self._damaged = True  # a continuation whose start was lost: dropped
                    if fu_header & 0x40 and fu_start >= 0:  # E: the last fragment
                        self._last_nal = au[fu_start + 4]
                        if self._keyframes[au[fu_start + 4]]:
                            self._keyframe = True
                        self._fu_start = -1
            else:
                if self._fu_start >= 0:
                    self._drop_fragment()  # its last fragment never came
                if kind == _SINGLE:
                    au += START_CODE
                    au += mv[start:end]
                    self._last_nal = first
                    if self._keyframes[first]:
                        self._keyframe = True
                elif kind == _AGGREGATE:
                    self._aggregate(mv, start + header_bytes, end)
                elif kind == _IGNORED:
                    self.ignored_packets += 1
                else:
                    codec = self._codec
                    name = codec.interleaved_names.get(first & 0x1F, "?")
                    raise RtspUnsupported(
                        f"{codec.name} RTP packet of type {first & 0x1F} ({name}) belongs to "
                        "interleaved packetization, which Dozor's RTSP client does not read"
                    )

        # marker: the last packet of the access unit; except after a parameter set or SEI
        # (some cameras, e.g. Reolink, mark those too: the picture follows, same timestamp)
        if b1 & 0x80 and not self._prefix_units[self._last_nal]:
            unit = self._finish()
            if unit is not None:
                units.append(unit)
        return units

    def flush(self) -> list[AccessUnit]:
        """The access unit in progress, if any (at the end of the stream)."""
        unit = self._finish()
        return [] if unit is None else [unit]

    def _finish(self) -> AccessUnit | None:
        """Ends the access unit in progress; None if it has no whole NAL unit."""
        if self._fu_start >= 0:
            self._drop_fragment()  # its last fragment never came
        timestamp = self._timestamp
        self._timestamp = -1
        au = self._au
        if not au:
            return None
        self._au = bytearray()
        return AccessUnit(timestamp, au, self._keyframe, self._damaged)

    def _aggregate(self, mv: memoryview, pos: int, end: int) -> None:
        """The NAL units of a STAP-A / AP payload from `pos`: [16-bit size][NAL unit]..."""
        au = self._au
        keyframes = self._keyframes
        while pos < end:
            nal_start = pos + 2
            nal_end = nal_start + ((mv[pos] << 8) | mv[pos + 1]) if nal_start < end else end
            if nal_end <= nal_start or nal_end > end:
                self._damaged = True  # a size that runs past the payload: keep what was whole
                return
            au += START_CODE
            au += mv[nal_start:nal_end]
            self._last_nal = mv[nal_start]
            if keyframes[mv[nal_start]]:
                self._keyframe = True
            pos = nal_end

    def _drop_fragment(self) -> None:
        """Removes the fragmented NAL unit in progress from the access unit: it is incomplete."""
        del self._au[self._fu_start :]
        self._fu_start = -1
        self._damaged = True

    def _out_of_sequence(self, seq: int) -> bool | None:
        """A packet that does not follow the last one: True if packets were lost before it,
        False for the first packet, None if it is to be ignored (late, duplicate, or the
        first after a jump too large to be loss)."""
        if self._next_seq < 0:
            return False
        ahead = (seq - self._next_seq) & 0xFFFF  # packets missing between the last and this
        if ahead < _MAX_DROPOUT:
            self.lost_packets += ahead
        elif ahead >= _SEQ_MODULO - 1 - _MAX_MISORDER:
            self.ignored_packets += 1
            return None
        elif seq != self._resync_seq:
            self._resync_seq = (seq + 1) & 0xFFFF
            self.ignored_packets += 1
            return None
        # else: the second packet in a row after a jump: the sender restarted; nothing counted
        self._damaged = True
        if self._fu_start >= 0:
            self._drop_fragment()
        return True


def _payload_bounds(mv: memoryview, b0: int, size: int) -> tuple[int, int]:
    """Start and end of the payload of a packet with CSRCs, a header extension or padding."""
    start = RTP_HEADER_BYTES + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # X: a 4-byte extension header, then `length` 32-bit words
        if start + 4 > size:
            raise RtspProtocolError(f"RTP packet of {size} bytes is shorter than its headers")
        start += 4 + 4 * ((mv[start + 2] << 8) | mv[start + 3])
    end = size
    if b0 & 0x20:  # P: the last byte counts the padding bytes, itself included
        padding = mv[size - 1]
        if padding == 0:
            raise RtspProtocolError("RTP padding count of 0")
        end -= padding
    if start > end:
        raise RtspProtocolError(f"RTP packet of {size} bytes is shorter than its headers")
    return start, end
