"""The simulator's ONVIF server spoken to in raw SOAP: authentication rules and bad requests."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket

import aiohttp
import pytest

from camera_drivers.sim.onvif_server import parse_duration_s
from camera_drivers.sim.soap import NS, format_utc, password_digest
from tests.camera_drivers.conftest import PASSWORD, USER, make_camera, start_sim


def _envelope(body: str, header: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{NS["env"]}" xmlns:tds="{NS["tds"]}" xmlns:tt="{NS["tt"]}" '
        f'xmlns:wsse="{NS["wsse"]}" xmlns:wsu="{NS["wsu"]}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _token(password: str = PASSWORD, created: dt.datetime | None = None, text: bool = False) -> str:
    created_s = format_utc(created or dt.datetime.now(dt.UTC))
    nonce = os.urandom(16)
    if text:
        pw = f'<wsse:Password Type="...#PasswordText">{password}</wsse:Password>'
    else:
        pw = f"<wsse:Password>{password_digest(nonce, created_s, password)}</wsse:Password>"
    return (
        f"<wsse:Security><wsse:UsernameToken><wsse:Username>{USER}</wsse:Username>{pw}"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created_s}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


_BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture
async def post(onvif_sim):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:

        async def send(data: bytes) -> tuple[int, str]:
            async with session.post(onvif_sim.camera.onvif_url(), data=data) as response:
                return response.status, await response.text()

        yield send


async def test_system_date_and_time_needs_no_auth_and_honours_the_clock_offset(onvif_sim, post):
    onvif_sim.camera.clock_offset_s = 2 * 86400.0
    status, text = await post(_envelope("<tds:GetSystemDateAndTime/>"))
    assert status == 200
    in_two_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert f"<tt:Day>{in_two_days.day}</tt:Day>" in text


@pytest.mark.parametrize(
    "header",
    [
        "",
        _token(password="wrong"),
        _token(created=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)),
    ],
    ids=["no-token", "wrong-password", "stale-created"],
)
async def test_bad_or_missing_token_is_a_not_authorized_fault(post, header):
    status, text = await post(_envelope("<tds:GetDeviceInformation/>", header))
    assert status == 400
    assert "ter:NotAuthorized" in text and "env:Sender" in text


async def test_password_text_tokens_are_accepted_like_on_most_cameras(post):
    status, text = await post(_envelope("<tds:GetDeviceInformation/>", _token(text=True)))
    assert status == 200 and "<tds:Model>SimCam</tds:Model>" in text


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        (b"<not-soap", "ter:WellFormed"),
        (_envelope("<tds:FactoryDefault/>", _token()), "ter:ActionNotSupported"),
        (
            _envelope(
                "<tds:SetSystemDateAndTime><tds:DateTimeType>Manual</tds:DateTimeType>"
                "<tds:UTCDateTime><tt:Time><tt:Hour>1</tt:Hour><tt:Minute>0</tt:Minute>"
                "<tt:Second>0</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year>"
                "<tt:Month>13</tt:Month><tt:Day>1</tt:Day></tt:Date></tds:UTCDateTime>"
                "</tds:SetSystemDateAndTime>",
                _token(),
            ),
            "ter:InvalidDateTime",
        ),
    ],
    ids=["not-xml", "unsupported", "month-13"],
)
async def test_bad_requests_get_a_fault_naming_the_problem(post, body, subcode):
    status, text = await post(body)
    assert status == 400 and subcode in text


async def test_snapshot_challenges_then_serves_jpeg_with_basic_auth(onvif_sim):
    url = f"http://127.0.0.1:{onvif_sim.port}/onvif/snapshot.jpg"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith('Digest realm="dozor-camsim"')
        async with session.get(url, headers=_BASIC) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert (await response.read())[:2] == b"\xff\xd8"
        onvif_sim.camera.snapshot_jpeg = None  # media layer not running yet
        async with session.get(url, headers=_BASIC) as response:
            assert response.status == 503


async def test_close_stops_listening():
    sim = await start_sim(make_camera())
    port = sim.port
    await sim.server.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_durations():
    assert parse_duration_s("PT60S") == 60
    assert parse_duration_s("PT1M30.5S") == 90.5
    assert parse_duration_s("P1DT1H") == 90000


async def test_home_assistant_style_pullpoint_manager_gets_motion(onvif_sim):
    """onvif-zeep-async's own PullPointManager (as Home Assistant uses it) works too."""
    from onvif import ONVIFCamera

    device = ONVIFCamera("127.0.0.1", onvif_sim.port, USER, PASSWORD, no_cache=True)
    try:
        await device.update_xaddrs()
        manager = await device.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
        service = manager.get_service()
        onvif_sim.restart_scene(0.0)  # quiet now, motion in 1 s
        states = []
        while len(states) < 2:
            answer = await service.PullMessages({"Timeout": "PT3S", "MessageLimit": 10})
            for msg in answer.NotificationMessage or []:
                assert msg.Topic._value_1 == "tns1:VideoSource/MotionAlarm"
                states.append(msg.Message._value_1.Data.SimpleItem[0].Value)
        await manager.shutdown()
        assert states == ["false", "true"]
        assert onvif_sim.server._subscriptions == {}
    finally:
        await device.close()
