"""The systemd sd_notify protocol: datagrams of ``KEY=VALUE`` lines to $NOTIFY_SOCKET.

Implemented here (a dozen lines) rather than through a dependency. A socket path starting
with ``@`` is a Linux abstract socket (leading NUL byte). Without NOTIFY_SOCKET (not run by
systemd) every call is a no-op, so the daemon never needs to know how it was started.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        if self._address is not None:
            # Non-blocking: a receiver that stops reading (its queue holds only about ten
            # datagrams) must never freeze the recorder's event loop; such a message is dropped.
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )
        self.watchdog_interval_s = _watchdog_interval_s(env)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str) -> bool:
        """Send one datagram (e.g. notify(READY="1", STATUS="...")). True if sent."""
        if self._sock is None or self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._sock.sendto(payload, self._address)
        except BlockingIOError:
            log.debug("sd_notify: receiver queue full, dropped %r", payload)
            return False
        except OSError as err:
            log.warning("sd_notify to %r failed: %s", self._address, err)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(READY="1", STATUS=status) if status else self.notify(READY="1")

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG="1")

    def stopping(self) -> bool:
        return self.notify(STOPPING="1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("ignoring NOTIFY_SOCKET=%r: not a unix socket path", value)
    return None


def _watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC (as systemd recommends), if the watchdog is meant for us."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6
