"""GopTailSkipper alone (media times in, decisions out) and inside MotionSink on real H.264."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from recorder.motion.config import MotionConfig
from recorder.motion.gop_tail import STABLE_GOPS, GopTailSkipper
from recorder.motion.sink import MotionSink
from tests.recorder.motion.conftest import feed_clip

FPS = 15


def run(gop_frames: list[int], sample_fps: float = 5.0) -> tuple[list[bool], GopTailSkipper]:
    """Feed GOPs of the given lengths at 15 fps, sampling like MotionSink's fps grid."""
    skipper = GopTailSkipper(1 / FPS)
    step = 1 / sample_fps
    next_sample = float("-inf")
    decoded = []
    frame = 0
    for length in gop_frames:
        for i in range(length):
            t = frame / FPS
            keep = skipper.must_decode(t, i == 0, next_sample)
            decoded.append(keep)
            if keep and t >= next_sample - 1e-9:
                nxt = next_sample + step
                next_sample = nxt if t < nxt else t + step
            frame += 1
    return decoded, skipper


def test_a_stable_gop_loses_its_tail_after_the_last_analysed_frame() -> None:
    decoded, skipper = run([15] * 6)
    gops = [decoded[i : i + 15] for i in range(0, 90, 15)]
    for gop in gops[: STABLE_GOPS + 1]:  # the length is learnt first
        assert all(gop)
    for gop in gops[STABLE_GOPS + 1 :]:  # samples at frames 0, 3, 6, 9, 12; 13 and 14 skipped
        assert gop == [True] * 13 + [False, False]
    assert skipper.skipped == 4 and skipper.mispredicted == 0


def test_a_longer_gop_than_predicted_skips_to_its_keyframe_and_stops_predicting() -> None:
    decoded, skipper = run([15] * 5 + [30] + [15] * 5)
    long_gop = decoded[75:105]
    assert long_gop == [True] * 13 + [False] * 17  # nothing after the skipped refs is decoded
    assert skipper.mispredicted == 1
    after = [decoded[i : i + 15] for i in range(105, 180, 15)]
    assert all(all(gop) for gop in after[:STABLE_GOPS + 1])  # learnt again before skipping
    assert after[-1] == [True] * 13 + [False, False]


def test_every_frame_is_decoded_when_every_frame_is_analysed() -> None:
    decoded, skipper = run([15] * 8, sample_fps=FPS)
    assert all(decoded) and skipper.skipped == 0


def encode(path, gop_frames: list[int], motion_from: int, fps: int = FPS) -> None:
    """640x360 H.264 with keyframes exactly where the GOP lengths put them; a square moves
    across from frame `motion_from` on."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"bf": "0", "g": "1000", "sc_threshold": "0", "preset": "ultrafast"}
        total = sum(gop_frames)
        keys = {sum(gop_frames[:i]) for i in range(len(gop_frames))}
        for n in range(total):
            img = np.full((360, 640, 3), 90, np.uint8)
            if n >= motion_from:
                x = 40 + (n - motion_from) * 12
                img[140:240, x : x + 60] = 230
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pict_type = PictureType.I if n in keys else PictureType.NONE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def feed(path, skip: bool) -> tuple[MotionSink, list]:
    changes: list = []
    sink = MotionSink("cam", MotionConfig(decode="fps", fps=5.0), changes.append,
                      skip_gop_tails=skip)
    feed_clip(sink, path)
    return sink, changes


@pytest.mark.parametrize(
    ("gops", "motion_from"),
    [([15] * 12, 100), ([15] * 5 + [40] + [15] * 5, 150)],  # motion once skipping is on again
    ids=["fixed", "one-longer-gop"],
)
def test_skipping_tails_changes_no_analysed_frame_and_no_event(
    tmp_path, gops: list[int], motion_from: int
) -> None:
    """A GOP longer than predicted goes unanalysed after its skipped tail (docs/motion.md);
    everything else is analysed exactly as without skipping."""
    path = tmp_path / "clip.mp4"
    encode(path, gops, motion_from)
    with_skip, changes = feed(path, skip=True)
    without, reference = feed(path, skip=False)
    assert with_skip.frames_skipped > 0 and without.frames_skipped == 0
    assert with_skip.frames_decoded == without.frames_decoded - with_skip.frames_skipped
    assert with_skip._decode_errors == 0
    if gops[5] == 15:  # a fixed GOP: exactly the frames the detector would have taken
        assert with_skip.frames_processed == without.frames_processed
    else:  # the long GOP goes unanalysed after its skipped tail: from frame 13 on, 1 in 3
        assert without.frames_processed - with_skip.frames_processed == (gops[5] - 13) // 3
    # the same events; after an unanalysed stretch the 5 fps grid restarts at the next
    # keyframe, so a start may move by less than one sample interval
    assert [c.change for c in changes] == [c.change for c in reference]
    for got, want in zip(changes, reference, strict=True):
        assert abs(got.start_wall - want.start_wall) < 0.2
