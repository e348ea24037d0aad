"""Tamper and video-loss checks: health alarms, not motion events.

- video loss: no decoded frame for `video_loss_s` (checked by `poll()` from a timer, since
  the ingest thread is exactly what stops when video is lost);
- uniform image: the luma standard deviation stays under `uniform_std` for `uniform_s`
  (lens covered, painted, camera black);
- scene change: most of the frame no longer matches the learnt scene for `scene_change_s`
  (camera turned, or something put in front of it). The comparison is a per-block normalised
  correlation on a 64x36 thumbnail, so lighting changes (dusk, a lamp, IR switch) that keep
  the structure do not count; the reference scene is refreshed while nothing is wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from recorder.clock import Clock, SystemClock
from recorder.motion.config import TamperConfig

log = logging.getLogger(__name__)

ALARM_KINDS = ("video_loss", "tamper_uniform", "tamper_scene_change", "camera_tamper",
               "camera_signal_loss")


@dataclass(frozen=True)
class AlarmChange:
    camera: str
    kind: str  # one of ALARM_KINDS
    active: bool
    since_wall: float  # when the condition began (active) or ended (inactive)
    detail: str = ""


_THUMB = (64, 36)  # w, h: a 5x integer reduction of the 320x180 working image (fast path)
_BLOCKS = (8, 6)  # columns, rows: 8x6-pixel blocks
_CHECK_INTERVAL_S = 1.0  # the image checks run once a second: their alarms take seconds
_BLOCK_MATCH_CORR = 0.5  # a block with lower correlation to the reference has changed
_FLAT_STD = 3.0  # a block this flat has no structure to correlate
_REFERENCE_REFRESH_S = 30.0


class TamperMonitor:
    """One camera's tamper and video-loss state. `on_frame` on the ingest thread, `poll` on
    any thread (a timer); alarms go to `on_alarm` from whichever thread noticed."""

    def __init__(
        self,
        camera: str,
        cfg: TamperConfig,
        on_alarm: Callable[[AlarmChange], None],
        *,
        clock: Clock | None = None,
    ) -> None:
        self.camera = camera
        self.cfg = cfg
        self._emit = on_alarm
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._last_frame_mono = self._clock.monotonic()
        self._last_frame_wall = self._clock.wall()
        self.active: dict[str, bool] = {k: False for k in ALARM_KINDS[:3]}
        self._uniform_since: float | None = None
        self._scene_since: float | None = None
        self._reference: np.ndarray | None = None
        self._reference_wall = 0.0
        self.last_changed_fraction = 0.0
        self._last_check_wall = float("-inf")

    def on_frame(self, luma: np.ndarray, t_wall: float) -> None:
        """A decoded frame's luma (any size) taken at media wall time t_wall."""
        if not self.cfg.enabled:
            return
        with self._lock:
            self._last_frame_mono = self._clock.monotonic()
            self._last_frame_wall = t_wall
            if self.active["video_loss"]:
                self._set("video_loss", False, t_wall, "frames again")
        if t_wall - self._last_check_wall < _CHECK_INTERVAL_S:
            return
        self._last_check_wall = t_wall
        thumb = cv2.resize(luma, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        std = float(thumb.std())
        if self._check_uniform(std, t_wall):
            return  # a covered/black image: the scene comparison means nothing now
        self._check_scene(thumb, t_wall)

    def poll(self) -> None:
        """Raise video loss when no frame came for video_loss_s. Call every second or so."""
        if not self.cfg.enabled:
            return
        with self._lock:
            idle_s = self._clock.monotonic() - self._last_frame_mono
            if idle_s >= self.cfg.video_loss_s and not self.active["video_loss"]:
                self._set("video_loss", True, self._last_frame_wall,
                          f"no frame for {idle_s:.1f} s")

    # ---- checks ----------------------------------------------------------------------------

    def _check_uniform(self, std: float, t: float) -> bool:
        if std < self.cfg.uniform_std:
            if self._uniform_since is None:
                self._uniform_since = t
            if not self.active["tamper_uniform"] and t - self._uniform_since >= self.cfg.uniform_s:
                self._set("tamper_uniform", True, self._uniform_since,
                          f"luma std {std:.1f} < {self.cfg.uniform_std}")
            return True
        if std >= self.cfg.uniform_std * 1.5:  # hysteresis
            self._uniform_since = None
            if self.active["tamper_uniform"]:
                self._set("tamper_uniform", False, t, f"luma std {std:.1f}")
        return self._uniform_since is not None

    def _check_scene(self, thumb: np.ndarray, t: float) -> None:
        if self._reference is None:
            self._reference, self._reference_wall = thumb, t
            return
        frac = changed_block_fraction(self._reference, thumb)
        self.last_changed_fraction = frac
        if frac >= self.cfg.scene_change_fraction:
            if self._scene_since is None:
                self._scene_since = t
            if (not self.active["tamper_scene_change"]
                    and t - self._scene_since >= self.cfg.scene_change_s):
                self._set("tamper_scene_change", True, self._scene_since,
                          f"{frac:.0%} of the scene changed")
            return
        self._scene_since = None
        if self.active["tamper_scene_change"]:
            self._set("tamper_scene_change", False, t, "scene matches again")
        elif t - self._reference_wall >= _REFERENCE_REFRESH_S:
            self._reference, self._reference_wall = thumb, t

    def _set(self, kind: str, active: bool, since_wall: float, detail: str) -> None:
        self.active[kind] = active
        log.warning("camera %s: alarm %s %s (%s)", self.camera, kind,
                    "raised" if active else "cleared", detail)
        self._emit(AlarmChange(self.camera, kind, active, since_wall, detail))


def changed_block_fraction(ref: np.ndarray, cur: np.ndarray) -> float:
    """Fraction of 8x6 blocks whose structure no longer correlates with the reference."""
    cols, rows = _BLOCKS
    h, w = ref.shape
    bh, bw = h // rows, w // cols

    def blocks(img: np.ndarray) -> np.ndarray:
        grid = img[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw).transpose(0, 2, 1, 3)
        flat = grid.reshape(rows * cols, bh * bw)
        return flat - flat.mean(axis=1, keepdims=True)

    a, c = blocks(ref), blocks(cur)
    sa = np.sqrt((a * a).mean(axis=1))
    sc = np.sqrt((c * c).mean(axis=1))
    corr = (a * c).mean(axis=1) / np.maximum(sa * sc, 1e-6)
    flat_a, flat_c = sa < _FLAT_STD, sc < _FLAT_STD
    changed = np.where(flat_a & flat_c, False,
                       np.where(flat_a | flat_c, True, corr < _BLOCK_MATCH_CORR))
    return float(changed.mean())
