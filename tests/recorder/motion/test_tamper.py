"""Tamper and video-loss alarms with a fake clock and drawn frames."""

from __future__ import annotations

import numpy as np

from recorder.motion.config import TamperConfig
from recorder.motion.tamper import AlarmChange, TamperMonitor


class FakeClock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall_s = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_s


def textured(seed: int, w: int = 320, h: int = 180) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 220, (h // 20, w // 20)).astype(np.uint8)
    return np.kron(coarse, np.ones((20, 20), np.uint8))


def monitor(**cfg):
    alarms: list[AlarmChange] = []
    clock = FakeClock()
    tm = TamperMonitor("yard", TamperConfig(**cfg), alarms.append, clock=clock)
    return tm, alarms, clock


def feed(tm: TamperMonitor, img: np.ndarray, t0: float, seconds: float, fps: float = 5.0):
    n = round(seconds * fps)
    for i in range(n):
        tm.on_frame(img, t0 + i / fps)
    return t0 + n / fps


def test_covered_lens_raises_uniform_then_clears():
    tm, alarms, _ = monitor(uniform_s=3.0)
    t = feed(tm, textured(1), 0.0, 5.0)
    black = np.full((180, 320), 12, np.uint8)
    t = feed(tm, black, t, 2.0)
    assert alarms == []
    t = feed(tm, black, t, 2.0)
    assert [(a.kind, a.active) for a in alarms] == [("tamper_uniform", True)]
    assert alarms[0].since_wall == 5.0 and alarms[0].camera == "yard"
    feed(tm, textured(1), t, 2.0)
    assert [(a.kind, a.active) for a in alarms][-1] == ("tamper_uniform", False)


def test_turned_camera_raises_scene_change_that_persists():
    tm, alarms, _ = monitor(scene_change_s=5.0)
    t = feed(tm, textured(1), 0.0, 5.0)
    t = feed(tm, textured(2), t, 4.0)
    assert alarms == []
    t = feed(tm, textured(2), t, 3.0)
    assert [(a.kind, a.active) for a in alarms] == [("tamper_scene_change", True)]
    feed(tm, textured(1), t, 2.0)  # turned back
    assert [(a.kind, a.active) for a in alarms][-1] == ("tamper_scene_change", False)


def test_lighting_change_is_not_a_scene_change():
    tm, alarms, _ = monitor(scene_change_s=3.0)
    img = textured(1)
    t = feed(tm, img, 0.0, 5.0)
    night = (img.astype(np.float32) * 0.35 + 5).astype(np.uint8)  # dusk, IR: same structure
    feed(tm, night, t, 10.0)
    assert alarms == []


def test_short_occlusion_is_not_a_scene_change():
    tm, alarms, _ = monitor(scene_change_s=5.0)
    t = feed(tm, textured(1), 0.0, 5.0)
    t = feed(tm, textured(3), t, 3.0)  # a lorry parks in front for 3 s, then leaves
    feed(tm, textured(1), t, 10.0)
    assert alarms == []


def test_video_loss_raised_by_poll_and_cleared_by_a_frame():
    tm, alarms, clock = monitor(video_loss_s=10.0)
    feed(tm, textured(1), 1000.0, 1.0)
    clock.mono += 9.0
    tm.poll()
    assert alarms == []
    clock.mono += 2.0
    tm.poll()
    tm.poll()  # raised once
    assert [(a.kind, a.active) for a in alarms] == [("video_loss", True)]
    assert alarms[0].since_wall == 1000.8  # the last frame's media time
    tm.on_frame(textured(1), 1012.0)
    assert [(a.kind, a.active) for a in alarms][-1] == ("video_loss", False)


def test_camera_that_never_sends_a_frame_is_video_loss():
    tm, alarms, clock = monitor(video_loss_s=5.0)
    clock.mono += 6.0
    tm.poll()
    assert [(a.kind, a.active) for a in alarms] == [("video_loss", True)]


def test_disabled_monitor_raises_nothing():
    tm, alarms, clock = monitor(enabled=False)
    clock.mono += 60.0
    tm.poll()
    feed(tm, np.zeros((180, 320), np.uint8), 0.0, 20.0)
    assert alarms == []
