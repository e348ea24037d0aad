"""State of one simulated camera, shared by its RTSP, ONVIF and discovery services."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from camera_drivers.sim.scene import SceneSpec


@dataclass
class FaultState:
    """Faults injected from the command line or the control endpoint."""

    refuse: bool = False  # refuse new RTSP connections
    stall: bool = False  # keep connections open but send nothing
    offline_until_monotonic: float = 0.0  # every service unreachable until then
    rtp_timestamp_offset_90k: int = 0  # added to every RTP timestamp (a "jump")
    # Called by drop(): the services close their connections (the RTSP server registers).
    drop_listeners: list[Callable[[], None]] = field(
        default_factory=list, repr=False, compare=False
    )

    def offline(self, now_monotonic: float | None = None) -> bool:
        now = time.monotonic() if now_monotonic is None else now_monotonic
        return now < self.offline_until_monotonic

    def drop(self) -> None:
        """Close every open connection now (new ones are accepted as usual)."""
        for listener in list(self.drop_listeners):
            listener()

    def go_offline(self, duration_s: float) -> None:
        """Unreachable for `duration_s`: connections dropped, new ones get no answer."""
        self.offline_until_monotonic = time.monotonic() + duration_s
        self.drop()

    def jump_timestamps(self, jump_s: float) -> None:
        self.rtp_timestamp_offset_90k += round(jump_s * 90_000)


@dataclass
class SimCamera:
    index: int
    name: str
    host: str
    user: str
    password: str
    scene: SceneSpec
    codec: str = "h264"  # "h264" or "h265"
    epoch_monotonic: float = field(default_factory=time.monotonic)  # loop time 0
    clock_offset_s: float = 0.0  # camera clock minus true time
    rtsp_port: int = 0
    onvif_port: int = 0
    faults: FaultState = field(default_factory=FaultState)
    # Set by the media layer: a JPEG of the frame currently being streamed.
    snapshot_jpeg: Callable[[], bytes] | None = None

    def elapsed_s(self, now_monotonic: float | None = None) -> float:
        now = time.monotonic() if now_monotonic is None else now_monotonic
        return now - self.epoch_monotonic

    def motion_active(self, now_monotonic: float | None = None) -> bool:
        return self.scene.motion_active(self.elapsed_s(now_monotonic))

    def rtsp_url(self, stream: str) -> str:
        return f"rtsp://{self.host}:{self.rtsp_port}/{self.name}/{stream}"

    def onvif_url(self) -> str:
        return f"http://{self.host}:{self.onvif_port}/onvif/device_service"
