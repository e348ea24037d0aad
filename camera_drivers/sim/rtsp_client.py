"""A minimal RTSP/TCP client: the handshake with digest auth, then raw interleaved packets.

For tests and benchmarks that need to see the wire (RTP timestamps, sequence numbers, the
exact status codes) or to read many streams cheaply without decoding. Not a general client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
from urllib.parse import unquote, urlsplit, urlunsplit

from camera_drivers.rtsp.auth import Authenticator, challenges
from camera_drivers.rtsp.client import RtspResponse, parse_head
from camera_drivers.rtsp.errors import RtspError
from camera_drivers.sim.errors import SimError


class RtspClientError(SimError):
    """The server answered with an unexpected status, or the connection broke."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RawRtspClient:
    """One RTSP connection. `url` may carry user:password@; explicit arguments win."""

    def __init__(
        self, url: str, user: str | None = None, password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 554
        self.user = user if user is not None else unquote(parts.username or "")
        self.password = password if password is not None else unquote(parts.password or "")
        netloc = f"{self.host}:{self.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.timeout_s = timeout_s
        self.cseq = 0
        self.session: str | None = None
        self._auth: Authenticator | None = None  # after the first 401
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as err:
            raise RtspClientError(f"cannot connect to {self.host}:{self.port}: {err!r}") from err

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 2.0)
            self.writer = None

    async def __aenter__(self) -> RawRtspClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, method: str, url: str | None = None, headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> RtspResponse:
        """Send a request (retrying once with digest auth after a 401) and read the answer."""
        url = url or self.url
        resp = await self._send(method, url, headers or {}, raw)
        if resp.status == 401 and raw is None and self.user:
            auth = Authenticator(self.user, self.password)
            if auth.challenge(challenges(resp.headers.get("www-authenticate", ""))):
                self._auth = auth
                resp = await self._send(method, url, headers or {}, None)
        return resp

    async def _send(
        self, method: str, url: str, headers: dict[str, str], raw: bytes | None
    ) -> RtspResponse:
        assert self.writer is not None, "connect() first"
        if raw is None:
            self.cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: dozor-test"]
            if self.session:
                lines.append(f"Session: {self.session}")
            value = self._auth.header(method, url) if self._auth else None
            if value:
                lines.append(f"Authorization: {value}")
            lines += [f"{k}: {v}" for k, v in headers.items()]
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.writer.write(raw)
        return await asyncio.wait_for(self._read_response(), self.timeout_s)

    async def _read_response(self) -> RtspResponse:
        assert self.reader is not None
        while True:
            first = await self.reader.readexactly(1)
            if first == b"$":  # media before the response: skip it
                size = struct.unpack(">xH", await self.reader.readexactly(3))[0]
                await self.reader.readexactly(size)
                continue
            head = first + await self.reader.readuntil(b"\r\n\r\n")
            break
        try:
            resp = parse_head(head[:-4])
        except RtspError as err:
            raise RtspClientError(f"not an RTSP response: {err}") from err
        if not resp.status:
            raise RtspClientError(f"not an RTSP response: {head[:80]!r}")
        length = int(resp.headers.get("content-length", "0").split("\n")[0])
        body = await self.reader.readexactly(length) if length else b""
        return dataclasses.replace(resp, body=body)

    async def expect(self, method: str, url: str | None = None, **headers: str) -> RtspResponse:
        resp = await self.request(method, url, {k.replace("_", "-"): v for k, v in headers.items()})
        if resp.status != 200:
            raise RtspClientError(
                f"{method} {url or self.url}: {resp.status} {resp.body.decode(errors='replace')}",
                resp.status,
            )
        return resp

    async def start(self, channel: int = 0) -> RtspResponse:
        """DESCRIBE, SETUP (TCP interleaved on `channel`), PLAY; returns the PLAY response."""
        describe = await self.expect("DESCRIBE", Accept="application/sdp")
        base = describe.headers.get("content-base", self.url.rstrip("/") + "/")
        control = "trackID=0"
        for line in describe.body.decode().splitlines():
            if line.startswith("a=control:") and line != "a=control:*":
                control = line.split(":", 1)[1]
        track = control if "://" in control else base.rstrip("/") + "/" + control
        setup = await self.expect(
            "SETUP", track, Transport=f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
        )
        self.session = setup.headers.get("session", "").split(";")[0]
        self.sdp = describe.body.decode()
        return await self.expect("PLAY", self.url, Range="npt=0.000-")

    async def read_interleaved(self, timeout_s: float | None = None) -> tuple[int, bytes]:
        """The next interleaved packet (channel, data); RTSP messages are not expected here."""
        assert self.reader is not None
        try:
            header = await asyncio.wait_for(
                self.reader.readexactly(4), timeout_s or self.timeout_s
            )
            if header[0] != 0x24:
                raise RtspClientError(f"expected interleaved data, got {header!r}")
            size = struct.unpack_from(">H", header, 2)[0]
            return header[1], await self.reader.readexactly(size)
        except asyncio.IncompleteReadError as err:
            raise RtspClientError("connection closed by the server") from err
