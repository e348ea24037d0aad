"""Labelled synthetic clips for the motion detector: moving objects and nuisances.

Each clip is an H.264 file (PyAV libx264, no B-frames, a keyframe every 2 s like a camera)
with a ground truth: when each object is in the frame and which zones it crosses. Nuisance
clips (sensor noise, dusk fading, a light switched on, a day/night IR switch, a small camera
shake, rain, a swaying branch inside a mask) must give no event. Used by tests and `bench.motion`.

Frames are made in the Y plane (U and V constant): the detector reads only luma anyway.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from recorder.motion.config import Polygon, Zone

ENCODER_VERSION = 2  # bump when rendering or encoding changes: cached clips are then remade


@dataclass(frozen=True)
class MovingObject:
    """A box crossing the scene in a straight line at constant speed (pixel units of the clip)."""

    width_px: int
    height_px: int
    luma: int  # the object's brightness; contrast with the scene decides how visible it is
    start_xy: tuple[float, float]  # top-left corner at appear_s (may be outside the frame)
    velocity_pxps: tuple[float, float]
    appear_s: float
    label: str = "person"


@dataclass(frozen=True)
class Nuisance:
    """Something that changes pixels but is not an event."""

    kind: str  # "dusk" | "light" | "ir" | "shake" | "branch" | "rain"
    start_s: float = 0.0
    duration_s: float = 0.0
    region: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # branch: x0 y0 x1 y1 (0..1)


@dataclass(frozen=True)
class ClipSpec:
    name: str
    duration_s: float = 14.0
    width: int = 640
    height: int = 360
    fps: int = 10
    scene_luma: int = 120  # mean brightness of the background
    noise_std: float = 3.0  # sensor noise (luma levels)
    objects: tuple[MovingObject, ...] = ()
    nuisances: tuple[Nuisance, ...] = ()
    codec: str = "libx264"  # or "libx265" (many cameras' sub streams are H.265)
    masks: tuple[Polygon, ...] = ()  # detector config that goes with the clip
    zones: tuple[Zone, ...] = ()
    seed: int = 1

    def key(self) -> str:
        blob = json.dumps([ENCODER_VERSION, asdict(self)], sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass(frozen=True)
class TruthEvent:
    """One object's presence: when it is (at least partly) in the frame, the zones it crosses."""

    label: str
    enter_s: float
    exit_s: float
    zones: tuple[str, ...]
    area_fraction: float  # its box as a fraction of the frame


@dataclass(frozen=True)
class LabelledClip:
    spec: ClipSpec
    path: Path
    truth: tuple[TruthEvent, ...] = field(default=())

    @property
    def nuisance_only(self) -> bool:
        return not self.truth


# ---- the clip set ------------------------------------------------------------------------------

W, H = 640, 360
_PERSON = (24, 60)
_FAR_PERSON = (10, 26)


def _walk(
    size: tuple[int, int], luma: int, y: float, speed: float, appear_s: float, label: str,
    from_right: bool = False,
) -> MovingObject:
    w, h = size
    x0 = W + 1.0 if from_right else -float(w) - 1.0
    vx = -speed if from_right else speed
    return MovingObject(w, h, luma, (x0, y), (vx, 0.0), appear_s, label)


def standard_clips(nuisance_s: float = 20.0) -> tuple[ClipSpec, ...]:
    """The labelled set: person-sized objects of several sizes, speeds and contrasts, nuisances."""
    left_zone = Zone("road", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    right_zone = Zone("gate", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
    top_mask = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.35), (0.0, 0.35))
    # objects appear after 3 s: every detector (Dozor, motion) gets its start-up calibration
    return (
        ClipSpec("person_walk", objects=(_walk(_PERSON, 60, 200, 60, 3.0, "person"),)),
        ClipSpec("person_walk_light", seed=2,
                 objects=(_walk(_PERSON, 200, 220, 50, 3.0, "person", from_right=True),)),
        ClipSpec("person_run", seed=3, objects=(_walk(_PERSON, 50, 180, 160, 3.0, "person"),)),
        ClipSpec("person_far", seed=4,
                 objects=(_walk(_FAR_PERSON, 85, 150, 30, 3.0, "person_far"),)),
        ClipSpec("person_far_slow", seed=5,
                 objects=(_walk(_FAR_PERSON, 160, 160, 15, 3.0, "person_far", True),)),
        ClipSpec("person_dim_night", seed=6, scene_luma=35, noise_std=4.0,
                 objects=(_walk(_PERSON, 58, 200, 50, 3.0, "person_dim"),)),
        ClipSpec("person_far_dim_night", seed=7, scene_luma=35, noise_std=4.0,
                 objects=(_walk(_FAR_PERSON, 62, 170, 30, 3.0, "person_far_dim"),)),
        ClipSpec("car", seed=8, objects=(_walk((130, 55), 40, 250, 220, 3.0, "car"),)),
        ClipSpec("two_people", seed=9, duration_s=16.0,
                 objects=(_walk(_PERSON, 60, 200, 90, 3.0, "person"),
                          _walk(_PERSON, 190, 230, 90, 11.0, "person", True))),
        ClipSpec("person_zones", seed=10, zones=(left_zone, right_zone),
                 objects=(MovingObject(24, 60, 60, (-25.0, 200.0), (50.0, 0.0), 3.0, "person"),)),
        ClipSpec("person_in_mask", seed=11, masks=(top_mask,),
                 objects=(MovingObject(24, 60, 60, (-25.0, 30.0), (80.0, 0.0), 3.0, "masked"),)),
        ClipSpec("nuisance_noise", seed=12, duration_s=nuisance_s, noise_std=6.0),
        ClipSpec("nuisance_night_noise", seed=13, duration_s=nuisance_s, scene_luma=30,
                 noise_std=6.0),
        ClipSpec("nuisance_dusk", seed=14, duration_s=nuisance_s,
                 nuisances=(Nuisance("dusk", 0.0, nuisance_s),)),
        ClipSpec("nuisance_light", seed=15, duration_s=nuisance_s,
                 nuisances=(Nuisance("light", nuisance_s * 0.3, nuisance_s * 0.4),)),
        ClipSpec("nuisance_ir", seed=16, duration_s=nuisance_s, scene_luma=45,
                 nuisances=(Nuisance("ir", nuisance_s * 0.4, nuisance_s),)),
        ClipSpec("nuisance_shake", seed=17, duration_s=nuisance_s,
                 nuisances=(Nuisance("shake", nuisance_s * 0.3, 1.5),)),
        ClipSpec("nuisance_rain", seed=19, duration_s=nuisance_s,
                 nuisances=(Nuisance("rain", 0.0, nuisance_s),)),
        ClipSpec("nuisance_branch", seed=18, duration_s=nuisance_s, masks=(top_mask,),
                 nuisances=(Nuisance("branch", 0.0, nuisance_s, (0.55, 0.02, 0.8, 0.3)),)),
    )


def truth_of(spec: ClipSpec) -> tuple[TruthEvent, ...]:
    """When each unmasked object is visible, from its straight-line path."""
    out = []
    for obj in spec.objects:
        t = _visible_interval(spec, obj)
        if t is None:
            continue
        enter_s, exit_s = t
        times = np.linspace(enter_s, exit_s - 1.0 / spec.fps, 50)
        if _inside_masks(spec, obj, times):
            continue
        cx_fr = [
            (obj.start_xy[0] + obj.velocity_pxps[0] * (s - obj.appear_s),
             obj.start_xy[1] + obj.velocity_pxps[1] * (s - obj.appear_s))
            for s in times
        ]
        zones = tuple(
            z.name for z in spec.zones
            if any(_box_hits_polygon(spec, obj, x, y, z.polygon) for x, y in cx_fr)
        )
        area = obj.width_px * obj.height_px / (spec.width * spec.height)
        out.append(TruthEvent(obj.label, round(enter_s, 3), round(exit_s, 3), zones, area))
    return tuple(out)


def make_clip(spec: ClipSpec, cache_dir: Path) -> LabelledClip:
    """Encode the clip into cache_dir (reused when the same spec was made before)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{spec.name}-{spec.key()}.mp4"
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        _encode(spec, tmp)
        tmp.rename(path)
    return LabelledClip(spec, path, truth_of(spec))


def make_clips(cache_dir: Path, specs: tuple[ClipSpec, ...] | None = None) -> list[LabelledClip]:
    return [make_clip(s, cache_dir) for s in (specs or standard_clips())]


# ---- rendering ---------------------------------------------------------------------------------


def _background(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """A street-like scene: smooth texture, a road band, a few buildings; float32 luma."""
    h, w = spec.height, spec.width
    coarse = rng.normal(0.0, 1.0, (h // 20 + 2, w // 20 + 2)).astype(np.float32)
    import cv2  # local: only clip making needs it here

    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 12.0
    fine = rng.normal(0.0, 4.0, (h, w)).astype(np.float32)
    img = spec.scene_luma + tex + fine
    img[int(h * 0.6) : int(h * 0.8), :] -= spec.scene_luma * 0.15  # road
    for _ in range(5):
        x0 = int(rng.integers(0, w - 80))
        bw, bh = int(rng.integers(40, 120)), int(rng.integers(40, 110))
        shade = rng.normal(0, spec.scene_luma * 0.2)
        img[int(h * 0.55) - bh : int(h * 0.55), x0 : x0 + bw] += shade
    return img


def _frames(spec: ClipSpec) -> Iterator[np.ndarray]:
    """Yields uint8 Y planes."""
    rng = np.random.default_rng(spec.seed)
    bg = _background(spec, rng)
    # a bank of noise frames, picked at random and shifted: far cheaper than fresh noise
    bank = rng.normal(0.0, spec.noise_std, (6, *bg.shape)).astype(np.float32)
    n = round(spec.duration_s * spec.fps)
    for i in range(n):
        t = i / spec.fps
        img = bg.copy()
        for nu in spec.nuisances:
            img = _apply_nuisance(spec, nu, img, t)
        for obj in spec.objects:
            _draw_object(img, obj, t)
        if spec.noise_std > 0:
            shift = int(rng.integers(0, img.size))
            img += np.roll(bank[int(rng.integers(0, len(bank)))].reshape(-1), shift).reshape(
                img.shape
            )
        yield np.clip(img, 0, 255).astype(np.uint8)


def _draw_object(img: np.ndarray, obj: MovingObject, t: float) -> None:
    if t < obj.appear_s:
        return
    dt = t - obj.appear_s
    x = round(obj.start_xy[0] + obj.velocity_pxps[0] * dt)
    y = round(obj.start_xy[1] + obj.velocity_pxps[1] * dt)
    h, w = img.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + obj.width_px, w), min(y + obj.height_px, h)
    if x1 <= x0 or y1 <= y0:
        return
    img[y0:y1, x0:x1] = obj.luma


def _apply_nuisance(spec: ClipSpec, nu: Nuisance, img: np.ndarray, t: float) -> np.ndarray:
    if nu.kind == "dusk":  # brightness falls to 35 % across the clip
        k = 1.0 - 0.65 * min(max((t - nu.start_s) / max(nu.duration_s, 1e-6), 0.0), 1.0)
        return img * k
    if nu.kind == "light":  # a street light switched on, then off
        if nu.start_s <= t < nu.start_s + nu.duration_s:
            return img * 1.5 + 25.0
        return img
    if nu.kind == "ir":  # day/night switch: contrast and level jump at once
        if t >= nu.start_s:
            return (img - img.mean()) * 1.8 + 110.0
        return img
    if nu.kind == "shake":  # the pole sways: +-2 px jitter
        if nu.start_s <= t < nu.start_s + nu.duration_s:
            k = round(t * spec.fps)
            dx, dy = (2, -1, -2, 1)[k % 4], (1, 2, -1, -2)[k % 4]
            return np.roll(np.roll(img, dx, axis=1), dy, axis=0)
        return img
    if nu.kind == "rain":  # thin bright streaks, new ones every frame
        rng = np.random.default_rng(round(t * 1000))
        n = 400
        xs = rng.integers(0, spec.width - 2, n)
        ys = rng.integers(0, spec.height - 12, n)
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            img[y : y + 10, x : x + 1] += 35.0
        return img
    if nu.kind == "branch":  # a dark leafy blob swinging inside its region
        x0, y0, x1, y1 = nu.region
        cx = (x0 + x1) / 2 + (x1 - x0) / 3 * math.sin(2 * math.pi * 0.7 * t)
        cy = (y0 + y1) / 2
        import cv2

        cv2.ellipse(
            img, (int(cx * spec.width), int(cy * spec.height)),
            (int((x1 - x0) * spec.width / 5), int((y1 - y0) * spec.height / 3)),
            0, 0, 360, float(spec.scene_luma * 0.4), -1,
        )
        return img
    raise ValueError(f"clip {spec.name}: unknown nuisance kind {nu.kind!r}")


def _encode(spec: ClipSpec, path: Path) -> None:
    chroma = np.full((spec.height // 2, spec.width), 128, np.uint8)
    with av.open(str(path), "w") as out:
        st = out.add_stream(spec.codec, rate=spec.fps)
        st.width, st.height, st.pix_fmt = spec.width, spec.height, "yuv420p"
        # a camera's sub stream: capped bitrate (about 0.7 Mbit/s at 640x360), no B-frames,
        # a keyframe every 2 s
        kbps = max(200, round(700 * spec.width * spec.height / (640 * 360)))
        if spec.codec == "libx265":
            st.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(spec.fps * 2),
                          "x265-params": f"bframes=0:vbv-maxrate={kbps}:vbv-bufsize={2 * kbps}"
                                         ":log-level=error"}
        else:
            st.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23",
                          "g": str(spec.fps * 2), "bf": "0",
                          "x264-params": f"vbv-maxrate={kbps}:vbv-bufsize={2 * kbps}"}
        for y in _frames(spec):
            frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


# ---- geometry for the truth --------------------------------------------------------------------


def _visible_interval(spec: ClipSpec, obj: MovingObject) -> tuple[float, float] | None:
    step = 1.0 / spec.fps
    visible = []
    t = 0.0
    while t < spec.duration_s - 1e-9:
        if t >= obj.appear_s:
            dt = t - obj.appear_s
            x = obj.start_xy[0] + obj.velocity_pxps[0] * dt
            y = obj.start_xy[1] + obj.velocity_pxps[1] * dt
            in_x = x + obj.width_px > 0 and x < spec.width
            if in_x and y + obj.height_px > 0 and y < spec.height:
                visible.append(t)
        t += step
    if not visible:
        return None
    return visible[0], visible[-1] + step


def _box_hits_polygon(spec: ClipSpec, obj: MovingObject, x: float, y: float, poly: Polygon) -> bool:
    cx = (x + obj.width_px / 2) / spec.width
    cy = (y + obj.height_px / 2) / spec.height
    if not (0 <= cx <= 1 and 0 <= cy <= 1):
        return False
    return _point_in_polygon(cx, cy, poly)


def _inside_masks(spec: ClipSpec, obj: MovingObject, times: np.ndarray) -> bool:
    """True when the object's box stays inside one mask wherever it is visible."""
    if not spec.masks:
        return False
    for t in times:
        dt = t - obj.appear_s
        x = obj.start_xy[0] + obj.velocity_pxps[0] * dt
        y = obj.start_xy[1] + obj.velocity_pxps[1] * dt
        xs = (max(x, 0.0) / spec.width, min(x + obj.width_px, spec.width - 1) / spec.width)
        ys = (max(y, 0.0) / spec.height, min(y + obj.height_px, spec.height - 1) / spec.height)
        corners = [(cx, cy) for cx in xs for cy in ys]
        if not any(all(_point_in_polygon(cx, cy, m) for cx, cy in corners) for m in spec.masks):
            return False
    return True


def _point_in_polygon(x: float, y: float, poly: Polygon) -> bool:
    inside = False
    n = len(poly)
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside
