"""How to reach the police-station broker: one frozen dataclass shared by site and viewer."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import SettingsError
from .topics import check_name


@dataclass(frozen=True)
class BrokerSettings:
    """Connection settings. With `tls` on, the server certificate is always verified
    (against `ca_file`, or the system store when it is None); `cert_file`/`key_file` add an
    optional client certificate. Each site logs in with its own `username` (= its site id,
    which the broker ACL relies on).
    """

    host: str
    port: int = 8883
    tls: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = "dozor"
    keepalive_s: int = 30
    client_id: str | None = None
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise SettingsError("host", "must be a non-empty host name or address")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not (
            0 < self.port < 65536
        ):
            raise SettingsError("port", f"must be 1..65535, got {self.port!r}")
        check_name(self.prefix, "prefix", exc=SettingsError)
        if not isinstance(self.keepalive_s, int) or not (5 <= self.keepalive_s <= 3600):
            raise SettingsError("keepalive_s", f"must be 5..3600 s, got {self.keepalive_s!r}")
        if not (0 < self.reconnect_min_s <= self.reconnect_max_s):
            raise SettingsError(
                "reconnect_min_s", "must be > 0 and not more than reconnect_max_s"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise SettingsError("cert_file", "cert_file and key_file go together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise SettingsError("tls", "ca_file/cert_file given but tls is off")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise SettingsError(name, f"no such file: {path}")
        if self.password is not None and self.username is None:
            raise SettingsError("password", "a password needs a username")
        if self.client_id is not None and not (0 < len(self.client_id) <= 128):
            raise SettingsError("client_id", "must be 1..128 characters")

    def __repr__(self) -> str:  # never print the password into a log
        shown = "***" if self.password else None
        return (
            f"BrokerSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"username={self.username!r}, password={shown!r}, prefix={self.prefix!r}, "
            f"client_id={self.client_id!r})"
        )
