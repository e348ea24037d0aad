"""Labelled clips for the motion tests, made once per session with bench.motion_clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.motion_clips import LabelledClip, make_clip, standard_clips

NUISANCE_S = 15.0


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("motion-clips")


@pytest.fixture(scope="session")
def clip(clip_dir: Path) -> Callable[[str], LabelledClip]:
    specs = {s.name: s for s in standard_clips(NUISANCE_S)}

    def get(name: str) -> LabelledClip:
        return make_clip(specs[name], clip_dir)

    return get
