"""The renderer: the scripted object is on screen exactly when the scene says."""

from __future__ import annotations

import numpy as np

from camera_drivers.sim.render import SceneRenderer, frame_index_at
from camera_drivers.sim.scene import MovingObject, SceneSpec

SCENE = SceneSpec(loop_s=10, fps=10, objects=(MovingObject(start_s=4.0, end_s=6.0),))


def test_object_drawn_only_during_its_interval():
    r = SceneRenderer(SCENE, 320, 180)
    for n in range(SCENE.frame_count):
        y = r.frame_i420(n)[:180]
        boxes = r.object_boxes_px(n)
        assert bool(boxes) == (40 <= n < 60), n
        for x0, y0, x1, y1 in boxes:
            assert (y[y0:y1, x0:x1] == 40).all()


def test_object_crosses_left_to_right():
    r = SceneRenderer(SCENE, 320, 180)
    xs = [r.object_boxes_px(n)[0][0] for n in range(42, 60, 4)]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 100


def test_static_background_is_textured_and_deterministic():
    a = SceneRenderer(SCENE, 320, 180).frame_i420(0)
    b = SceneRenderer(SCENE, 320, 180).frame_i420(0)
    assert (a == b).all()
    assert a[:180].std() > 10  # not a flat picture


def test_noise_and_illumination_change_frames_but_not_the_mean_much():
    scene = SceneSpec(loop_s=10, fps=10, objects=(), noise=3.0, illumination_amplitude=20.0)
    r = SceneRenderer(scene, 320, 180)
    quarter = r.frame_i420(25)[:180].astype(np.int16)  # sine peak at a quarter loop
    start = r.frame_i420(0)[:180].astype(np.int16)
    assert 15 < (quarter - start).mean() < 25
    assert (r.frame_i420(1)[:180] != r.frame_i420(2)[:180]).mean() > 0.3  # noise


def test_frame_index_at_wraps_each_loop():
    assert frame_index_at(SCENE, 0.0) == 0
    assert frame_index_at(SCENE, 4.05) == 40
    assert frame_index_at(SCENE, 14.05) == 40
