"""The alert snapshot: one JPEG of the event's best frame with its motion box drawn.

Colour is the default: the best frame is converted to BGR only when a snapshot is made
(once per 'new', 'end', or an 'update' whose peak grew), so the per-frame path stays luma-only.
With `colour=False` the Y plane alone gives a grey JPEG.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from recorder.motion.detector import Box
from recorder.motion.frames import luma_plane

JPEG_QUALITY = 80
_RED_BGR = (0, 0, 255)


def snapshot_jpeg(
    frame: av.VideoFrame | np.ndarray, box: Box | None, *, colour: bool = True
) -> bytes:
    """Encode `frame` (a decoded frame, or a uint8 grey/BGR array) with `box` drawn."""
    if isinstance(frame, np.ndarray):
        img = np.ascontiguousarray(frame)
    elif colour:
        img = frame.to_ndarray(format="bgr24")
    else:
        img = np.ascontiguousarray(luma_plane(frame))
    if box is not None:
        h, w = img.shape[:2]
        thick = max(2, w // 320)
        p0 = (int(box.x * w), int(box.y * h))
        p1 = (min(int((box.x + box.w) * w), w - 1), min(int((box.y + box.h) * h), h - 1))
        cv2.rectangle(img, p0, p1, _RED_BGR if img.ndim == 3 else 255, thick)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"snapshot: JPEG encoding failed for a {img.shape} image")
    return buf.tobytes()
