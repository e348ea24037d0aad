"""The paho-mqtt client set-up both ends share (TLS, login, back-off), and small helpers."""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .errors import LinkError
from .settings import BrokerSettings


def make_client(settings: BrokerSettings, client_id: str) -> mqtt.Client:
    """An MQTT 5 client; TLS verifies the server certificate and host name."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        try:
            client.tls_set(
                ca_certs=settings.ca_file,
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, OSError, ValueError) as err:
            raise LinkError(f"TLS set-up failed for {settings.host}: {err}") from err
    # paho leaves Nagle's algorithm on: a small PUBLISH or PUBACK written while an earlier
    # segment is unacknowledged then waits for the peer's delayed ACK (up to 40 ms here).
    client.on_socket_open = _set_nodelay
    # paho's threaded loop reconnects forever with this doubling back-off.
    client.reconnect_delay_set(
        min_delay=settings.reconnect_min_s,  # type: ignore[arg-type]  # paho accepts floats
        max_delay=settings.reconnect_max_s,  # type: ignore[arg-type]
    )
    return client


def _set_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_properties(session_expiry_s: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return props


def publish_properties(
    *,
    correlation: bytes | None = None,
    response_topic: str | None = None,
    expiry_s: float | None = None,
    content_type: str | None = None,
) -> Properties | None:
    if correlation is None and response_topic is None and expiry_s is None and not content_type:
        return None
    props = Properties(PacketTypes.PUBLISH)
    if correlation is not None:
        props.CorrelationData = correlation
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if expiry_s is not None:
        props.MessageExpiryInterval = max(1, int(expiry_s + 0.999))
    if content_type:
        props.ContentType = content_type
    return props


def is_success(reason_code: ReasonCode | int) -> bool:
    """MQTT 5 reason codes below 0x80 are successes (0x10 "no matching subscribers" too)."""
    value = reason_code.value if isinstance(reason_code, ReasonCode) else int(reason_code)
    return value < 0x80


def reason_text(reason_code: ReasonCode | int) -> str:
    if isinstance(reason_code, ReasonCode):
        return f"{reason_code.getName()} (0x{reason_code.value:02x})"
    return f"0x{int(reason_code):02x}"
