"""Frame-to-frame motion detection on luma: running background average, masks and zones.

Per frame (at the working width, ~320 px): downscale, contrast normalisation (smoothed 2nd/98th
percentile stretch), Gaussian blur, absolute difference with a float32 running average,
threshold, ignore masked areas, erode then dilate, external contours, drop those under the
minimum area.
When a large fraction of the frame changes at once (lights, IR switch, shake) the detector
recalibrates instead of reporting motion: the background is reset to the current frame and
learnt fast for `calibration_s`, during which nothing is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recorder.motion.config import DetectorParams, Polygon, Zone

_LEVEL_GRID = (8, 6)  # columns, rows of the blocks the light level is the median over


@dataclass(frozen=True)
class Box:
    """A motion box in normalised frame coordinates (0..1)."""

    x: float
    y: float
    w: float
    h: float
    area_fraction: float


@dataclass(frozen=True)
class Detection:
    t_s: float
    area_fraction: float  # sum of kept contour areas / frame area
    boxes: tuple[Box, ...]
    zones: tuple[str, ...]
    calibrating: bool  # nothing is reported while (re)calibrating
    global_change: bool  # this frame triggered a recalibration
    changed_fraction: float  # thresholded pixels / unmasked pixels, before area filtering

    @property
    def motion(self) -> bool:
        return bool(self.boxes)

    def union_box(self) -> Box | None:
        if not self.boxes:
            return None
        x0 = min(b.x for b in self.boxes)
        y0 = min(b.y for b in self.boxes)
        x1 = max(b.x + b.w for b in self.boxes)
        y1 = max(b.y + b.h for b in self.boxes)
        return Box(x0, y0, x1 - x0, y1 - y0, self.area_fraction)


def polygon_mask(polygons: tuple[Polygon, ...], width: int, height: int) -> np.ndarray:
    """A uint8 image with 255 inside any of the normalised polygons."""
    img = np.zeros((height, width), np.uint8)
    for poly in polygons:
        pts = np.array([[x * (width - 1), y * (height - 1)] for x, y in poly], np.float32)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], 255)
    return img


class MotionDetector:
    """Stateful detector for one camera. Not thread-safe: one ingest thread calls it."""

    _PERCENTILES = (0.02, 0.98)
    _STRETCH_SMOOTHING = 0.5  # weight of each new percentile pair in the smoothed stretch
    _STRETCH_EVERY = 3  # frames between percentile updates
    _MAX_GAIN = 4.0  # a dark, flat scene is stretched at most this much (noise grows too)
    _LEVEL_JUMP = 0.2  # the scene's light level jumping this much between frames: a lamp
    _MIN_THRESHOLD = 6.0  # never below sensor noise after the blur
    _SHAKE_MIN_PX = 20  # fewer changed pixels than this cannot be a shake worth testing
    _SHAKE_MIN_SPREAD = 0.3  # changes within a box under 30 % of width and height: objects
    _SHAKE_MAX_SHIFT_PX = 2  # at the working width: +-4 px at 640
    _SHAKE_EXPLAINED = 0.3  # a shift leaving under 30 % of the change means the camera moved

    def __init__(
        self,
        params: DetectorParams,
        masks: tuple[Polygon, ...] = (),
        zones: tuple[Zone, ...] = (),
    ) -> None:
        self.params = params
        self.masks = masks
        self.zones = zones
        self._size: tuple[int, int] | None = None  # working (w, h)
        self._bg: np.ndarray | None = None
        # the background's mean over the light-level grid, kept in step with `_bg`: the
        # running average is linear, so averaging the blocks of each frame into it gives the
        # blocks of the average without reducing the whole background every frame
        self._bg_blocks: np.ndarray | None = None
        self._keep: np.ndarray | None = None  # 255 where motion counts (not masked)
        self._keep_pixels = 0
        self._zone_masks: list[tuple[str, np.ndarray]] = []
        self._calibrate_until_s = float("-inf")
        self._lo_hi: tuple[float, float] | None = None
        self._kernel = np.ones((3, 3), np.uint8)
        self.recalibrations = 0
        self.gain = 1.0
        self._last_threshold = float(params.threshold)
        self._stretch_count = 0
        self._level = 1.0  # frame-to-background light level ratio of the previous frame
        self.last_resized = np.zeros((1, 1), np.uint8)  # downscaled luma, before normalising

    def reset(self) -> None:
        """Forget the background (new run, new resolution)."""
        self._bg = None
        self._bg_blocks = None
        self._lo_hi = None
        self._calibrate_until_s = float("-inf")

    def process(self, luma: np.ndarray, t_s: float) -> Detection:
        """Feed one luma plane (uint8, HxW; row stride may exceed width) taken at t_s."""
        small = self._prepare(luma)
        p = self.params
        if self._bg is None or self._bg_blocks is None:
            self._start_calibration(small, t_s)
            return self._quiet(t_s, calibrating=True)
        calibrating = t_s < self._calibrate_until_s
        bg_u8 = cv2.convertScaleAbs(self._bg)
        blocks = self._blocks(small)
        level = self._light_level(blocks, self._bg_blocks)
        matched = cv2.convertScaleAbs(small, alpha=level) if abs(level - 1.0) > 0.01 else small
        diff = cv2.absdiff(matched, bg_u8)
        self._last_threshold = self._threshold(small)
        _, thresh = cv2.threshold(diff, self._last_threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            thresh = cv2.bitwise_and(thresh, self._keep)
        changed = cv2.countNonZero(thresh)
        changed_fraction = changed / self._keep_pixels if self._keep_pixels else 0.0
        level_jump = abs(level / self._level - 1.0) > self._LEVEL_JUMP
        self._level = level
        global_change = level_jump or changed_fraction >= p.global_change_fraction
        if not global_change and changed >= self._SHAKE_MIN_PX and not calibrating:
            global_change = self._is_shake(matched, bg_u8, thresh)
        if global_change:
            self._start_calibration(small, t_s, blocks)
            self.recalibrations += 1
            return self._quiet(t_s, calibrating=True, global_change=True,
                               changed_fraction=changed_fraction)
        alpha = p.calibrating_alpha if calibrating else p.alpha
        cv2.accumulateWeighted(small, self._bg, alpha)
        cv2.accumulateWeighted(blocks, self._bg_blocks, alpha)
        if calibrating or changed == 0:
            return self._quiet(t_s, calibrating=calibrating, changed_fraction=changed_fraction)
        # an opening first: 1-pixel specks and streaks (rain, snow, grain) vanish, while
        # anything at least 3 px thick (a far person is ~5 px wide here) keeps its core
        thresh = cv2.erode(thresh, self._kernel)
        if not cv2.countNonZero(thresh):
            return self._quiet(t_s, calibrating=False, changed_fraction=changed_fraction)
        thresh = cv2.dilate(thresh, self._kernel, iterations=p.dilate_iterations + 1)
        return self._contours(thresh, t_s, changed_fraction)

    # ---- steps -------------------------------------------------------------------------------

    def _prepare(self, luma: np.ndarray) -> np.ndarray:
        h, w = luma.shape[:2]
        ww = min(self.params.work_width_px, w)
        wh = max(1, round(h * ww / w))
        if self._size != (ww, wh):
            self._resize_state(ww, wh)
        if ww == w:
            small = luma
        else:  # an exact halving is a 2x2 box filter with INTER_LINEAR, and 2.5x cheaper
            interp = cv2.INTER_LINEAR if w == 2 * ww and h == 2 * wh else cv2.INTER_AREA
            small = cv2.resize(luma, (ww, wh), interpolation=interp)
        self.last_resized = small
        return cv2.GaussianBlur(small, (self.params.blur_px, self.params.blur_px), 0)

    @staticmethod
    def _blocks(small: np.ndarray) -> np.ndarray:
        """Mean luma over the 8x6 grid of blocks the light level is measured on (float32)."""
        return cv2.resize(small, _LEVEL_GRID, interpolation=cv2.INTER_AREA).astype(np.float32)

    @staticmethod
    def _light_level(frame_blocks: np.ndarray, bg_blocks: np.ndarray) -> float:
        """Background-to-frame brightness ratio: the median over an 8x6 grid of blocks.

        The frame is scaled by it so slow global light changes (dusk, clouds) that the running
        average lags behind do not show. The median makes it a property of the whole scene:
        a large object close to the camera darkens some blocks, a lamp or dusk all of them.
        """
        # np.median costs ~30 us of Python-level overhead on 48 values; a sort costs ~3
        ratio = np.sort(bg_blocks / np.maximum(frame_blocks, 1.0), axis=None)
        mid = ratio.size // 2
        median = float(ratio[mid]) if ratio.size % 2 else 0.5 * float(ratio[mid - 1] + ratio[mid])
        return min(max(median, 0.5), 2.0)

    def _threshold(self, small: np.ndarray) -> float:
        """Contrast normalisation as an adaptive threshold.

        Stretching the 2nd-98th percentile range to 0-255 multiplies differences by `gain`;
        dividing the threshold by the same gain is equivalent, and leaves the background
        untouched by the stretch (so an object shifting the percentiles changes nothing else).
        """
        if not self.params.contrast:
            return float(self.params.threshold)
        self._stretch_count += 1
        if self._lo_hi is not None and self._stretch_count % self._STRETCH_EVERY:
            return self._last_threshold  # the stretch moves slowly: refresh it every few frames
        hist = cv2.calcHist([small], [0], self._keep, [256], [0, 256]).ravel()
        cdf = np.cumsum(hist)
        total = cdf[-1]
        lo = float(np.searchsorted(cdf, total * self._PERCENTILES[0]))
        hi = float(np.searchsorted(cdf, total * self._PERCENTILES[1]))
        if self._lo_hi is None:
            self._lo_hi = (lo, hi)
        else:
            k = self._STRETCH_SMOOTHING
            self._lo_hi = (self._lo_hi[0] + k * (lo - self._lo_hi[0]),
                           self._lo_hi[1] + k * (hi - self._lo_hi[1]))
        gain = min(max(255.0 / max(self._lo_hi[1] - self._lo_hi[0], 1.0), 1.0), self._MAX_GAIN)
        self.gain = gain
        return max(self.params.threshold / gain, self._MIN_THRESHOLD)

    def _is_shake(self, frame: np.ndarray, bg: np.ndarray, thresh: np.ndarray) -> bool:
        """True when shifting the frame by 1-2 px explains most of the change: the camera
        moved (wind on the pole), nothing moved in the scene. A real object's difference
        does not go away when the whole frame is shifted."""
        thr = self._last_threshold
        h, w = frame.shape
        m = self._SHAKE_MAX_SHIFT_PX
        # only where something changed (cheap for one object, the whole frame for a shake)
        x, y, bw, bh = cv2.boundingRect(thresh)
        if bw < w * self._SHAKE_MIN_SPREAD and bh < h * self._SHAKE_MIN_SPREAD:
            return False  # a shake moves the whole picture: its changes are spread out
        x0, y0 = max(x, m), max(y, m)
        x1, y1 = min(x + bw, w - m), min(y + bh, h - m)
        if x1 <= x0 or y1 <= y0:
            return False
        core_bg = bg[y0:y1, x0:x1]
        keep = self._keep[y0:y1, x0:x1] if self._keep is not None else None
        base = cv2.countNonZero(thresh[y0:y1, x0:x1])
        if base < self._SHAKE_MIN_PX:
            return False
        best = base
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                if dx == 0 and dy == 0:
                    continue
                shifted = frame[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
                diff = cv2.absdiff(shifted, core_bg)
                _, th = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)
                if keep is not None:
                    th = cv2.bitwise_and(th, keep)
                best = min(best, cv2.countNonZero(th))
        return best < base * self._SHAKE_EXPLAINED

    def _start_calibration(
        self, small: np.ndarray, t_s: float, blocks: np.ndarray | None = None
    ) -> None:
        self._bg = small.astype(np.float32)
        self._bg_blocks = self._blocks(small) if blocks is None else blocks.copy()
        self._lo_hi = None
        self._level = 1.0
        self._calibrate_until_s = t_s + self.params.calibration_s

    def _resize_state(self, ww: int, wh: int) -> None:
        self._size = (ww, wh)
        self.reset()
        if self.masks:
            self._keep = cv2.bitwise_not(polygon_mask(self.masks, ww, wh))
            self._keep_pixels = cv2.countNonZero(self._keep)
        else:
            self._keep = None
            self._keep_pixels = ww * wh
        self._zone_masks = [(z.name, polygon_mask((z.polygon,), ww, wh)) for z in self.zones]

    def _contours(self, thresh: np.ndarray, t_s: float, changed_fraction: float) -> Detection:
        assert self._size is not None
        ww, wh = self._size
        frame_px = ww * wh
        min_px = self.params.min_area_fraction * frame_px
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        zones: list[str] = []
        total_px = 0.0
        for c in contours:
            area = cv2.contourArea(c)
            if area < min_px:
                continue
            x, y, w, h = cv2.boundingRect(c)
            total_px += area
            boxes.append(Box(x / ww, y / wh, w / ww, h / wh, area / frame_px))
            for name, zmask in self._zone_masks:
                if name not in zones and cv2.countNonZero(
                    cv2.bitwise_and(thresh[y : y + h, x : x + w], zmask[y : y + h, x : x + w])
                ):
                    zones.append(name)
        return Detection(
            t_s=t_s,
            area_fraction=total_px / frame_px,
            boxes=tuple(boxes),
            zones=tuple(z.name for z in self.zones if z.name in zones),
            calibrating=False,
            global_change=False,
            changed_fraction=changed_fraction,
        )

    @staticmethod
    def _quiet(
        t_s: float, *, calibrating: bool, global_change: bool = False,
        changed_fraction: float = 0.0,
    ) -> Detection:
        return Detection(t_s, 0.0, (), (), calibrating, global_change, changed_fraction)
