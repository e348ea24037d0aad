"""Event lifecycle edge cases, driven by synthetic detections at 5 fps."""

from __future__ import annotations

import itertools

import pytest

from recorder.motion.config import EventConfig
from recorder.motion.detector import Box, Detection
from recorder.motion.events import EventChange, EventTracker

FPS = 5.0


def det(t: float, area: float = 0.0, zones: tuple[str, ...] = ()) -> Detection:
    boxes = (Box(0.1, 0.2, 0.05, 0.1, area),) if area else ()
    return Detection(t, area, boxes, zones, False, False, area)


class Run:
    def __init__(self, **cfg) -> None:
        self.changes: list[EventChange] = []
        self.snapshots: list[object] = []
        ids = (f"ev{i}" for i in itertools.count(1))
        self.tracker = EventTracker(
            "gate-cam", EventConfig(**cfg), self.changes.append,
            snapshot=self._snap, min_area_fraction=0.001, new_id=lambda: next(ids),
        )
        self.t = 0.0

    def _snap(self, frame: object, box: Box) -> bytes:
        self.snapshots.append(frame)
        return f"jpeg-of-{frame}".encode()

    def frames(self, seconds: float, area: float = 0.0, zones: tuple[str, ...] = ()) -> None:
        for _ in range(round(seconds * FPS)):
            self.tracker.feed(det(self.t, area, zones), frame=f"f{self.t:.1f}")
            self.t = round(self.t + 1 / FPS, 6)

    def kinds(self) -> list[tuple[str, str]]:
        return [(c.event_id, c.change) for c in self.changes]


def test_single_frame_flicker_does_not_start_an_event():
    r = Run(min_duration_s=0.4)
    r.frames(2.0)
    r.frames(0.2, area=0.01)  # one frame
    r.frames(20.0)
    assert r.changes == []


def test_new_after_min_duration_starts_at_first_motion():
    r = Run(min_duration_s=0.4, pre_roll_s=5.0, post_roll_s=10.0)
    r.frames(2.0)
    r.frames(0.2, area=0.01)
    assert r.changes == []
    r.frames(0.2, area=0.01)
    assert r.kinds() == [("ev1", "new")]
    new = r.changes[0]
    assert new.start_wall == pytest.approx(2.0)
    assert new.trigger_wall == pytest.approx(2.2)
    assert new.end_wall is None and new.pre_roll_s == 5.0 and new.post_roll_s == 10.0
    assert new.snapshot_jpeg is not None and new.source == "motion" and new.camera == "gate-cam"


def test_end_comes_after_post_roll_with_the_last_motion_as_end():
    r = Run(post_roll_s=10.0)
    r.frames(1.0)
    r.frames(3.0, area=0.01)  # motion 1.0 .. 3.8
    r.frames(9.8)
    assert [c for _, c in r.kinds()] == ["new"]
    r.frames(0.4)
    end = r.changes[-1]
    assert end.change == "end" and end.end_wall == pytest.approx(3.8)


def test_motion_within_post_roll_extends_the_same_event():
    r = Run(post_roll_s=5.0)
    r.frames(1.0, area=0.01)
    r.frames(4.0)
    r.frames(1.0, area=0.01)
    r.frames(6.0)
    assert [c for _, c in r.kinds()] == ["new", "end"]
    assert r.changes[-1].end_wall == pytest.approx(5.8)


def test_update_when_zones_grow_and_peak_rises_with_a_better_snapshot():
    r = Run(update_interval_s=1.0)
    r.frames(1.0, area=0.01, zones=("road",))
    r.frames(1.0, area=0.03, zones=("gate",))
    r.frames(20.0)
    kinds = [c for _, c in r.kinds()]
    assert kinds[0] == "new" and kinds[-1] == "end" and "update" in kinds
    end = r.changes[-1]
    assert end.zones == ("road", "gate")
    assert end.peak_area == pytest.approx(0.03)
    assert 0 < end.score <= 1
    assert r.snapshots[-1] == "f1.0"  # the first frame with the largest area


def test_max_length_splits_into_consecutive_events():
    r = Run(max_length_s=10.0, post_roll_s=2.0)
    r.frames(25.0, area=0.01)
    r.frames(3.0)
    kinds = r.kinds()
    assert kinds == [("ev1", "new"), ("ev1", "end"), ("ev2", "new"), ("ev2", "end"),
                     ("ev3", "new"), ("ev3", "end")]
    ends = [c for c in r.changes if c.change == "end"]
    news = [c for c in r.changes if c.change == "new"]
    assert news[1].start_wall == pytest.approx(10.0)
    assert ends[0].end_wall == pytest.approx(news[1].start_wall - 0.2)
    assert all(e.end_wall - n.start_wall <= 10.0 for n, e in zip(news, ends, strict=True))


def test_cooldown_delays_the_next_event():
    r = Run(post_roll_s=1.0, cooldown_s=5.0)
    r.frames(1.0, area=0.01)
    r.frames(1.2)  # ended at about 2.0
    assert [c for _, c in r.kinds()] == ["new", "end"]
    r.frames(2.0, area=0.01)  # motion inside the cool-down: no new event yet
    assert len(r.changes) == 2
    r.frames(3.0, area=0.01)  # motion continues past the cool-down: it starts
    assert r.changes[-1].change == "new"
    assert r.changes[-1].start_wall == pytest.approx(2.2)  # its first motion is kept


def test_flush_ends_an_open_event_at_its_last_motion():
    r = Run()
    r.frames(1.0, area=0.01)
    r.tracker.flush()
    assert [c for _, c in r.kinds()] == ["new", "end"]
    assert r.changes[-1].end_wall == pytest.approx(0.8)
    assert not r.tracker.open


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        EventTracker("c", EventConfig(), lambda c: None, source="radar")
