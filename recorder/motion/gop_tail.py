"""Which inter frames the motion decoder may leave undecoded: the tail of a GOP.

At a fixed analysis rate (decode = "fps") every frame must still be decoded, because each
inter frame refers to the one before it. But the frames after the last one analysed in a
GOP refer only to each other, and the next keyframe refers to nothing: they can be skipped.
At 5 fps on a 15 fps stream with a 1 s GOP that is 2 frames in 15 (docs/motion.md).

The tail is predicted from the GOP length, which is only trusted after it has been the same
for `STABLE_GOPS` GOPs in a row (cameras set a fixed I-frame interval; "smart codec" modes
vary it). If a GOP turns out longer than predicted, frames after the skipped ones cannot be
decoded until the next keyframe: they are skipped too (no garbage reaches the detector, at
most one GOP goes unanalysed), and prediction stops until the length is stable again.
"""

from __future__ import annotations

STABLE_GOPS = 3


class GopTailSkipper:
    """Fed every packet's media time (seconds) and keyframe flag, in order; says whether it
    must be decoded. `next_sample_s` is the time of the next frame the detector will take."""

    def __init__(self, frame_s_hint: float = 1 / 15) -> None:
        """`frame_s_hint`: the stream's frame interval until two packets have shown it."""
        self._key_s: float | None = None  # the current GOP's keyframe
        self._gop_s: float | None = None  # the last GOP's length
        self._stable = 0  # GOPs in a row with that length
        self._frame_s = frame_s_hint  # the last positive step between packets
        self._last_s: float | None = None
        self._skipping = False  # frames of this GOP were skipped: the rest must be too
        self.skipped = 0
        self.mispredicted = 0

    def must_decode(self, media_s: float, is_keyframe: bool, next_sample_s: float) -> bool:
        if self._last_s is not None and media_s > self._last_s:
            self._frame_s = media_s - self._last_s
        self._last_s = media_s
        half_frame_s = self._frame_s / 2
        if is_keyframe:
            if self._key_s is not None:
                gop_s = media_s - self._key_s
                same = self._gop_s is not None and abs(gop_s - self._gop_s) < half_frame_s
                self._stable = self._stable + 1 if same else 0
                self._gop_s = gop_s
            self._key_s = media_s
            self._skipping = False
            return True
        if self._key_s is None:
            return True  # the decoder drops inter frames before the first keyframe anyway
        predicted_key_s = self._key_s + (self._gop_s or 0.0)
        if self._skipping:
            if media_s > predicted_key_s - half_frame_s:  # the keyframe did not come
                if self._stable:
                    self.mispredicted += 1
                self._stable = 0
            self.skipped += 1
            return False
        if (
            self._stable >= STABLE_GOPS
            and self._gop_s is not None
            and next_sample_s >= predicted_key_s - half_frame_s
        ):
            self._skipping = True  # nothing left to analyse before the next keyframe
            self.skipped += 1
            return False
        return True
