"""dozor-motion as a subprocess, on a labelled clip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `dozor-motion` script when there is one, else the module."""
    script = Path(sys.executable).with_name("dozor-motion")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "recorder.motion.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout, installed or not
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )


SITE = """
[[cameras]]
name = "yard"
[cameras.motion]
sensitivity = 6
[[cameras.motion.zones]]
name = "gate"
polygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]

[[cameras]]
name = "street"
[cameras.motion]
masks = [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]
"""


def test_prints_one_json_line_per_event(clip, tmp_path):
    c = clip("person_zones")
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE)
    out = run(str(c.path), "--config", str(cfg), "--camera", "yard")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    (truth,) = c.truth
    assert set(ev) >= {"start", "end", "peak_area", "zones"}
    assert ev["start"] == pytest.approx(truth.enter_s, abs=1.0)
    assert ev["end"] == pytest.approx(truth.exit_s, abs=1.0)
    assert 0.004 < ev["peak_area"] < 0.05
    assert ev["zones"] == ["gate"]


def test_camera_settings_are_used(clip, tmp_path):
    c = clip("person_zones")
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE)
    out = run(str(c.path), "--config", str(cfg), "--camera", "street")  # all masked
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_defaults_without_config(clip):
    out = run(str(clip("nuisance_noise").path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize(
    ("toml", "camera", "message"),
    [
        ("[motion]\nsensitivity = 12\n", None, "motion.sensitivity"),
        (
            '[[cameras]]\nname = "a"\n[cameras.motion]\nfps = -1\n', "a",
            r"cameras\[0\]\.motion\.fps",
        ),
        ('[[cameras]]\nname = "a"\n', "b", "no camera named 'b'"),
        ("not toml [", None, "not valid TOML"),
    ],
)
def test_bad_config_is_named(clip, tmp_path, toml, camera, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    args = [str(clip("person_walk").path), "--config", str(cfg)]
    if camera:
        args += ["--camera", camera]
    out = run(*args)
    assert out.returncode == 2
    assert re.search(message, out.stderr), out.stderr


def test_unreadable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.mp4"
    bad.write_bytes(b"not a video at all")
    out = run(str(bad))
    assert out.returncode == 2
    assert "junk.mp4" in out.stderr and "Traceback" not in out.stderr
