"""Ingest: one thread per (camera, stream) pulling RTSP packets and driving its sinks.

`StreamIngest.run_forever` retries `run_once` with capped, jittered exponential back-off and
never gives a camera up. A *run* is one continuous connection: it starts at the first packet
(the wall clock is anchored there, see `recorder.clock.WallAnchor`), is logged through a
`RunLog` (the index), and ends with a reason; the time between two runs is a *gap*.

Where the bytes come from is behind the `Opener` protocol: `PyavOpener` opens RTSP over TCP
with FFmpeg; tests and benchmarks may substitute their own. See docs/ingest.md for the
isolation model (thread per stream) and the read-timeout measurements.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol

import av
import av.error

from recorder.backoff import Backoff
from recorder.clock import Clock, SystemClock, WallAnchor
from recorder.errors import RecorderError
from recorder.health import StreamHealth, StreamState
from recorder.logging_setup import context_logger
from recorder.stream_types import PacketSink, ReadLatency, StreamInfo

if TYPE_CHECKING:
    import av.container
    import av.video.stream

__all__ = [
    "IngestSettings",
    "Opener",
    "PyavOpener",
    "RunLog",
    "Source",
    "SourceError",
    "StreamIngest",
    "redact",
]

log = logging.getLogger(__name__)


class SourceError(RecorderError):
    """A stream could not be opened or read (unreachable, refused, timed out, bad data)."""

    def __init__(self, message: str, *, timed_out: bool = False, unsupported: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.unsupported = unsupported  # this opener cannot read the stream; another may


# Why a run ended (runs.end_reason) and what the gap after it is called (gaps.reason),
# as named in docs/storage.md.
END_EOF, END_TIMEOUT, END_ERROR, END_SHUTDOWN = "eof", "timeout", "error", "shutdown"
GAP_REASONS = {
    END_TIMEOUT: "stall",
    END_EOF: "reconnect",
    END_ERROR: "reconnect",
    END_SHUTDOWN: "restart",  # the previous process stopped (the gap spans the restart)
    "crash": "crash",  # the previous process died; recovery closed its run
}


class Source(Protocol):
    """An open stream: its video stream (the remux template) and its packets."""

    @property
    def video(self) -> av.video.stream.VideoStream:
        """The remux template; valid once `packets()` has yielded a packet."""
        ...

    @property
    def time_base(self) -> Fraction:
        """The unit of the packets' timestamps."""
        ...

    def packets(self) -> Iterator[av.Packet]:
        """Packets until the stream ends; raises SourceError on failure or timeout."""
        ...

    def follow(self, latency: ReadLatency) -> None:
        """Read without batching while `latency.low` (a source that never batches ignores it)."""
        ...

    def close(self) -> None: ...


class Opener(Protocol):
    def open(self, url: str) -> Source:
        """Connect; raises SourceError. The returned source must be closed by the caller."""
        ...


class RunLog(Protocol):
    """Where runs and gaps are recorded (the site index, through the daemon's adapter)."""

    def start_run(self, camera: str, stream: str, start_wall: float) -> int: ...

    def end_run(self, run_id: int, end_wall: float, reason: str) -> None: ...

    def add_gap(
        self, camera: str, stream: str, start_wall: float, end_wall: float, reason: str
    ) -> None: ...


@dataclass(frozen=True)
class IngestSettings:
    open_timeout_s: float = 10.0  # connect + RTSP handshake + first probe
    read_timeout_s: float = 5.0  # no packet for this long ends the run
    healthy_run_s: float = 10.0  # a run this long resets the back-off
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    read_interrupt: bool = False  # PyAV's per-read interrupt too (see PyavOpener)
    # "dozor": Dozor's RTSP client, FFmpeg's for what it cannot read (recorder.rtsp_source);
    # "ffmpeg": FFmpeg's for every stream
    rtsp_client: str = "dozor"
    # Dozor's client reads each stream at most this often (several frames a wake-up; costs
    # up to this much latency for live view and motion): see docs/ingest.md
    read_batch_s: float = 0.2


# --- PyAV ----------------------------------------------------------------------------------


class PyavSource:
    def __init__(self, container: av.container.InputContainer, url_for_log: str) -> None:
        self._container = container
        self._url = url_for_log
        if not container.streams.video:
            container.close()
            raise SourceError(f"{url_for_log}: no video stream")
        self._video = container.streams.video[0]

    @property
    def video(self) -> av.video.stream.VideoStream:
        return self._video

    @property
    def time_base(self) -> Fraction:
        return self._video.time_base or Fraction(1, 90000)

    def follow(self, latency: ReadLatency) -> None:
        """FFmpeg reads every packet at once: nothing to follow."""

    def packets(self) -> Iterator[av.Packet]:
        try:
            yield from self._container.demux(self._video)
        except (av.error.FFmpegError, OSError) as err:
            raise SourceError(
                f"{self._url}: read failed: {_describe(err)}", timed_out=_is_timeout(err)
            ) from err

    def close(self) -> None:
        self._container.close()


class PyavOpener:
    """RTSP over TCP through FFmpeg, with timeouts that fire inside FFmpeg.

    Measured (docs/ingest.md): the RTSP demuxer's ``timeout`` option (socket I/O, in
    microseconds) ends a read on a silent connection after about twice its value. PyAV's
    ``timeout=(open_s, read_s)`` bounds the open; its *read* part is off by default
    because its interrupt callback takes the GIL on every socket read FFmpeg makes (it
    cost 0.2 % of a core per camera, a third of the whole remux). ``read_interrupt=True``
    turns it on, for cameras that keep sending RTCP while their video is frozen (the
    socket is then never silent, so only the interrupt notices).
    """

    def __init__(
        self,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        read_interrupt: bool = False,
    ) -> None:
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.read_interrupt = read_interrupt

    def open(self, url: str) -> Source:
        if not url.startswith(("rtsp://", "rtsps://")):
            return self._open(url, {})
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(self.read_timeout_s * 1e6)),
            "allowed_media_types": "video",
        }
        # Probe as little as possible: whatever FFmpeg reads while probing is handed out
        # later in one burst, and the run's wall anchor (taken at the first packet) would
        # then be late by the probing time (measured: 1.7 s on a 15 fps stream, 8 % of a
        # 20 s recording). SPS/PPS usually come in the SDP, so nothing needs reading.
        source = self._open(url, {**options, **QUICK_PROBE})
        if source.video.codec_context.width and source.video.codec_context.extradata:
            return source
        source.close()  # the SDP lacked the parameter sets: probe the packets after all
        return self._open(url, options)

    def _open(self, url: str, options: dict[str, str]) -> PyavSource:
        shown = redact(url)
        try:
            container = av.open(
                url,
                options=options,
                timeout=(self.open_timeout_s, self.read_timeout_s if self.read_interrupt else None),
            )
        except (av.error.FFmpegError, OSError) as err:
            raise SourceError(
                f"{shown}: open failed: {_describe(err)}", timed_out=_is_timeout(err)
            ) from err
        return PyavSource(container, shown)


QUICK_PROBE = {"probesize": "32", "analyzeduration": "0"}


def _is_timeout(err: BaseException) -> bool:
    """PyAV's interrupt raises ExitError; FFmpeg's socket timeout raises TimeoutError."""
    return isinstance(err, av.error.ExitError | TimeoutError)


def _describe(err: BaseException) -> str:
    """The error without any password: FFmpeg's messages quote the whole URL."""
    if isinstance(err, av.error.ExitError):
        return "timed out (no data)"
    return redact(str(err) or type(err).__name__)


_CREDENTIALS_RE = re.compile(r"(\w+://[^:/@\s'\"]+):[^@\s/'\"]*@")


def redact(text: str) -> str:
    """`text` with every URL's password replaced by ***, for logs and health."""
    return _CREDENTIALS_RE.sub(r"\1:***@", text)


# --- the ingest loop -----------------------------------------------------------------------


class StreamIngest:
    """Runs one (camera, stream) forever on its own thread.

    Invariants: every opened source is closed; every started run is ended (with a reason)
    and every sink that saw on_run_start sees on_run_end; a sink that raises is detached for
    the rest of that run without disturbing the other sinks or the recording.
    """

    def __init__(
        self,
        *,
        site: str,
        camera: str,
        stream: str,
        url: str,
        opener: Opener,
        sinks: Sequence[PacketSink],
        run_log: RunLog,
        health: StreamHealth,
        settings: IngestSettings = IngestSettings(),
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        previous_run_end: tuple[float, str] | None = None,
    ) -> None:
        """`previous_run_end`: (end wall time, end reason) of this stream's last run in the
        index, from an earlier process, so the first run records the gap since then."""
        self.site = site
        self.camera = camera
        self.stream = stream
        self._url = url
        self._opener = opener
        self._sinks = list(sinks)
        self._run_log = run_log
        self._health = health
        self._settings = settings
        self._clock = clock or SystemClock()
        self._backoff = backoff or Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = context_logger(log, site, f"{camera}/{stream}")
        self._last_end = previous_run_end  # wall time and reason of the last run
        self.read_latency = ReadLatency()  # sinks that serve viewers ask for unbatched reads

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, name=f"ingest-{self.camera}-{self.stream}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop; it notices between packets or when a read times out."""
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def add_sink(self, sink: PacketSink) -> None:
        """Attach a sink from the next run on (e.g. a live sink while someone watches)."""
        self._sinks = [*self._sinks, sink]

    def remove_sink(self, sink: PacketSink) -> None:
        self._sinks = [s for s in self._sinks if s is not sink]

    def run_forever(self) -> None:
        health = self._health
        while not self._stop.is_set():
            started = self._clock.monotonic()
            try:
                got_packets = self.run_once()
            except Exception:  # a bug must not end recording for good: log, back off, retry
                self._log.exception("ingest run failed unexpectedly")
                got_packets = False
            if self._stop.is_set():
                break
            ran_s = self._clock.monotonic() - started
            if got_packets and ran_s >= self._settings.healthy_run_s:
                self._backoff.reset()
            delay_s = self._backoff.next_delay_s()
            health.reconnects += 1
            health.set_state(StreamState.OFFLINE, f"retrying in {delay_s:.1f} s")
            self._stop.wait(delay_s)

    def run_once(self) -> bool:
        """One connection: open, stream until it ends, close. True if any packet arrived."""
        health = self._health
        if health.state != StreamState.OFFLINE:  # a retry stays "offline" until packets flow
            health.set_state(StreamState.CONNECTING)
        try:
            source = self._opener.open(self._url)
        except SourceError as err:
            # A dead camera is retried every 30 s for days: log each new error once.
            level = logging.DEBUG if health.last_error == str(err) else logging.WARNING
            health.last_error = str(err)
            self._log.log(level, "%s", err)
            return False
        try:
            source.follow(self.read_latency)
            return self._stream(source)
        finally:
            source.close()

    # internals ---------------------------------------------------------------------------

    def _stream(self, source: Source) -> bool:
        health = self._health
        monotonic = self._clock.monotonic
        stop = self._stop
        packets = source.packets()
        reason = END_EOF
        run: _Run | None = None
        # Each packet is held back until the next one arrives. When a stream breaks, FFmpeg
        # flushes its H.264/H.265 parser and hands out the incomplete access unit it was
        # assembling (seen: a 6-byte packet after a stall, which decoders reject), and only
        # then reports the error; the held packet is that fragment and is dropped. On our
        # own stop the held packet is complete (the parser had seen the next one begin).
        held: av.Packet | None = None
        held_at = 0.0
        batch_s = self._settings.read_batch_s
        tb_s = 1 / 90000
        try:
            for packet in packets:
                if stop.is_set():
                    reason = END_SHUTDOWN
                    break
                size = packet.size
                if not size:  # the demuxer's empty flush packet
                    continue
                now = monotonic()
                if held is not None and batch_s:
                    now = _arrival(now, held_at, held.dts, packet.dts, tb_s, batch_s)
                health.packets += 1
                health.bytes_received += size
                health.last_packet_monotonic = now
                if run is None:
                    run = self._start_run(source, now)
                    tb_s = float(source.time_base)
                elif held is not None:
                    if held.dts is None:
                        _backfill_timestamps(held, packet)
                    run.last_delivered_monotonic = held_at
                    for sink in run.sinks:
                        try:
                            sink.on_packet(held)
                        except Exception as err:
                            run.detach(sink, err, self._log)
                held, held_at = packet, now
        except SourceError as err:
            reason = END_TIMEOUT if err.timed_out else END_ERROR
            health.last_error = str(err)
            self._log.warning("stream ended: %s", err)
        finally:
            if run is not None:
                if held is not None and reason == END_SHUTDOWN:
                    run.last_delivered_monotonic = held_at
                    for sink in run.sinks:
                        try:
                            sink.on_packet(held)
                        except Exception as err:
                            run.detach(sink, err, self._log)
                self._end_run(run, reason)
        return run is not None

    def _start_run(self, source: Source, first_packet_monotonic: float) -> _Run:
        anchor = WallAnchor(self._clock)
        start_wall = anchor.wall_at(first_packet_monotonic)
        if self._last_end is not None:
            gap_start, end_reason = self._last_end
            gap_reason = GAP_REASONS.get(end_reason, "reconnect")
            self._run_log.add_gap(self.camera, self.stream, gap_start, start_wall, gap_reason)
            self._health.gaps += 1
        run_id = self._run_log.start_run(self.camera, self.stream, start_wall)
        video = source.video
        ctx = video.codec_context
        info = StreamInfo(
            site=self.site,
            camera=self.camera,
            stream=self.stream,
            run_id=run_id,
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            time_base_num=source.time_base.numerator,
            time_base_den=source.time_base.denominator,
            run_start_wall=start_wall,
            av_stream=video,
            read_latency=self.read_latency,
        )
        health = self._health
        health.runs += 1
        health.codec, health.width, health.height = info.codec, info.width, info.height
        run = _Run(run_id, anchor, info, [], first_packet_monotonic)
        for sink in self._sinks:
            try:
                sink.on_run_start(info)
            except Exception as err:
                self._log.exception("sink %s failed to start: %s", type(sink).__name__, err)
                continue
            run.sinks.append(sink)
        health.set_state(
            StreamState.RECORDING, f"run {run_id}, {info.codec} {info.width}x{info.height}"
        )
        return run

    def _end_run(self, run: _Run, reason: str) -> None:
        end_wall = run.anchor.wall_at(run.last_delivered_monotonic)
        for sink in run.sinks:
            try:
                sink.on_run_end(reason)
            except Exception:
                self._log.exception("sink %s failed to end the run", type(sink).__name__)
        try:
            self._run_log.end_run(run.run_id, end_wall, reason)
        except Exception:
            self._log.exception("could not record the end of run %s", run.run_id)
        self._last_end = (end_wall, reason)
        self._log.info("run %s ended: %s", run.run_id, reason)
        if reason == END_EOF:
            self._health.last_error = "the server ended the stream"


def _arrival(
    read_at: float, previous_at: float, previous_dts: int | None, dts: int | None,
    tb_s: float, batch_s: float,
) -> float:
    """When a packet read at `read_at` most likely arrived. Reads are batched (docs/ingest.md):
    the frames of one read arrived over the `batch_s` before it, at the media rate, so the
    previous packet's arrival plus the media step, kept within [read_at - batch_s, read_at].
    Otherwise a run ended by a stall would end up to `batch_s` late."""
    if previous_dts is None or dts is None or dts <= previous_dts:
        return read_at
    return min(read_at, max(read_at - batch_s, previous_at + (dts - previous_dts) * tb_s))


@dataclass
class _Run:
    run_id: int
    anchor: WallAnchor
    info: StreamInfo
    sinks: list[PacketSink]
    last_delivered_monotonic: float  # arrival of the last packet the sinks got: the run's end

    def detach(self, sink: PacketSink, err: Exception, logger: logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        """Take a failing sink out of this run; the others and the recording go on."""
        logger.error("sink %s failed, detached until the next run: %r", type(sink).__name__, err)
        self.sinks = [s for s in self.sinks if s is not sink]
        try:
            sink.on_run_end(f"sink error: {err}")
        except Exception:
            logger.exception("sink %s failed to end the run", type(sink).__name__)


def run_threads(ingests: Sequence[StreamIngest]) -> Callable[[float], bool]:
    """Start every ingest; return a function that stops them all and joins within a deadline."""
    for ingest in ingests:
        ingest.start()

    def stop_all(timeout_s: float) -> bool:
        for ingest in ingests:
            ingest.request_stop()
        deadline = time.monotonic() + timeout_s
        return all(i.join(max(0.0, deadline - time.monotonic())) for i in ingests)

    return stop_all


def _backfill_timestamps(packet: av.Packet, following: av.Packet) -> None:
    """Give a packet without timestamps the ones its duration and the next packet imply.

    FFmpeg's RTSP demuxer hands out the first packet of a session (the keyframe) with no pts
    or dts, from the simulator and from GStreamer alike. Writers must skip packets without a
    dts, so each run lost its whole first GOP (about 3 % of a 30 s recording); the held-back
    packet's duration and its successor's dts place it exactly.
    """
    if following.dts is None or not packet.duration:
        return
    packet.dts = following.dts - packet.duration
    if packet.pts is None:
        packet.pts = packet.dts

