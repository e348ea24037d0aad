"""sd_notify over a real unix datagram socket, as systemd would listen."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from recorder.sdnotify import Notifier


def test_ready_status_watchdog_stopping_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(2)
        notifier = Notifier(environ={"NOTIFY_SOCKET": str(path)})
        assert notifier.enabled
        assert notifier.ready("2 cameras")
        assert listener.recv(4096) == b"READY=1\nSTATUS=2 cameras"
        assert notifier.watchdog() and listener.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping() and listener.recv(4096) == b"STOPPING=1"
        notifier.close()


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"dozor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(b"\0" + name.encode())
        listener.settimeout(2)
        notifier = Notifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert notifier.status("recording")
        assert listener.recv(4096) == b"STATUS=recording"
        notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False
    assert notifier.watchdog_interval_s is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "30000000"}
    assert Notifier(environ=env).watchdog_interval_s == 15.0
    other_pid = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(environ=other_pid).watchdog_interval_s is None  # meant for another process
    assert Notifier(environ={**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 15


def test_a_listener_that_stops_reading_never_blocks_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        notifier = Notifier(environ={"NOTIFY_SOCKET": str(path)})
        results = [notifier.watchdog() for _ in range(1000)]  # would block without O_NONBLOCK
        assert results[0] and not all(results)
        notifier.close()


def test_unreachable_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.ready() is False
