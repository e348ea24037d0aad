"""Trigger choice per camera with synthetic ONVIF CameraEvent values."""

from __future__ import annotations

import itertools

import pytest

from camera_drivers.models import CameraEvent, CameraEventKind
from recorder.motion.config import EventConfig
from recorder.motion.events import EventChange
from recorder.motion.tamper import AlarmChange
from recorder.motion.triggers import TriggerCombiner


def cam(kind: CameraEventKind, active: bool, topic: str = "VideoSource/MotionAlarm"):
    return CameraEvent(kind=kind, active=active, topic=topic, source="VideoSource_1",
                       camera_time=None)


def motion(change: str, start: float, end: float | None = None, zones=(), peak=0.01):
    return EventChange(
        event_id="dozor-1", camera="yard", change=change, source="motion", start_wall=start,
        end_wall=end, zones=tuple(zones), peak_area=peak, score=0.8, snapshot_jpeg=None,
        pre_roll_s=5.0, post_roll_s=10.0, trigger_wall=start,
    )


def combiner(mode: str):
    out: list[EventChange] = []
    alarms: list[AlarmChange] = []
    ids = (f"ev{i}" for i in itertools.count(1))
    tc = TriggerCombiner("yard", mode, EventConfig(post_roll_s=10.0), out.append,
                         alarms.append, new_id=lambda: next(ids))
    return tc, out, alarms


def test_dozor_mode_passes_motion_and_ignores_camera_motion():
    tc, out, _ = combiner("dozor")
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 100.0)
    tc.tick(200.0)
    assert out == []
    tc.on_motion_change(motion("new", 100.0))
    assert [(c.event_id, c.change, c.source) for c in out] == [("dozor-1", "new", "motion")]


def test_camera_mode_makes_events_from_motion_alarm_with_post_roll():
    tc, out, _ = combiner("camera")
    tc.on_motion_change(motion("new", 99.0))  # Dozor's own detection is ignored
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 100.0)
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 101.0)  # repeated: same event
    tc.on_camera_event(cam(CameraEventKind.MOTION, False), 104.0)
    tc.tick(113.9)
    assert [c.change for c in out] == ["new"]
    tc.tick(114.0)
    assert [(c.event_id, c.change, c.source) for c in out] == [
        ("ev1", "new", "camera"), ("ev1", "end", "camera")]
    assert out[-1].start_wall == 100.0 and out[-1].end_wall == 104.0
    assert out[-1].post_roll_s == 10.0


def test_camera_alarm_returning_within_post_roll_extends_the_event():
    tc, out, _ = combiner("camera")
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 100.0)
    tc.on_camera_event(cam(CameraEventKind.MOTION, False), 101.0)
    tc.tick(105.0)
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 106.0)
    tc.on_camera_event(cam(CameraEventKind.MOTION, False), 107.0)
    tc.tick(116.0)
    tc.tick(117.0)
    assert [c.change for c in out] == ["new", "end"]
    assert out[-1].end_wall == 107.0


def test_both_mode_merges_the_two_sources_into_one_event():
    tc, out, _ = combiner("both")
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 100.0)
    tc.on_motion_change(motion("new", 99.5, zones=("gate",)))
    tc.on_camera_event(cam(CameraEventKind.MOTION, False), 103.0)
    tc.tick(113.0)  # camera side ended; Dozor's event still open
    assert [c.change for c in out] == ["new", "update"]
    tc.on_motion_change(motion("end", 99.5, end=108.0, zones=("gate",), peak=0.02))
    assert [(c.event_id, c.change) for c in out] == [("ev1", "new"), ("ev1", "update"),
                                                     ("ev1", "end")]
    end = out[-1]
    assert end.source == "camera"  # the source that started it
    assert end.start_wall == 99.5 and end.end_wall == 108.0
    assert end.zones == ("gate",) and end.peak_area == 0.02


def test_both_mode_either_source_alone_makes_an_event():
    tc, out, _ = combiner("both")
    tc.on_motion_change(motion("new", 10.0))
    tc.on_motion_change(motion("end", 10.0, end=12.0))
    tc.on_camera_event(cam(CameraEventKind.MOTION, True), 50.0)
    tc.on_camera_event(cam(CameraEventKind.MOTION, False), 51.0)
    tc.tick(61.0)
    assert [(c.event_id, c.change, c.source) for c in out] == [
        ("ev1", "new", "motion"), ("ev1", "end", "motion"),
        ("ev2", "new", "camera"), ("ev2", "end", "camera")]


@pytest.mark.parametrize("mode", ["dozor", "camera", "both"])
def test_tamper_and_signal_loss_are_health_alarms_in_every_mode(mode):
    tc, out, alarms = combiner(mode)
    tc.on_camera_event(cam(CameraEventKind.TAMPER, True, "VideoSource/GlobalSceneChange"), 5.0)
    tc.on_camera_event(cam(CameraEventKind.SIGNAL_LOSS, True, "VideoSource/SignalLoss"), 6.0)
    tc.on_camera_event(cam(CameraEventKind.TAMPER, False, "VideoSource/GlobalSceneChange"), 7.0)
    assert out == []
    assert [(a.kind, a.active, a.since_wall) for a in alarms] == [
        ("camera_tamper", True, 5.0), ("camera_signal_loss", True, 6.0),
        ("camera_tamper", False, 7.0)]


def test_unknown_camera_events_are_ignored():
    tc, out, alarms = combiner("both")
    tc.on_camera_event(cam(CameraEventKind.UNKNOWN, True, "RuleEngine/LineDetector"), 1.0)
    assert out == [] and alarms == []


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match=r"motion\.trigger"):
        TriggerCombiner("yard", "onvif", EventConfig(), lambda c: None)
