"""WS-Discovery: the raw probe against the simulator's responder, multicast and unicast."""

from __future__ import annotations

import socket
import time

import pytest

from camera_drivers import DiscoveryError, discover
from camera_drivers.discovery import build_probe
from camera_drivers.sim.discovery_responder import DiscoveryResponder, parse_probe
from tests.camera_drivers.conftest import make_camera
from tests.camera_drivers.netns import NetnsLoop, multicast_netns


def _cameras(first_index: int, count: int):  # type: ignore[no-untyped-def]
    cameras = []
    for i in range(first_index, first_index + count):
        camera = make_camera(index=i, name=f"cam{i}")
        camera.onvif_port = 18000 + i  # only advertised here, never connected to
        cameras.append(camera)
    return cameras


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_multicast_probe_finds_cameras_of_two_simulator_processes():
    """Two responders share UDP 3702 (SO_REUSEPORT) in a namespace with multicast on lo."""
    with multicast_netns("disc") as name:
        ns = NetnsLoop(name)
        responders = [
            DiscoveryResponder(_cameras(1, 2), "127.0.0.1"),
            DiscoveryResponder(_cameras(3, 1), "127.0.0.1"),
        ]
        try:
            for responder in responders:
                ns.run(responder.start())
            started = time.monotonic()
            devices = ns.run(discover("127.0.0.1", timeout_s=1.0))
            took_s = time.monotonic() - started
        finally:
            for responder in responders:
                ns.run(responder.close())
            ns.close()
    assert [d.name for d in devices] == ["cam1", "cam2", "cam3"]
    assert [d.xaddrs for d in devices] == [
        (f"http://127.0.0.1:{18000 + i}/onvif/device_service",) for i in (1, 2, 3)
    ]
    assert all(d.hardware == "SimCam" and d.from_ip == "127.0.0.1" for d in devices)
    assert all("dn:NetworkVideoTransmitter" in d.types for d in devices)
    assert len({d.endpoint_ref for d in devices}) == 3  # probe sent twice, answers deduped
    assert 1.0 <= took_s < 3.0  # collects for timeout_s, then returns


async def test_unicast_probe_fallback_and_offline_cameras_stay_silent():
    cameras = _cameras(1, 2)
    cameras[1].faults.offline_until_monotonic = time.monotonic() + 60
    port = _free_udp_port()
    responder = DiscoveryResponder(cameras, "127.0.0.1", port=port)
    await responder.start()
    try:
        devices = await discover(
            "127.0.0.1", timeout_s=0.5, unicast_hosts=["127.0.0.1"], port=port, multicast=False
        )
    finally:
        await responder.close()
    assert [d.name for d in devices] == ["cam1"]


def test_responder_answers_only_video_transmitter_or_untyped_probes():
    probe = build_probe("urn:uuid:1234")
    assert parse_probe(probe) == "urn:uuid:1234"
    printer = probe.replace(b"dn:NetworkVideoTransmitter", b"pr:PrintDeviceType")
    assert parse_probe(printer) is None
    untyped = probe.replace(b"<d:Types>dn:NetworkVideoTransmitter</d:Types>", b"")
    assert parse_probe(untyped) == "urn:uuid:1234"
    assert parse_probe(b"not xml at all") is None


async def test_discover_rejects_a_bad_interface_clearly():
    with pytest.raises(DiscoveryError, match="IPv4 address"):
        await discover("eth0", timeout_s=0.1)
    with pytest.raises(DiscoveryError, match=r"cannot probe on interface 192\.0\.2\.1"):
        await discover("192.0.2.1", timeout_s=0.1)  # not an address of this machine
