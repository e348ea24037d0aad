"""Motion detection on the sub stream, event lifecycle, tamper and video-loss alarms."""

from recorder.motion.config import (
    DetectorParams,
    EventConfig,
    ExpertOverrides,
    MotionConfig,
    TamperConfig,
    Zone,
    params_for_sensitivity,
)

__all__ = [
    "DetectorParams",
    "EventConfig",
    "ExpertOverrides",
    "MotionConfig",
    "TamperConfig",
    "Zone",
    "params_for_sensitivity",
]
