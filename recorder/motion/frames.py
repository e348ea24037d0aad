"""Reading decoded frames without colour conversion."""

from __future__ import annotations

import av
import numpy as np

# Pixel formats whose first plane is 8-bit luma (planar or semi-planar YUV, and grey).
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
     "gray", "yuv411p", "yuv440p", "yuvj440p"}
)


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The frame's Y plane as an HxW uint8 view (no copy); rows may be padded (line_size).

    Other pixel formats (10-bit, RGB) fall back to a grey conversion, which costs ~1 ms.
    """
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        # VideoPlane implements the buffer protocol; PyAV's stubs do not say so
        rows = np.frombuffer(plane, np.uint8).reshape(  # type: ignore[call-overload]
            frame.height, plane.line_size
        )
        return rows[:, : frame.width]
    return frame.to_ndarray(format="gray")
