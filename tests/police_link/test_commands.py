from __future__ import annotations

import json

import pytest

from police_link import COMMAND_SCHEMAS, CommandError, RequestFailed
from police_link.commands import (
    decode_response,
    encode_error,
    encode_request,
    encode_response,
    parse_request,
)

CAMERAS = frozenset({"gate", "yard"})


def parse(kind: str, payload: bytes, allowed: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    return parse_request(site="s1", kind=kind, payload=payload,
                         schema=COMMAND_SCHEMAS.get(kind), cameras=CAMERAS,
                         allowed_senders=allowed, received_unix_s=5.0)


def code_of(kind: str, payload: bytes, allowed: frozenset[str] | None = None) -> str:
    with pytest.raises(CommandError) as err:
        parse(kind, payload, allowed)
    return err.value.code


def test_valid_requests_parse() -> None:
    req = parse("live.start", encode_request("desk", {"camera": "gate", "stream": "sub",
                                                      "ttl_s": 30}))
    assert (req.site, req.kind, req.sender, dict(req.args)) == (
        "s1", "live.start", "desk", {"camera": "gate", "stream": "sub", "ttl_s": 30})
    ack = parse("ack", encode_request("desk", {"event_id": "e1", "user": "Ivanenko"}),
                frozenset({"desk"}))
    assert ack.args == {"event_id": "e1", "user": "Ivanenko"}


@pytest.mark.parametrize(
    ("kind", "payload", "code"),
    [
        ("ack", b"x" * 20000, "too_large"),
        ("ack", b"{", "bad_json"),
        ("ack", b"[]", "bad_request"),
        ("ack", b'{"v":1,"args":{"event_id":"e","user":"u"}}', "bad_request"),
        ("ack", b'{"v":2,"sender":"d","args":{"event_id":"e","user":"u"}}', "bad_request"),
        ("ack", encode_request("desk", {"event_id": "e"}), "bad_request"),
        ("ack", encode_request("desk", {"event_id": "e", "user": "u", "x": 1}), "bad_request"),
        ("live.start", encode_request("desk", {"camera": "gate", "stream": "hd", "ttl_s": 9}),
         "bad_request"),
        ("live.start", encode_request("desk", {"camera": "gate", "stream": "sub", "ttl_s": 1}),
         "bad_request"),
        ("live.start", encode_request("desk", {"camera": "roof", "stream": "sub", "ttl_s": 9}),
         "unknown_camera"),
        ("format.disk", encode_request("desk", {}), "unsupported"),
    ],
)
def test_bad_requests_get_a_code(kind: str, payload: bytes, code: str) -> None:
    assert code_of(kind, payload) == code


def test_sender_allow_list() -> None:
    payload = encode_request("mallory", {"event_id": "e", "user": "u"})
    assert code_of("ack", payload, frozenset({"desk"})) == "forbidden"


def test_responses_round_trip() -> None:
    assert decode_response("s1", "ack", encode_response("ack", {"a": 1})) == {"a": 1}
    with pytest.raises(RequestFailed) as err:
        decode_response("s1", "ack", encode_error("ack", "unknown_event", "no e1"))
    assert (err.value.site, err.value.code, err.value.message) == ("s1", "unknown_event", "no e1")
    with pytest.raises(RequestFailed) as err:
        decode_response("s1", "ack", json.dumps({"v": 1, "ok": "yes"}).encode())
    assert err.value.code == "bad_response"
