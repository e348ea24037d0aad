"""Time sources, behind a small interface so tests can drive time exactly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC); may jump when the system clock is set."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class WallAnchor:
    """Maps a monotonic instant to wall time, anchored once at the start of a run.

    Wall times of recorded media are derived from the anchor plus media time, never from
    each packet's arrival, so network jitter does not leak into the index.
    """

    def __init__(self, clock: Clock) -> None:
        self._wall0 = clock.wall()
        self._mono0 = clock.monotonic()

    @property
    def wall0(self) -> float:
        return self._wall0

    def wall_at(self, monotonic_s: float) -> float:
        return self._wall0 + (monotonic_s - self._mono0)
