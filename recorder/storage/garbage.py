"""Steps 2 and 3 of the deletion order (docs/storage.md, invariant 4): unlink the files
whose rows already moved to `garbage`, make the unlinks durable, then drop the garbage rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from recorder.index import Index
from recorder.storage.layout import fsync_dir

log = logging.getLogger(__name__)


def unlink_garbage(root: Path, index: Index, paths: Sequence[str], *, site: str = "") -> int:
    """Unlink `paths` (relative to root; already absent is fine), fsync their directories,
    remove day directories left empty, then drop the garbage rows. Returns files unlinked."""
    unlinked = 0
    dirs: set[Path] = set()
    for rel in paths:
        path = root / rel
        try:
            path.unlink()
            unlinked += 1
        except FileNotFoundError:
            pass
        dirs.add(path.parent)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()  # only succeeds when the day directory is empty
            fsync_dir(d.parent)
        except OSError:
            if d.exists():
                fsync_dir(d)
    index.remove_garbage(paths)
    if paths:
        log.info("site %s: deleted %d segment files", site, unlinked)
    return unlinked
