"""Recording cost: Dozor's recorder against `ffmpeg -c copy -f segment` and Debian's `motion`.

    python -m bench.recording --cameras 8 --seconds 30

Starts the camera simulator (N cameras, main 1080p + sub 360p, RTSP only; each camera sends
at its own phase within the frame interval, as free-running cameras do, unless
`--aligned-frames`) once, then runs on the same streams:

1. `dozor-recorder` (subprocess, temporary storage root, 60 s segments, main + sub, streams
   read by Dozor's own RTSP client, see docs/ingest.md), recording only
   (`[cameras.motion] enabled = false`), then again with motion detection on the sub
   stream (default settings) for the comparison with `motion`;
2. the floor: one `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60`
   per stream (main + sub of every camera);
3. Debian's `motion` (`motion -n -c FILE`): `netcam_url` = sub (decoded for detection),
   `netcam_high_url` = main with `movie_passthrough on`, and `emulate_motion on` so it
   records continuously like the other two.

By default the systems run side by side and are measured over the same window: this machine
is shared, and load from elsewhere then weighs on every system alike, so the ratios hold even
when the absolute figures move (run one after another, 30 % swings between runs were seen).
All four together use about two thirds of one of the two cores at 8 cameras. `--sequential`
runs them one after another instead.

For each: CPU over the measured window (utime + stime of every process, children included,
from /proc/<pid>/stat) as % of one core per camera, peak RSS (VmHWM), bytes written; for the
recorder also bytes received, gaps and reconnects from its /health. Prints a table with
ratios to ffmpeg and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SIM_START_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 60.0


@dataclass
class Figures:
    system: str
    cameras: int
    window_s: float = 0.0
    cpu_s: float = 0.0
    cpu_pct_core_per_camera: float = 0.0
    peak_rss_mib: float = 0.0
    bytes_written: int = 0
    bytes_received: int | None = None
    written_over_received: float | None = None  # file bytes / received bytes, whole run
    window_media_over_received: float | None = None  # payload written / received, window
    gaps: int | None = None
    reconnects: int | None = None
    streams_up: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cam:
    name: str
    main: str
    sub: str
    user: str
    password: str

    def url(self, stream: str) -> str:
        raw = self.main if stream == "main" else self.sub
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return raw.replace("rtsp://", "rtsp://" + auth, 1)


# --- /proc ----------------------------------------------------------------------------------


def cpu_s(pids: Sequence[int]) -> float:
    """utime + stime + cutime + cstime of the processes, in seconds (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15])  # fields 14-17 of proc(5)
    return total / TICKS_PER_S


def peak_rss_mib(pids: Sequence[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def tree_pids(root_pid: int) -> list[int]:
    """The process and its descendants (motion and ffmpeg do not fork, but be safe)."""
    pids, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    return pids


def dir_bytes(root: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs: Sequence[subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class System:
    """One system under test: started, waited for, measured over the window, finished."""

    def __init__(self, name: str, cams: list[Cam], work: Path) -> None:
        self.figures = Figures(name, len(cams))
        self.cams = cams
        self.work = work

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, deadline: float) -> None:
        """Until every stream records (or the deadline passes, noted in the figures)."""

    def pids(self) -> list[int]:
        raise NotImplementedError

    def at_edge(self) -> None:
        """Counter snapshots at both edges of the measured window."""

    def finish(self) -> Figures:
        """Stop the processes and complete the figures."""
        raise NotImplementedError


def measure(systems: Sequence[System], warmup_s: float, seconds: float) -> None:
    """CPU of each system over the same window [warm-up end, + seconds]."""
    time.sleep(warmup_s)
    for system in systems:
        system.at_edge()
    t0, c0 = time.monotonic(), [cpu_s(s.pids()) for s in systems]
    time.sleep(seconds)
    t1, c1 = time.monotonic(), [cpu_s(s.pids()) for s in systems]
    for system, start, end in zip(systems, c0, c1, strict=True):
        system.at_edge()
        f = system.figures
        f.window_s = round(t1 - t0, 2)
        f.cpu_s = round(end - start, 3)
        f.cpu_pct_core_per_camera = round(100 * (end - start) / (t1 - t0) / f.cameras, 3)
        f.peak_rss_mib = round(peak_rss_mib(system.pids()), 1)


# --- the simulator ---------------------------------------------------------------------------


def start_simulator(
    cameras: int, log: Path, *, aligned_frames: bool = False
) -> tuple[subprocess.Popen[bytes], list[Cam]]:
    """`aligned_frames`: every camera sends at the same instants (worst case, not realistic)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_drivers.sim", "--cameras", str(cameras), "--json",
         "--no-onvif", "--no-discovery", "--control-port", "-1", "--log-level", "WARNING",
         *(["--aligned-frames"] if aligned_frames else [])],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("wb"),
    )  # fmt: skip
    assert proc.stdout is not None
    cams: list[Cam] = []
    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    while len(cams) < cameras and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        rec = json.loads(line)
        cams.append(Cam(rec["name"], rec["rtsp_main"], rec["rtsp_sub"], rec["user"],
                        rec["password"]))  # fmt: skip
    if len(cams) < cameras:
        stop([proc])
        raise SystemExit(f"simulator did not start: {log.read_text()[-2000:]}")
    return proc, cams


# --- the three systems -----------------------------------------------------------------------


class Recorder(System):
    """`dozor-recorder` on every camera's main and sub stream; `motion`: detection on too."""

    def __init__(
        self, cams: list[Cam], work: Path, *, motion: bool = False,
        read_batch_s: float | None = None,
    ) -> None:
        name = "dozor-recorder + motion" if motion else "dozor-recorder"
        super().__init__(name, cams, work)
        self.motion = motion
        self.read_batch_s = read_batch_s  # None: the recorder's default
        self.work = work / ("recorder-motion" if motion else "recorder")
        self.root = self.work / "video"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.edges: list[tuple[int, int]] = []  # (bytes received, media bytes written)

    def start(self) -> None:
        self.work.mkdir()
        lines = [
            'site = "bench"', "[storage]", f'root = "{self.root}"', "segment_duration_s = 60",
            'min_free_bytes = "1GiB"', 'stop_below_free_bytes = "256MiB"',
            "[health]", f"port = {self.port}",
        ]  # fmt: skip
        if self.read_batch_s is not None:
            lines += ["[ingest]", f"read_batch_s = {self.read_batch_s}"]
        for cam in self.cams:
            lines += [
                "[[cameras]]", f'name = "{cam.name}"', f'main_url = "{cam.main}"',
                f'sub_url = "{cam.sub}"', f'user = "{cam.user}"', f'password = "{cam.password}"',
                "[cameras.motion]", f"enabled = {'true' if self.motion else 'false'}",
            ]  # fmt: skip
        config = self.work / "site.toml"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "--config", str(config),
             "--log-level", "WARNING"],
            cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=(self.work / "recorder.log").open("wb"),
        )  # fmt: skip

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as resp:
            return json.load(resp)

    @staticmethod
    def streams(body: dict) -> list[dict]:
        return [s for cam in body["cameras"].values() for s in cam.values()]

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                body = self.health()
                if sum(s["state"] == "recording" for s in self.streams(body)) == 2 * len(
                    self.cams
                ):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.figures.notes.append("not every stream was recording before the window")

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def at_edge(self) -> None:
        b = self.health()
        written = b["storage"]["media_bytes_written"]
        self.edges.append((sum(s["bytes_received"] for s in self.streams(b)), written))

    def finish(self) -> Figures:
        assert self.proc is not None
        figures = self.figures
        try:
            body = self.health()
        finally:
            stop([self.proc])
        if len(self.edges) == 2:
            (r0, w0), (r1, w1) = self.edges
            if r1 > r0:
                figures.window_media_over_received = round((w1 - w0) / (r1 - r0), 4)
        streams = self.streams(body)
        figures.streams_up = sum(s["state"] == "recording" for s in streams)
        figures.bytes_received = sum(s["bytes_received"] for s in streams)
        figures.gaps = sum(s["gaps"] for s in streams)
        figures.reconnects = sum(s["reconnects"] for s in streams)
        figures.bytes_written = dir_bytes(self.root, (".mp4",))
        if figures.bytes_received:
            figures.written_over_received = round(
                figures.bytes_written / figures.bytes_received, 4
            )
        if self.proc.returncode != 0:
            figures.notes.append(f"recorder exited with {self.proc.returncode}")
        return figures


class Ffmpeg(System):
    """The floor: one `ffmpeg -c copy -f segment` per stream."""

    def __init__(self, cams: list[Cam], work: Path) -> None:
        super().__init__("ffmpeg -c copy -f segment", cams, work)
        self.out = work / "ffmpeg"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.out.mkdir()
        log = (self.work / "ffmpeg.log").open("wb")
        for cam in self.cams:
            for stream in ("main", "sub"):
                self.procs.append(subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                     "-i", cam.url(stream), "-map", "0:v", "-c", "copy", "-f", "segment",
                     "-segment_time", "60", "-reset_timestamps", "1",
                     str(self.out / f"{cam.name}-{stream}-%03d.mp4")],
                    stdout=subprocess.DEVNULL, stderr=log,
                ))  # fmt: skip

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def finish(self) -> Figures:
        self.figures.streams_up = sum(p.poll() is None for p in self.procs)
        stop(self.procs, signal.SIGINT)  # ffmpeg finishes its file on SIGINT
        self.figures.bytes_written = dir_bytes(self.out, (".mp4",))
        return self.figures


MOTION_CONF = """\
daemon off
setup_mode off
log_level 4
log_file {log}
target_dir {target}
webcontrol_port 0
stream_port 0
picture_output off
movie_output on
movie_passthrough on
movie_max_time 60
movie_codec mp4
emulate_motion on
threshold 1500
event_gap 60
"""

CAMERA_CONF = """\
camera_id {id}
camera_name {name}
netcam_url {sub}
netcam_high_url {main}
netcam_params rtsp_transport=tcp
netcam_high_params rtsp_transport=tcp
width 640
height 360
framerate 15
movie_filename {name}-%Y%m%d%H%M%S
"""


class Motion(System):
    """Debian's `motion`: sub decoded for detection, main recorded with passthrough."""

    def __init__(self, cams: list[Cam], work: Path) -> None:
        super().__init__("motion (passthrough)", cams, work)
        self.target = work / "motion"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.target.mkdir()
        conf = self.work / "motion.conf"
        text = MOTION_CONF.format(log=self.work / "motion.log", target=self.target)
        for i, cam in enumerate(self.cams, start=1):
            cam_conf = self.work / f"motion-{cam.name}.conf"
            cam_conf.write_text(CAMERA_CONF.format(id=i, name=cam.name, sub=cam.url("sub"),
                                                   main=cam.url("main")))  # fmt: skip
            text += f"camera {cam_conf}\n"
        conf.write_text(text)
        self.proc = subprocess.Popen(
            ["motion", "-n", "-c", str(conf)], stdout=subprocess.DEVNULL,
            stderr=(self.work / "motion.stderr").open("wb"),
        )  # fmt: skip

    def pids(self) -> list[int]:
        return tree_pids(self.proc.pid) if self.proc else []

    def finish(self) -> Figures:
        assert self.proc is not None
        figures = self.figures
        figures.streams_up = len(self.cams) if self.proc.poll() is None else 0
        stop([self.proc])
        figures.bytes_written = dir_bytes(self.target, (".mp4", ".mkv"))
        if figures.bytes_written == 0:
            figures.notes.append("motion wrote no movie (see motion.log)")
        return figures


# --- report ------------------------------------------------------------------------------


def table(results: list[Figures], floor: Figures | None) -> str:
    head = (f"{'system':<28} {'%core/cam':>9} {'x ffmpeg':>8} {'peakRSS MiB':>11} "
            f"{'written MiB':>11} {'recv MiB':>9} {'wr/recv':>8} {'window':>7} {'gaps':>5} "
            f"{'up':>4}")  # fmt: skip
    rows = [head, "-" * len(head)]
    for f in results:
        ratio = (f"{f.cpu_pct_core_per_camera / floor.cpu_pct_core_per_camera:.2f}"
                 if floor and floor.cpu_pct_core_per_camera else "-")  # fmt: skip
        recv = f"{f.bytes_received / 2**20:.1f}" if f.bytes_received is not None else "-"
        wr = f"{f.written_over_received:.4f}" if f.written_over_received is not None else "-"
        win = f.window_media_over_received
        win_text = f"{win:.4f}" if win is not None else "-"
        gaps = str(f.gaps) if f.gaps is not None else "-"
        rows.append(
            f"{f.system:<28} {f.cpu_pct_core_per_camera:>9.3f} {ratio:>8} "
            f"{f.peak_rss_mib:>11.1f} {f.bytes_written / 2**20:>11.1f} {recv:>9} {wr:>8} "
            f"{win_text:>7} {gaps:>5} {f.streams_up:>4}"
        )
        rows += [f"    note: {n}" for n in f.notes]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recording", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--systems", default="recorder,recorder-motion,ffmpeg,motion",
                        help="comma-separated subset of recorder,recorder-motion,ffmpeg,motion")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--sequential", action="store_true",
                        help="run the systems one after another instead of side by side")
    parser.add_argument("--aligned-frames", action="store_true",
                        help="the simulator sends every camera's frames at the same instants "
                             "(a worst case; by default each camera has its own phase)")
    parser.add_argument("--read-batch-s", type=float, default=None,
                        help="the recorder's [ingest] read_batch_s (default: its own, 0.2)")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    makers: dict[str, Callable[[list[Cam], Path], System]] = {
        "recorder": lambda cams, work: Recorder(cams, work, read_batch_s=args.read_batch_s),
        "recorder-motion": lambda cams, work: Recorder(
            cams, work, motion=True, read_batch_s=args.read_batch_s
        ),
        "ffmpeg": Ffmpeg,
        "motion": Motion,
    }
    unknown = set(names) - set(makers)
    if unknown:
        parser.error(f"--systems: unknown {sorted(unknown)}")

    work = Path(tempfile.mkdtemp(prefix="dozor-bench-recording-"))
    phases = "aligned frames" if args.aligned_frames else "each camera at its own frame phase"
    print(f"bench.recording: {args.cameras} cameras (main 1080p + sub 360p, {phases}), "
          f"{args.seconds:g} s window after {args.warmup_s:g} s warm-up, systems run "
          f"{'one after another' if args.sequential else 'side by side'}; work dir {work}",
          flush=True)  # fmt: skip
    sim, cams = start_simulator(
        args.cameras, work / "camsim.log", aligned_frames=args.aligned_frames
    )
    systems = [makers[name](cams, work) for name in names]
    batches = [[s] for s in systems] if args.sequential else [systems]
    sim_cpu = []
    try:
        for batch in batches:
            s0, t0 = cpu_s([sim.pid]), time.monotonic()
            try:
                for system in batch:
                    system.start()
                deadline = time.monotonic() + READY_TIMEOUT_S
                for system in batch:
                    system.wait_ready(deadline)
                measure(batch, args.warmup_s, args.seconds)
            finally:
                for system in batch:
                    if system.pids():
                        system.finish()
            sim_cpu.append(100 * (cpu_s([sim.pid]) - s0) / (time.monotonic() - t0))
            for system in batch:
                f = system.figures
                print(f"  {f.system}: {f.cpu_pct_core_per_camera:.3f} % of a core per camera",
                      flush=True)  # fmt: skip
    finally:
        stop([sim])
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    results = [s.figures for s in systems]
    floor = next((f for f in results if f.system.startswith("ffmpeg")), None)
    print()
    print(table(results, floor))
    print("wr/recv: file bytes on disk / bytes received over the whole run (the packets before "
          "each run's first keyframe are not recordable); window: payload bytes written / "
          "received during the measured window.")  # fmt: skip
    print(f"(the simulator itself used {max(sim_cpu, default=0):.0f} % of a core while serving)")
    rec = next((f for f in results if f.system == "dozor-recorder"), None)
    summary: dict[str, object] = {
        "bench": "recording",
        "cameras": args.cameras,
        "seconds": args.seconds,
        "aligned_frames": args.aligned_frames,
        "side_by_side": not args.sequential,
        "read_batch_s": args.read_batch_s,
        "results": [asdict(f) for f in results],
    }
    if rec and floor and floor.cpu_pct_core_per_camera:
        summary["recorder_over_ffmpeg_cpu"] = round(
            rec.cpu_pct_core_per_camera / floor.cpu_pct_core_per_camera, 3
        )
    motion = next((f for f in results if f.system.startswith("motion")), None)
    rec_motion = next((f for f in results if f.system == "dozor-recorder + motion"), None)
    if rec_motion and motion and motion.cpu_pct_core_per_camera:
        summary["recorder_with_motion_over_motion_cpu"] = round(
            rec_motion.cpu_pct_core_per_camera / motion.cpu_pct_core_per_camera, 3
        )
    if rec:
        summary["recorder_pct_core_total"] = round(rec.cpu_pct_core_per_camera * rec.cameras, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
