"""Motion detection benchmark: Dozor's detector against Debian's `motion` on the same clips.

    python -m bench.motion [--cameras N] [--seconds T] [--nuisance-seconds S] [--no-peer]

Quality, on the labelled clips of bench.motion_clips: event recall (all objects, and
person-sized ones), precision, false events per hour of nuisance-only video, detection latency
(first frame with the object -> event confirmed) and CPU per processed frame.
Cost: the recorder side of one camera with detection at 5 fps on a 640x360 15 fps stream
(packets demuxed from a file, paced in real time, fed to MotionSink), against `motion` reading
the same file at 15 fps (`netcam_url file://`), both with N cameras, measured over the same
T seconds (so both see the same load from anything else running on the machine).
The peer runs with its defaults (threshold 1500 changed pixels, event_gap 60 s); clips with a
mask get the same mask as a PGM `mask_file`. Its event times come from `on_event_start`
hooks, relative to the moment its log says the file was opened (about +-0.1 s).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np

from bench.motion_clips import ClipSpec, LabelledClip, MovingObject, make_clip, standard_clips
from recorder.ingest import IngestSettings
from recorder.motion.config import MotionConfig
from recorder.motion.detector import polygon_mask
from recorder.motion.offline import detect_file, stream_info_for
from recorder.motion.sink import MotionSink

MATCH_SLACK_S = 0.5


@dataclass(frozen=True)
class Found:
    start_s: float
    end_s: float
    trigger_s: float


@dataclass(frozen=True)
class Outcome:
    clip: LabelledClip
    found: tuple[Found, ...]


def clip_config(clip: LabelledClip) -> MotionConfig:
    return MotionConfig(masks=clip.spec.masks, zones=clip.spec.zones)


# ---- quality -----------------------------------------------------------------------------------


def dozor_quality(clips: list[LabelledClip]) -> tuple[list[Outcome], float, float]:
    """Outcomes, CPU s per processed frame (decode included), and the same for detection
    alone (the decode of the same frames, timed separately, subtracted)."""
    outcomes = []
    cpu_s = 0.0
    decode_s = 0.0
    frames = 0
    for clip in clips:
        res = detect_file(clip.path, clip_config(clip), camera=clip.spec.name)
        cpu_s += res.cpu_s
        decode_s += _decode_cpu_s(clip.path)
        frames += res.frames_processed
        found = tuple(
            Found(e.start_wall, e.end_wall or e.start_wall, e.trigger_wall or e.start_wall)
            for e in res.events
        )
        outcomes.append(Outcome(clip, found))
    if not frames:
        return outcomes, 0.0, 0.0
    return outcomes, cpu_s / frames, max(cpu_s - decode_s, 0.0) / frames


def _decode_cpu_s(path: Path) -> float:
    """Demux and decode a file the way MotionSink does, without detecting."""
    cpu0 = time.process_time()
    with av.open(str(path)) as container:
        st = container.streams.video[0]
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(st.codec_context.name, "r"))
        ctx.extradata = st.codec_context.extradata
        ctx.thread_count = 1
        ctx.options = {"skip_loop_filter": "all", "flags2": "+fast"}
        for pkt in container.demux(st):
            if pkt.dts is not None:
                ctx.decode(pkt)
    return time.process_time() - cpu0


def score(outcomes: list[Outcome]) -> dict[str, float]:
    tp_all = n_all = tp_person = n_person = 0
    matched_events = n_events = false_nuisance = 0
    nuisance_s = 0.0
    latencies = []
    for oc in outcomes:
        truth = oc.clip.truth
        if not truth:
            nuisance_s += oc.clip.spec.duration_s
            false_nuisance += len(oc.found)
        n_events += len(oc.found)
        used: set[int] = set()
        for tr in truth:
            hits = [
                (i, f) for i, f in enumerate(oc.found)
                if f.start_s <= tr.exit_s + MATCH_SLACK_S and f.end_s >= tr.enter_s - MATCH_SLACK_S
            ]
            person = tr.label.startswith("person")
            n_all += 1
            n_person += person
            if hits:
                tp_all += 1
                tp_person += person
                used.update(i for i, _ in hits)
                latencies.append(max(0.0, min(f.trigger_s for _, f in hits) - tr.enter_s))
        matched_events += len(used)
    return {
        "recall": tp_all / n_all if n_all else 1.0,
        "recall_person": tp_person / n_person if n_person else 1.0,
        "precision": matched_events / n_events if n_events else 1.0,
        "events": n_events,
        "false_events_nuisance": false_nuisance,
        "nuisance_hours": nuisance_s / 3600,
        "false_per_hour": false_nuisance / (nuisance_s / 3600) if nuisance_s else 0.0,
        "latency_mean_s": float(np.mean(latencies)) if latencies else float("nan"),
        "latency_max_s": float(np.max(latencies)) if latencies else float("nan"),
    }


# ---- the peer: Debian's motion ---------------------------------------------------------------


class MotionPeer:
    """One `motion` process with a camera per clip, each reading its file at the clip's fps."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hook = self.dir / "hook.sh"
        self.events = self.dir / "events.log"
        self.log = self.dir / "motion.log"
        self.hook.write_text(f'#!/bin/sh\necho "$1 $2 $(date +%s.%N)" >> {self.events}\n')
        self.hook.chmod(0o755)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cams: list[tuple[str, Path, int, tuple]], threshold: int | None = None) -> None:
        """cams: (name, file, fps, masks); `threshold`: changed pixels (motion's default 1500)."""
        lines = [
            "daemon off", "setup_mode off", "log_level 6", f"log_file {self.log}",
            f"target_dir {self.dir / 'out'}", "webcontrol_port 0", "stream_port 0",
            "movie_output off", "picture_output off",
        ]
        for i, (name, path, fps, masks) in enumerate(cams, start=1):
            conf = self.dir / f"cam{i}.conf"
            w, h = _size_of(path)
            cam = [
                f"camera_id {i}", f"camera_name {name}", f"netcam_url file://{path}",
                f"framerate {fps}", f"width {w}", f"height {h}",
                f"on_event_start {self.hook} start %t", f"on_event_end {self.hook} end %t",
            ]
            if threshold is not None:
                cam.append(f"threshold {threshold}")
            if masks:
                pgm = self.dir / f"mask{i}.pgm"
                cv2.imwrite(str(pgm), cv2.bitwise_not(polygon_mask(masks, w, h)))
                cam.append(f"mask_file {pgm}")
            conf.write_text("\n".join(cam) + "\n")
            lines.append(f"camera {conf}")
        (self.dir / "motion.conf").write_text("\n".join(lines) + "\n")
        for f in (self.events, self.log):
            f.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["motion", "-n", "-c", str(self.dir / "motion.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def wait_connected(self, names: list[str], timeout_s: float = 60.0) -> dict[str, float]:
        """Wall time at which each camera's file was opened, from its log (polled at 20 Hz)."""
        seen: dict[str, float] = {}
        deadline = time.time() + timeout_s
        offset = 0
        while len(seen) < len(names) and time.time() < deadline:
            if self.log.exists():
                with self.log.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                now = time.time()
                text = chunk[: chunk.rfind(b"\n") + 1]
                offset += len(text)
                for line in text.decode(errors="replace").splitlines():
                    for n in names:
                        if f"Camera ({n}) connected" in line and n not in seen:
                            seen[n] = now
            time.sleep(0.05)
        return seen

    def cpu_s(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def event_starts(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        if self.events.exists():
            for line in self.events.read_text().splitlines():
                kind, cam, t = line.split()
                if kind == "start":
                    out.setdefault(int(cam), []).append(float(t))
        return out


def peer_quality(
    clips: list[LabelledClip], workdir: Path, threshold: int | None = None
) -> list[Outcome]:
    peer = MotionPeer(workdir / "quality")
    names = [c.spec.name for c in clips]
    peer.start([(c.spec.name, c.path, c.spec.fps, c.spec.masks) for c in clips], threshold)
    try:
        opened = peer.wait_connected(names)
        longest = max(c.spec.duration_s for c in clips)
        time.sleep(longest + 1.0)
    finally:
        peer.stop()
    starts = peer.event_starts()
    outcomes = []
    for i, clip in enumerate(clips, start=1):
        t0 = opened.get(clip.spec.name)
        found = []
        if t0 is not None:
            for t in starts.get(i, []):
                rel = t - t0
                if -0.5 <= rel <= clip.spec.duration_s:  # the file loops: first pass only
                    found.append(Found(rel, rel, rel))
        outcomes.append(Outcome(clip, tuple(found)))
    return outcomes


# ---- recorder-side CPU per camera ----------------------------------------------------------


def dozor_cpu(
    path: Path, cameras: int, seconds: float, cfg: MotionConfig | None = None
) -> tuple[float, int]:
    """Percent of one core per camera: demux paced in real time + MotionSink at 5 fps.

    Paced like the recorder's RTSP client reads (recorder.ingest.IngestSettings.read_batch_s):
    a thread wakes at most once per batch interval and takes every packet due by then.
    Process CPU time (every thread, OpenCV's and FFmpeg's included) over wall time."""
    frames = [0] * cameras
    stop_at = time.monotonic() + seconds
    batch_s = IngestSettings().read_batch_s

    def run(k: int) -> None:
        sink = MotionSink(f"cam{k}", cfg or MotionConfig(), lambda _c: None)
        while time.monotonic() < stop_at:
            with av.open(str(path)) as container:
                info = stream_info_for(container, f"cam{k}")
                sink.on_run_start(info)
                tb = info.time_base_num / info.time_base_den
                mono0 = woke = time.monotonic()
                first = None
                for pkt in container.demux(info.av_stream):
                    if pkt.dts is None:
                        continue
                    first = pkt.dts if first is None else first
                    due = mono0 + (pkt.dts - first) * tb
                    if due > time.monotonic():  # not here yet: wake with the next batch
                        time.sleep(max(due, woke + batch_s) - time.monotonic())
                        woke = time.monotonic()
                    if time.monotonic() >= stop_at:
                        break
                    sink.on_packet(pkt)
                sink.on_run_end("loop")
            frames[k] += sink.frames_processed

    cpu0 = time.process_time()
    wall0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(cameras)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - wall0
    return 100.0 * (time.process_time() - cpu0) / wall / cameras, sum(frames)


def peer_cpu(
    path: Path, fps: int, cameras: int, seconds: float, workdir: Path,
    during: Callable[[], tuple[float, int]] | None = None,
) -> tuple[float, tuple[float, int] | None]:
    """`motion`'s CPU per camera over `seconds`; `during` (Dozor's measurement) runs in the
    same window, so both see the same load from whatever else the machine is doing."""
    peer = MotionPeer(workdir / "cpu")
    names = [f"cpu{k}" for k in range(cameras)]
    peer.start([(n, path, fps, ()) for n in names])
    try:
        opened = peer.wait_connected(names)
        if len(opened) < cameras:
            raise RuntimeError(f"motion opened only {len(opened)} of {cameras} cameras")
        time.sleep(0.5)
        c0, w0 = peer.cpu_s(), time.monotonic()
        other = during() if during is not None else None
        left = seconds - (time.monotonic() - w0)
        if left > 0:
            time.sleep(left)
        c1, w1 = peer.cpu_s(), time.monotonic()
    finally:
        peer.stop()
    return 100.0 * (c1 - c0) / (w1 - w0) / cameras, other


# ---- main --------------------------------------------------------------------------------------


def cpu_clip_spec(seconds: float) -> ClipSpec:
    person = MovingObject(24, 60, 60, (-25.0, 200.0), (60.0, 0.0), 2.0, "person")
    return ClipSpec("cpu_stream", duration_s=max(10.0, min(seconds, 30.0)), fps=15,
                    objects=(person,), seed=99)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.motion", description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=2, help="cameras for the CPU measurement")
    ap.add_argument("--seconds", type=float, default=20.0, help="CPU measurement length")
    ap.add_argument("--nuisance-seconds", type=float, default=60.0,
                    help="length of each nuisance-only clip")
    ap.add_argument("--no-peer", action="store_true", help="skip Debian's motion")
    ap.add_argument("--peer-threshold", type=int, default=None,
                    help="motion's threshold (changed pixels); default: motion's own (1500)")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "dozor-motion-clips")
    args = ap.parse_args()
    have_peer = not args.no_peer and shutil.which("motion") is not None

    t0 = time.monotonic()
    clips = [make_clip(s, args.cache_dir) for s in standard_clips(args.nuisance_seconds)]
    cpu_clip = make_clip(cpu_clip_spec(args.seconds), args.cache_dir)
    print(f"clips: {len(clips)} made in {time.monotonic() - t0:.1f} s ({args.cache_dir})")

    outcomes, cpu_per_frame_s, detect_per_frame_s = dozor_quality(clips)
    dz = score(outcomes)
    for oc in outcomes:
        print(f"  dozor {oc.clip.spec.name:22s} truth={len(oc.clip.truth)} "
              f"events={[(round(f.start_s, 1), round(f.end_s, 1)) for f in oc.found]}")
    result: dict[str, float | int | str | None] = {f"dozor_{k}": v for k, v in dz.items()}
    result["dozor_cpu_ms_per_frame"] = cpu_per_frame_s * 1000
    result["dozor_detect_ms_per_frame"] = detect_per_frame_s * 1000

    kf_cpu, _ = dozor_cpu(cpu_clip.path, args.cameras, args.seconds / 2,
                          MotionConfig(decode="keyframes"))
    result["dozor_keyframes_cpu_pct_per_camera"] = kf_cpu

    with tempfile.TemporaryDirectory(prefix="bench-motion-") as tmp:
        if have_peer:
            peer_outcomes = peer_quality(clips, Path(tmp), args.peer_threshold)
            pm = score(peer_outcomes)
            for oc in peer_outcomes:
                print(f"  motion {oc.clip.spec.name:22s} truth={len(oc.clip.truth)} "
                      f"starts={[round(f.start_s, 1) for f in oc.found]}")
            result.update({f"motion_{k}": v for k, v in pm.items()})
            # both measured in the same window (N Dozor threads + N motion cameras)
            motion_pct, both = peer_cpu(
                cpu_clip.path, cpu_clip.spec.fps, args.cameras, args.seconds, Path(tmp),
                during=lambda: dozor_cpu(cpu_clip.path, args.cameras, args.seconds),
            )
            assert both is not None
            dz_cpu, dz_frames = both
            result["motion_cpu_pct_per_camera"] = motion_pct
            result["cpu_ratio_dozor_to_motion"] = dz_cpu / motion_pct if motion_pct else None
        else:
            dz_cpu, dz_frames = dozor_cpu(cpu_clip.path, args.cameras, args.seconds)
            result["motion_peer"] = "not run"
    result["dozor_cpu_pct_per_camera"] = dz_cpu
    result["dozor_cpu_frames_processed"] = dz_frames

    print(f"clips={len(clips)} cameras={args.cameras} seconds={args.seconds}")
    for side in ("dozor", "motion"):
        if f"{side}_recall" not in result:
            continue
        print(
            f"{side:6s} recall={result[f'{side}_recall']:.3f} "
            f"recall_person={result[f'{side}_recall_person']:.3f} "
            f"precision={result[f'{side}_precision']:.3f} "
            f"false/h={result[f'{side}_false_per_hour']:.1f} "
            f"(over {result[f'{side}_nuisance_hours']:.3f} h) "
            f"latency mean={result[f'{side}_latency_mean_s']:.2f} s "
            f"max={result[f'{side}_latency_max_s']:.2f} s"
        )
    print(f"dozor  {result['dozor_cpu_ms_per_frame']:.2f} ms CPU per processed frame "
          f"(decode of all frames included; detection alone "
          f"{result['dozor_detect_ms_per_frame']:.2f} ms)")
    print(f"dozor  recorder-side CPU per camera at 5 fps detection: {dz_cpu:.2f} % of a core "
          f"(keyframes only: {kf_cpu:.2f} %)")
    if "motion_cpu_pct_per_camera" in result:
        print(f"motion CPU per camera: {result['motion_cpu_pct_per_camera']:.2f} % of a core; "
              f"ratio dozor/motion = {result['cpu_ratio_dozor_to_motion']:.2f}")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}))


def _size_of(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.width, cc.height


if __name__ == "__main__":
    main()
