"""CameraMotion: the per-camera wiring the daemon uses, over a real clip."""

from __future__ import annotations

import av

from camera_drivers.models import CameraEvent, CameraEventKind
from recorder.motion.camera import CameraMotion
from recorder.motion.config import MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.offline import stream_info_for
from recorder.motion.tamper import AlarmChange


class FakeClock:
    def __init__(self) -> None:
        self.mono = 0.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return 1_700_000_000.0 + self.mono


def play(cm: CameraMotion, path) -> None:
    with av.open(str(path)) as c:
        info = stream_info_for(c, cm.camera)
        cm.sink.on_run_start(info)
        for pkt in c.demux(info.av_stream):
            if pkt.dts is not None:
                cm.sink.on_packet(pkt)
        cm.sink.on_run_end("eof")


def test_dozor_trigger_reports_the_detected_person(clip):
    changes: list[EventChange] = []
    cm = CameraMotion("yard", MotionConfig(), on_change=changes.append,
                      on_alarm=lambda a: None)
    play(cm, clip("person_walk").path)
    assert changes[0].change == "new" and changes[-1].change == "end"
    assert {c.source for c in changes} == {"motion"}


def test_camera_trigger_ignores_dozor_and_decodes_keyframes_only(clip):
    changes: list[EventChange] = []
    alarms: list[AlarmChange] = []
    clock = FakeClock()
    cm = CameraMotion("yard", MotionConfig(trigger="camera"), on_change=changes.append,
                      on_alarm=alarms.append, clock=clock)
    c = clip("person_walk")
    play(cm, c.path)
    assert changes == []
    assert cm.sink.frames_decoded <= c.spec.duration_s / 2 + 1  # keyframes only
    ev = CameraEvent(CameraEventKind.MOTION, True, "VideoSource/MotionAlarm", None, None)
    cm.on_camera_event(ev, 100.0)
    cm.on_camera_event(CameraEvent(CameraEventKind.MOTION, False, ev.topic, None, None), 102.0)
    cm.poll(111.0)
    cm.poll(112.0)
    assert [(c.change, c.source) for c in changes] == [("new", "camera"), ("end", "camera")]
    # the stream stopped: poll raises video loss once video_loss_s passed without frames
    clock.mono += 11.0
    cm.poll(113.0)
    assert [(a.kind, a.active) for a in alarms] == [("video_loss", True)]
