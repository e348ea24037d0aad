"""The shared clock: a slow client is dropped instead of buffering without bound."""

from __future__ import annotations

import asyncio
import socket
import time

from camera_drivers.sim.fleet import FleetConfig, start_fleet
from camera_drivers.sim.rtsp_client import RawRtspClient
from camera_drivers.sim.scene import MovingObject, SceneSpec

SCENE = SceneSpec(loop_s=20.0, fps=15, objects=(MovingObject(start_s=8.0, end_s=12.0),))


async def test_slow_reader_is_dropped_and_others_keep_streaming():
    config = FleetConfig(
        cameras=1, scene=SCENE, onvif=False, discovery=False, max_buffered_bytes=128 * 1024
    )
    fleet = await start_fleet(config)
    camera = fleet.cameras[0]
    try:
        fast = RawRtspClient(camera.rtsp_url("main"), camera.user, camera.password)
        await fast.connect()
        await fast.start()

        # The slow reader: a tiny receive window, and it never reads after PLAY.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", camera.rtsp_port))
        sock.setblocking(False)
        slow = RawRtspClient(camera.rtsp_url("main"), camera.user, camera.password)
        slow.reader, slow.writer = await asyncio.open_connection(sock=sock)
        await slow.start()
        stream = next(s for s in fleet.streamer.streams if s.name == "main")
        assert len(stream.clients) == 2

        deadline = time.monotonic() + 15
        while len(stream.clients) == 2 and time.monotonic() < deadline:
            await fast.read_interleaved(timeout_s=3)  # the fast one keeps reading
        assert len(stream.clients) == 1, "slow reader was not dropped"
        for _ in range(30):
            await fast.read_interleaved(timeout_s=3)
        await fast.close()
        await slow.close()
    finally:
        await fleet.close()
