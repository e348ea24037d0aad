"""MotionSink over labelled synthetic clips (real H.264 through PyAV)."""

from __future__ import annotations

from dataclasses import replace

import av
import cv2
import numpy as np
import pytest

from bench.motion_clips import LabelledClip, make_clip, standard_clips
from recorder.motion.config import MotionConfig, Zone
from recorder.motion.offline import detect_file
from recorder.motion.sink import MotionSink
from tests.recorder.motion.conftest import feed_clip

NUISANCES = ["nuisance_noise", "nuisance_night_noise", "nuisance_dusk", "nuisance_light",
             "nuisance_ir", "nuisance_shake", "nuisance_rain", "nuisance_branch"]


def config_for(clip: LabelledClip, **kw) -> MotionConfig:
    return MotionConfig(masks=clip.spec.masks, zones=clip.spec.zones, **kw)


@pytest.mark.parametrize("name", ["person_walk", "person_dim_night", "person_run", "car"])
def test_object_detected_within_one_second_of_entering(clip, name):
    c = clip(name)
    res = detect_file(c.path, config_for(c))
    (truth,) = c.truth
    (ev,) = res.events
    assert ev.trigger_wall is not None
    assert truth.enter_s <= ev.trigger_wall <= truth.enter_s + 1.0
    assert ev.start_wall <= ev.trigger_wall
    assert ev.end_wall is not None and ev.end_wall >= truth.exit_s - 1.0


@pytest.mark.parametrize("name", ["person_far", "person_far_dim_night"])
def test_far_person_detected(clip, name):
    c = clip(name)
    (truth,) = c.truth
    (ev,) = detect_file(c.path, config_for(c)).events
    assert truth.enter_s <= ev.trigger_wall <= truth.enter_s + 1.5


@pytest.mark.parametrize("name", NUISANCES)
def test_nuisance_only_clip_gives_no_event(clip, name):
    c = clip(name)
    assert c.nuisance_only
    res = detect_file(c.path, config_for(c))
    assert res.events == (), [(e.start_wall, e.end_wall) for e in res.events]


def test_mask_is_honoured(clip):
    c = clip("person_in_mask")
    assert detect_file(c.path, config_for(c)).events == ()
    # the same clip without its mask: the person is seen (so the test above can fail)
    assert len(detect_file(c.path, MotionConfig()).events) == 1


def test_events_carry_the_zones_entered(clip):
    c = clip("person_zones")
    (truth,) = c.truth
    (ev,) = detect_file(c.path, config_for(c)).events
    assert ev.zones == truth.zones == ("road", "gate")
    # a zone the person never enters is not reported
    door = Zone("door", ((0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)))
    gate = c.spec.zones[1]
    (ev,) = detect_file(c.path, MotionConfig(zones=(door, gate))).events
    assert ev.zones == ("gate",)


def test_decode_modes_process_the_configured_frames(clip):
    c = clip("person_walk")  # 10 fps, keyframe every 2 s
    n_frames = round(c.spec.duration_s * c.spec.fps)
    every = detect_file(c.path, MotionConfig(decode="all"))
    fps5 = detect_file(c.path, MotionConfig(decode="fps", fps=5.0))
    keys = detect_file(c.path, MotionConfig(decode="keyframes"))
    assert every.frames_processed == n_frames
    assert fps5.frames_processed == pytest.approx(n_frames / 2, abs=1)
    assert keys.frames_decoded == keys.frames_processed == pytest.approx(c.spec.duration_s / 2,
                                                                          abs=1)
    assert len(every.events) == len(fps5.events) == 1
    assert len(keys.events) == 1  # a walking person is still caught on keyframes only


def test_snapshot_is_a_colour_jpeg_of_the_best_frame(clip):
    c = clip("person_walk")
    res = detect_file(c.path, MotionConfig())
    new = next(ch for ch in res.changes if ch.change == "new")
    assert new.snapshot_jpeg is not None
    img = cv2.imdecode(np.frombuffer(new.snapshot_jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (c.spec.height, c.spec.width, 3)
    # the motion box is drawn in red
    red = (img[:, :, 2] > 200) & (img[:, :, 1] < 60) & (img[:, :, 0] < 60)
    assert red.sum() > 50
    grey = detect_file(c.path, MotionConfig(snapshot_colour=False))
    g = next(ch for ch in grey.changes if ch.snapshot_jpeg)
    gimg = cv2.imdecode(np.frombuffer(g.snapshot_jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert gimg.ndim == 2


def test_wall_times_come_from_media_time_not_arrival(clip):
    """Packets fed in a burst: times still follow pts from the run's start wall."""
    c = clip("person_walk")
    changes = []
    feed_clip(MotionSink("cam", MotionConfig(), changes.append), c.path, 1_800_000_000.0)
    (truth,) = c.truth
    new = changes[0]
    assert new.start_wall - 1_800_000_000.0 == pytest.approx(truth.enter_s, abs=1.0)


def test_disabled_motion_decodes_nothing(clip):
    c = clip("person_walk")
    res = detect_file(c.path, MotionConfig(enabled=False))
    assert res.frames_decoded == 0 and res.events == ()


def test_h265_sub_stream_is_decoded_and_detected(clip_dir):
    spec = next(s for s in standard_clips() if s.name == "person_walk")
    c = make_clip(replace(spec, name="person_walk_h265", codec="libx265", duration_s=9.0),
                  clip_dir)
    with av.open(str(c.path)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    (truth,) = c.truth
    (ev,) = detect_file(c.path, MotionConfig()).events
    assert truth.enter_s <= ev.trigger_wall <= truth.enter_s + 1.0
