"""Each injected fault is observable on the wire, from the control endpoint or the CLI."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from camera_drivers.sim.rtp import parse_rtp
from camera_drivers.sim.rtsp_client import RawRtspClient, RtspClientError


def _client(cam) -> RawRtspClient:
    return RawRtspClient(cam.rtsp_sub, cam.user, cam.password, timeout_s=5.0)


async def _playing(cam) -> RawRtspClient:
    client = _client(cam)
    await client.connect()
    await client.start()
    await client.read_interleaved(timeout_s=5)
    return client


async def _next_rtp(client: RawRtspClient, timeout_s: float = 3.0):
    while True:
        channel, data = await client.read_interleaved(timeout_s=timeout_s)
        if channel == 0:
            return parse_rtp(channel, data)


async def _fault(cam, **request):
    return await asyncio.to_thread(cam.fault, **request)


@pytest.fixture
def cam(camsim):
    return camsim(onvif=False)[0]


async def test_drop_closes_playing_connections(cam):
    client = await _playing(cam)
    try:
        await _fault(cam, drop=True)
        with pytest.raises((RtspClientError, ConnectionError)):
            for _ in range(1000):
                await client.read_interleaved(timeout_s=3)
        # New connections are served again at once.
        again = await _playing(cam)
        await again.close()
    finally:
        await client.close()


async def test_stall_stops_data_without_closing_then_resumes(cam):
    client = await _playing(cam)
    try:
        await _fault(cam, stall=True)
        with pytest.raises(TimeoutError):
            for _ in range(1000):
                await client.read_interleaved(timeout_s=1.0)
        assert (await client.request("GET_PARAMETER")).status == 200  # still connected
        await _fault(cam, stall=False)
        packet = await _next_rtp(client)
        assert packet.payload_type == 96
    finally:
        await client.close()


async def test_refuse_rejects_new_connections_until_lifted(cam):
    await _fault(cam, refuse=True)
    client = _client(cam)
    with pytest.raises((RtspClientError, ConnectionError, asyncio.IncompleteReadError)):
        await client.connect()
        await client.request("OPTIONS")
    await client.close()
    await _fault(cam, refuse=False)
    again = await _playing(cam)
    await again.close()


async def test_jump_changes_rtp_timestamps(cam):
    client = await _playing(cam)
    try:
        before = await _next_rtp(client)
        await _fault(cam, jump_timestamps_s=3600)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            after = await _next_rtp(client)
            if after.timestamp != before.timestamp:
                break
        delta = (after.timestamp - before.timestamp) % 2**32
        assert 3600 * 90_000 <= delta <= 3602 * 90_000
    finally:
        await client.close()


async def test_offline_drops_and_ignores_connections_then_comes_back(cam):
    client = await _playing(cam)
    await _fault(cam, offline_s=2.5)
    with pytest.raises((RtspClientError, ConnectionError)):
        for _ in range(1000):
            await client.read_interleaved(timeout_s=3)
    await client.close()
    silent = RawRtspClient(cam.rtsp_sub, cam.user, cam.password, timeout_s=0.8)
    await silent.connect()
    with pytest.raises(TimeoutError):
        await silent.request("OPTIONS")  # accepted but never answered, like a dead camera
    await silent.close()
    await asyncio.sleep(2.0)
    back = await _playing(cam)
    await back.close()


def test_bad_fault_requests_get_400_with_a_message(cam):
    for body, needle in (
        (b"{not json", "not valid JSON"),
        (b'{"stall": "yes"}', "stall must be true or false"),
        (b'{"explode": true}', "unknown fault"),
        (b'{"offline_s": -1}', "offline_s"),
    ):
        req = urllib.request.Request(cam.control, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 400
        assert needle in json.loads(info.value.read())["error"]


def test_control_lists_cameras_and_unknown_camera_is_404(cam):
    base = cam.control.rsplit("/cameras/", 1)[0]
    with urllib.request.urlopen(base + "/cameras", timeout=5) as resp:
        listing = json.loads(resp.read())
    assert [c["name"] for c in listing] == [cam.name]
    assert listing[0]["rtsp_main"] == cam.rtsp_main and listing[0]["faults"]["stall"] is False
    req = urllib.request.Request(base + "/cameras/nosuch/faults", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 404


async def test_fault_from_the_command_line(camsim):
    (cam,) = camsim(onvif=False, faults=["all:stall"])
    client = _client(cam)
    await client.connect()
    await client.start()
    with pytest.raises(TimeoutError):
        await client.read_interleaved(timeout_s=1.5)
    await client.close()
