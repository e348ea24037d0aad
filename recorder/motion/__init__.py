"""Motion detection on the sub stream, event lifecycle, tamper and video-loss alarms."""

from recorder.motion.camera import CameraMotion
from recorder.motion.config import (
    DetectorParams,
    EventConfig,
    ExpertOverrides,
    MotionConfig,
    TamperConfig,
    Zone,
    params_for_sensitivity,
)
from recorder.motion.detector import Box, Detection, MotionDetector
from recorder.motion.errors import MotionError, MotionInputError
from recorder.motion.events import EventChange, EventTracker
from recorder.motion.offline import FileResult, detect_file
from recorder.motion.persist import EventRecorder
from recorder.motion.sink import MotionSink
from recorder.motion.site import MotionSite
from recorder.motion.tamper import AlarmChange, TamperMonitor
from recorder.motion.triggers import TriggerCombiner

__all__ = [
    "AlarmChange",
    "Box",
    "CameraMotion",
    "Detection",
    "DetectorParams",
    "EventChange",
    "EventConfig",
    "EventRecorder",
    "EventTracker",
    "ExpertOverrides",
    "FileResult",
    "MotionConfig",
    "MotionDetector",
    "MotionError",
    "MotionInputError",
    "MotionSink",
    "MotionSite",
    "TamperConfig",
    "TamperMonitor",
    "TriggerCombiner",
    "Zone",
    "detect_file",
    "params_for_sensitivity",
]
