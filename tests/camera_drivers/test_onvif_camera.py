"""OnvifCamera against the simulator's ONVIF server through real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time

import pytest
from aiohttp import web

from camera_drivers import (
    CameraAuthError,
    CameraCommandError,
    CameraEventKind,
    CameraTimeout,
    CameraUnreachable,
    NotOnvifDevice,
    NoUsableProfile,
    OnvifCamera,
    parse_device_url,
)
from camera_drivers.sim.onvif_server import OnvifServer
from camera_drivers.sim.soap import SoapRequestError
from tests.camera_drivers.conftest import (
    PASSWORD,
    USER,
    OnvifSim,
    make_camera,
    start_sim,
    tiny_jpeg,
)


def _camera(sim: OnvifSim, password: str = PASSWORD, timeout_s: float = 5.0) -> OnvifCamera:
    return OnvifCamera("127.0.0.1", sim.port, USER, password, timeout_s=timeout_s)


async def test_probe_reports_identity_profiles_uris_clock_and_capabilities(onvif_sim):
    onvif_sim.camera.clock_offset_s = -1234.0
    async with _camera(onvif_sim) as cam:
        probe = await cam.probe()
    assert probe.device.manufacturer == "Dozor"
    assert probe.device.serial_number == "SIM000001"
    assert (probe.main.width, probe.main.height, probe.main.encoding) == (1920, 1080, "H264")
    assert (probe.sub.width, probe.sub.height, probe.sub.encoding) == (640, 360, "H264")
    assert probe.main.fps == probe.sub.fps == 15
    assert probe.main.stream_uri == onvif_sim.camera.rtsp_url("main")
    assert probe.sub.stream_uri == onvif_sim.camera.rtsp_url("sub")
    assert USER not in probe.main.stream_uri and PASSWORD not in probe.main.stream_uri
    assert probe.main.snapshot_uri == f"http://127.0.0.1:{onvif_sim.port}/onvif/snapshot.jpg"
    assert probe.clock_offset_s == pytest.approx(-1234.0, abs=1.0)
    assert probe.capabilities.events and probe.capabilities.ptz and probe.capabilities.snapshot
    assert probe.onvif_url == onvif_sim.camera.onvif_url()


async def test_probe_h265_camera_reports_h265():
    sim = await start_sim(make_camera(codec="h265"))
    try:
        async with _camera(sim) as cam:
            probe = await cam.probe()
        assert probe.main.encoding == probe.sub.encoding == "H265"
    finally:
        await sim.server.close()


class _JpegOnlyServer(OnvifServer):
    """A camera whose profiles are all MJPEG: nothing Dozor records without transcoding."""

    def _profile_xml(self, spec, element):  # type: ignore[no-untyped-def]
        return super()._profile_xml(spec, element).replace(">H264<", ">JPEG<")


async def test_probe_without_h264_or_h265_profile_is_no_usable_profile():
    sim = await start_sim(make_camera(), _JpegOnlyServer)
    try:
        async with _camera(sim) as cam:
            with pytest.raises(NoUsableProfile, match=r"no H\.264/H\.265"):
                await cam.probe()
    finally:
        await sim.server.close()


class _DisabledSubProfileServer(OnvifServer):
    """A camera that lists a sub profile but refuses to stream it (disabled in its web UI)."""

    async def _get_stream_uri(self, req, request):  # type: ignore[no-untyped-def]
        if self._profile(req).token == "sub":
            raise SoapRequestError("ter:InvalidArgVal", "stream disabled")
        return await super()._get_stream_uri(req, request)


async def test_probe_skips_a_profile_the_camera_refuses_to_stream():
    sim = await start_sim(make_camera(), _DisabledSubProfileServer)
    try:
        async with _camera(sim) as cam:
            probe = await cam.probe()
        assert [p.token for p in probe.profiles] == ["main"]
        assert probe.main == probe.sub  # one stream: record it and detect on it
    finally:
        await sim.server.close()


async def test_snapshot_returns_the_cameras_jpeg_over_digest_auth(onvif_sim):
    async with _camera(onvif_sim) as cam:
        assert await cam.snapshot() == tiny_jpeg()


async def test_events_follow_scripted_motion_and_renew_and_unsubscribe(onvif_sim):
    """Motion 1-3 s of a 6 s loop: initial false, true at ~1 s, false at ~3 s, true at ~7 s."""
    seen: list[tuple[float, bool, bool]] = []
    async with _camera(onvif_sim) as cam:
        onvif_sim.restart_scene(0.0)
        async with contextlib.aclosing(
            cam.events(pull_timeout_s=2, subscription_s=10)
        ) as events:
            async for event in events:
                assert event.kind is CameraEventKind.MOTION
                assert event.topic == "VideoSource/MotionAlarm"
                assert event.source == "VideoSource_1"
                seen.append((onvif_sim.camera.elapsed_s(), event.active, event.initial))
                if len(seen) == 1:
                    (sub,) = onvif_sim.server._subscriptions.values()
                    first_termination = sub.terminates_at
                if len(seen) == 4:
                    break
        # Renewed at half its 10 s life, before the 4th event at ~7 s.
        assert sub.terminates_at > first_termination
        assert onvif_sim.server._subscriptions == {}  # unsubscribed on exit
    assert [(active, initial) for _, active, initial in seen] == [
        (False, True), (True, False), (False, False), (True, False)
    ]
    for (at_s, _, _), expected_s in zip(seen[1:], (1.0, 3.0, 7.0), strict=True):
        assert expected_s <= at_s < expected_s + 1.0, seen


async def test_events_subscribe_again_when_the_camera_forgets_the_subscription(onvif_sim):
    onvif_sim.restart_scene(4.0)  # quiet until 7 s
    async with _camera(onvif_sim) as cam, contextlib.aclosing(
        cam.events(pull_timeout_s=1)
    ) as events:
        first = await anext(events)
        onvif_sim.server._subscriptions.clear()  # as after a camera reboot
        second = await anext(events)
    assert (first.initial, first.active) == (True, False)
    assert (second.initial, second.active) == (True, False)  # a new subscription's state


async def test_events_raise_unreachable_when_the_camera_goes_offline(onvif_sim):
    onvif_sim.restart_scene(4.0)
    async with _camera(onvif_sim) as cam, contextlib.aclosing(
        cam.events(pull_timeout_s=1)
    ) as events:
        await anext(events)
        onvif_sim.camera.faults.offline_until_monotonic = time.monotonic() + 30
        with pytest.raises(CameraUnreachable):
            await anext(events)


async def test_wrong_password_is_auth_error(onvif_sim):
    with pytest.raises(CameraAuthError, match="password rejected"):
        async with _camera(onvif_sim, password="wrong"):
            pass


async def test_camera_clock_hours_off_still_authenticates(onvif_sim):
    """Quirk: cameras reject tokens signed with a clock far from theirs; we sign with theirs."""
    onvif_sim.camera.clock_offset_s = 3 * 3600.0
    async with _camera(onvif_sim) as cam:
        probe = await cam.probe()
    assert probe.clock_offset_s == pytest.approx(3 * 3600.0, abs=1.0)


async def test_set_clock_brings_camera_in_step(onvif_sim):
    onvif_sim.camera.clock_offset_s = 5000.0
    async with _camera(onvif_sim) as cam:
        await cam.set_clock()
        assert onvif_sim.camera.clock_offset_s == pytest.approx(0.0, abs=1.0)
        assert await cam.clock_offset_s() == pytest.approx(0.0, abs=1.0)


async def test_ptz_move_stop_presets_and_goto(onvif_sim):
    ptz = onvif_sim.server.ptz
    async with _camera(onvif_sim) as cam:
        await cam.ptz_move(0.5, -0.25)
        await asyncio.sleep(0.3)
        await cam.ptz_stop()
        assert ptz.pan > 0.1 and ptz.tilt < -0.05
        assert not ptz.moving(time.monotonic())
        presets = await cam.ptz_presets()
        assert [(p.token, p.name) for p in presets] == [("1", "Home"), ("2", "Gate"), ("3", "Road")]
        await cam.ptz_goto_preset("2")
        assert (ptz.pan, ptz.tilt, ptz.zoom) == (-0.5, 0.1, 0.3)
        with pytest.raises(CameraCommandError, match="no PTZ preset"):
            await cam.ptz_goto_preset("99")
        with pytest.raises(ValueError, match="pan velocity"):
            await cam.ptz_move(2.0, 0.0)


async def _plain_http_server(handler) -> tuple[web.AppRunner, int]:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _html_page(request: web.Request) -> web.Response:
    return web.Response(text="<html><body>Router login</body></html>", content_type="text/html")


async def _not_found(request: web.Request) -> web.Response:
    return web.Response(status=404, text="Not Found")


@pytest.mark.parametrize("handler", [_html_page, _not_found], ids=["html-200", "http-404"])
async def test_plain_http_server_is_not_onvif_device(handler):
    runner, port = await _plain_http_server(handler)
    try:
        with pytest.raises(NotOnvifDevice, match="not an ONVIF device"):
            async with OnvifCamera("127.0.0.1", port, USER, PASSWORD, timeout_s=5):
                pass
    finally:
        await runner.cleanup()


async def test_silent_listener_times_out_within_timeout_s():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts connections; nobody ever answers
    try:
        started = time.monotonic()
        with pytest.raises(CameraTimeout, match="no answer within 1 s"):
            async with OnvifCamera(
                "127.0.0.1", listener.getsockname()[1], USER, PASSWORD, timeout_s=1.0
            ):
                pass
        assert time.monotonic() - started < 1.0 + 1.0
    finally:
        listener.close()


async def test_closed_port_is_unreachable():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(CameraUnreachable) as caught:
        async with OnvifCamera("127.0.0.1", port, USER, PASSWORD, timeout_s=5):
            pass
    assert not isinstance(caught.value, CameraTimeout)


async def test_offline_camera_drops_connections_and_is_unreachable(onvif_sim):
    onvif_sim.camera.faults.offline_until_monotonic = time.monotonic() + 30
    with pytest.raises(CameraUnreachable):
        async with _camera(onvif_sim, timeout_s=3):
            pass
    onvif_sim.camera.faults.offline_until_monotonic = 0.0
    async with _camera(onvif_sim) as cam:
        assert (await cam.probe()).device.model == "SimCam"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.5:8080/onvif/device_service", ("10.0.0.5", 8080)),
        ("http://cam.local:8000", ("cam.local", 8000)),
        ("192.168.1.64:80", ("192.168.1.64", 80)),
        ("192.168.1.64", ("192.168.1.64", 80)),
    ],
)
def test_parse_device_url_accepts_the_documented_forms(url, expected):
    assert parse_device_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rtsp://10.0.0.5:554/x", "scheme"),
        ("http://10.0.0.5:80/cgi-bin/x", "path"),
        ("http://10.0.0.5:99999", "port"),
        ("", "empty"),
    ],
)
def test_parse_device_url_rejects_bad_urls_with_the_reason(url, message):
    with pytest.raises(ValueError, match=message):
        parse_device_url(url)


async def test_snapshot_falls_back_to_basic_auth_when_the_camera_asks_for_it():
    """Quirk: some firmwares protect the snapshot URL with Basic, not Digest."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    async def basic_only(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        return web.Response(body=tiny_jpeg(), content_type="image/jpeg")

    runner, port = await _plain_http_server(basic_only)
    try:
        cam = OnvifCamera("127.0.0.1", port, USER, PASSWORD)
        assert await cam._fetch_jpeg(f"http://127.0.0.1:{port}/snap.jpg") == tiny_jpeg()
        wrong = OnvifCamera("127.0.0.1", port, USER, "wrong")
        with pytest.raises(CameraAuthError, match="snapshot"):
            await wrong._fetch_jpeg(f"http://127.0.0.1:{port}/snap.jpg")
    finally:
        await runner.cleanup()
