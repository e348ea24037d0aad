"""`dozor-camsim`: N simulated ONVIF cameras with RTSP streams in one process.

Once every camera serves, it prints one line per camera with its ONVIF and RTSP URLs, or
with --json one JSON object per line: name, onvif, rtsp_main, rtsp_sub, user, password,
codec, control (the camera's fault URL). Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence

from camera_drivers.sim.control import apply_fault, parse_fault_arg
from camera_drivers.sim.errors import SimError
from camera_drivers.sim.fleet import Fleet, FleetConfig, camera_record, start_fleet
from camera_drivers.sim.scene import MovingObject, SceneSpec

log = logging.getLogger("camera_drivers.sim")

DEFAULT_PASSWORD = "dozor-demo"


def _motion(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--motion {text!r}: expected START:END in seconds of the loop, e.g. 20:28"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dozor-camsim", description="Simulated ONVIF/RTSP cameras for tests and demos."
    )
    p.add_argument("--cameras", type=int, default=1, help="how many cameras (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument("--loop-s", type=float, default=60.0, help="scene loop length, seconds")
    p.add_argument(
        "--motion", type=_motion, action="append", metavar="START:END",
        help="a box crosses the frame from START to END s of each loop (repeatable); "
        "default: one crossing at a third of the loop",
    )
    p.add_argument("--no-motion", action="store_true", help="a scene where nothing moves")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--gop-s", type=float, default=1.0, help="keyframe interval, seconds")
    p.add_argument("--noise", type=float, default=0.0, help="sensor noise, luma std. dev.")
    p.add_argument("--illumination", type=float, default=0.0,
                   help="slow brightness swing over the loop, luma levels")
    p.add_argument("--seed", type=int, default=1, help="background texture seed")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default=DEFAULT_PASSWORD)
    p.add_argument("--clock-offset-s", type=float, default=0.0,
                   help="camera clock minus true time (ONVIF time, RTCP sender reports)")
    p.add_argument("--control-port", type=int, default=0,
                   help="HTTP control endpoint port (0: a free port, -1: none)")
    p.add_argument("--fault", action="append", default=[], metavar="NAME:KIND[=ARG]",
                   help="inject a fault at start: cam01:stall, cam02:refuse, cam01:jump=3600, "
                   "all:offline=10, cam01:drop (repeatable)")
    p.add_argument("--no-onvif", action="store_true", help="RTSP only")
    p.add_argument("--no-discovery", action="store_true", help="no WS-Discovery responder")
    p.add_argument("--aligned-frames", action="store_true",
                   help="send every camera's frames at the same instants (a worst case: real "
                        "cameras are not synchronised, so by default each has its own phase)")
    p.add_argument("--json", action="store_true", help="one JSON object per camera and line")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> FleetConfig:
    if args.no_motion:
        intervals: list[tuple[float, float]] = []
    elif args.motion:
        intervals = args.motion
    else:
        start = round(args.loop_s / 3, 3)
        intervals = [(start, round(start + min(8.0, args.loop_s / 3), 3))]
    scene = SceneSpec(
        loop_s=args.loop_s,
        fps=args.fps,
        gop_s=args.gop_s,
        objects=tuple(MovingObject(start_s=s, end_s=e) for s, e in intervals),
        noise=args.noise,
        illumination_amplitude=args.illumination,
        seed=args.seed,
    )
    return FleetConfig(
        cameras=args.cameras,
        host=args.host,
        codec=args.codec,
        scene=scene,
        user=args.user,
        password=args.password,
        clock_offset_s=args.clock_offset_s,
        onvif=not args.no_onvif,
        discovery=not args.no_discovery,
        control_port=None if args.control_port < 0 else args.control_port,
        aligned_frames=args.aligned_frames,
    )


def print_ready(fleet: Fleet, as_json: bool) -> None:
    for camera in fleet.cameras:
        record = camera_record(camera, fleet.control_url)
        if as_json:
            print(json.dumps(record), flush=True)
        else:
            print(
                f"{camera.name}  onvif {record['onvif'] or '-'}  main {record['rtsp_main']}  "
                f"sub {record['rtsp_sub']}  user {camera.user}  password {camera.password}",
                flush=True,
            )
    extra = f"; control {fleet.control_url}" if fleet.control_url else ""
    print(f"camsim: {len(fleet.cameras)} camera(s) ready{extra}", file=sys.stderr, flush=True)


async def run(config: FleetConfig, faults: Sequence[tuple[str, dict]], as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before READY: a caller may stop us at once
        loop.add_signal_handler(sig, stop.set)
    fleet = await start_fleet(config)
    try:
        for name, request in faults:
            targets = fleet.cameras if name == "all" else [fleet.camera(name)]
            for camera in targets:
                if camera is None:
                    raise SimError(f"--fault names no camera {name!r}")
                apply_fault(camera, request)
        print_ready(fleet, as_json)
        await stop.wait()
    finally:
        await fleet.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        config = config_from_args(args)
        config.validate()
        faults = [parse_fault_arg(text) for text in args.fault]
    except SimError as err:
        parser.error(str(err))
    try:
        asyncio.run(run(config, faults, args.json))
    except SimError as err:
        print(f"dozor-camsim: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"dozor-camsim: cannot serve on {args.host}: {err}", file=sys.stderr)
        return 1
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
