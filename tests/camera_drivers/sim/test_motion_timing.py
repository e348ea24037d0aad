"""Motion timing is exact: the object is on screen during the scripted interval only.

Checked twice: in the snapshot (rendered for "now") and in the decoded RTP stream, where each
frame's RTP timestamp says which instant of the loop it shows.
"""

from __future__ import annotations

import time

import av
import cv2
import numpy as np

from camera_drivers.rtsp.depacketize import Depacketizer
from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.fleet import FleetConfig, snapshot_source, start_fleet
from camera_drivers.sim.render import renderer_for
from camera_drivers.sim.rtsp_client import RawRtspClient
from camera_drivers.sim.scene import MovingObject, SceneSpec

# The same scene as the camsim fixture's default, so the cached clips are shared.
SCENE = SceneSpec(loop_s=20.0, fps=15, objects=(MovingObject(start_s=8.0, end_s=12.0),))
OBJECT_LUMA = 40


def _camera_at(loop_time_s: float) -> SimCamera:
    return SimCamera(
        index=0, name="cam01", host="127.0.0.1", user="u", password="p", scene=SCENE,
        epoch_monotonic=time.monotonic() - loop_time_s,
    )


def _dark_fraction(gray: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float((gray[y0:y1, x0:x1] < 70).mean())


def test_snapshot_shows_the_object_during_the_interval_and_not_outside():
    renderer_for(SCENE, 1920, 1080).frame_i420(0)  # warm up: the first render takes longer
    for loop_time_s, expected in ((7.5, False), (8.4, True), (10.0, True), (11.6, True),
                                  (12.5, False), (27.0, False), (30.0, True)):
        camera = _camera_at(loop_time_s)
        jpeg = snapshot_source(camera)()
        gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert gray.shape == (1080, 1920)
        dark = (gray < 70).mean()
        assert (dark > 0.005) == expected, (loop_time_s, dark)
        if expected:
            renderer = renderer_for(SCENE, 1920, 1080)
            n = round((loop_time_s % SCENE.loop_s) * SCENE.fps)
            (box,) = renderer.object_boxes_px(n)
            assert _dark_fraction(gray, box) > 0.9


async def test_streamed_frames_show_the_object_exactly_at_their_rtp_time():
    # Loop time 10.5 s now: streaming starts at the 11 s keyframe, the object leaves at 12 s.
    config = FleetConfig(
        cameras=1, scene=SCENE, onvif=False, discovery=False,
        epoch_monotonic=time.monotonic() - 10.5,
    )
    fleet = await start_fleet(config)
    try:
        fleet.cameras[0].epoch_monotonic = time.monotonic() - 10.5  # clip loading took time
        camera = fleet.cameras[0]
        renderer = renderer_for(SCENE, 640, 360)
        decoder = av.CodecContext.create("h264", "r")
        depacketizer = Depacketizer("h264", 96)
        seen: dict[bool, int] = {True: 0, False: 0}
        async with RawRtspClient(camera.rtsp_url("sub"), camera.user, camera.password) as c:
            await c.start()
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                channel, data = await c.read_interleaved(timeout_s=3)
                if channel != 0:
                    continue
                for unit in depacketizer.push(data):
                    # One packet per access unit (a parser would hold each back until the next).
                    frames = decoder.decode(av.Packet(bytes(unit.data)))
                    frame_number = unit.timestamp * SCENE.fps // 90_000
                    loop_time_s = (frame_number % SCENE.frame_count) / SCENE.fps
                    expected = 8.0 <= loop_time_s < 12.0
                    for frame in frames:
                        gray = frame.to_ndarray(format="gray")
                        boxes = renderer.object_boxes_px(frame_number)
                        probe = boxes[0] if boxes else (300, 200, 340, 240)
                        if expected:  # lossy coding smears the box edges a little
                            assert _dark_fraction(gray, probe) > 0.6, loop_time_s
                        else:
                            assert (gray < 60).mean() < 0.001, loop_time_s
                        seen[expected] += 1
        assert seen[True] >= 10 and seen[False] >= 5, seen
    finally:
        await fleet.close()
