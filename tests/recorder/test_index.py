"""The site index on a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from recorder.errors import IndexCorrupt, IndexDbError, UnknownRow
from recorder.index import SCHEMA_VERSION, ClosedSegment, EventRow, Index


def seg(start: float, end: float, *, camera: str = "cam1", stream: str = "main",
        n: int | None = None, bytes_: int = 1000) -> ClosedSegment:
    n = int(start) if n is None else n
    return ClosedSegment(
        camera=camera, stream=stream, run_id=1, path=f"{camera}/{stream}/d/{n}-{stream}.mp4",
        start_wall=start, end_wall=end, duration_90k=round((end - start) * 90000), frames=15,
        keyframes=1, media_bytes=bytes_ - 100, codec="h264", width=320, height=240,
        bytes=bytes_, sha256="ab" * 32,
    )


@pytest.fixture
def index(tmp_path: Path):
    idx = Index(tmp_path / "i.sqlite3", clock=lambda: 42.0)
    yield idx
    idx.close()


def test_new_index_is_wal_and_versioned(index, tmp_path):
    assert index.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "i.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"cameras", "runs", "segments", "gaps", "holds", "garbage", "events",
            "event_segments"} <= tables
    conn.close()


def test_reopening_keeps_rows(tmp_path):
    with Index(tmp_path / "i.sqlite3") as idx:
        idx.insert_segment(seg(0, 60))
    with Index(tmp_path / "i.sqlite3") as idx:
        assert len(idx.segments()) == 1


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "i.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(IndexCorrupt, match="newer than this code"):
        Index(path)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "i.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE x (a)")
    conn.close()
    with pytest.raises(IndexCorrupt, match="not a Dozor index"):
        Index(path)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "i.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(IndexCorrupt, match=r"i\.sqlite3"):
        Index(path)


def test_upsert_camera_keeps_unspecified_fields(index):
    index.upsert_camera("cam1", site="s", main_url="rtsp://a/main", clock_offset_s=1.5)
    index.upsert_camera("cam1", site="s", sub_url="rtsp://a/sub")
    (cam,) = index.cameras()
    assert (cam.main_url, cam.sub_url, cam.clock_offset_s, cam.updated_at) == (
        "rtsp://a/main", "rtsp://a/sub", 1.5, 42.0)


def test_runs_start_and_end(index):
    run = index.start_run("cam1", "main", 100.0)
    assert index.runs(open_only=True)[0].id == run
    index.end_run(run, 160.0, "timeout")
    (r,) = index.runs()
    assert (r.end_wall, r.end_reason) == (160.0, "timeout")
    with pytest.raises(UnknownRow):
        index.end_run(999, 1.0, "x")


def test_segments_query_by_camera_stream_and_overlap(index):
    for i in range(5):
        index.insert_segment(seg(i * 60, (i + 1) * 60))
    index.insert_segment(seg(0, 60, stream="sub"))
    index.insert_segment(seg(0, 60, camera="cam2"))
    assert len(index.segments()) == 7
    got = index.segments("cam1", "main", start=90, end=150)
    assert [s.start_wall for s in got] == [60, 120]
    assert index.segments("cam1", "sub")[0].stream == "sub"
    assert index.total_segment_bytes() == 7000


def test_segment_without_hash_is_refused(index):
    with pytest.raises(ValueError, match="sha256 missing"):
        index.insert_segment(ClosedSegment(**{**seg(0, 1).__dict__, "sha256": ""}))


def test_event_links_segments_with_preroll_and_postroll(index):
    index.insert_segment(seg(0, 60))  # within pre-roll of the event
    index.insert_segment(seg(60, 120))
    ev = EventRow(id="e1", camera="cam1", source="motion", kind="motion", start_wall=65.0,
                  preroll_s=10.0, postroll_s=10.0, zones=("gate",))
    index.insert_event(ev)
    assert [s.start_wall for s in index.event_segments("e1")] == [0, 60]
    # a segment indexed while the event is open is linked at insert
    index.insert_segment(seg(120, 180))
    index.insert_segment(seg(120, 180, camera="cam2", n=999))  # another camera: not linked
    assert [s.start_wall for s in index.event_segments("e1")] == [0, 60, 120]
    index.update_event("e1", end_wall=125.0, score=0.9, peak_area=0.2)
    index.insert_segment(seg(180, 240))  # after end + post-roll: not linked
    assert [s.start_wall for s in index.event_segments("e1")] == [0, 60, 120]
    e = index.event("e1")
    assert (e.end_wall, e.score, e.peak_area, e.zones) == (125.0, 0.9, 0.2, ("gate",))


def test_event_end_links_segments_indexed_later_only_if_overlapping(index):
    index.insert_event(EventRow(id="e2", camera="cam1", source="camera", kind="tamper",
                                start_wall=10.0, end_wall=20.0, postroll_s=5.0))
    index.insert_segment(seg(24, 30))  # within post-roll
    index.insert_segment(seg(26, 30, n=26))  # after post-roll
    assert [s.start_wall for s in index.event_segments("e2")] == [24]


def test_update_unknown_event_and_bad_source(index):
    with pytest.raises(UnknownRow, match="no event nope"):
        index.update_event("nope", score=1.0)
    with pytest.raises(ValueError, match="bad source"):
        index.insert_event(EventRow(id="x", camera="c", source="radar", kind="k",
                                    start_wall=0.0))


def test_holds(index):
    hold = index.add_hold("cam1", 10.0, 20.0, "case 12/2026", "officer")
    (h,) = index.holds("cam1")
    assert (h.id, h.reason, h.who, h.created_wall) == (hold, "case 12/2026", "officer", 42.0)
    with pytest.raises(ValueError, match="not after start"):
        index.add_hold("cam1", 20.0, 10.0, "r", "w")
    with pytest.raises(ValueError, match="reason and who"):
        index.add_hold("cam1", 1.0, 2.0, " ", "w")
    index.remove_hold(hold)
    assert index.holds() == []
    with pytest.raises(UnknownRow):
        index.remove_hold(hold)


def test_held_segment_cannot_move_to_garbage(index):
    a = index.insert_segment(seg(0, 60))
    index.add_hold("cam1", 30.0, 40.0, "case", "who")
    with pytest.raises(IndexDbError, match="under a hold"):
        index.move_segments_to_garbage([a], "age")
    assert len(index.segments()) == 1 and index.garbage() == []


def test_move_to_garbage_is_one_transaction(index):
    ids = [index.insert_segment(seg(i * 60, (i + 1) * 60)) for i in range(3)]
    index.insert_event(EventRow(id="e", camera="cam1", source="motion", kind="m",
                                start_wall=10.0, end_wall=20.0))
    paths = index.move_segments_to_garbage(ids[:2], "quota")
    assert sorted(p for p, _ in index.garbage()) == sorted(paths)
    assert [s.id for s in index.segments()] == [ids[2]]
    assert index.event_segments("e") == []
    index.remove_garbage(paths)
    assert index.garbage() == []


def test_close_open_runs_ends_them_at_their_last_segment(index):
    run = index.start_run("cam1", "main", 0.0)
    empty = index.start_run("cam1", "sub", 5.0)
    index.insert_segment(ClosedSegment(**{**seg(0, 60).__dict__, "run_id": run}))
    assert index.close_open_runs("crash") == 2
    by_id = {r.id: r for r in index.runs()}
    assert (by_id[run].end_wall, by_id[run].end_reason) == (60.0, "crash")
    assert by_id[empty].end_wall == 5.0


def test_gaps(index):
    index.add_gap("cam1", "main", 10.0, 20.0, "disk_full")
    index.add_gap("cam1", "sub", 10.0, 20.0, "reconnect")
    assert [g.reason for g in index.gaps("cam1")] == ["disk_full", "reconnect"]
    assert index.gaps(reason="disk_full")[0].stream == "main"


def test_threads_share_the_index(index):
    errors = []

    def work(k: int) -> None:
        try:
            for i in range(20):
                index.insert_segment(seg(i, i + 1, camera=f"c{k}"))
                index.segments(camera=f"c{k}")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(index.segments()) == 80


def test_a_failed_upgrade_leaves_no_half_schema(tmp_path, monkeypatch):
    import recorder.index as index_module

    def broken(db):
        db.table("cameras").create({"name": str}, pk="name")
        raise sqlite3.OperationalError("power cut")

    monkeypatch.setattr(index_module, "_UPGRADES", (broken,))
    with pytest.raises(IndexCorrupt, match="power cut"):
        Index(tmp_path / "i.sqlite3")
    monkeypatch.undo()
    with Index(tmp_path / "i.sqlite3") as idx:  # starts again from an empty file
        assert idx.schema_version == SCHEMA_VERSION


def test_acks_are_kept_with_their_event_and_unknown_events_refused(index):
    index.insert_event(EventRow(id="e7", camera="cam1", source="motion", kind="motion",
                                start_wall=10.0))
    first = index.add_ack("e7", user="officer", comment="patrol sent", sender="viewer-1",
                          received_wall=20.0)
    index.add_ack("e7", user="chief", comment="", sender="viewer-2", received_wall=21.0)
    acks = index.acks("e7")
    assert [(a.id, a.user, a.comment, a.sender) for a in acks] == [
        (first, "officer", "patrol sent", "viewer-1"), (first + 1, "chief", "", "viewer-2")]
    with pytest.raises(UnknownRow):
        index.add_ack("nope", user="officer", comment="", sender="v", received_wall=1.0)
    assert index.acks("nope") == []


def test_a_version_1_index_is_upgraded_keeping_its_rows(tmp_path, monkeypatch):
    import recorder.index as index_module

    path = tmp_path / "i.sqlite3"
    monkeypatch.setattr(index_module, "SCHEMA_VERSION", 1)
    with Index(path) as old:
        old.insert_event(EventRow(id="e1", camera="c", source="motion", kind="m",
                                  start_wall=1.0))
        assert old.schema_version == 1
    monkeypatch.undo()
    with Index(path) as new:
        assert new.schema_version == SCHEMA_VERSION == 2
        assert new.event("e1").camera == "c"
        new.add_ack("e1", user="u", comment="ok", sender="s", received_wall=2.0)
        assert len(new.acks("e1")) == 1
