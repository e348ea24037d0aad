"""How many simulated cameras (main + sub) one camsim process serves in real time.

    python -m bench.camsim --cameras 32 --seconds 20

Starts `python -m camera_drivers.sim` with N cameras as a subprocess, connects 2N real RTSP
clients (raw RTP/TCP readers in this process that count bytes and frames, no decoding),
and measures the simulator's CPU from /proc/<pid>/stat over the window. Prints CPU per
camera (% of one core) and whether pacing kept real time (frames received against
frames due), then, LAST, one JSON line with the figures. Target: 32 cameras under 50 %.

Peer, in the same run and with the same readers: Debian's GStreamer RTSP server serving the
very same H.264 clips (MP4, no re-encoding) on 2N mounts; the JSON gives the CPU ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO

from camera_drivers.sim.cli import build_parser, config_from_args
from camera_drivers.sim.clips import PROFILES, Clip, load_clip
from camera_drivers.sim.rtsp_client import RawRtspClient

TARGET_CAMERAS = 32
TARGET_CPU_PCT = 50.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
USER, PASSWORD = "admin", "dozor-bench"
GST_SERVER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
    "gst_rtsp_server.py",
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class StreamCounter:
    url: str
    bytes: int = 0
    frames: int = 0
    window_frames: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    first_wall_s: float = 0.0
    last_wall_s: float = 0.0
    seq_gaps: int = 0
    last_seq: int | None = None
    counting: bool = False
    error: str | None = None


async def read_stream(counter: StreamCounter, user: str, password: str, stop: asyncio.Event):
    client = RawRtspClient(counter.url, user, password, timeout_s=20.0)
    try:
        await client.connect()
        await client.start()
        reader = client.reader
        assert reader is not None
        buf = bytearray()
        while not stop.is_set():
            data = await asyncio.wait_for(reader.read(262_144), 10.0)
            if not data:
                counter.error = "connection closed"
                return
            counter.bytes += len(data)
            buf += data
            pos = 0
            end = len(buf)
            while end - pos >= 4:
                size = (buf[pos + 2] << 8) | buf[pos + 3]
                if end - pos < 4 + size:
                    break
                if buf[pos + 1] == 0 and size >= 12:  # RTP on channel 0
                    seq, ts = struct.unpack_from(">HI", buf, pos + 6)
                    if counter.last_seq is not None and seq != (counter.last_seq + 1) & 0xFFFF:
                        counter.seq_gaps += 1
                    counter.last_seq = seq
                    if buf[pos + 5] & 0x80:  # marker: last packet of a frame
                        counter.frames += 1
                        if counter.counting:
                            counter.window_frames += 1
                            now = time.monotonic()
                            if counter.first_ts is None:
                                counter.first_ts, counter.first_wall_s = ts, now
                            counter.last_ts, counter.last_wall_s = ts, now
                pos += 4 + size
            del buf[:pos]
    except Exception as err:  # a benchmark reports every failure, then goes on
        counter.error = f"{type(err).__name__}: {err}"
    finally:
        await client.close()


def _read_json_lines(proc: subprocess.Popen, count: int, log: IO[str], what: str) -> list[dict]:
    assert proc.stdout is not None
    records: list[dict] = []
    deadline = time.monotonic() + 300
    while len(records) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        records.append(json.loads(line))
    if len(records) < count:
        proc.kill()
        log.seek(0)
        raise SystemExit(f"{what} did not start: {log.read()[-2000:]}")
    return records


def simulator_args(args: argparse.Namespace) -> list[str]:
    return [
        "--cameras", str(args.cameras), "--loop-s", str(args.loop_s), "--codec", args.codec,
        "--fps", str(args.fps), "--no-discovery", "--control-port", "-1",
        "--log-level", "WARNING", "--user", USER, "--password", PASSWORD,
    ]


def start_simulator(args: argparse.Namespace, log: IO[str]) -> tuple[subprocess.Popen, list[str]]:
    cmd = [sys.executable, "-m", "camera_drivers.sim", "--json", *simulator_args(args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    cameras = _read_json_lines(proc, args.cameras, log, "simulator")
    return proc, [cam[f"rtsp_{stream}"] for cam in cameras for stream in ("main", "sub")]


def write_peer_file(clip: Clip, loops: int, directory: str, name: str) -> str:
    """The clip repeated `loops` times as an MP4 (stream copy: the same bytes camsim sends)."""
    raw = os.path.join(directory, f"{name}.h264")
    with open(raw, "wb") as f:
        for _ in range(loops):
            for frame in clip.frames:
                f.write(b"".join(b"\x00\x00\x00\x01" + nal for nal in frame.nals))
    mp4 = os.path.join(directory, f"{name}.mp4")
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-framerate", str(clip.fps), "-i", raw,
         "-c", "copy", mp4],
        check=True,
    )
    return mp4


def start_gstreamer_peer(
    args: argparse.Namespace, log: IO[str], directory: str
) -> tuple[subprocess.Popen, list[str]]:
    # The very scene the simulator plays, so the clips come from the same cache entries.
    scene = config_from_args(build_parser().parse_args(simulator_args(args))).scene
    loops = math.ceil((args.warmup_s + args.seconds + 30) / args.loop_s)
    files = [
        write_peer_file(load_clip(scene, PROFILES[name], "h264"), loops, directory, name)
        for name in ("main", "sub")
    ]
    cmd = ["/usr/bin/python3", GST_SERVER, "--mounts", str(args.cameras)]
    for path in files:
        cmd += ["--file", path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        log.seek(0)
        raise SystemExit(f"GStreamer peer did not start: {line} {log.read()[-2000:]}")
    base = line.split()[1].rsplit("/", 1)[0]
    urls = [f"{base}/f{j}s{i}" for i in range(args.cameras) for j in range(2)]
    return proc, urls


async def measure(args: argparse.Namespace, pid: int, urls: list[str], label: str) -> dict:
    counters = [StreamCounter(url=url) for url in urls]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(read_stream(c, USER, PASSWORD, stop)) for c in counters]
    await asyncio.sleep(args.warmup_s)  # every client has joined at a keyframe by now
    idle_cpu = cpu_seconds(pid)
    reader_cpu = time.process_time()
    started = time.monotonic()
    for c in counters:
        c.counting = True
    await asyncio.sleep(args.seconds)
    for c in counters:
        c.counting = False
    wall_s = time.monotonic() - started
    cpu_s = cpu_seconds(pid) - idle_cpu
    reader_cpu = time.process_time() - reader_cpu
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    expected = wall_s * args.fps
    ratios = [c.window_frames / expected for c in counters]
    # RTP clock against the wall clock between the first and last frame of the window.
    ts_spans = [
        ((c.last_ts - c.first_ts) % 2**32) / 90_000 / (c.last_wall_s - c.first_wall_s)
        for c in counters
        if c.first_ts is not None and c.last_ts is not None and c.last_wall_s > c.first_wall_s
    ]
    errors = [f"{c.url}: {c.error}" for c in counters if c.error]
    total_bytes = sum(c.bytes for c in counters)
    cpu_pct = 100.0 * cpu_s / wall_s
    result = {
        "server": label,
        "seconds": round(wall_s, 2),
        "cpu_pct_one_core": round(cpu_pct, 2),
        "cpu_pct_per_camera": round(cpu_pct / args.cameras, 3),
        "reader_cpu_pct": round(100.0 * reader_cpu / wall_s, 1),
        "frames_due_per_stream": round(expected, 1),
        "pacing_ratio_min": round(min(ratios), 4),
        "pacing_ratio_mean": round(sum(ratios) / len(ratios), 4),
        "rtp_clock_ratio_min": round(min(ts_spans), 4) if ts_spans else None,
        "seq_gaps": sum(c.seq_gaps for c in counters),
        "mbit_s_total": round(total_bytes * 8 / 1e6 / (wall_s + args.warmup_s), 1),
        "errors": len(errors),
        "realtime": min(ratios) >= 0.97 and not errors,
    }
    print(f"{label}: {args.cameras} cameras, {len(urls)} streams, {args.fps} fps, "
          f"{result['seconds']} s")
    for sample in errors[:3]:
        print(f"  error: {sample}")
    print(f"  server CPU: {result['cpu_pct_one_core']} % of one core, "
          f"{result['cpu_pct_per_camera']} % per camera (reader: {result['reader_cpu_pct']} %)")
    print(f"  pacing: frames received / due per stream: min {result['pacing_ratio_min']}, "
          f"mean {result['pacing_ratio_mean']}; RTP clock / wall clock min "
          f"{result['rtp_clock_ratio_min']}; sequence gaps {result['seq_gaps']}; "
          f"{'real time kept' if result['realtime'] else 'REAL TIME NOT KEPT'}")
    print(f"  throughput: {result['mbit_s_total']} Mbit/s to {len(urls)} clients", flush=True)
    return result


def run_server(args, label, start) -> dict:
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as tmp:
        proc, urls = start(args, log, tmp) if label == "gstreamer" else start(args, log)
        try:
            return asyncio.run(measure(args, proc.pid, urls, label))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--loop-s", type=float, default=20.0)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264")
    parser.add_argument("--peer", choices=("gstreamer", "none"), default="gstreamer",
                        help="also serve the same clips from Debian's GStreamer RTSP server")
    args = parser.parse_args()

    camsim = run_server(args, "camsim", start_simulator)
    summary: dict = {
        "bench": "camsim", "cameras": args.cameras, "streams": 2 * args.cameras,
        "codec": args.codec, "fps": args.fps,
        **{k: v for k, v in camsim.items() if k != "server"},
        "target_met": camsim["cpu_pct_one_core"] < TARGET_CPU_PCT * args.cameras / TARGET_CAMERAS,
    }
    print(f"camsim target ({TARGET_CAMERAS} cameras under {TARGET_CPU_PCT:.0f} % of one core, "
          f"scaled to {args.cameras}): {'met' if summary['target_met'] else 'NOT met'}")
    if args.peer == "gstreamer" and args.codec == "h264" and os.path.exists("/usr/bin/python3"):
        peer = run_server(args, "gstreamer", start_gstreamer_peer)
        summary["peer"] = "gstreamer-rtsp-server (same clips from MP4, no re-encoding)"
        summary["peer_cpu_pct_one_core"] = peer["cpu_pct_one_core"]
        summary["peer_realtime"] = peer["realtime"]
        summary["peer_pacing_ratio_min"] = peer["pacing_ratio_min"]
        if peer["cpu_pct_one_core"] > 0:
            ratio = camsim["cpu_pct_one_core"] / peer["cpu_pct_one_core"]
            summary["cpu_ratio_camsim_to_peer"] = round(ratio, 3)
            print(f"CPU camsim / GStreamer: {ratio:.2f}")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
