"""Errors of the recorder package. Third-party errors are converted at the boundary."""

from __future__ import annotations


class RecorderError(Exception):
    """Base class of every error the recorder raises on purpose."""


class StorageError(RecorderError):
    """A segment file could not be written, read, synced or removed."""


class StorageFull(StorageError):
    """The storage root has no room (ENOSPC, or free space under the stop threshold)."""


class BadCameraName(StorageError):
    """A camera name is not usable as a directory name (see docs/storage.md, layout)."""


class IndexDbError(RecorderError):
    """The SQLite index failed."""


class IndexCorrupt(IndexDbError):
    """The index file is not a Dozor index, or is newer than this code understands."""


class UnknownRow(IndexDbError):
    """A row named by id (hold, event, run) does not exist."""


class Mp4FormatError(StorageError):
    """A segment file's MP4 boxes cannot be parsed."""
