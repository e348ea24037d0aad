"""The video media of DESCRIBE answers as the simulator, GStreamer and cameras write them."""

from __future__ import annotations

import base64

import pytest

from camera_drivers.rtsp.errors import RtspProtocolError, RtspUnsupported
from camera_drivers.rtsp.sdp import parse_sdp, resolve_control_url
from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.clips import Clip
from camera_drivers.sim.rtsp_server import RtspServer
from camera_drivers.sim.scene import SceneSpec
from camera_drivers.sim.streamer import MediaStream, PacketizedClip, Streamer

# The simulator's H.264 main stream announces these (sprop-parameter-sets, as captured).
SIM_SPROP = "Z2QAFqy0BQF/ywgAAAMACAAAAwD0eLF1,aO88sA=="
SIM_SPS = base64.b64decode("Z2QAFqy0BQF/ywgAAAMACAAAAwD0eLF1")
SIM_PPS = base64.b64decode("aO88sA==")
H265_VPS = bytes([0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF, 0x01, 0x60])
H265_SPS = bytes([0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xB0])
H265_PPS = bytes([0x44, 0x01, 0xC1, 0x72, 0xB4, 0x62, 0x40])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sim_sdp(codec: str, parameter_sets: tuple[bytes, ...]) -> tuple[str, str]:
    """The simulator's DESCRIBE answer for a clip with these parameter sets, and its base."""
    camera = SimCamera(index=1, name="cam1", host="127.0.0.1", user="u", password="p",
                       scene=SceneSpec(loop_s=2.0, fps=15), codec=codec, rtsp_port=8554)
    clip = Clip(codec=codec, width=1920, height=1080, fps=15, gop_frames=15, frames=(),
                parameter_sets=parameter_sets)
    stream = MediaStream(camera, "main", PacketizedClip(clip))
    server = RtspServer(camera, {"main": stream}, Streamer())
    return server.sdp(stream, "127.0.0.1").decode(), "rtsp://127.0.0.1:8554/cam1/main/"


def video_sdp(rtpmap: str = "96 H264/90000", fmtp: str = "96 packetization-mode=1",
              media: str = "m=video 0 RTP/AVP 96", control: str = "trackID=1") -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 10.0.0.5", "s=cam", "t=0 0", media, f"a=rtpmap:{rtpmap}",
             f"a=fmtp:{fmtp}", f"a=control:{control}"]
    return "\r\n".join(lines) + "\r\n"


# -- real answers --------------------------------------------------------------------------


def test_the_simulators_h264_sdp():
    text, base = sim_sdp("h264", (SIM_SPS, SIM_PPS))
    assert f"sprop-parameter-sets={SIM_SPROP}" in text
    media = parse_sdp(text, base)
    assert (media.codec, media.payload_type, media.clock_rate_hz) == ("h264", 96, 90000)
    assert media.control_url == "rtsp://127.0.0.1:8554/cam1/main/trackID=0"
    assert media.parameter_sets == (SIM_SPS, SIM_PPS)
    assert media.parameter_sets[0][0] & 0x1F == 7 and media.parameter_sets[1][0] & 0x1F == 8
    assert media.fmtp["packetization-mode"] == "1"
    assert media.fmtp["profile-level-id"] == "640016"


def test_the_simulators_h265_sdp():
    text, base = sim_sdp("h265", (H265_VPS, H265_SPS, H265_PPS))
    media = parse_sdp(text, base)
    assert (media.codec, media.payload_type, media.clock_rate_hz) == ("hevc", 96, 90000)
    assert media.control_url == "rtsp://127.0.0.1:8554/cam1/main/trackID=0"
    assert media.parameter_sets == (H265_VPS, H265_SPS, H265_PPS)


# Long a=fmtp lines, split here to fit the line length.
GSTREAMER_FMTP = (f"packetization-mode=1;sprop-parameter-sets={SIM_SPROP};"
                  "profile-level-id=640016;level-asymmetry-allowed=1")
HIKVISION_FMTP = ("profile-level-id=420029; packetization-mode=1; "
                  "sprop-parameter-sets=Z00AKpWoHgCJ+WEAAAMD6AAAdTAh,aO48gA==")
AXIS_FMTP = ("packetization-mode=1;profile-level-id=4d0029;"
             "sprop-parameter-sets=Z00AKeKQDwBE/LgLcBAQGkHiRFQ=,aO48gA==")

GSTREAMER_SDP = f"""v=0
o=- 1188340656180883 1 IN IP4 127.0.0.1
s=Session streamed with GStreamer
i=rtsp-server
t=0 0
a=tool:GStreamer
a=type:broadcast
a=control:*
a=range:npt=now-
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:2000
a=rtpmap:96 H264/90000
a=framerate:15
a=fmtp:96 {GSTREAMER_FMTP}
a=ts-refclk:local
a=mediaclk:sender
a=control:stream=0
""".replace("\n", "\r\n")


def test_a_gstreamer_rtsp_server_sdp():
    media = parse_sdp(GSTREAMER_SDP, "rtsp://127.0.0.1:8554/test/")
    assert media.codec == "h264"
    assert media.control_url == "rtsp://127.0.0.1:8554/test/stream=0"
    assert media.parameter_sets == (SIM_SPS, SIM_PPS)
    assert media.fmtp["level-asymmetry-allowed"] == "1"


HIKVISION_SDP = f"""v=0
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast
m=audio 0 RTP/AVP 0
c=IN IP4 0.0.0.0
b=AS:50
a=recvonly
a=rtpmap:0 PCMU/8000
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:5000
a=recvonly
a=x-dimensions:1920,1080
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 {HIKVISION_FMTP}
a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;
a=appversion:1.0
"""


def test_a_hikvision_sdp_with_audio_first_and_absolute_control_urls():
    base = "rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast"
    media = parse_sdp(HIKVISION_SDP, base)
    assert (media.codec, media.payload_type) == ("h264", 96)
    assert media.control_url == (
        "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast"
    )
    assert [p[:4].hex() for p in media.parameter_sets] == ["674d002a", "68ee3c80"]
    assert media.fmtp["packetization-mode"] == "1"  # spaces after ";" are not part of names


AXIS_SDP = f"""v=0
o=- 12188354012471451873 1 IN IP4 192.168.0.90
s=Session streamed with GStreamer
i=rtsp-server
t=0 0
a=tool:GStreamer
a=type:broadcast
a=range:npt=now-
a=control:rtsp://192.168.0.90:554/axis-media/media.amp?videocodec=h264
m=audio 0 RTP/AVP 97
c=IN IP4 0.0.0.0
a=rtpmap:97 MPEG4-GENERIC/16000/1
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1408;sizelength=13
a=control:rtsp://192.168.0.90:554/axis-media/media.amp/stream=1?videocodec=h264
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:50000
a=rtpmap:96 H264/90000
a=fmtp:96 {AXIS_FMTP}
a=control:rtsp://192.168.0.90:554/axis-media/media.amp/stream=0?videocodec=h264
a=framerate:30.000000
"""


def test_an_axis_sdp_with_absolute_control_urls():
    media = parse_sdp(AXIS_SDP, "rtsp://192.168.0.90:554/axis-media/media.amp?videocodec=h264")
    assert media.control_url == (
        "rtsp://192.168.0.90:554/axis-media/media.amp/stream=0?videocodec=h264"
    )
    assert [p[:4].hex() for p in media.parameter_sets] == ["674d0029", "68ee3c80"]


def test_line_endings_and_spaces_do_not_matter():
    text = video_sdp(fmtp=f"96 packetization-mode=1; sprop-parameter-sets= {SIM_SPROP} ")
    loose = "\n".join("  " + line.replace(":", ":  ", 1) for line in text.split("\r\n"))
    for variant in (text, text.replace("\r\n", "\n"), loose):
        media = parse_sdp(variant, "rtsp://h/s")
        assert media.parameter_sets == (SIM_SPS, SIM_PPS)
        assert media.control_url == "rtsp://h/s/trackID=1"


def test_h265_parameter_sets_come_in_vps_sps_pps_order():
    fmtp = (f"96 sprop-sps={b64(H265_SPS)};sprop-pps={b64(H265_PPS)};"
            f"sprop-vps={b64(H265_VPS)};sprop-max-don-diff=0")
    media = parse_sdp(video_sdp(rtpmap="96 H265/90000", fmtp=fmtp), "rtsp://h/s")
    assert media.codec == "hevc"
    assert media.parameter_sets == (H265_VPS, H265_SPS, H265_PPS)
    assert media.fmtp["sprop-max-don-diff"] == "0"


def test_parameter_sets_are_empty_when_not_announced():
    media = parse_sdp(video_sdp(fmtp="96 packetization-mode=1"), "rtsp://h/s")
    assert media.parameter_sets == ()
    media = parse_sdp(video_sdp(rtpmap="96 h265/90000", fmtp="96 profile-id=1"), "rtsp://h/s")
    assert media.codec == "hevc" and media.parameter_sets == ()


def test_base64_without_padding_is_accepted():
    fmtp = "96 sprop-parameter-sets=Z2QAFqy0BQF/ywgAAAMACAAAAwD0eLF1,aO88sA,"  # trailing comma too
    media = parse_sdp(video_sdp(fmtp=fmtp), "rtsp://h/s")
    assert media.parameter_sets == (SIM_SPS, SIM_PPS)


def test_the_first_h264_or_h265_video_is_chosen():
    text = "\r\n".join([
        "v=0", "s=-", "t=0 0",
        "m=video 0 RTP/AVP 26", "a=control:track-jpeg",
        "m=video 0 RTP/AVP 97 98", "a=rtpmap:97 MP4V-ES/90000", "a=rtpmap:98 H265/90000",
        "a=control:track-hevc",
        "m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=control:track-h264",
    ])
    media = parse_sdp(text, "rtsp://h/s")
    assert (media.codec, media.payload_type) == ("hevc", 98)
    assert media.control_url == "rtsp://h/s/track-hevc"


# -- what this client does not read --------------------------------------------------------


def test_mjpeg_only_is_unsupported_and_named():
    text = "v=0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:trackID=1\r\n"
    with pytest.raises(RtspUnsupported, match=r"JPEG/90000 \(payload 26\).*H\.264 and H\.265"):
        parse_sdp(text, "rtsp://h/s")


def test_another_dynamic_codec_is_unsupported_and_named():
    with pytest.raises(RtspUnsupported, match="MP4V-ES/90000"):
        parse_sdp(video_sdp(rtpmap="96 MP4V-ES/90000", fmtp="96 profile-level-id=1"), "rtsp://h")


def test_no_video_media_is_a_protocol_error():
    text = "v=0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    for sdp in (text, "v=0\r\ns=-\r\n", ""):
        with pytest.raises(RtspProtocolError, match="SDP has no video media"):
            parse_sdp(sdp, "rtsp://h/s")


@pytest.mark.parametrize(
    ("rtpmap", "fmtp", "parameter"),
    [
        ("96 H264/90000", "96 sprop-parameter-sets=Z2QA!!!,aO88sA==", "sprop-parameter-sets"),
        ("96 H264/90000", "96 sprop-parameter-sets=Z2QAF", "sprop-parameter-sets"),
        ("96 H265/90000", f"96 sprop-vps={b64(H265_VPS)};sprop-sps=QgE*", "sprop-sps"),
    ],
)
def test_bad_base64_is_a_protocol_error_naming_the_parameter(rtpmap, fmtp, parameter):
    with pytest.raises(RtspProtocolError, match=parameter):
        parse_sdp(video_sdp(rtpmap=rtpmap, fmtp=fmtp), "rtsp://h/s")


def test_h264_interleaved_packetization_mode_is_unsupported():
    with pytest.raises(RtspUnsupported, match="packetization-mode=2"):
        parse_sdp(video_sdp(fmtp=f"96 packetization-mode=2;sprop-parameter-sets={SIM_SPROP}"),
                  "rtsp://h/s")


def test_h265_with_decoding_order_numbers_is_unsupported():
    with pytest.raises(RtspUnsupported, match="sprop-max-don-diff"):
        parse_sdp(video_sdp(rtpmap="96 H265/90000", fmtp="96 sprop-max-don-diff=2"), "rtsp://h")


def test_a_dynamic_payload_type_without_rtpmap_is_a_protocol_error():
    text = "v=0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=1\r\n"
    with pytest.raises(RtspProtocolError, match="no a=rtpmap for dynamic video payload type 96"):
        parse_sdp(text, "rtsp://h/s")


@pytest.mark.parametrize(
    "text",
    [
        video_sdp(rtpmap="96 H264/ninety"),
        video_sdp(rtpmap="x H264/90000"),
        video_sdp(media="m=video 0 RTP/AVP ninety-six"),
        video_sdp(media="m=video 0"),
        video_sdp(fmtp="96 packetization-mode=one"),
    ],
)
def test_malformed_video_lines_are_protocol_errors(text):
    with pytest.raises(RtspProtocolError, match="malformed SDP"):
        parse_sdp(text, "rtsp://h/s")


# -- control URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "control", "url"),
    [
        ("rtsp://h/s", "trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h/s/", "trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h/s/", "/trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h:554/", "trackID=1", "rtsp://h:554/trackID=1"),
        # Appended after the query, as FFmpeg does and cameras expect.
        ("rtsp://h/live?ch=1", "trackID=1", "rtsp://h/live?ch=1/trackID=1"),
        ("rtsp://h/s", "*", "rtsp://h/s"),
        ("rtsp://h/s", None, "rtsp://h/s"),
        ("rtsp://h/s", "rtsp://other:8554/x/trackID=0", "rtsp://other:8554/x/trackID=0"),
    ],
)
def test_control_url_resolution(base, control, url):
    assert resolve_control_url(control, base) == url


def sdp_with_controls(session: str | None, media: str | None) -> str:
    lines = ["v=0", "s=-", "t=0 0"]
    lines += [f"a=control:{session}"] if session is not None else []
    lines += ["m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000"]
    lines += [f"a=control:{media}"] if media is not None else []
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    ("session", "media", "url"),
    [
        ("session", "video", "rtsp://h/s/video"),  # media level first
        ("rtsp://h/s/", "video", "rtsp://h/s/video"),
        ("session", None, "rtsp://h/s/session"),  # then session level
        ("*", None, "rtsp://h/s"),
        (None, "*", "rtsp://h/s"),
        (None, None, "rtsp://h/s"),  # then the base
    ],
)
def test_media_control_wins_over_session_control_which_wins_over_the_base(session, media, url):
    assert parse_sdp(sdp_with_controls(session, media), "rtsp://h/s").control_url == url
