"""Clips: encoded once, cached, closed GOPs at a fixed interval, loop seamlessly."""

from __future__ import annotations

import av

from camera_drivers.sim.clips import StreamProfile, load_clip
from camera_drivers.sim.scene import MovingObject, SceneSpec

SMALL = StreamProfile("sub", 320, 180, 300_000)
SCENE = SceneSpec(loop_s=3, fps=10, gop_s=1.0, objects=(MovingObject(1.0, 2.0),))


def _decode_all(clip, frames):
    ctx = av.CodecContext.create({"h264": "h264", "h265": "hevc"}[clip.codec], "r")
    out = []
    for frame in frames:
        data = b"".join(b"\x00\x00\x00\x01" + nal for nal in frame.nals)
        for packet in ctx.parse(data):
            out.extend(ctx.decode(packet))
    for packet in ctx.parse(None):
        out.extend(ctx.decode(packet))
    out.extend(ctx.decode(None))
    return out


def test_clip_has_keyframes_exactly_every_gop_and_parameter_sets(tmp_path):
    clip = load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    assert len(clip.frames) == 30
    assert [i for i, f in enumerate(clip.frames) if f.keyframe] == [0, 10, 20]
    sps, pps = clip.parameter_sets
    assert sps[0] & 0x1F == 7 and pps[0] & 0x1F == 8
    assert "sprop-parameter-sets=" in clip.sdp_fmtp()


def test_clip_is_cached_on_disk_and_read_back_identical(tmp_path):
    first = load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    files = list(tmp_path.glob("*.clip"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    assert second == first
    assert files[0].stat().st_mtime_ns == mtime  # not encoded again
    other = load_clip(SceneSpec(loop_s=3, fps=10, objects=()), SMALL, "h264", directory=tmp_path)
    assert other != first and len(list(tmp_path.glob("*.clip"))) == 2


def test_clip_loops_seamlessly_through_the_decoder(tmp_path):
    clip = load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    decoded = _decode_all(clip, clip.frames + clip.frames + clip.frames[:5])
    assert len(decoded) == 65
    assert (decoded[0].width, decoded[0].height) == (320, 180)


def test_h265_clip_has_vps_sps_pps(tmp_path):
    clip = load_clip(SCENE, SMALL, "h265", directory=tmp_path)
    assert [(p[0] >> 1) & 0x3F for p in clip.parameter_sets] == [32, 33, 34]
    assert clip.sdp_fmtp().startswith("sprop-vps=")
    assert len(_decode_all(clip, clip.frames)) == 30


def test_corrupt_cache_file_is_encoded_again(tmp_path):
    load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    (path,) = tmp_path.glob("*.clip")
    path.write_bytes(path.read_bytes()[:1000])
    clip = load_clip(SCENE, SMALL, "h264", directory=tmp_path)
    assert len(clip.frames) == 30
