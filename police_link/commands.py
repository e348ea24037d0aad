"""Command requests and responses (MQTT 5 request/response), validated strictly.

Wire format (docs/mqtt.md "Commands"): the viewer publishes on <p>/<site>/cmd/<kind>

    {"v": 1, "sender": "<viewer name>", "args": {...}}

with the MQTT 5 properties ResponseTopic (<p>/<site>/reply/<client>) and CorrelationData;
the site answers on that topic with the same CorrelationData:

    {"v": 1, "kind": "<kind>", "ok": true, "result": {...}}
    {"v": 1, "kind": "<kind>", "ok": false, "error": {"code": "...", "message": "..."}}

Everything here is pure (no I/O): `parse_request` raises CommandError with one of
ErrorCode; the site client turns that into an error response and a log line.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CommandError, RequestFailed, ValidationError
from .messages import PROTOCOL_VERSION, check_bool, check_int, check_number, check_str
from .topics import EVENT_ID_RE, NAME_RE, check_name

MAX_REQUEST_BYTES = 16 * 1024
MAX_RESPONSE_BYTES = 256 * 1024


class ErrorCode(enum.StrEnum):
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_CAMERA = "unknown_camera"
    FORBIDDEN = "forbidden"
    UNSUPPORTED = "unsupported"
    BUSY = "busy"
    INTERNAL = "internal"


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a command: its JSON type and limits."""

    name: str
    type: type  # str, int, float or bool
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    max_len: int = 256
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    camera: bool = False  # must name one of the site's cameras

    def check(self, value: object, cameras: frozenset[str]) -> object:
        field = f"args.{self.name}"
        if self.type is bool:
            return check_bool(value, field)
        if self.type is int:
            return check_int(
                value, field,
                min_value=None if self.min_value is None else int(self.min_value),
                max_value=None if self.max_value is None else int(self.max_value),
            )
        if self.type is float:
            return check_number(value, field, min_value=self.min_value, max_value=self.max_value)
        text = check_str(value, field, max_len=self.max_len, empty=not self.required)
        if self.choices is not None and text not in self.choices:
            raise ValidationError(field, f"must be one of {', '.join(self.choices)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ValidationError(field, f"must match {self.pattern}")
        if self.camera and text not in cameras:
            raise CommandError(ErrorCode.UNKNOWN_CAMERA, f"{field}: no camera {text!r} here")
        return text


CommandSchema = tuple[ArgSpec, ...]

_CAMERA = ArgSpec("camera", str, pattern=NAME_RE.pattern, camera=True)
_STREAM = ArgSpec("stream", str, choices=("main", "sub"))
_TTL = ArgSpec("ttl_s", int, min_value=5, max_value=600)

# Kinds of command the protocol defines now; later kinds (review, export, config) register
# their schema with SiteLink.on_command(kind, handler, schema).
COMMAND_SCHEMAS: dict[str, CommandSchema] = {
    "ack": (
        ArgSpec("event_id", str, pattern=EVENT_ID_RE.pattern),
        ArgSpec("user", str, max_len=64),
        ArgSpec("comment", str, required=False, max_len=1000),
        ArgSpec("camera", str, required=False, pattern=NAME_RE.pattern, camera=True),
    ),
    "live.start": (_CAMERA, _STREAM, _TTL),
    "live.renew": (_CAMERA, _STREAM, _TTL),
    "live.stop": (_CAMERA, _STREAM),
}


@dataclass(frozen=True)
class CommandRequest:
    """A validated request, as a site handler sees it. `args` holds only schema fields."""

    site: str
    kind: str
    sender: str
    args: Mapping[str, Any]
    received_unix_s: float


CommandHandler = Callable[[CommandRequest], dict[str, Any]]


def check_args(
    args: object, schema: CommandSchema, cameras: frozenset[str]
) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise ValidationError("args", "must be a JSON object")
    specs = {spec.name: spec for spec in schema}
    for key in args:
        if key not in specs:
            raise ValidationError(f"args.{key}", "unknown argument")
    out: dict[str, Any] = {}
    for spec in schema:
        if spec.name not in args:
            if spec.required:
                raise ValidationError(f"args.{spec.name}", "missing")
            continue
        out[spec.name] = spec.check(args[spec.name], cameras)
    return out


def parse_request(
    *,
    site: str,
    kind: str,
    payload: bytes,
    schema: CommandSchema | None,
    cameras: frozenset[str],
    allowed_senders: frozenset[str] | None,
    received_unix_s: float,
) -> CommandRequest:
    """Validate one request for `site`; raises CommandError (code from ErrorCode)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise CommandError(
            ErrorCode.TOO_LARGE, f"request of {len(payload)} bytes > {MAX_REQUEST_BYTES}"
        )
    if schema is None:
        raise CommandError(ErrorCode.UNSUPPORTED, f"no command {kind!r} at this site")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise CommandError(ErrorCode.BAD_JSON, f"payload is not JSON: {err}") from err
    try:
        if not isinstance(obj, dict):
            raise ValidationError("payload", "must be a JSON object")
        for key in obj:
            if key not in ("v", "sender", "args"):
                raise ValidationError(str(key), "unknown field")
        if obj.get("v") != PROTOCOL_VERSION:
            raise ValidationError("v", f"must be {PROTOCOL_VERSION}")
        sender = check_name(obj.get("sender"), "sender")
        args = check_args(obj.get("args", {}), schema, cameras)
    except ValidationError as err:
        raise CommandError(ErrorCode.BAD_REQUEST, str(err)) from err
    if allowed_senders is not None and sender not in allowed_senders:
        raise CommandError(ErrorCode.FORBIDDEN, f"sender {sender!r} is not allowed here")
    return CommandRequest(site, kind, sender, args, received_unix_s)


def encode_request(sender: str, args: Mapping[str, Any]) -> bytes:
    body = {"v": PROTOCOL_VERSION, "sender": sender, "args": dict(args)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encode_response(kind: str, result: Mapping[str, Any]) -> bytes:
    body = {"v": PROTOCOL_VERSION, "kind": kind, "ok": True, "result": dict(result)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encode_error(kind: str, code: str, message: str) -> bytes:
    body = {
        "v": PROTOCOL_VERSION, "kind": kind, "ok": False,
        "error": {"code": str(code), "message": message[:1000]},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode_response(site: str, kind: str, payload: bytes) -> dict[str, Any]:
    """Viewer side: the result of a success response; RequestFailed for an error one."""
    if len(payload) > MAX_RESPONSE_BYTES:
        raise RequestFailed(site, kind, "bad_response", "response too large")
    try:
        obj = json.loads(payload)
        if not isinstance(obj, dict) or obj.get("v") != PROTOCOL_VERSION:
            raise ValueError("not a version 1 response object")
        if obj.get("ok") is True and isinstance(obj.get("result"), dict):
            return dict(obj["result"])
        error = obj.get("error")
        if obj.get("ok") is False and isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            if isinstance(code, str) and isinstance(message, str):
                raise RequestFailed(site, kind, code, message)
        raise ValueError("neither a result nor an error")
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestFailed(site, kind, "bad_response", f"malformed response: {err}") from err


def known_cameras(cameras: Iterable[str]) -> frozenset[str]:
    names = frozenset(cameras)
    for name in names:
        check_name(name, "cameras")
    return names
