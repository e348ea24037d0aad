"""Capped, jittered exponential back-off for reconnect loops.

A camera is never given up on: the delay grows from ``initial_s`` by ``factor`` per failure
up to ``max_s`` and stays there; a healthy run resets it. Jitter ("equal jitter": half fixed,
half random) spreads out reconnect storms when many cameras share one failing switch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(
                f"backoff: need 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}"
            )
        if self.factor < 1:
            raise ValueError(f"backoff: factor must be >= 1, got {self.factor}")

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay_s(self) -> float:
        """Delay before the next attempt; counts one more failure. Never exceeds max_s."""
        ceiling_s = min(self.max_s, self.initial_s * self.factor ** min(self._failures, 64))
        self._failures += 1
        return ceiling_s / 2 + self.rng.uniform(0, ceiling_s / 2)

    def reset(self) -> None:
        self._failures = 0
