"""Fixtures for the camera driver tests: a simulated camera's ONVIF server, in-process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.onvif_server import OnvifServer
from camera_drivers.sim.scene import MovingObject, SceneSpec

USER = "admin"
PASSWORD = "s3cret-пароль"
# Motion from 1 s to 3 s of every 6 s loop, so event tests take seconds, not minutes.
FAST_SCENE = SceneSpec(loop_s=6.0, fps=15, objects=(MovingObject(start_s=1.0, end_s=3.0),))


def tiny_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((36, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def make_camera(**overrides: object) -> SimCamera:
    fields: dict[str, object] = dict(
        index=1, name="cam1", host="127.0.0.1", user=USER, password=PASSWORD,
        scene=FAST_SCENE, rtsp_port=8554,
    )
    fields.update(overrides)
    camera = SimCamera(**fields)  # type: ignore[arg-type]
    camera.snapshot_jpeg = tiny_jpeg
    return camera


@dataclass
class OnvifSim:
    camera: SimCamera
    server: OnvifServer

    @property
    def port(self) -> int:
        return self.camera.onvif_port

    def restart_scene(self, at_loop_s: float = 0.0) -> None:
        """Make loop time `at_loop_s` now."""
        self.camera.epoch_monotonic = time.monotonic() - at_loop_s


async def start_sim(camera: SimCamera, server_class: type[OnvifServer] = OnvifServer) -> OnvifSim:
    server = server_class(camera)
    await server.start("127.0.0.1", 0)
    return OnvifSim(camera, server)


@pytest.fixture
async def onvif_sim() -> AsyncIterator[OnvifSim]:
    sim = await start_sim(make_camera())
    yield sim
    await sim.server.close()
