"""dozor-camera run as a subprocess against the simulator's ONVIF server and responder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from camera_drivers.sim.discovery_responder import DiscoveryResponder
from tests.camera_drivers.conftest import PASSWORD, USER, make_camera, tiny_jpeg
from tests.camera_drivers.netns import NetnsLoop, multicast_netns

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "camera_drivers.cli"]


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_probe_prints_what_dozor_would_record(onvif_sim):
    onvif_sim.camera.clock_offset_s = 42.0
    code, out, err = await _run(
        "probe", f"127.0.0.1:{onvif_sim.port}", "--user", USER, "--password", PASSWORD
    )
    assert code == 0, err
    assert "Dozor SimCam" in out
    assert f"H264 1920x1080 15 fps  {onvif_sim.camera.rtsp_url('main')}" in out
    assert f"H264 640x360 15 fps  {onvif_sim.camera.rtsp_url('sub')}" in out
    assert "ahead of this machine" in out
    assert "supports  events, ptz, snapshot" in out


async def test_probe_json_has_profiles_uris_and_clock(onvif_sim):
    code, out, err = await _run(
        "probe", onvif_sim.camera.onvif_url(), "--user", USER, "--password", PASSWORD, "--json"
    )
    assert code == 0, err
    probe = json.loads(out)
    assert probe["main"]["stream_uri"] == onvif_sim.camera.rtsp_url("main")
    assert (probe["sub"]["width"], probe["sub"]["height"]) == (640, 360)
    assert abs(probe["clock_offset_s"]) < 1.0
    assert probe["capabilities"] == {"events": True, "ptz": True, "snapshot": True}


async def test_snapshot_writes_the_jpeg(onvif_sim, tmp_path):
    target = tmp_path / "frame.jpg"
    code, _, err = await _run(
        "snapshot", f"127.0.0.1:{onvif_sim.port}", "--user", USER, "--password", PASSWORD,
        "-o", str(target),
    )
    assert code == 0, err
    assert target.read_bytes() == tiny_jpeg()


async def test_wrong_password_is_one_clear_line_and_exit_1(onvif_sim):
    code, _, err = await _run(
        "probe", f"127.0.0.1:{onvif_sim.port}", "--user", USER, "--password", "nope"
    )
    assert code == 1
    assert err.count("\n") == 1 and "password rejected" in err and "Traceback" not in err


async def test_bad_url_is_a_usage_error():
    code, _, err = await _run("probe", "rtsp://127.0.0.1:554/", "--user", "u", "--password", "p")
    assert code == 2
    assert err.strip() == "dozor-camera: camera address must be http://host:port, got scheme 'rtsp'"


def test_discover_prints_a_table_of_cameras():
    cameras = [make_camera(index=i, name=f"gate{i}") for i in (1, 2)]
    for i, camera in enumerate(cameras):
        camera.onvif_port = 18080 + i
    with multicast_netns("cli") as name:
        ns = NetnsLoop(name)
        responder = DiscoveryResponder(cameras, "127.0.0.1")
        try:
            ns.run(responder.start())
            result = subprocess.run(
                ["ip", "netns", "exec", name, *CLI, "discover", "--interface", "127.0.0.1",
                 "--timeout", "1"],
                cwd=REPO, capture_output=True, text=True, timeout=60,
            )
        finally:
            ns.run(responder.close())
            ns.close()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "HARDWARE", "ADDRESS", "ONVIF"]
    assert lines[1].split() == [
        "gate1", "SimCam", "127.0.0.1", "http://127.0.0.1:18080/onvif/device_service"
    ]
    assert lines[2].split()[0] == "gate2"
