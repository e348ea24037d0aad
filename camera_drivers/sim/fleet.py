"""A fleet of simulated cameras in one process: clips, the shared streamer, and the services.

`start_fleet(config)` loads (or encodes once) the clips, builds each camera's streams, starts
its RTSP and ONVIF servers, one WS-Discovery responder, and the optional control endpoint.
The CLI is a thin shell around it; tests can also run a fleet in-process.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.clips import PROFILES, Clip, load_clip
from camera_drivers.sim.errors import ConfigError
from camera_drivers.sim.render import frame_index_at, renderer_for
from camera_drivers.sim.rtsp_server import RtspServer
from camera_drivers.sim.scene import SceneSpec
from camera_drivers.sim.streamer import (
    DEFAULT_MAX_BUFFERED_BYTES,
    MediaStream,
    PacketizedClip,
    Streamer,
)

log = logging.getLogger(__name__)

CODECS = ("h264", "h265")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class FleetConfig:
    cameras: int = 1
    host: str = "127.0.0.1"
    codec: str = "h264"
    scene: SceneSpec = field(default_factory=SceneSpec)
    user: str = "admin"
    password: str = "dozor-demo"
    clock_offset_s: float = 0.0
    name_prefix: str = "cam"
    onvif: bool = True
    discovery: bool = True
    control_port: int | None = None  # None: no control endpoint; 0: a free port
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    epoch_monotonic: float | None = None  # loop time 0 of the first camera; None: now
    # False: each camera's frames go out at its own phase within the frame interval, as
    # free-running real cameras do; True: every camera's at the same instants (a worst case
    # for a recorder: all its streams wake at once).
    aligned_frames: bool = False

    def validate(self) -> None:
        if not 1 <= self.cameras <= 1000:
            raise ConfigError(f"cameras must be 1..1000, got {self.cameras}")
        if self.codec not in CODECS:
            raise ConfigError(f"codec must be h264 or h265, got {self.codec!r}")
        if not self.user or ":" in self.user:
            raise ConfigError("user must be non-empty and contain no ':'")
        if not self.password:
            raise ConfigError("password must not be empty")
        if not _NAME.match(self.name_prefix):
            raise ConfigError(f"bad camera name prefix {self.name_prefix!r}")
        validate_scene(self.scene)

    def camera_name(self, index: int) -> str:
        return f"{self.name_prefix}{index + 1:02d}"


def frame_phase_s(index: int, fps: int) -> float:
    """How far camera `index`'s clock runs ahead of the fleet's epoch, within one frame.

    Fractions of the golden ratio spread any number of cameras evenly over the interval, and
    camera 0 keeps the epoch exactly (tests that place a single camera in its loop rely on it).
    """
    return ((index * 0.6180339887498949) % 1.0) / fps


def validate_scene(scene: SceneSpec) -> None:
    if not 1 <= scene.fps <= 60:
        raise ConfigError(f"fps must be 1..60, got {scene.fps}")
    if scene.loop_s <= 0 or abs(scene.loop_s * scene.fps - round(scene.loop_s * scene.fps)) > 1e-6:
        raise ConfigError(f"loop {scene.loop_s} s must be a positive whole number of frames")
    if scene.gop_s <= 0 or scene.gop_s > scene.loop_s:
        raise ConfigError(f"gop {scene.gop_s} s must be positive and at most the loop")
    if scene.noise < 0 or scene.illumination_amplitude < 0:
        raise ConfigError("noise and illumination must not be negative")
    for obj in scene.objects:
        if not 0 <= obj.start_s < obj.end_s <= scene.loop_s:
            raise ConfigError(
                f"motion {obj.start_s}:{obj.end_s} must satisfy 0 <= start < end <= loop "
                f"({scene.loop_s} s)"
            )


def snapshot_source(camera: SimCamera, profile_name: str = "main") -> Callable[[], bytes]:
    """A callable rendering a JPEG of the frame the camera streams at the time of the call."""
    profile = PROFILES[profile_name]
    renderer = renderer_for(camera.scene, profile.width, profile.height)

    def snapshot_jpeg() -> bytes:
        return renderer.jpeg(frame_index_at(camera.scene, camera.elapsed_s()))

    return snapshot_jpeg


@dataclass
class Fleet:
    config: FleetConfig
    cameras: list[SimCamera]
    streamer: Streamer
    rtsp_servers: list[RtspServer]
    onvif_servers: list = field(default_factory=list)  # OnvifServer
    discovery: object | None = None  # DiscoveryResponder
    control: object | None = None  # ControlServer
    control_url: str | None = None

    def camera(self, name: str) -> SimCamera | None:
        return next((c for c in self.cameras if c.name == name), None)

    async def close(self) -> None:
        if self.control is not None:
            await self.control.close()  # type: ignore[attr-defined]
        if self.discovery is not None:
            await self.discovery.close()  # type: ignore[attr-defined]
        for srv in self.onvif_servers:
            await srv.close()
        for rtsp in self.rtsp_servers:
            await rtsp.close()
        await self.streamer.close()


def load_clips(scene: SceneSpec, codec: str) -> dict[str, Clip]:
    return {name: load_clip(scene, profile, codec) for name, profile in PROFILES.items()}


async def start_fleet(config: FleetConfig) -> Fleet:
    config.validate()
    loop = asyncio.get_running_loop()
    # Encoding can take a while the first time: keep the event loop free meanwhile.
    clips = await loop.run_in_executor(None, load_clips, config.scene, config.codec)
    packets = {name: PacketizedClip(clip) for name, clip in clips.items()}
    epoch = config.epoch_monotonic if config.epoch_monotonic is not None else time.monotonic()
    streamer = Streamer(max_buffered_bytes=config.max_buffered_bytes)
    fleet = Fleet(config=config, cameras=[], streamer=streamer, rtsp_servers=[])
    try:
        for i in range(config.cameras):
            phase_s = 0.0 if config.aligned_frames else frame_phase_s(i, config.scene.fps)
            camera = SimCamera(
                index=i,
                name=config.camera_name(i),
                host=config.host,
                user=config.user,
                password=config.password,
                scene=config.scene,
                codec=config.codec,
                epoch_monotonic=epoch - phase_s,
                clock_offset_s=config.clock_offset_s,
            )
            camera.snapshot_jpeg = snapshot_source(camera)
            streams = {}
            for name, packetized in packets.items():
                stream = MediaStream(camera=camera, name=name, packets=packetized)
                streamer.add_stream(stream)
                streams[name] = stream
            rtsp = RtspServer(camera, streams, streamer)
            fleet.cameras.append(camera)
            fleet.rtsp_servers.append(rtsp)
            await rtsp.start(config.host)
            if config.onvif:
                from camera_drivers.sim.onvif_server import OnvifServer

                onvif = OnvifServer(camera)
                fleet.onvif_servers.append(onvif)
                await onvif.start(config.host)
        streamer.start()
        if config.discovery:
            await _start_discovery(fleet)
        if config.control_port is not None:
            from camera_drivers.sim.control import ControlServer

            control = ControlServer(fleet)
            fleet.control = control
            fleet.control_url = await control.start(config.host, config.control_port)
    except BaseException:
        await fleet.close()
        raise
    return fleet


async def _start_discovery(fleet: Fleet) -> None:
    from camera_drivers.sim.discovery_responder import DiscoveryResponder

    responder = DiscoveryResponder(fleet.cameras, fleet.config.host)
    try:
        await responder.start()
    except OSError as err:
        log.warning(
            "camsim: WS-Discovery responder not started on %s (%s); cameras still serve",
            fleet.config.host, err,
        )
        return
    fleet.discovery = responder


def camera_record(camera: SimCamera, control_url: str | None = None) -> dict[str, object]:
    """What the CLI prints per camera (one JSON line) and GET /cameras lists."""
    record: dict[str, object] = {
        "name": camera.name,
        "onvif": camera.onvif_url() if camera.onvif_port else None,
        "rtsp_main": camera.rtsp_url("main"),
        "rtsp_sub": camera.rtsp_url("sub"),
        "user": camera.user,
        "password": camera.password,
        "codec": camera.codec,
    }
    if control_url:
        record["control"] = f"{control_url}/cameras/{camera.name}/faults"
    return record
