"""The camera simulator (`dozor-camsim`): N ONVIF cameras with RTSP streams in one process.

Light on purpose: the heavy parts (clips, RTSP, ONVIF) are imported from their modules, e.g.
`from camera_drivers.sim.fleet import FleetConfig, start_fleet`.
"""

from camera_drivers.sim.camera import FaultState, SimCamera
from camera_drivers.sim.errors import SimError
from camera_drivers.sim.scene import MovingObject, SceneSpec

__all__ = ["FaultState", "MovingObject", "SceneSpec", "SimCamera", "SimError"]
