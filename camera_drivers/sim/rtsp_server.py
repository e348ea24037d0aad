"""RTSP 1.0 server of one simulated camera (RFC 2326), RTP over TCP interleaved only.

Paths: ``/<camera>/main`` and ``/<camera>/sub`` (SETUP may append ``/trackID=0``).
Methods: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER. Every method
but OPTIONS needs HTTP digest authentication (RFC 2617, MD5, no qop), like most cameras.
UDP transport is answered with 461 Unsupported Transport: FFmpeg then retries over TCP.

Faults (see `FaultState`): `refuse` resets new connections at once; `offline` accepts them
and never answers (like a camera that lost power behind a switch); `drop` closes every open
connection; `stall` and timestamp jumps are applied by the streamer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.streamer import PAYLOAD_TYPE, MediaStream, StreamClient, Streamer

log = logging.getLogger(__name__)

REALM = "dozor-camsim"
SESSION_TIMEOUT_S = 60
MAX_REQUEST_BYTES = 16 * 1024
SERVER_NAME = "Dozor camsim RTSP/1.0"
PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
TRACK_CONTROL = "trackID=0"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
}
_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')
_INTERLEAVED = re.compile(r"interleaved=(\d+)(?:-(\d+))?")


@dataclass(frozen=True)
class RtspRequest:
    method: str
    uri: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


class RequestError(Exception):
    """A request answered with an error status; `message` goes into the response body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_request(head: bytes, body: bytes = b"") -> RtspRequest:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, "request head is not UTF-8") from err
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isupper():
        raise RequestError(400, f"malformed request line: {lines[0][:80]!r}")
    method, uri, version = parts
    if not version.startswith("RTSP/"):
        raise RequestError(400, f"not an RTSP request: {version[:20]!r}")
    if version != "RTSP/1.0":
        raise RequestError(505, f"only RTSP/1.0 is supported, not {version[:20]}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise RequestError(400, f"malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "cseq" not in headers:
        raise RequestError(400, "missing CSeq header")
    return RtspRequest(method=method, uri=uri, headers=headers, body=body)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class RtspServer:
    """Listens on one port for one camera and serves its streams through the shared Streamer."""

    def __init__(self, camera: SimCamera, streams: dict[str, MediaStream], streamer: Streamer):
        self.camera = camera
        self.streams = streams
        self.streamer = streamer
        self.nonce = secrets.token_hex(16)
        self.connections: set[RtspConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        camera.faults.drop_listeners.append(self.drop_all)

    async def start(self, host: str, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RtspConnection(self), host, port, reuse_address=True
        )
        self.camera.rtsp_port = self._server.sockets[0].getsockname()[1]
        log.info("camera %s: RTSP on rtsp://%s:%d/", self.camera.name, host, self.camera.rtsp_port)

    async def close(self) -> None:
        if self.drop_all in self.camera.faults.drop_listeners:
            self.camera.faults.drop_listeners.remove(self.drop_all)
        if self._server is not None:
            self._server.close()
            self.drop_all()
            await self._server.wait_closed()
            self._server = None

    def drop_all(self) -> None:
        if self.connections:
            count = len(self.connections)
            log.info("camera %s: dropping %d RTSP connections", self.camera.name, count)
        for conn in list(self.connections):
            conn.close()

    def check_auth(self, req: RtspRequest) -> None:
        challenge = {"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{self.nonce}"'}
        header = req.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            raise RequestError(401, "digest authentication required", challenge)
        params = {m[0].lower(): m[1] or m[2] for m in _AUTH_PARAM.findall(rest)}
        ha1 = _md5(f"{self.camera.user}:{REALM}:{self.camera.password}")
        ha2 = _md5(f"{req.method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = _md5(
                f"{ha1}:{params.get('nonce', '')}:{params.get('nc', '')}:"
                f"{params.get('cnonce', '')}:{params['qop']}:{ha2}"
            )
        else:
            expected = _md5(f"{ha1}:{params.get('nonce', '')}:{ha2}")
        ok = (
            params.get("username") == self.camera.user
            and params.get("realm") == REALM
            and params.get("nonce") == self.nonce
            and hmac.compare_digest(params.get("response", ""), expected)
        )
        if not ok:
            log.warning("camera %s: RTSP authentication failed for user %r",
                        self.camera.name, params.get("username"))
            raise RequestError(401, "wrong user name or password", challenge)

    def resolve(self, uri: str) -> MediaStream:
        """The stream a request URI names, or 404."""
        path = urlsplit(uri).path if "://" in uri else uri
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[2] == TRACK_CONTROL:
            parts = parts[:2]
        if len(parts) != 2 or parts[0] != self.camera.name or parts[1] not in self.streams:
            raise RequestError(
                404, f"no such stream {path!r}: use /{self.camera.name}/main or /sub"
            )
        return self.streams[parts[1]]

    def sdp(self, stream: MediaStream, host: str) -> bytes:
        clip = stream.clip
        session_id = stream.ssrc
        lines = [
            "v=0",
            f"o=- {session_id} 1 IN IP4 {host}",
            f"s=Dozor camsim {self.camera.name} {stream.name}",
            f"c=IN IP4 {host}",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} {clip.rtpmap_name}/90000",
            f"a=fmtp:{PAYLOAD_TYPE} {clip.sdp_fmtp()}",
            f"a=framerate:{clip.fps}",
            f"a=x-dimensions:{clip.width},{clip.height}",
            f"a=control:{TRACK_CONTROL}",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()


class RtspConnection(asyncio.Protocol):
    """One client TCP connection: RTSP requests, and interleaved RTP once playing."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server
        self.camera = server.camera
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.peer = "?"
        self.session_id: str | None = None
        self.stream: MediaStream | None = None
        self.channel = 0
        self.client: StreamClient | None = None
        self.blackhole = False  # offline: read everything, answer nothing

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        faults = self.camera.faults
        if faults.refuse:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # abort() with linger 0 sends a TCP reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            log.info("camera %s: refusing RTSP connection from %s", self.camera.name, self.peer)
            transport.abort()
            return
        self.blackhole = faults.offline()
        self.server.connections.add(self)  # drop_all closes black-holed ones too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_playing()
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.blackhole or self.transport is None or self.transport.is_closing():
            return
        self.buffer += data
        while self.buffer:
            if self.buffer[0] == 0x24:  # '$': interleaved data from the client (RTCP RR)
                if len(self.buffer) < 4:
                    return
                (size,) = struct.unpack_from(">H", self.buffer, 2)
                if len(self.buffer) < 4 + size:
                    return
                del self.buffer[: 4 + size]
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_REQUEST_BYTES:
                    self._reply_error("0", RequestError(400, "request head too long"), close=True)
                return
            head = bytes(self.buffer[:end])
            try:
                length = self._content_length(head)
            except RequestError as err:
                self._reply_error("0", err, close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._handle(head, body)
            if self.transport.is_closing():
                return

    # -- requests ----------------------------------------------------------------------------

    @staticmethod
    def _content_length(head: bytes) -> int:
        match = re.search(rb"\r\ncontent-length:\s*(\S+)", head, re.IGNORECASE)
        if not match:
            return 0
        try:
            length = int(match.group(1))
        except ValueError as err:
            raise RequestError(400, "Content-Length is not a number") from err
        if not 0 <= length <= MAX_REQUEST_BYTES:
            raise RequestError(400, f"Content-Length {length} out of range")
        return length

    def _handle(self, head: bytes, body: bytes) -> None:
        cseq = "0"
        try:
            req = parse_request(head, body)
            cseq = req.cseq
            handler = getattr(self, "_on_" + req.method.lower(), None)
            if handler is None:
                raise RequestError(501, f"method {req.method} not implemented")
            if req.method != "OPTIONS":
                self.server.check_auth(req)
            status_headers, payload = handler(req)
            self._reply(cseq, 200, status_headers, payload)
        except RequestError as err:
            self._reply_error(cseq, err, close=err.status == 400)

    def _on_options(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        return {"Public": PUBLIC_METHODS}, b""

    def _on_describe(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        stream = self.server.resolve(req.uri)
        host = self.transport.get_extra_info("sockname")[0] if self.transport else "0.0.0.0"
        base = f"rtsp://{host}:{self.camera.rtsp_port}/{self.camera.name}/{stream.name}/"
        return (
            {"Content-Type": "application/sdp", "Content-Base": base},
            self.server.sdp(stream, host),
        )

    def _on_setup(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        stream = self.server.resolve(req.uri)
        transport = req.headers.get("transport", "")
        if "RTP/AVP/TCP" not in transport.upper():
            raise RequestError(461, "only RTP/AVP/TCP (interleaved) transport is supported")
        if self.stream is not None and self.stream is not stream:
            raise RequestError(459, "one stream per session")
        if self.session_id is not None and req.headers.get("session", "").split(";")[0] not in (
            "",
            self.session_id,
        ):
            raise RequestError(454, "unknown session")
        match = _INTERLEAVED.search(transport)
        self.channel = int(match.group(1)) if match else 0
        if not 0 <= self.channel <= 254:
            raise RequestError(400, f"interleaved channel {self.channel} out of range")
        self.stream = stream
        self.session_id = self.session_id or secrets.token_hex(8)
        return (
            {
                "Transport": (
                    f"RTP/AVP/TCP;unicast;interleaved={self.channel}-{self.channel + 1};"
                    f"ssrc={stream.ssrc:08X}"
                ),
                "Session": f"{self.session_id};timeout={SESSION_TIMEOUT_S}",
            },
            b"",
        )

    def _on_play(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        self._check_session(req)
        if self.stream is None or self.transport is None:
            raise RequestError(455, "PLAY before SETUP")
        stream = self.stream
        seq, rtptime = stream.play_start(time.monotonic())
        if self.client is None:
            label = f"camera {self.camera.name} {stream.name} {self.peer}"
            self.client = StreamClient(self.transport, self.channel, label, self._dropped)
            self.server.streamer.add_client(stream, self.client)
            log.info("camera %s: %s playing to %s", self.camera.name, stream.name, self.peer)
        url = req.uri.rstrip("/")
        if not url.endswith(TRACK_CONTROL):
            url += "/" + TRACK_CONTROL
        return (
            {
                "Session": f"{self.session_id};timeout={SESSION_TIMEOUT_S}",
                "Range": "npt=0.000-",
                "RTP-Info": f"url={url};seq={seq};rtptime={rtptime}",
            },
            b"",
        )

    def _on_teardown(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        self._check_session(req)
        self._stop_playing()
        self.stream = None
        self.session_id = None
        return {}, b""

    def _on_get_parameter(self, req: RtspRequest) -> tuple[dict[str, str], bytes]:
        if "session" in req.headers:
            self._check_session(req)
        return {}, b""

    _on_set_parameter = _on_get_parameter

    def _check_session(self, req: RtspRequest) -> None:
        session = req.headers.get("session", "").split(";")[0].strip()
        if self.session_id is None or session != self.session_id:
            raise RequestError(454, f"session {session!r} not found")

    # -- plumbing ----------------------------------------------------------------------------

    def _reply(self, cseq: str, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}", f"CSeq: {cseq}",
                 f"Server: {SERVER_NAME}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _reply_error(self, cseq: str, err: RequestError, close: bool = False) -> None:
        if err.status != 401:
            log.info("camera %s: RTSP %d to %s: %s", self.camera.name, err.status, self.peer,
                     err.message)
        body = (err.message + "\r\n").encode()
        self._reply(cseq, err.status, {"Content-Type": "text/plain", **err.headers}, body)
        if close and self.transport is not None:
            self.transport.close()

    def _stop_playing(self) -> None:
        if self.client is not None and self.stream is not None:
            self.server.streamer.remove_client(self.stream, self.client)
        self.client = None

    def _dropped(self, reason: str) -> None:
        self.client = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._stop_playing()
        if self.transport is not None:
            self.transport.abort()
