"""dozor-camsim's command line: bad options get a clear message; READY output per camera."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.camsim import REPO_ROOT


def run_cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camera_drivers.sim", *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--motion", "8-12"], "expected START:END"),
        (["--loop-s", "20", "--motion", "18:25"], "motion 18.0:25.0 must satisfy"),
        (["--codec", "vp9"], "invalid choice"),
        (["--fault", "cam01:explode"], "unknown kind 'explode'"),
        (["--fault", "cam01"], "expected NAME:KIND"),
        (["--fault", "cam01:offline=soon"], "needs a number of seconds"),
        (["--cameras", "0"], "cameras must be 1..1000"),
        (["--fps", "0"], "fps must be 1..60"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_fault_for_an_unknown_camera_is_an_error():
    result = run_cli("--loop-s", "20", "--motion", "8:12", "--no-discovery", "--no-onvif",
                     "--fault", "cam09:stall", timeout_s=150)
    assert result.returncode == 2
    assert "no camera 'cam09'" in result.stderr


def test_ready_lines_name_each_camera_with_its_urls():
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_drivers.sim", "--cameras", "2", "--loop-s", "20",
         "--motion", "8:12", "--no-discovery", "--password", "secret"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean shutdown
        proc.stdout.close()
    for name, line in zip(("cam01", "cam02"), lines, strict=True):
        assert line.startswith(name)
        assert "http://127.0.0.1:" in line and "/onvif/device_service" in line
        assert f"/{name}/main" in line and f"/{name}/sub" in line and "secret" in line
