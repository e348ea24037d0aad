"""dozor-camera: the technician's tool. Find cameras, see what Dozor would record, grab a frame.

    dozor-camera discover [--interface IP] [--unicast HOST ...] [--timeout S] [--json]
    dozor-camera probe URL --user U --password P [--json]
    dozor-camera snapshot URL --user U --password P -o FILE

URL is http://host:port[/onvif/device_service] or host:port. Errors are one line on
stderr and a non-zero exit status (2: bad usage, 1: the camera or network failed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from camera_drivers.discovery import discover
from camera_drivers.errors import CameraError
from camera_drivers.models import CameraProbe, DiscoveredDevice, StreamProfile
from camera_drivers.onvif_camera import OnvifCamera, parse_device_url

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dozor-camera", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True)

    find = commands.add_parser("discover", help="find ONVIF cameras with WS-Discovery")
    find.add_argument("--interface", default="0.0.0.0", help="local IPv4 address to probe from")
    find.add_argument(
        "--unicast", action="append", default=[], metavar="HOST",
        help="also probe this host directly (repeatable)",
    )
    find.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for answers")
    find.add_argument("--json", action="store_true", help="one JSON object per camera")

    for name, helptext in (
        ("probe", "what Dozor would record from a camera"),
        ("snapshot", "save a JPEG from a camera"),
    ):
        cmd = commands.add_parser(name, help=helptext)
        cmd.add_argument("url", help="http://host:port[/onvif/device_service] or host:port")
        cmd.add_argument("--user", required=True)
        cmd.add_argument("--password", required=True)
        cmd.add_argument("--timeout", type=float, default=10.0, help="seconds per camera call")
        if name == "probe":
            cmd.add_argument("--json", action="store_true", help="print the probe as JSON")
        else:
            cmd.add_argument("-o", "--output", required=True, type=Path, help="JPEG file")
    return parser


def _stream_line(label: str, p: StreamProfile) -> str:
    fps = f"{p.fps:g} fps" if p.fps else "? fps"
    return f"{label:<9} {p.encoding} {p.width}x{p.height} {fps}  {p.stream_uri}  [{p.token}]"


def format_probe(probe: CameraProbe) -> str:
    d = probe.device
    offset = probe.clock_offset_s
    drift = "in step with" if abs(offset) < 2 else ("ahead of" if offset > 0 else "behind")
    caps = probe.capabilities
    supported = [n for n in ("events", "ptz", "snapshot") if getattr(caps, n)] or ["none"]
    lines = [
        f"camera    {d.manufacturer} {d.model}, firmware {d.firmware_version}, "
        f"serial {d.serial_number}",
        f"onvif     {probe.onvif_url}",
        f"clock     {offset:+.1f} s (camera {drift} this machine)",
        _stream_line("record", probe.main),
        _stream_line("detect", probe.sub),
        f"snapshot  {probe.main.snapshot_uri or 'none'}",
        f"supports  {', '.join(supported)}",
    ]
    others = [p for p in probe.profiles if p not in (probe.main, probe.sub)]
    lines += [_stream_line("other", p) for p in others]
    return "\n".join(lines)


def format_devices(devices: Sequence[DiscoveredDevice]) -> str:
    if not devices:
        return (
            "no cameras answered (is multicast allowed on that interface? "
            "--unicast HOST probes a camera directly)"
        )
    rows = [("NAME", "HARDWARE", "ADDRESS", "ONVIF")] + [
        (d.name or "-", d.hardware or "-", d.from_ip, " ".join(d.xaddrs)) for d in devices
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
    )


async def _discover(args: argparse.Namespace) -> int:
    devices = await discover(args.interface, args.timeout, unicast_hosts=args.unicast)
    if args.json:
        for device in devices:
            print(json.dumps(dataclasses.asdict(device)))
    else:
        print(format_devices(devices))
    return 0


async def _probe(args: argparse.Namespace, host: str, port: int) -> int:
    async with OnvifCamera(
        host, port, args.user, args.password, timeout_s=args.timeout
    ) as camera:
        probe = await camera.probe()
    if args.json:
        print(json.dumps(dataclasses.asdict(probe)))
    else:
        print(format_probe(probe))
    return 0


async def _snapshot(args: argparse.Namespace, host: str, port: int) -> int:
    async with OnvifCamera(
        host, port, args.user, args.password, timeout_s=args.timeout
    ) as camera:
        jpeg = await camera.snapshot()
    try:
        args.output.write_bytes(jpeg)
    except OSError as err:
        print(f"dozor-camera: cannot write {args.output}: {err.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.output}: {len(jpeg)} bytes")
    return 0


async def _run(args: argparse.Namespace, address: tuple[str, int] | None) -> int:
    if address is None:
        return await _discover(args)
    if args.command == "probe":
        return await _probe(args, *address)
    return await _snapshot(args, *address)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    # onvif-zeep-async calls logging.basicConfig(level=INFO) on import: take control back.
    logging.getLogger().setLevel(level)
    for noisy in ("onvif", "zeep", "aiohttp"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {args.timeout:g}")
        address = None if args.command == "discover" else parse_device_url(args.url)
    except ValueError as err:
        print(f"dozor-camera: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args, address))
    except CameraError as err:
        print(f"dozor-camera: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
