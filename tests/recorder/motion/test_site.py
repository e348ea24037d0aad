"""MotionSite: the daemon's sink factory, persistence and fan-out, with the real index."""

from __future__ import annotations

import time

import av

from camera_drivers.models import CameraEvent, CameraEventKind
from recorder.config import CameraConfig
from recorder.index import Index
from recorder.motion.config import EventConfig, MotionConfig
from recorder.motion.events import EventChange
from recorder.motion.offline import stream_info_for
from recorder.motion.site import MotionSite


def test_sink_factory_persists_and_publishes_events(clip, tmp_path):
    index = Index(tmp_path / "index.sqlite3")
    published: list[EventChange] = []
    site = MotionSite(index, tmp_path, site="school", on_change=published.append)
    site.start()
    try:
        yard = CameraConfig(name="yard", sub_url="rtsp://cam/sub", main_url="rtsp://cam/main",
                            motion=MotionConfig())
        assert site.sink_factory(yard, "main") == ()
        (sink,) = site.sink_factory(yard, "sub")
        no_sub = CameraConfig(name="gate", main_url="rtsp://gate/main")
        assert len(site.sink_factory(no_sub, "main")) == 1  # no sub stream: motion on main
        off = CameraConfig(name="hall", sub_url="rtsp://h/sub",
                           motion=MotionConfig(enabled=False))
        assert site.sink_factory(off, "sub") == ()
        with av.open(str(clip("person_walk").path)) as c:
            info = stream_info_for(c, "yard")
            sink.on_run_start(info)
            for pkt in c.demux(info.av_stream):
                if pkt.dts is not None:
                    sink.on_packet(pkt)
            sink.on_run_end("eof")
        assert site.recorder.wait_idle(30)
    finally:
        site.stop()
    (row,) = index.events(camera="yard")
    assert published[0].change == "new" and published[-1].change == "end"
    assert row.id == published[0].event_id and row.end_wall == published[-1].end_wall
    assert row.snapshot_path and (tmp_path / row.snapshot_path).exists()
    index.close()


def test_camera_events_reach_the_camera_with_that_trigger(tmp_path):
    index = Index(tmp_path / "index.sqlite3")
    published: list[EventChange] = []
    site = MotionSite(index, tmp_path, site="school", on_change=published.append,
                      poll_interval_s=0.05)
    site.start()
    try:
        cam = CameraConfig(name="door", sub_url="rtsp://d/sub",
                           motion=MotionConfig(trigger="camera",
                                               events=EventConfig(post_roll_s=0.1)))
        site.sink_factory(cam, "sub")
        topic = "VideoSource/MotionAlarm"
        site.on_camera_event("door", CameraEvent(CameraEventKind.MOTION, True, topic, None, None))
        site.on_camera_event("door", CameraEvent(CameraEventKind.MOTION, False, topic, None, None))
        site.on_camera_event("nobody", CameraEvent(CameraEventKind.MOTION, True, topic, None,
                                                   None))  # unknown camera: ignored
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(published) < 2:
            time.sleep(0.05)
        assert site.recorder.wait_idle(10)
    finally:
        site.stop()
    assert [(c.change, c.source) for c in published] == [("new", "camera"), ("end", "camera")]
    (row,) = index.events(camera="door")
    assert row.source == "camera" and row.end_wall is not None
    index.close()
