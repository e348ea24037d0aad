"""A bare paho MQTT 5 client for tests that must send what ViewerLink never would."""

from __future__ import annotations

import queue
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from police_link._mqtt import publish_properties
from tests.fixtures.mosquitto import MosquittoBroker


class RawClient:
    def __init__(self, broker: MosquittoBroker, user: str, client_id: str) -> None:
        cred = broker.credentials[user]
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(cred.username, cred.password)
        client.tls_set(ca_certs=broker.ca_file)
        client.on_message = lambda _c, _u, m: self.messages.put(m)
        client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.put((mid, rc))
        client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(rcs)
        client.connect(broker.host, broker.port)
        client.loop_start()
        self.client = client
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.is_connected()

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes, **props: Any) -> ReasonCode:
        """QoS 1; returns the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, properties=publish_properties(**props))
        mid, reason = self.acks.get(timeout=5)
        assert mid == info.mid
        return reason

    def next_message(self, timeout_s: float = 5.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
