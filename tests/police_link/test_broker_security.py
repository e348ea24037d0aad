"""The broker configuration (config/mosquitto): TLS, passwords and ACLs confine each account."""

from __future__ import annotations

import queue
import socket
import ssl
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.fixtures.mosquitto import MosquittoBroker
from tests.police_link.rawclient import RawClient

NOT_AUTHORIZED = 0x87


@pytest.fixture
def clients(mosquitto: MosquittoBroker) -> Iterator[dict[str, RawClient]]:
    made = {
        "site-a": RawClient(mosquitto, "site-a", "dozor-site-site-a"),
        "site-b": RawClient(mosquitto, "site-b", "dozor-site-site-b"),
        "viewer": RawClient(mosquitto, "viewer", "viewer-1"),
    }
    yield made
    for client in made.values():
        client.close()


def test_site_cannot_publish_into_another_sites_subtree(clients: dict[str, RawClient]) -> None:
    clients["viewer"].subscribe("dozor/#")
    a = clients["site-a"]
    for topic in ("dozor/site-b/events", "dozor/site-b/status", "dozor/site-b/cam1/status",
                  "dozor/site-b/reply/viewer-1", "dozor/viewer/x", "elsewhere/x"):
        assert a.publish(topic, b"{}").value == NOT_AUTHORIZED, topic
    with pytest.raises(queue.Empty):
        clients["viewer"].next_message(timeout_s=0.3)
    assert a.publish("dozor/site-a/events", b"{}").value < 0x80
    assert clients["viewer"].next_message().topic == "dozor/site-a/events"


def test_site_cannot_send_commands_even_to_itself(clients: dict[str, RawClient]) -> None:
    assert clients["site-a"].publish("dozor/site-a/cmd/ack", b"{}").value == NOT_AUTHORIZED
    assert clients["site-a"].publish("dozor/site-b/cmd/ack", b"{}").value == NOT_AUTHORIZED


def test_site_cannot_read_other_sites_commands_or_data(clients: dict[str, RawClient]) -> None:
    a, b, viewer = clients["site-a"], clients["site-b"], clients["viewer"]
    a.subscribe("dozor/site-b/cmd/+")
    a.subscribe("dozor/#")
    b.subscribe("dozor/site-b/cmd/+")
    assert viewer.publish("dozor/site-b/cmd/ack", b"{}").value < 0x80
    assert b.next_message().topic == "dozor/site-b/cmd/ack"  # the rightful site gets it
    b.publish("dozor/site-b/events", b"{}")
    with pytest.raises(queue.Empty):
        a.next_message(timeout_s=0.3)


def test_viewer_cannot_forge_site_messages(clients: dict[str, RawClient]) -> None:
    viewer = clients["viewer"]
    for topic in ("dozor/site-a/events", "dozor/site-a/status", "dozor/site-a/reply/viewer-1"):
        assert viewer.publish(topic, b"{}").value == NOT_AUTHORIZED, topic


def _connect_result(broker: MosquittoBroker, user: str | None, password: str | None,
                    ca_file: str | None) -> int | str:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.time_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    if ca_file is not None:
        client.tls_set(ca_certs=ca_file)
    results: queue.Queue[int | str] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, rc, _p: results.put(rc.value)
    client.on_disconnect = lambda *_args: results.put("disconnected")
    try:
        client.connect(broker.host, broker.port)
    except (OSError, ssl.SSLError) as err:
        return type(err).__name__
    client.loop_start()
    try:
        return results.get(timeout=5)
    except queue.Empty:
        return "no connack"
    finally:
        client.disconnect()
        client.loop_stop()


def test_logins_are_checked(mosquitto: MosquittoBroker) -> None:
    good = mosquitto.credentials["site-a"]
    assert _connect_result(mosquitto, good.username, good.password, mosquitto.ca_file) == 0
    assert _connect_result(mosquitto, good.username, "wrong", mosquitto.ca_file) in (0x86, 0x87)
    assert _connect_result(mosquitto, None, None, mosquitto.ca_file) in (0x86, 0x87)


def test_plain_tcp_and_unknown_ca_are_refused(mosquitto: MosquittoBroker) -> None:
    # a plain MQTT CONNECT on the TLS port gets no CONNACK
    good = mosquitto.credentials["site-a"]
    assert _connect_result(mosquitto, good.username, good.password, None) != 0
    # a client trusting the system store only (not our CA) rejects the server certificate
    context = ssl.create_default_context()
    with (
        socket.create_connection((mosquitto.host, mosquitto.port), timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(sock, server_hostname="localhost")
