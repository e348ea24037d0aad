"""The detector on frames drawn in numpy: objects, masks, zones, global changes."""

from __future__ import annotations

import numpy as np

from recorder.motion.config import MotionConfig, Zone
from recorder.motion.detector import MotionDetector

W, H = 640, 360
RIGHT = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
LEFT = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
TOP_MASK = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.4), (0.0, 0.4))


def scene(seed: int = 0, w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(80, 160, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.clip(base + rng.normal(0, 2, (h, w)), 0, 255).astype(np.uint8)


def with_box(img: np.ndarray, x: int, y: int, bw: int = 24, bh: int = 60, luma: int = 30):
    out = img.copy()
    out[y : y + bh, x : x + bw] = luma
    return out


def warm(det: MotionDetector, img: np.ndarray, seconds: float = 3.0, fps: float = 5.0) -> float:
    t = 0.0
    while t < seconds:
        assert not det.process(img, t).motion
        t += 1 / fps
    return t


def detector(**kw) -> MotionDetector:
    cfg = MotionConfig(**kw)
    return MotionDetector(cfg.params(), cfg.masks, cfg.zones)


def test_static_scene_gives_no_motion():
    det = detector()
    img = scene()
    t = warm(det, img)
    for i in range(20):
        assert not det.process(scene(seed=i + 1), t + i * 0.2).motion  # fresh noise each frame


def test_person_sized_object_is_found_with_box_area_and_zone():
    det = detector(zones=(LEFT, RIGHT))
    img = scene()
    t = warm(det, img)
    d = det.process(with_box(img, 480, 200), t)
    assert d.motion and not d.calibrating
    box = d.union_box()
    assert box is not None
    assert abs(box.x - 480 / W) < 0.03 and abs(box.y - 200 / H) < 0.04
    assert 0.004 < d.area_fraction < 0.02  # 24x60 of 640x360 is 0.00625, dilation adds a rim
    assert d.zones == ("right",)


def test_object_inside_mask_is_ignored():
    det = detector(masks=(TOP_MASK,))
    img = scene()
    t = warm(det, img)
    assert not det.process(with_box(img, 300, 20), t).motion
    assert det.process(with_box(img, 300, 250), t + 0.2).motion  # outside the mask: seen


def test_light_switched_on_recalibrates_instead_of_alerting():
    det = detector()
    img = scene()
    t = warm(det, img)
    lit = np.clip(img.astype(np.float32) * 1.5 + 25, 0, 255).astype(np.uint8)
    d = det.process(lit, t)
    assert d.global_change and not d.motion
    for i in range(1, 25):  # stays lit: no motion once recalibrated
        assert not det.process(lit, t + i * 0.2).motion
    assert det.recalibrations == 1
    assert det.process(with_box(lit, 100, 200, luma=255), t + 5.2).motion  # and detects again


def test_small_camera_shake_is_not_motion():
    det = detector()
    rng = np.random.default_rng(5)
    # a scene with strong edges (buildings), where a 2 px shake changes pixels everywhere
    img = scene()
    for _ in range(30):
        x, y = int(rng.integers(0, W - 60)), int(rng.integers(0, H - 60))
        img[y : y + 50, x : x + 50] = rng.integers(0, 255)
    t = warm(det, img)
    for i, (dx, dy) in enumerate([(2, 1), (-1, 2), (-2, -1), (1, -2)] * 2):
        shaken = np.roll(np.roll(img, dx, axis=1), dy, axis=0)
        assert not det.process(shaken, t + i * 0.2).motion


def test_zones_survive_a_resolution_change():
    det = detector(zones=(LEFT, RIGHT))
    small = scene(w=320, h=180)
    t = warm(det, small)
    d = det.process(with_box(small, 40, 100, 12, 30), t)
    assert d.zones == ("left",)


def test_padded_rows_are_read_correctly():
    """A decoder's luma plane can be wider than the picture (line_size): a strided view."""
    det = detector()
    img = scene()
    padded = np.zeros((H, W + 64), np.uint8)
    padded[:, :W] = img
    padded[:, W:] = 255  # garbage in the padding must not matter
    t = warm(det, padded[:, :W])
    moved = padded.copy()
    moved[200:260, 100:124] = 30
    d = det.process(moved[:, :W], t)
    assert d.motion and d.union_box() is not None


def test_large_object_close_to_the_camera_is_motion_not_a_light_change():
    """A dark figure filling a quarter of the picture lowers the mean brightness by a lot, but
    only in its blocks: it must be reported, not taken for a lamp going off."""
    det = detector()
    img = scene()
    t = warm(det, img)
    d = det.process(with_box(img, 200, 40, bw=200, bh=300, luma=20), t)  # 26 % of it
    assert d.motion and not d.global_change
    assert d.area_fraction > 0.2
