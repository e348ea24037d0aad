"""The viewer's database: errors converted at the boundary, schema created idempotently."""

from __future__ import annotations

import pytest

from viewer.db import ViewerDB
from viewer.errors import DatabaseError


def test_unusable_path_is_a_database_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError, match="open"):
        ViewerDB(blocker / "viewer.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(DatabaseError):
        ViewerDB(garbage)


def test_reopen_keeps_data(tmp_path):
    db = ViewerDB(tmp_path / "v.db")
    db.upsert_site("village", True, 5.0, {"since": 1.0})
    db.close()
    db = ViewerDB(tmp_path / "v.db")
    try:
        assert db.sites()[0]["site"] == "village"
    finally:
        db.close()


def test_write_after_close_is_a_database_error(tmp_path):
    db = ViewerDB(tmp_path / "v.db")
    db.close()
    with pytest.raises(DatabaseError, match="store site"):
        db.upsert_site("village", True, 5.0, {})
