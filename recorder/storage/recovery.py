"""Start-up recovery (docs/storage.md, "Recover at start-up").

Precondition: no writer runs on this storage root. Steps: finish pending garbage
(invariant 4), index orphan files after cutting them back to their last complete fragment
(invariant 3), mark rows whose file is gone as missing (invariant 1), close open runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import Mp4FormatError
from recorder.index import ClosedSegment, Index
from recorder.storage import fmp4
from recorder.storage.flusher import hash_file
from recorder.storage.garbage import unlink_garbage
from recorder.storage.layout import fsync_dir, parse_segment_relpath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryReport:
    garbage_removed: int  # garbage rows finished
    recovered: int  # orphan files indexed with status 'recovered'
    truncated: int  # of which were cut back to their last complete fragment
    deleted: int  # orphan files with no complete fragment, deleted
    missing: int  # rows whose file is gone, marked 'missing'
    runs_closed: int  # runs left open, ended with reason 'crash'
    unknown_files: int  # .mp4 files whose path is not a segment's (left alone)


def recover(root: str | Path, index: Index, *, site: str = "") -> RecoveryReport:
    root = Path(root)
    garbage = [p for p, _reason in index.garbage()]
    unlink_garbage(root, index, garbage, site=site)

    # One directory at a time, so memory stays small however many segments there are.
    dirs_seen: set[str] = set()
    recovered = truncated = deleted = unknown = missing = 0
    for dirpath, _dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirs_seen.add(rel_dir)
        rows = index.segment_paths_in(rel_dir) if rel_dir != "." else {}
        names = set(files)
        for name in sorted(names):
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if not name.endswith(".mp4") or rel in rows:
                continue
            outcome = _recover_orphan(root, index, rel, site)
            if outcome is None:
                unknown += 1
            elif outcome == "deleted":
                deleted += 1
            else:
                recovered += 1
                truncated += outcome == "truncated"
        for rel, (seg_id, status) in rows.items():
            if status != "missing" and rel.rpartition("/")[2] not in names:
                missing += _mark_missing(index, seg_id, rel, site)
    # Rows whose whole directory is gone.
    after_id = 0
    while page := index.present_segments(after_id=after_id):
        after_id = page[-1][0]
        for seg_id, rel in page:
            if rel.rpartition("/")[0] not in dirs_seen:
                missing += _mark_missing(index, seg_id, rel, site)

    runs_closed = index.close_open_runs("crash")
    report = RecoveryReport(
        len(garbage), recovered, truncated, deleted, missing, runs_closed, unknown
    )
    log.info("site %s: start-up recovery: %s", site, report)
    return report


def _mark_missing(index: Index, seg_id: int, rel: str, site: str) -> int:
    index.mark_missing(seg_id)
    log.error("site %s: segment %s is in the index but its file is gone", site, rel)
    return 1


def _recover_orphan(root: Path, index: Index, rel: str, site: str) -> str | None:
    """Index one file that has no row. Returns 'recovered', 'truncated', 'deleted' or None."""
    name = parse_segment_relpath(rel)
    if name is None:
        log.warning("site %s: %s is not a segment file name: left alone", site, rel)
        return None
    where = f"site {site} camera {name.camera}/{name.stream}"
    path = root / rel
    try:
        before = path.stat().st_size
        scan = fmp4.repair(path)
    except Mp4FormatError as err:
        log.error("%s: %s is not a readable fMP4 segment (%s): deleted", where, rel, err)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return "deleted"
    if scan is None:
        return "deleted"
    size, sha256 = hash_file(path)
    index.insert_segment(
        ClosedSegment(
            camera=name.camera,
            stream=name.stream,
            run_id=name.run_id,
            path=rel,
            start_wall=name.start_wall,
            end_wall=name.start_wall + scan.duration_90k / 90000,
            duration_90k=scan.duration_90k,
            frames=scan.frames,
            keyframes=scan.keyframes,
            media_bytes=0,  # unknown after a crash: payload bytes were counted in memory
            codec=scan.codec,
            width=scan.width,
            height=scan.height,
            status="recovered",
            bytes=size,
            sha256=sha256,
        )
    )
    cut = size < before
    log.warning(
        "%s: recovered segment %s (%d frames, %.1f s%s)",
        where, rel, scan.frames, scan.duration_90k / 90000, ", truncated" if cut else "",
    )
    return "truncated" if cut else "recovered"
