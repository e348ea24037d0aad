"""Fault injection: parsing fault requests, applying them, and the HTTP control endpoint.

    POST /cameras/<name>/faults   {"drop": true} | {"stall": true|false} | {"refuse": true|false}
                                  | {"jump_timestamps_s": 3600} | {"offline_s": 10}
    GET  /cameras                 JSON list of the cameras, their URLs and current faults

Several keys may be combined in one object. The same requests come from the command line as
``--fault NAME:KIND[=ARG]`` (``cam01:stall``, ``cam02:jump=3600``, ``all:offline=10``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.errors import FaultSpecError

if TYPE_CHECKING:
    from camera_drivers.sim.fleet import Fleet

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "stall", "refuse", "jump_timestamps_s", "offline_s")
_CLI_ALIASES = {"jump": "jump_timestamps_s", "offline": "offline_s"}
MAX_OFFLINE_S = 24 * 3600.0


def validate_fault(request: Any) -> dict[str, Any]:
    """A checked copy of a fault request, or FaultSpecError naming what is wrong."""
    if not isinstance(request, dict) or not request:
        raise FaultSpecError(
            f"a fault request is a non-empty JSON object with keys from {', '.join(FAULT_KINDS)}"
        )
    checked: dict[str, Any] = {}
    for key, value in request.items():
        if key not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault {key!r}: use one of {', '.join(FAULT_KINDS)}")
        if key in ("drop", "stall", "refuse"):
            if not isinstance(value, bool):
                raise FaultSpecError(f"{key} must be true or false, got {value!r}")
            if key == "drop" and not value:
                raise FaultSpecError("drop only takes true (it is an action, not a state)")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultSpecError(f"{key} must be a number of seconds, got {value!r}")
            if not math.isfinite(value):
                raise FaultSpecError(f"{key} must be finite")
            if key == "offline_s" and not 0 <= value <= MAX_OFFLINE_S:
                raise FaultSpecError(f"offline_s must be 0..{MAX_OFFLINE_S:.0f}, got {value}")
        checked[key] = value
    return checked


def apply_fault(camera: SimCamera, request: Any) -> dict[str, Any]:
    """Apply a fault request to a camera; returns its fault state afterwards."""
    checked = validate_fault(request)
    faults = camera.faults
    if "stall" in checked:
        faults.stall = checked["stall"]
    if "refuse" in checked:
        faults.refuse = checked["refuse"]
    if "jump_timestamps_s" in checked:
        faults.jump_timestamps(checked["jump_timestamps_s"])
    if "offline_s" in checked:
        faults.go_offline(checked["offline_s"])
    if checked.get("drop"):
        faults.drop()
    log.info("camera %s: fault %s applied", camera.name, json.dumps(checked))
    return fault_state(camera)


def fault_state(camera: SimCamera) -> dict[str, Any]:
    faults = camera.faults
    return {
        "stall": faults.stall,
        "refuse": faults.refuse,
        "offline_remaining_s": round(
            max(0.0, faults.offline_until_monotonic - time.monotonic()), 3
        ),
        "rtp_timestamp_offset_90k": faults.rtp_timestamp_offset_90k,
    }


def parse_fault_arg(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:KIND[=ARG]`` -> (camera name or "all", fault request)."""
    name, sep, spec = text.partition(":")
    if not sep or not name or not spec:
        raise FaultSpecError(f"--fault {text!r}: expected NAME:KIND[=ARG], e.g. cam01:stall")
    kind, eq, arg = spec.partition("=")
    kind = _CLI_ALIASES.get(kind, kind)
    if kind not in FAULT_KINDS:
        raise FaultSpecError(
            f"--fault {text!r}: unknown kind {kind!r} (drop, stall, refuse, jump=S, offline=S)"
        )
    value: Any
    if kind in ("drop", "stall", "refuse"):
        if not eq or arg.lower() in ("true", "1", "on"):
            value = True
        elif arg.lower() in ("false", "0", "off"):
            value = False
        else:
            raise FaultSpecError(f"--fault {text!r}: {kind} takes true or false")
    else:
        try:
            value = float(arg)
        except ValueError as err:
            raise FaultSpecError(f"--fault {text!r}: {kind} needs a number of seconds") from err
    request = {kind: value}
    validate_fault(request)
    return name, request


class ControlServer:
    """The small HTTP control endpoint of a fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/cameras", self._list)
        app.router.add_post("/cameras/{name}/faults", self._faults)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, shutdown_timeout=0.5)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        log.info("camsim: control endpoint on %s", self.url)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _list(self, request: web.Request) -> web.Response:
        from camera_drivers.sim.fleet import camera_record

        body = [
            {**camera_record(c, self.url), "faults": fault_state(c)} for c in self.fleet.cameras
        ]
        return web.json_response(body)

    async def _faults(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        camera = self.fleet.camera(name)
        if camera is None:
            return _error(404, f"no camera named {name!r}")
        try:
            payload = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return _error(400, f"body is not valid JSON: {err}")
        try:
            state = apply_fault(camera, payload)
        except FaultSpecError as err:
            return _error(400, str(err))
        return web.json_response({"name": camera.name, "faults": state})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
