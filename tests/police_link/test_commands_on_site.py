"""Malformed, oversized and unauthorised commands get error responses; the site runs on."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from police_link import CommandRequest, SiteLink
from tests.fixtures.mosquitto import MosquittoBroker
from tests.police_link.rawclient import RawClient

REPLY = "dozor/site-a/reply/raw"


@pytest.fixture
def raw(mosquitto: MosquittoBroker) -> Iterator[RawClient]:
    client = RawClient(mosquitto, "viewer", "raw")
    client.subscribe(REPLY)
    yield client
    client.close()


@pytest.fixture
def site(make_site: Callable[..., SiteLink]) -> SiteLink:
    link = make_site(allowed_senders={"desk"})

    def live_start(request: CommandRequest) -> dict[str, Any]:
        if request.args["ttl_s"] == 13:
            raise RuntimeError("handler bug")
        return {"ok": request.args["camera"]}

    link.on_command("live.start", live_start)
    return link


def ask(raw: RawClient, kind: str, payload: bytes | dict[str, Any], correlation: bytes = b"c1",
        response_topic: str | None = REPLY) -> dict[str, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert not raw.publish(f"dozor/site-a/cmd/{kind}", body, correlation=correlation,
                           response_topic=response_topic).is_failure
    message = raw.next_message()
    assert message.topic == REPLY
    assert getattr(message.properties, "CorrelationData", None) == correlation
    return dict(json.loads(message.payload))


def error_of(response: dict[str, Any]) -> tuple[str, str]:
    assert response["ok"] is False, response
    return response["error"]["code"], response["error"]["message"]


def request(sender: str = "desk", **args: Any) -> dict[str, Any]:
    return {"v": 1, "sender": sender, "args": args}


def test_malformed_json_gets_bad_json(site: SiteLink, raw: RawClient) -> None:
    assert error_of(ask(raw, "ack", b"{not json"))[0] == "bad_json"


def test_oversized_request_gets_too_large(site: SiteLink, raw: RawClient) -> None:
    body = request(event_id="ev1", user="u", comment="x" * 900)
    body["pad"] = "y" * 20000
    assert error_of(ask(raw, "ack", json.dumps(body).encode()))[0] == "too_large"


def test_sender_not_on_allow_list_gets_forbidden(site: SiteLink, raw: RawClient) -> None:
    code, message = error_of(ask(raw, "ack", request("intruder", event_id="ev1", user="u")))
    assert code == "forbidden" and "intruder" in message


def test_bad_field_gets_bad_request_naming_it(site: SiteLink, raw: RawClient) -> None:
    code, message = error_of(ask(raw, "live.start", request(camera="cam1", stream="main",
                                                            ttl_s="long")))
    assert code == "bad_request" and "args.ttl_s" in message
    code, message = error_of(ask(raw, "ack", request(event_id="ev1", user="u", extra=1)))
    assert code == "bad_request" and "args.extra" in message


def test_unknown_camera_and_unknown_kind(site: SiteLink, raw: RawClient) -> None:
    assert error_of(ask(raw, "live.start", request(camera="cam9", stream="sub", ttl_s=30)))[0] \
        == "unknown_camera"
    assert error_of(ask(raw, "export", request()))[0] == "unsupported"


def test_handler_crash_gets_internal_and_loop_goes_on(site: SiteLink, raw: RawClient) -> None:
    assert error_of(ask(raw, "live.start", request(camera="cam1", stream="sub", ttl_s=13)))[0] \
        == "internal"
    good = ask(raw, "live.start", request(camera="cam1", stream="sub", ttl_s=30), b"c2")
    assert good == {"v": 1, "kind": "live.start", "ok": True, "result": {"ok": "cam1"}}


def test_requests_without_usable_response_topic_are_dropped_not_fatal(
    site: SiteLink, raw: RawClient
) -> None:
    body = json.dumps(request(event_id="ev1", user="u")).encode()
    raw.publish("dozor/site-a/cmd/ack", body, correlation=b"x")  # no response topic
    raw.publish("dozor/site-a/cmd/ack", body, correlation=b"y",
                response_topic="dozor/site-b/reply/raw")  # outside site-a's subtree
    with pytest.raises(queue.Empty):
        raw.next_message(timeout_s=0.5)
    assert site.stats().commands_failed == 2
    assert ask(raw, "ack", request(event_id="ev1", user="u"))["ok"] is True


def test_full_command_queue_answers_busy(make_site: Callable[..., SiteLink],
                                         raw: RawClient) -> None:
    entered, release = threading.Event(), threading.Event()
    link = make_site(command_queue_max=1)

    def slow(request: CommandRequest) -> dict[str, Any]:
        entered.set()
        release.wait(5)
        return {}

    link.on_command("live.start", slow)
    body = json.dumps(request(camera="cam1", stream="sub", ttl_s=30)).encode()
    for correlation in (b"r1", b"r2", b"r3"):  # r1 runs, r2 waits, r3 finds the queue full
        raw.publish("dozor/site-a/cmd/live.start", body, correlation=correlation,
                    response_topic=REPLY)
        if correlation == b"r1":
            assert entered.wait(5)
    busy = raw.next_message()
    assert getattr(busy.properties, "CorrelationData", None) == b"r3"
    assert error_of(json.loads(busy.payload))[0] == "busy"
    release.set()
    answered = {getattr(raw.next_message().properties, "CorrelationData", None)
                for _ in range(2)}
    assert answered == {b"r1", b"r2"}
