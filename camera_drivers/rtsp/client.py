"""One RTSP session over TCP playing one video track, read on the calling thread.

Why Dozor has its own client (docs/ingest.md, "Dozor's RTSP client"): FFmpeg's RTSP/TCP
reader makes a `poll` and a `recv` for the `$`, for the channel and length, and for each RTP
packet, three pairs of system calls per packet; that alone cost as much CPU as ffmpeg's whole
remux. This client reads whatever the socket holds (usually a whole frame) with one
`recv_into`, and splits the interleaved frames in place.

The session is blocking and single-threaded on purpose: the recorder runs one ingest thread
per stream, and a socket timeout is a read timeout that really fires. Requests sent while
playing (keep-alives) are answered in the interleaved byte stream; their responses are
skipped there.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from camera_drivers.rtsp.auth import Authenticator, challenges
from camera_drivers.rtsp.depacketize import AccessUnit, Depacketizer
from camera_drivers.rtsp.errors import (
    RtspAuthError,
    RtspConnectionError,
    RtspEndOfStream,
    RtspProtocolError,
    RtspStatusError,
    RtspTimeout,
    RtspUnsupported,
)
from camera_drivers.rtsp.sdp import VideoMedia, parse_sdp

log = logging.getLogger(__name__)

USER_AGENT = "Dozor"
DEFAULT_PORT = 554
RECV_BUFFER_BYTES = 256 * 1024  # > one interleaved frame (at most 4 + 65535 bytes)
MAX_HEADER_BYTES = 16 * 1024  # an RTSP response head longer than this is not RTSP
DEFAULT_SESSION_TIMEOUT_S = 60.0  # RFC 2326 12.37, when the Session header names none
_INTERLEAVED = re.compile(r"interleaved\s*=\s*(\d+)(?:-(\d+))?", re.IGNORECASE)
_METHOD_START = re.compile(rb"[A-Z_]{3,20} ")  # a request from the server (rare)


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class SessionCounters:
    """What a session has read, for health and tests."""

    bytes_received: int
    reads: int  # recv calls that returned data
    rtp_packets: int
    rtcp_packets: int
    lost_packets: int
    skipped_bytes: int  # bytes outside any interleaved frame or RTSP message (resyncs)
    keepalives_sent: int


def parse_head(head: bytes, where: str = "") -> RtspResponse:
    """An RTSP message head (start line and headers, without the blank line) as a response
    with an empty body; a request from the server has status 0. Repeated headers are joined
    with newlines (several WWW-Authenticate challenges)."""
    prefix = f"{where}: " if where else ""
    lines = head.decode("utf-8", "replace").split("\r\n")
    first = lines[0].split(" ", 2)
    status, reason = 0, ""
    if lines[0].startswith("RTSP/"):
        if len(first) < 2 or not first[1].isdigit():
            raise RtspProtocolError(f"{prefix}bad status line {lines[0][:80]!r}")
        status, reason = int(first[1]), first[2] if len(first) > 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}\n{value}" if key in headers else value
    length = headers.get("content-length", "0").split("\n")[0]
    if not length.strip().isdigit():
        raise RtspProtocolError(f"{prefix}bad Content-Length {length!r}")
    return RtspResponse(status, reason, headers, b"")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(URL without user:password@, user, password), percent-decoded."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    password = unquote(parts.password) if parts.password is not None else None
    return clean, unquote(parts.username), password


def _challenges(resp: RtspResponse) -> list[str]:
    """The WWW-Authenticate headers of a 401 (several were joined with newlines)."""
    return challenges(resp.headers.get("www-authenticate", ""))


class RtspSession:
    """`open()` (OPTIONS, DESCRIBE, SETUP, PLAY), then `access_units()`, then `close()`.

    `url` may carry user:password@; explicit arguments win. `read_timeout_s` bounds every
    wait for data, and also ends the stream when no video arrives for that long while the
    connection stays busy with other traffic (RTCP reports of a camera whose video froze).

    `read_batch_s`: read at most once per this interval, so that one wake-up of the thread
    takes several frames the kernel has held meanwhile. Waking a thread costs more than
    handling a frame (measured: 8 cameras, 0.96x ffmpeg's CPU reading at once, 0.80x with
    0.1 s, 0.57x with 0.25 s; docs/ingest.md); the price is up to that much latency.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        read_batch_s: float = 0.0,
    ) -> None:
        try:
            clean, url_user, url_password = split_credentials(url)
            parts = urlsplit(clean)
            port = parts.port
        except ValueError as err:  # a bad port or IPv6 literal
            raise RtspProtocolError(f"not a valid URL: {err}") from err
        if parts.scheme == "rtsps":
            raise RtspUnsupported("rtsps (RTSP over TLS) is read through FFmpeg")
        if parts.scheme != "rtsp" or not parts.hostname:
            raise RtspProtocolError(f"not an rtsp:// URL: {clean!r}")
        self.url = clean
        self.host = parts.hostname
        self.port = port or DEFAULT_PORT
        user = user if user is not None else url_user
        password = password if password is not None else url_password
        self._auth = Authenticator(user, password or "") if user is not None else None
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.read_batch_s = read_batch_s
        self.media: VideoMedia | None = None
        self._sock: socket.socket | None = None
        self._cseq = 0
        self._session_id: str | None = None
        self._keepalive_s = DEFAULT_SESSION_TIMEOUT_S / 2
        self._keepalive_method = "OPTIONS"
        self._channel = 0
        self._buf = bytearray(RECV_BUFFER_BYTES)
        self._start = 0  # parsed up to here
        self._end = 0  # received up to here
        self._depacketizer: Depacketizer | None = None
        self._bytes = 0
        self._reads = 0
        self._rtp = 0
        self._rtcp = 0
        self._skipped = 0
        self._keepalives = 0

    # --- set-up ------------------------------------------------------------------------

    def open(self) -> VideoMedia:
        """Connect and start playing the first H.264/H.265 video track."""
        try:
            self._sock = socket.create_connection((self.host, self.port), self.open_timeout_s)
        except TimeoutError as err:
            raise RtspTimeout(f"{self.url}: no TCP connection in {self.open_timeout_s} s") from err
        except OSError as err:
            raise RtspConnectionError(f"{self.url}: cannot connect: {err}") from err
        self._sock.settimeout(self.open_timeout_s)
        options = self.request("OPTIONS", self.url)
        public = options.headers.get("public", "") if options.status == 200 else ""
        if "GET_PARAMETER" in public.upper():
            self._keepalive_method = "GET_PARAMETER"
        describe = self._expect("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = (
            describe.headers.get("content-base")
            or describe.headers.get("content-location")
            or self.url
        )
        media = parse_sdp(describe.body.decode("utf-8", "replace"), base)
        setup = self._expect(
            "SETUP", media.control_url, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        self._take_session(setup.headers.get("session", ""))
        match = _INTERLEAVED.search(setup.headers.get("transport", ""))
        if setup.headers.get("transport") and "tcp" not in setup.headers["transport"].lower():
            raise RtspUnsupported(f"{self.url}: the camera refused RTP over TCP")
        self._channel = int(match.group(1)) if match else 0
        # aggregate control: PLAY the session (Content-Base), which every camera accepts
        self._expect("PLAY", base, {"Range": "npt=0.000-"})
        self.media = media
        self._depacketizer = Depacketizer(media.codec, media.payload_type)
        self._sock.settimeout(self.read_timeout_s)
        return media

    def _take_session(self, header: str) -> None:
        if not header:
            raise RtspProtocolError(f"{self.url}: SETUP answer has no Session header")
        parts = [p.strip() for p in header.split(";")]
        self._session_id = parts[0]
        for part in parts[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "timeout":
                with contextlib.suppress(ValueError):  # a bad timeout keeps the default
                    self._keepalive_s = max(1.0, float(value) / 2)

    def _expect(self, method: str, url: str, headers: dict[str, str]) -> RtspResponse:
        resp = self.request(method, url, headers)
        if 300 <= resp.status < 400:  # a redirect: FFmpeg follows it
            raise RtspUnsupported(
                f"{self.url}: {method} redirected ({resp.status} to "
                f"{resp.headers.get('location', '?')})"
            )
        if resp.status != 200:
            raise RtspStatusError(
                f"{self.url}: {method} answered {resp.status} {resp.reason}", resp.status
            )
        return resp

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> RtspResponse:
        """Send a request and read its response (answering one auth challenge)."""
        resp = self._send_and_read(method, url, headers or {})
        if resp.status == 401:
            auth = self._auth
            offered = _challenges(resp)
            if auth is None:
                raise RtspAuthError(f"{self.url}: {method} needs credentials (401)", 401)
            stale = re.search(r'stale\s*=\s*"?true', " ".join(offered), re.IGNORECASE)
            if auth.scheme is not None and not stale:
                raise RtspAuthError(f"{self.url}: {method}: user or password rejected", 401)
            if not auth.challenge(offered):
                raise RtspUnsupported(f"{self.url}: unsupported authentication {offered!r}")
            resp = self._send_and_read(method, url, headers or {})
            if resp.status == 401:
                raise RtspAuthError(f"{self.url}: {method}: user or password rejected", 401)
        return resp

    def _send_and_read(self, method: str, url: str, headers: dict[str, str]) -> RtspResponse:
        self._send(method, url, headers)
        return self._next_response()

    def _send(self, method: str, url: str, headers: dict[str, str]) -> None:
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session_id:
            lines.append(f"Session: {self._session_id}")
        if self._auth is not None:
            value = self._auth.header(method, url)
            if value:
                lines.append(f"Authorization: {value}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        try:
            self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        except TimeoutError as err:
            raise RtspTimeout(f"{self.url}: {method} could not be sent in time") from err
        except OSError as err:
            raise RtspConnectionError(f"{self.url}: {method} failed: {err}") from err

    # --- the stream ----------------------------------------------------------------------

    def access_units(self) -> Iterator[AccessUnit]:
        """Video access units until the camera closes the connection (RtspEndOfStream),
        it breaks (RtspConnectionError) or stalls (RtspTimeout). A bad RTP packet raises
        RtspProtocolError; an unsupported packetization RtspUnsupported."""
        sock = self._sock
        depacketizer = self._depacketizer
        assert sock is not None and depacketizer is not None, "open() first"
        buf = self._buf
        view = memoryview(buf)
        channel = self._channel
        push = depacketizer.push
        monotonic = time.monotonic
        read_timeout_s = self.read_timeout_s
        last_video = next_keepalive = monotonic()
        last_fill = float("-inf")
        batch_s = 0.0  # until the first access unit is out: the run's wall anchor stays exact
        sleep = time.sleep
        next_keepalive += self._keepalive_s
        try:
            while True:
                start, end = self._start, self._end
                while end - start >= 4:
                    if buf[start] != 0x24:  # "$": an answer to a keep-alive, or junk
                        self._start = start
                        taken = self._take_message()
                        if not taken:
                            break  # an incomplete RTSP message: read more
                        if isinstance(taken, RtspResponse) and self._rechallenged(taken):
                            next_keepalive = 0.0  # re-send at once with the new nonce
                        start, end = self._start, self._end
                        continue
                    size = (buf[start + 2] << 8) | buf[start + 3]
                    stop = start + 4 + size
                    if stop > end:
                        break
                    frame_channel = buf[start + 1]
                    if frame_channel == channel:
                        self._rtp += 1
                        if size >= 12:  # shorter is no RTP packet: skipped, not fatal
                            units = push(view[start + 4 : stop])
                            if units:
                                self._start = stop
                                yield from units
                                # after the consumer: time it spent is not camera silence
                                last_video = monotonic()
                                batch_s = self.read_batch_s
                    elif frame_channel == channel + 1:
                        self._rtcp += 1
                    start = stop
                self._start = start
                now = monotonic()
                if now - last_video > read_timeout_s:
                    raise RtspTimeout(f"{self.url}: no video for {read_timeout_s:g} s")
                if now >= next_keepalive:
                    self._send(self._keepalive_method, self.url, {})
                    self._keepalives += 1
                    next_keepalive = now + self._keepalive_s
                if batch_s:
                    wait_s = last_fill + batch_s - now
                    if wait_s > 0:
                        sleep(wait_s)  # the kernel holds the frames meanwhile
                    last_fill = monotonic()
                self._fill()
        finally:
            view.release()

    def _rechallenged(self, resp: RtspResponse) -> bool:
        """A keep-alive answered 401 (an expired nonce): take the new challenge."""
        if resp.status != 401 or self._auth is None:
            return False
        return self._auth.challenge(_challenges(resp))

    def _fill(self) -> None:
        """Receive more bytes (compacting the buffer first); raises on EOF or timeout."""
        assert self._sock is not None
        buf = self._buf
        start, end = self._start, self._end
        if start:
            if end > start:
                buf[: end - start] = buf[start:end]
            self._end = end = end - start
            self._start = 0
        if end == len(buf):
            raise RtspProtocolError(f"{self.url}: a message larger than {len(buf)} bytes")
        try:
            with memoryview(buf) as view:
                n = self._sock.recv_into(view[end:])
        except TimeoutError as err:
            raise RtspTimeout(f"{self.url}: no data for {self._sock.gettimeout():g} s") from err
        except OSError as err:
            raise RtspConnectionError(f"{self.url}: connection lost: {err}") from err
        if not n:
            raise RtspEndOfStream(f"{self.url}: the camera closed the connection")
        self._end = end + n
        self._bytes += n
        self._reads += 1

    def _next_response(self) -> RtspResponse:
        """Read until a whole RTSP response is at hand; media before it is skipped."""
        buf = self._buf
        while True:
            start, end = self._start, self._end
            if end - start >= 4 and buf[start] == 0x24:
                size = (buf[start + 2] << 8) | buf[start + 3]
                if end - start >= 4 + size:
                    self._start = start + 4 + size
                    continue
            elif end > start:
                taken = self._take_message()
                if isinstance(taken, RtspResponse):
                    return taken
                if taken:
                    continue
            self._fill()

    def _take_message(self) -> RtspResponse | bool:
        """At a byte that is not "$": consume one whole RTSP message, or junk up to the next
        "$". The response if it was one; True if something else was consumed; False if
        more bytes are needed."""
        buf = self._buf
        start, end = self._start, self._end
        if end - start < 5:
            return False
        if buf[start : start + 5] != b"RTSP/" and not _METHOD_START.match(buf, start):
            skip = buf.find(b"$", start + 1, end)
            skip = end if skip < 0 else skip
            self._skipped += skip - start
            self._start = skip
            return True
        head_end = buf.find(b"\r\n\r\n", start, end)
        if head_end < 0:
            if end - start > MAX_HEADER_BYTES:
                raise RtspProtocolError(f"{self.url}: an RTSP header without an end")
            return False
        head = bytes(buf[start:head_end])
        resp = parse_head(head, self.url)
        length = int(resp.headers.get("content-length", "0").split("\n")[0] or 0)
        body_start = head_end + 4
        if end - body_start < length:
            return False
        self._start = body_start + length
        if not head.startswith(b"RTSP/"):
            self._answer_request(head, resp.headers)
            return True
        body = bytes(buf[body_start : body_start + length])
        return RtspResponse(resp.status, resp.reason, resp.headers, body)

    def _answer_request(self, head: bytes, headers: dict[str, str]) -> None:
        """A request from the camera (some ping with OPTIONS): 200 for OPTIONS and
        GET_PARAMETER, 501 for anything else, as FFmpeg answers."""
        assert self._sock is not None
        method = head.split(b" ", 1)[0]
        status = "200 OK" if method in (b"OPTIONS", b"GET_PARAMETER") else "501 Not Implemented"
        lines = [f"RTSP/1.0 {status}", f"CSeq: {headers.get('cseq', '0')}"]
        if self._session_id:
            lines.append(f"Session: {self._session_id}")
        with contextlib.suppress(OSError):  # the read path will see a broken connection
            self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    # --- the end -------------------------------------------------------------------------

    def counters(self) -> SessionCounters:
        lost = self._depacketizer.lost_packets if self._depacketizer else 0
        return SessionCounters(self._bytes, self._reads, self._rtp, self._rtcp, lost,
                               self._skipped, self._keepalives)  # fmt: skip

    def close(self) -> None:
        """TEARDOWN (best effort, not waited for) and close the socket."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if self._session_id:
                sock.settimeout(0.5)
                self._sock = sock
                self._send("TEARDOWN", self.url, {})
        except Exception:  # the camera may be gone already: closing is what matters
            pass
        finally:
            self._sock = None
            sock.close()
