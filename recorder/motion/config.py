"""Per-camera motion configuration: one `sensitivity` a technician understands, expert overrides.

The site TOML holds, per camera, a `motion` sub-table; `MotionConfig.from_mapping` turns it into
these frozen dataclasses and `validate()` raises `ValueError` naming the offending field.

    [cameras.motion]
    sensitivity = 6              # 1 (only big, obvious motion) .. 10 (far and dim objects)
    trigger = "dozor"            # "dozor" | "camera" | "both"
    decode = "fps"               # "all" | "fps" | "keyframes"
    fps = 5.0
    masks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [0.0, 0.4]]]   # ignored areas, 0..1 coords
    [[cameras.motion.zones]]
    name = "gate"
    polygon = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
    [cameras.motion.events]
    pre_roll_s = 5.0
    [cameras.motion.tamper]
    video_loss_s = 10.0
    [cameras.motion.expert]       # optional; each key overrides what sensitivity chose
    threshold = 20
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

Point = tuple[float, float]
Polygon = tuple[Point, ...]

TRIGGERS = ("dozor", "camera", "both")
DECODE_MODES = ("all", "fps", "keyframes")


@dataclass(frozen=True)
class Zone:
    """A named area of the frame; events record which zones their motion entered."""

    name: str
    polygon: Polygon


@dataclass(frozen=True)
class DetectorParams:
    """The detailed detector parameters, resolved from sensitivity plus expert overrides."""

    threshold: int  # luma difference (0-255, after contrast normalisation) counted as change
    min_area_fraction: float  # smallest object, as a fraction of the (unmasked) frame
    alpha: float  # running-average weight of each new frame once calibrated
    calibrating_alpha: float  # faster weight while (re)calibrating
    calibration_s: float  # how long the fast weight is used after start or a global change
    blur_px: int  # Gaussian kernel size (odd) at the working width
    dilate_iterations: int  # joins fragments of one object
    global_change_fraction: float  # this fraction of the frame changing at once = recalibrate
    work_width_px: int  # frames are downscaled to this width before detection
    contrast: bool  # stretch the 2nd-98th luma percentiles to 0-255 (dim scenes)


@dataclass(frozen=True)
class ExpertOverrides:
    """Any field set here wins over the value `sensitivity` maps to."""

    threshold: int | None = None
    min_area_fraction: float | None = None
    alpha: float | None = None
    calibrating_alpha: float | None = None
    calibration_s: float | None = None
    blur_px: int | None = None
    dilate_iterations: int | None = None
    global_change_fraction: float | None = None
    work_width_px: int | None = None
    contrast: bool | None = None


@dataclass(frozen=True)
class EventConfig:
    pre_roll_s: float = 5.0  # footage kept before the first motion
    post_roll_s: float = 10.0  # quiet time that ends an event; footage kept after last motion
    min_duration_s: float = 0.4  # motion must persist this long before an event starts
    max_length_s: float = 300.0  # longer events are split (end + new)
    cooldown_s: float = 0.0  # no new event within this time after one ended
    update_interval_s: float = 2.0  # at most one 'update' change this often


@dataclass(frozen=True)
class TamperConfig:
    enabled: bool = True
    video_loss_s: float = 10.0  # no decoded frame for this long = video loss
    uniform_std: float = 4.0  # luma standard deviation below this = black/uniform image
    uniform_s: float = 5.0  # ... sustained this long
    scene_change_fraction: float = 0.6  # this fraction of the frame differs from the old scene
    scene_change_s: float = 10.0  # ... and stays different this long = turned or covered


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = True
    trigger: str = "dozor"  # "dozor" | "camera" | "both"
    decode: str = "fps"  # "all" | "fps" | "keyframes"
    fps: float = 5.0  # used when decode == "fps"
    sensitivity: int = 6  # 1..10
    masks: tuple[Polygon, ...] = ()
    zones: tuple[Zone, ...] = ()
    expert: ExpertOverrides = field(default_factory=ExpertOverrides)
    events: EventConfig = field(default_factory=EventConfig)
    tamper: TamperConfig = field(default_factory=TamperConfig)
    snapshot_colour: bool = True  # decode the one best frame to BGR for the alert snapshot

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.trigger not in TRIGGERS:
            raise ValueError(f"motion.trigger: {self.trigger!r} is not one of {TRIGGERS}")
        if self.decode not in DECODE_MODES:
            raise ValueError(f"motion.decode: {self.decode!r} is not one of {DECODE_MODES}")
        _positive("motion.fps", self.fps)
        if not isinstance(self.sensitivity, int) or not 1 <= self.sensitivity <= 10:
            raise ValueError(f"motion.sensitivity: {self.sensitivity!r} is not an integer 1..10")
        for i, poly in enumerate(self.masks):
            _check_polygon(f"motion.masks[{i}]", poly)
        names: set[str] = set()
        for i, zone in enumerate(self.zones):
            if not isinstance(zone.name, str) or not zone.name.strip():
                raise ValueError(f"motion.zones[{i}].name: must be a non-empty string")
            if zone.name in names:
                raise ValueError(f"motion.zones[{i}].name: duplicate zone {zone.name!r}")
            names.add(zone.name)
            _check_polygon(f"motion.zones[{i}].polygon", zone.polygon)
        ev = self.events
        for name in ("pre_roll_s", "post_roll_s", "min_duration_s", "cooldown_s"):
            _non_negative(f"motion.events.{name}", getattr(ev, name))
        _positive("motion.events.max_length_s", ev.max_length_s)
        _positive("motion.events.update_interval_s", ev.update_interval_s)
        if ev.max_length_s <= ev.min_duration_s:
            raise ValueError("motion.events.max_length_s: must exceed min_duration_s")
        tp = self.tamper
        for name in ("video_loss_s", "uniform_std", "uniform_s", "scene_change_s"):
            _positive(f"motion.tamper.{name}", getattr(tp, name))
        _fraction("motion.tamper.scene_change_fraction", tp.scene_change_fraction)
        self.params()  # validates the expert overrides

    def params(self) -> DetectorParams:
        """Detector parameters for this camera: sensitivity mapping plus expert overrides."""
        base = params_for_sensitivity(self.sensitivity)
        overrides = {f.name: getattr(self.expert, f.name) for f in fields(ExpertOverrides)}
        merged = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        _check_params(merged)
        return merged

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "motion") -> MotionConfig:
        """Build from a parsed TOML table; ValueError names the bad key (prefixed by `where`)."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
        simple = {"enabled", "trigger", "decode", "fps", "sensitivity", "snapshot_colour"}
        known = simple | {"masks", "zones", "expert", "events", "tamper"}
        _reject_unknown(where, raw, known)
        kwargs: dict[str, Any] = {}
        for key in simple:
            if key in raw:
                kwargs[key] = _typed(f"{where}.{key}", raw[key], _default_of(cls, key))
        if "masks" in raw:
            masks = _seq(f"{where}.masks", raw["masks"])
            kwargs["masks"] = tuple(
                _polygon(f"{where}.masks[{i}]", m) for i, m in enumerate(masks)
            )
        if "zones" in raw:
            zones = []
            for i, z in enumerate(_seq(f"{where}.zones", raw["zones"])):
                zw = f"{where}.zones[{i}]"
                if not isinstance(z, Mapping):
                    raise ValueError(f"{zw}: expected a table with name and polygon")
                _reject_unknown(zw, z, {"name", "polygon"})
                if "name" not in z or "polygon" not in z:
                    raise ValueError(f"{zw}: needs both name and polygon")
                zones.append(Zone(str(z["name"]), _polygon(f"{zw}.polygon", z["polygon"])))
            kwargs["zones"] = tuple(zones)
        for key, sub in (("expert", ExpertOverrides), ("events", EventConfig),
                         ("tamper", TamperConfig)):
            if key in raw:
                kwargs[key] = _sub_table(f"{where}.{key}", raw[key], sub)
        cfg = cls(**kwargs)
        try:
            cfg.validate()
        except ValueError as err:
            raise ValueError(str(err).replace("motion.", f"{where}.", 1)) from None
        return cfg


def params_for_sensitivity(sensitivity: int) -> DetectorParams:
    """Map 1..10 to detailed parameters (see docs/motion.md for the table).

    Higher sensitivity lowers the luma threshold and the minimum object area, so smaller,
    dimmer and farther objects count. 6 suits a street camera at 640x360.
    """
    if not isinstance(sensitivity, int) or not 1 <= sensitivity <= 10:
        raise ValueError(f"motion.sensitivity: {sensitivity!r} is not an integer 1..10")
    s = sensitivity - 1  # 0..9
    threshold = round(40 - s * 3)  # 40 .. 13
    # area falls geometrically from 2 % of the frame to 0.02 %
    min_area = 0.02 * (0.01 ** (s / 9))
    return DetectorParams(
        threshold=threshold,
        min_area_fraction=round(min_area, 6),
        alpha=0.02,
        calibrating_alpha=0.2,
        calibration_s=2.0,
        blur_px=5,
        dilate_iterations=2,
        global_change_fraction=0.5,
        work_width_px=320,
        contrast=True,
    )


# ---- helpers ---------------------------------------------------------------------------------


def _default_of(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name and f.default is not MISSING:
            return f.default
    return None


def _typed(where: str, value: Any, default: Any) -> Any:
    """Coerce a TOML scalar to the type of the field's default (int accepted for float)."""
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


_EXPERT_TYPES: dict[str, Any] = {
    "threshold": 0, "min_area_fraction": 0.0, "alpha": 0.0, "calibrating_alpha": 0.0,
    "calibration_s": 0.0, "blur_px": 0, "dilate_iterations": 0,
    "global_change_fraction": 0.0, "work_width_px": 0, "contrast": False,
}


def _sub_table(where: str, raw: Any, cls: type) -> Any:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
    names = {f.name for f in fields(cls)}
    _reject_unknown(where, raw, names)
    kwargs = {}
    for key, value in raw.items():
        default = _EXPERT_TYPES[key] if cls is ExpertOverrides else _default_of(cls, key)
        kwargs[key] = _typed(f"{where}.{key}", value, default)
    return cls(**kwargs)


def _reject_unknown(where: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def _seq(where: str, value: Any) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list, got {value!r}")
    return value


def _polygon(where: str, value: Any) -> Polygon:
    pts = []
    for j, p in enumerate(_seq(where, value)):
        pt = _seq(f"{where}[{j}]", p)
        if len(pt) != 2:
            raise ValueError(f"{where}[{j}]: a point is [x, y], got {p!r}")
        x = _typed(f"{where}[{j}].x", pt[0], 0.0)
        y = _typed(f"{where}[{j}].y", pt[1], 0.0)
        pts.append((x, y))
    poly = tuple(pts)
    _check_polygon(where, poly)
    return poly


def _check_polygon(where: str, poly: Polygon) -> None:
    if len(poly) < 3:
        raise ValueError(f"{where}: a polygon needs at least 3 points, got {len(poly)}")
    for j, (x, y) in enumerate(poly):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"{where}[{j}]: coordinates are fractions of the frame (0..1), got ({x}, {y})"
            )


def _positive(where: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: must be a positive number, got {value!r}")


def _non_negative(where: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}: must be zero or positive, got {value!r}")


def _fraction(where: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
        raise ValueError(f"{where}: must be a fraction in (0, 1], got {value!r}")


def _check_params(p: DetectorParams) -> None:
    if not 1 <= p.threshold <= 254:
        raise ValueError(f"motion.expert.threshold: must be 1..254, got {p.threshold}")
    _fraction("motion.expert.min_area_fraction", p.min_area_fraction)
    _fraction("motion.expert.alpha", p.alpha)
    _fraction("motion.expert.calibrating_alpha", p.calibrating_alpha)
    _non_negative("motion.expert.calibration_s", p.calibration_s)
    if p.blur_px < 1 or p.blur_px % 2 == 0:
        raise ValueError(f"motion.expert.blur_px: must be an odd positive integer, got {p.blur_px}")
    if not 0 <= p.dilate_iterations <= 10:
        raise ValueError(
            f"motion.expert.dilate_iterations: must be 0..10, got {p.dilate_iterations}"
        )
    _fraction("motion.expert.global_change_fraction", p.global_change_fraction)
    if not 64 <= p.work_width_px <= 1920:
        raise ValueError(f"motion.expert.work_width_px: must be 64..1920, got {p.work_width_px}")
