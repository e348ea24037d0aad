"""The simulator's RTSP server through real sockets: ffprobe, status codes, digest auth."""

from __future__ import annotations

import json
import subprocess

import av
import pytest

from camera_drivers.sim.rtsp_client import RawRtspClient


def ffprobe(url: str) -> dict:
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "10000000",
            "-select_streams", "v:0", "-show_streams", "-of", "json", url,
        ],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"][0]


@pytest.mark.parametrize(("stream", "size"), [("main", (1920, 1080)), ("sub", (640, 360))])
def test_ffprobe_reads_both_streams(camsim_one, stream, size):
    info = ffprobe(camsim_one.with_credentials(getattr(camsim_one, f"rtsp_{stream}")))
    assert info["codec_name"] == "h264"
    assert (info["width"], info["height"]) == size
    assert info["r_frame_rate"] == "15/1"
    assert info["pix_fmt"] == "yuv420p"


def test_ffprobe_reads_h265_streams(camsim):
    (cam,) = camsim(codec="h265", loop_s=4, motion=[(1, 3)], onvif=False)
    for url, size in ((cam.rtsp_main, (1920, 1080)), (cam.rtsp_sub, (640, 360))):
        info = ffprobe(cam.with_credentials(url))
        assert info["codec_name"] == "hevc"
        assert (info["width"], info["height"]) == size
        assert info["r_frame_rate"] == "15/1"


async def test_wrong_password_gets_401_with_a_digest_challenge(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main, camsim_one.user, "wrong") as client:
        resp = await client.request("DESCRIBE")
        assert resp.status == 401
        challenge = resp.headers["www-authenticate"]
        assert challenge.startswith("Digest ") and 'realm="' in challenge and 'nonce="' in challenge


async def test_right_password_describes_with_sprop_parameter_sets(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main, camsim_one.user, camsim_one.password) as c:
        resp = await c.request("DESCRIBE")
        assert resp.status == 200
        sdp = resp.body.decode()
        assert "a=rtpmap:96 H264/90000" in sdp
        assert "sprop-parameter-sets=" in sdp and "packetization-mode=1" in sdp


async def test_options_needs_no_auth_and_lists_methods(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main) as client:
        resp = await client.request("OPTIONS")
        assert resp.status == 200
        for method in ("DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER"):
            assert method in resp.headers["public"]


def test_pyav_open_with_wrong_password_fails_with_a_clear_error(camsim_one):
    url = camsim_one.with_credentials(camsim_one.rtsp_main, password="wrong")
    with pytest.raises(av.FFmpegError) as info:
        av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=(10, 5))
    assert "401" in str(info.value) or "Unauthorized" in str(info.value)


async def test_unknown_path_gets_404(camsim_one):
    url = camsim_one.rtsp_main.replace("/main", "/nosuch")
    async with RawRtspClient(url, camsim_one.user, camsim_one.password) as client:
        assert (await client.request("DESCRIBE")).status == 404


async def test_malformed_request_gets_400(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main) as client:
        resp = await client.request("", raw=b"HELLO THERE\r\n\r\n")
        assert resp.status == 400
        assert b"malformed request line" in resp.body


async def test_request_without_cseq_gets_400(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main) as client:
        raw = f"OPTIONS {camsim_one.rtsp_main} RTSP/1.0\r\n\r\n".encode()
        resp = await client.request("", raw=raw)
        assert resp.status == 400 and b"CSeq" in resp.body


async def test_udp_transport_gets_461(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main, camsim_one.user, camsim_one.password) as c:
        resp = await c.request(
            "SETUP", camsim_one.rtsp_main + "/trackID=0",
            {"Transport": "RTP/AVP;unicast;client_port=5000-5001"},
        )
        assert resp.status == 461


async def test_play_without_setup_gets_454(camsim_one):
    async with RawRtspClient(camsim_one.rtsp_main, camsim_one.user, camsim_one.password) as c:
        assert (await c.request("PLAY")).status == 454


async def test_play_starts_at_a_keyframe_announced_in_rtp_info(camsim_one):
    from camera_drivers.sim.rtp import parse_rtp

    async with RawRtspClient(camsim_one.rtsp_sub, camsim_one.user, camsim_one.password) as c:
        play = await c.start()
        info = dict(kv.split("=", 1) for kv in play.headers["rtp-info"].split(";")[1:])
        channel, data = await c.read_interleaved(timeout_s=5)
        first = parse_rtp(channel, data)
        assert channel == 0
        assert first.seq == int(info["seq"]) and first.timestamp == int(info["rtptime"])
        # A keyframe access unit starts with its SPS.
        assert first.payload[0] & 0x1F == 7
        keepalive = await c.request("GET_PARAMETER")
        assert keepalive.status == 200
        teardown = await c.request("TEARDOWN")
        assert teardown.status == 200


async def test_clients_of_one_stream_get_the_same_packets(camsim_one):
    from camera_drivers.sim.rtp import parse_rtp

    clients = [
        RawRtspClient(camsim_one.rtsp_sub, camsim_one.user, camsim_one.password)
        for _ in range(3)
    ]
    firsts = []
    try:
        for i, c in enumerate(clients):
            await c.connect()
            await c.start(channel=i * 2)
        for i, c in enumerate(clients):
            channel, data = await c.read_interleaved(timeout_s=5)
            assert channel == i * 2
            firsts.append(parse_rtp(channel, data))
    finally:
        for c in clients:
            await c.close()
    assert len({(p.ssrc, p.timestamp) for p in firsts}) <= 2  # joined at the same or next GOP
