"""Scripted scenes for simulated cameras: when and where things move.

A scene is a loop of `loop_s` seconds. Tests know exactly when motion happens because the
schedule is data: a person-sized box crossing from t=20 s to t=28 s of each 60 s loop, say.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MovingObject:
    """A box crossing the frame left to right at constant speed while start_s <= t < end_s.

    Sizes and positions are fractions of the frame, so one scene serves every resolution.
    """

    start_s: float
    end_s: float
    width_frac: float = 0.06  # a person at ~15 m in a 1080p street camera
    height_frac: float = 0.25
    y_frac: float = 0.55  # top edge
    luma: int = 40  # dark clothing against a lighter background

    def box_at(self, t_s: float) -> tuple[float, float, float, float] | None:
        """(x, y, w, h) as fractions of the frame at loop time t_s, or None when absent."""
        if not self.start_s <= t_s < self.end_s:
            return None
        # Wholly inside the frame for the whole interval, so "motion on screen" is exact:
        # the left edge goes from 0 to 1 - width.
        progress = (t_s - self.start_s) / (self.end_s - self.start_s)
        x = progress * (1.0 - self.width_frac)
        return (x, self.y_frac, self.width_frac, self.height_frac)


@dataclass(frozen=True)
class SceneSpec:
    loop_s: float = 60.0
    fps: int = 15
    gop_s: float = 1.0  # keyframe interval
    objects: tuple[MovingObject, ...] = field(
        default_factory=lambda: (MovingObject(start_s=20.0, end_s=28.0),)
    )
    noise: float = 0.0  # sensor noise, standard deviation in luma levels
    illumination_amplitude: float = 0.0  # slow brightness swing over the loop, luma levels
    seed: int = 1

    def loop_time(self, t_s: float) -> float:
        return t_s % self.loop_s

    def motion_active(self, t_s: float) -> bool:
        """Whether any object is in the frame at time t_s (seconds since the loop epoch)."""
        lt = self.loop_time(t_s)
        return any(o.box_at(lt) is not None for o in self.objects)

    @property
    def frame_count(self) -> int:
        return round(self.loop_s * self.fps)
