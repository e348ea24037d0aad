"""Segment storage: writer, flusher, recovery, retention, disk guard (docs/storage.md)."""

from recorder.storage.disk import DiskGuard, DiskStatus, free_bytes
from recorder.storage.flusher import Flusher, FlusherStats, hash_file
from recorder.storage.fmp4 import Mp4Scan, repair, scan
from recorder.storage.layout import SegmentName, parse_segment_relpath, segment_relpath
from recorder.storage.recovery import RecoveryReport, recover
from recorder.storage.retention import Retention, RetentionPolicy, RetentionReport
from recorder.storage.segment_writer import SegmentWriter, WriterStats

__all__ = [
    "DiskGuard",
    "DiskStatus",
    "Flusher",
    "FlusherStats",
    "Mp4Scan",
    "RecoveryReport",
    "Retention",
    "RetentionPolicy",
    "RetentionReport",
    "SegmentName",
    "SegmentWriter",
    "WriterStats",
    "free_bytes",
    "hash_file",
    "parse_segment_relpath",
    "recover",
    "repair",
    "scan",
    "segment_relpath",
]
