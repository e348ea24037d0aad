"""Shared fixtures: each lives in tests/fixtures/ and starts a real server."""

pytest_plugins = [
    "tests.fixtures.camsim",
    "tests.fixtures.gst_rtsp",
    "tests.fixtures.mosquitto",
]
