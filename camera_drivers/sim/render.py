"""Scene to pictures: yuv420p (I420) frames drawn straight into planes, cheaply.

A frame is a pure function of (scene, size, frame index), so the encoder, the snapshot and the
tests all see the same picture for the same instant. The frame for loop time t is
``frame_index = round(t * fps)``.

What is drawn:
- a static textured background (smooth blobs, a road band, building blocks, fine grain);
- each `MovingObject` of the scene as a dark box while it is scheduled;
- a slow illumination swing (one sine period per loop, so the loop stays seamless);
- sensor noise (a small bank of noise fields reused in turn: cheap and visually enough).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from camera_drivers.sim.scene import SceneSpec

NOISE_BANK_SIZE = 7  # prime, so the noise pattern does not beat with the GOP
NEUTRAL_CHROMA = 128


class SceneRenderer:
    """Renders one scene at one resolution. Width and height must be even."""

    def __init__(self, scene: SceneSpec, width: int, height: int) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive and even, got {width}x{height}")
        self.scene = scene
        self.width = width
        self.height = height
        self._bg_y, self._bg_u, self._bg_v = _background(scene.seed, width, height)
        self._noise_bank: list[np.ndarray] | None = None

    def frame_i420(self, frame_index: int) -> np.ndarray:
        """The frame as a (height * 3 // 2, width) uint8 array: Y, then U, then V planes."""
        scene = self.scene
        w, h = self.width, self.height
        n = frame_index % scene.frame_count
        t_s = n / scene.fps
        out = np.empty((h * 3 // 2, w), dtype=np.uint8)
        y = out[:h]
        u = out[h : h + h // 4].reshape(h // 2, w // 2)
        v = out[h + h // 4 :].reshape(h // 2, w // 2)

        offset = scene.illumination_amplitude * math.sin(2.0 * math.pi * t_s / scene.loop_s)
        if scene.noise > 0 or abs(offset) >= 0.5:
            luma = self._bg_y.astype(np.int16)
            if abs(offset) >= 0.5:
                luma += round(offset)
            if scene.noise > 0:
                luma += self._noise(n)
            np.clip(luma, 0, 255, out=luma)
            y[:] = luma
        else:
            y[:] = self._bg_y
        u[:] = self._bg_u
        v[:] = self._bg_v

        for obj in scene.objects:
            box = obj.box_at(t_s)
            if box is None:
                continue
            x0, y0, x1, y1 = self._pixel_box(box)
            if x1 <= x0 or y1 <= y0:
                continue
            y[y0:y1, x0:x1] = obj.luma
            u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = NEUTRAL_CHROMA
            v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = NEUTRAL_CHROMA
        return out

    def frame_bgr(self, frame_index: int) -> np.ndarray:
        return cv2.cvtColor(self.frame_i420(frame_index), cv2.COLOR_YUV2BGR_I420)

    def jpeg(self, frame_index: int, quality: int = 85) -> bytes:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        ok, buf = cv2.imencode(".jpg", self.frame_bgr(frame_index), params)
        if not ok:
            raise RuntimeError("OpenCV could not encode the snapshot as JPEG")
        return buf.tobytes()

    def object_boxes_px(self, frame_index: int) -> list[tuple[int, int, int, int]]:
        """Pixel boxes (x0, y0, x1, y1), clipped to the frame, of the objects in a frame."""
        t_s = (frame_index % self.scene.frame_count) / self.scene.fps
        boxes = []
        for obj in self.scene.objects:
            box = obj.box_at(t_s)
            if box is not None:
                x0, y0, x1, y1 = self._pixel_box(box)
                if x1 > x0 and y1 > y0:
                    boxes.append((x0, y0, x1, y1))
        return boxes

    def _pixel_box(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x, y, bw, bh = box
        w, h = self.width, self.height
        # Even coordinates keep the chroma box aligned with the luma box.
        x0 = max(0, min(w, 2 * round(x * w / 2)))
        x1 = max(0, min(w, 2 * round((x + bw) * w / 2)))
        y0 = max(0, min(h, 2 * round(y * h / 2)))
        y1 = max(0, min(h, 2 * round((y + bh) * h / 2)))
        return x0, y0, x1, y1

    def _noise(self, frame_index: int) -> np.ndarray:
        if self._noise_bank is None:
            rng = np.random.default_rng(self.scene.seed + 7919)
            self._noise_bank = [
                np.clip(rng.normal(0.0, self.scene.noise, (self.height, self.width)), -127, 127)
                .round()
                .astype(np.int16)
                for _ in range(NOISE_BANK_SIZE)
            ]
        return self._noise_bank[frame_index % NOISE_BANK_SIZE]


@functools.lru_cache(maxsize=8)
def _background(seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static Y, U, V planes. The same seed gives the same picture at every resolution."""
    rng = np.random.default_rng(seed)
    # Smooth blobs: a coarse random grid upscaled (resolution-independent layout).
    coarse = rng.uniform(110, 190, (9, 16)).astype(np.float32)
    y = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    # Building blocks in the upper half, a road band across the lower half.
    for _ in range(6):
        bx, bw = rng.uniform(0, 0.9), rng.uniform(0.05, 0.18)
        by, bh = rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.3)
        x0, x1 = int(bx * width), int(min(1.0, bx + bw) * width)
        y0, y1 = int(by * height), int(min(0.5, by + bh) * height)
        y[y0:y1, x0:x1] = rng.uniform(150, 220)
    y[int(0.78 * height) : int(0.92 * height), :] = 100.0
    # Fine grain, fixed in time: a texture for the encoder, not noise.
    grain = np.random.default_rng(seed + 1).normal(0.0, 4.0, (height // 4 + 1, width // 4 + 1))
    grain_full = cv2.resize(
        grain.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST
    )
    y_plane = np.clip(y + grain_full, 0, 255).astype(np.uint8)

    tint = rng.uniform(-12, 12, (2, 9, 16)).astype(np.float32)
    cw, ch = width // 2, height // 2
    u_plane = np.clip(NEUTRAL_CHROMA + cv2.resize(tint[0], (cw, ch)), 0, 255).astype(np.uint8)
    v_plane = np.clip(NEUTRAL_CHROMA + cv2.resize(tint[1], (cw, ch)), 0, 255).astype(np.uint8)
    return y_plane, u_plane, v_plane


@functools.lru_cache(maxsize=16)
def renderer_for(scene: SceneSpec, width: int, height: int) -> SceneRenderer:
    """A shared renderer per (scene, size): cameras with the same scene share the memory."""
    return SceneRenderer(scene, width, height)


def frame_index_at(scene: SceneSpec, elapsed_s: float) -> int:
    """Index in the loop of the frame shown `elapsed_s` seconds after the camera epoch."""
    return math.floor(elapsed_s * scene.fps) % scene.frame_count
