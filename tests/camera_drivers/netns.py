"""A throw-away network namespace with multicast on `lo`, for WS-Discovery tests.

The host's `lo` usually has no MULTICAST flag; changing it would touch the machine.
Inside a namespace we can turn it on. `run_in_netns` runs a coroutine on an event loop in
a thread that entered the namespace (setns affects only the calling thread), so its
sockets live there while the test process stays where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

CLONE_NEWNET = 0x40000000


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@contextlib.contextmanager
def multicast_netns(tag: str) -> Iterator[str]:
    if not netns_available():
        pytest.skip("network namespaces need root and iproute2")
    name = f"dozor-{tag}-{os.getpid()}"
    setup = [
        ["ip", "netns", "add", name],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "netns", "exec", name, "ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ]
    try:
        for cmd in setup:
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


class NetnsLoop:
    """An event loop running in a thread inside a network namespace."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(name,), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _run(self, name: str) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{name}") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
        except BaseException as err:
            self._error = err
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
