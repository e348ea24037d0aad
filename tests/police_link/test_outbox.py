"""The durable outbox on real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from police_link import DropReport, EventMessage, ValidationError
from police_link.outbox import Outbox, OutboxEntry, seq_ranges

KIB = 1024


def event_entry(i: int, pad: int = 0) -> OutboxEntry:
    def build(seq: int) -> bytes:
        zones = tuple(f"zone{k:03d}" + "x" * 43 for k in range(pad // 50))
        msg = EventMessage("s1", "gate", f"ev{i}", "new", 1.0, zones=zones, seq=seq)
        return msg.to_json()

    return OutboxEntry("event", "dozor/s1/events", build=build)


def snapshot_entry(i: int, size: int = 10 * KIB) -> OutboxEntry:
    return OutboxEntry("snapshot", f"dozor/s1/gate/snapshot/ev{i}", payload=b"J" * size)


def open_box(path: Path, max_bytes: int = 1024 * KIB) -> Outbox:
    return Outbox(str(path), site="s1", max_bytes=max_bytes)


def test_rows_come_out_in_order_with_durable_seqs(tmp_path: Path) -> None:
    box = open_box(tmp_path / "o.db")
    result = box.append([event_entry(0), snapshot_entry(0), event_entry(1)])
    assert result.seqs == (1, 0, 2)
    rows = box.take(10)
    assert [r.seq for r in rows] == [1, None, 2]
    assert [json.loads(r.payload)["event_id"] for r in (rows[0], rows[2])] == ["ev0", "ev1"]
    assert box.take(10) == []  # never handed out twice in one process
    box.remove([rows[0].id])
    box.close()
    # a restart (or a crash: nothing is kept in memory) starts again from the oldest row
    box = open_box(tmp_path / "o.db")
    assert [r.seq for r in box.take(10)] == [None, 2]
    assert box.append([event_entry(2)]).seqs == (3,)  # seqs never repeat
    assert box.last_seq() == 3


def test_abandoned_without_close_keeps_everything(tmp_path: Path) -> None:
    box = open_box(tmp_path / "o.db")
    box.append([event_entry(i) for i in range(50)])
    other = open_box(tmp_path / "o.db")  # as a new process would, before the old one closed
    assert other.pending_count == 50
    assert [r.seq for r in other.take(100)] == list(range(1, 51))


def test_bound_drops_snapshots_first_then_oldest_alerts_and_reports(tmp_path: Path) -> None:
    box = open_box(tmp_path / "o.db", max_bytes=64 * KIB)
    box.append([event_entry(i, pad=60) for i in range(20)])
    box.append([snapshot_entry(i) for i in range(4)])  # 40 KiB of snapshots: still fits
    assert box.pending_count == 24
    result = box.append([snapshot_entry(9, size=30 * KIB)])  # over the bound
    assert set(result.dropped) == {"snapshot"}
    rows = box.take(1000)
    classes = [r.drop_class for r in rows]
    assert classes.count("event") == 20 and classes[-1] == "dropped"
    snapshots = [r.topic.rsplit("/", 1)[1] for r in rows if r.drop_class == "snapshot"]
    assert snapshots == [f"ev{i}" for i in range(result.dropped["snapshot"], 4)] + ["ev9"]
    report = DropReport.from_json(rows[-1].payload)
    assert report.counts == result.dropped and report.seq == 21 and report.seq_ranges == ()
    assert box.pending_bytes <= 64 * KIB


def test_alerts_go_last_oldest_first_and_drops_merge_into_one_report(tmp_path: Path) -> None:
    box = open_box(tmp_path / "o.db", max_bytes=64 * KIB)
    for i in range(0, 1000, 100):
        box.append([event_entry(j, pad=400) for j in range(i, i + 100)])
    rows = box.take(10_000)
    reports = [r for r in rows if r.drop_class == "dropped"]
    assert len(reports) == 1  # merged while it waited
    report = DropReport.from_json(reports[0].payload)
    kept = [r.seq or 0 for r in rows if r.drop_class == "event"]
    assert kept == list(range(1001 - len(kept) + 1, 1002))  # the newest alerts, in order
    dropped = {s for first, last in report.seq_ranges for s in range(first, last + 1)}
    assert len(dropped) == report.counts["event"] > 800
    # every seq is accounted for: delivered, reported dropped, or the report itself
    assert sorted([*dropped, *kept, report.seq]) == list(range(1, 1002))
    assert box.pending_bytes <= 64 * KIB


def test_rows_in_flight_are_never_dropped(tmp_path: Path) -> None:
    box = open_box(tmp_path / "o.db", max_bytes=64 * KIB)
    box.append([snapshot_entry(i) for i in range(5)])
    in_flight = box.take(5)
    box.append([snapshot_entry(9, size=30 * KIB)])
    remaining = {r.topic for r in box.take(100)}
    assert "dozor/s1/gate/snapshot/ev9" not in remaining  # the newest snapshot had to go
    box.remove([r.id for r in in_flight])
    assert box.pending_count == 1  # only the report


def test_expired_rows_are_not_sent(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.db"), site="s1", max_bytes=1024 * KIB, wall=lambda: 100.0)
    box.append([OutboxEntry("alarm", "t/a", payload=b"old", expires_unix_s=99.0),
                OutboxEntry("alarm", "t/b", payload=b"new", expires_unix_s=101.0)])
    assert [r.payload for r in box.take(10)] == [b"new"]
    assert box.pending_count == 1


def test_bad_entries_and_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        OutboxEntry("gossip", "t", payload=b"")
    with pytest.raises(ValidationError):
        OutboxEntry("event", "t")
    with pytest.raises(ValidationError) as err:
        open_box(tmp_path / "o.db", max_bytes=100)
    assert err.value.field == "outbox_max_bytes"


def test_seq_ranges() -> None:
    assert seq_ranges([7, 1, 2, 3, 3]) == [(1, 3), (7, 7)]
