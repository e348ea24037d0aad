"""The shared clock: a slow client is dropped instead of buffering without bound."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
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


async def test_sender_report_maps_rtp_time_to_the_camera_clock_with_its_offset():
    config = FleetConfig(
        cameras=1, scene=SCENE, onvif=False, discovery=False, clock_offset_s=3600.0
    )
    fleet = await start_fleet(config)
    camera = fleet.cameras[0]
    try:
        async with RawRtspClient(camera.rtsp_url("sub"), camera.user, camera.password) as c:
            await c.start()
            last_ts = None
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                channel, data = await c.read_interleaved(timeout_s=3)
                if channel == 0:
                    last_ts = struct.unpack_from(">I", data, 4)[0]
                    continue
                assert channel == 1 and data[1] == 200  # RTCP SR
                ntp_sec, ntp_frac, rtp_ts = struct.unpack_from(">III", data, 8)
                ntp_unix = ntp_sec - 2_208_988_800 + ntp_frac / 2**32
                assert abs(ntp_unix - (time.time() + 3600.0)) < 1.0
                assert rtp_ts == last_ts  # sent right after the frame it describes
                break
            else:
                raise AssertionError("no RTCP sender report within 5 s")
    finally:
        await fleet.close()


async def test_cameras_send_at_their_own_phase_unless_aligned():
    """Free-running cameras are not frame-synchronised: a fleet spreads their phases."""
    frame_s = 1 / SCENE.fps
    for aligned in (False, True):
        config = FleetConfig(
            cameras=4, scene=SCENE, onvif=False, discovery=False, aligned_frames=aligned
        )
        fleet = await start_fleet(config)
        try:
            epochs = [c.epoch_monotonic for c in fleet.cameras]
        finally:
            await fleet.close()
        phases = sorted((epochs[0] - e) % frame_s for e in epochs)
        if aligned:
            assert max(phases) < 1e-9
        else:
            assert phases[0] < 1e-9 and all(0 <= p < frame_s for p in phases)
            assert min(b - a for a, b in itertools.pairwise(phases)) > frame_s / 8
