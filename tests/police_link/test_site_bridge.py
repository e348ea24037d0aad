"""config/mosquitto/site-bridge.conf: a site broker bridging its subtree to the police station."""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.fixtures.mosquitto import MOSQUITTO, REPO, MosquittoBroker, free_port
from tests.police_link.rawclient import RawClient


@pytest.fixture
def site_broker(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    cred = mosquitto.credentials["site-a"]
    text = (REPO / "config" / "mosquitto" / "site-bridge.conf").read_text()
    text = (text.replace("SITE", "site-a")
            .replace("police.example.org:8883", f"{mosquitto.host}:{mosquitto.port}")
            .replace("PASSWORD-FROM-make-certs.sh", cred.password)
            .replace("/etc/mosquitto/dozor/ca.crt", mosquitto.ca_file)
            .replace("/var/lib/mosquitto/", f"{tmp_path}/")
            .replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"))
    conf = tmp_path / "site.conf"
    conf.write_text(text + "user root\nlog_dest stderr\n")
    with (tmp_path / "site.log").open("wb") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def local_client(port: int) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="local",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = lambda _c, _u, m: inbox.put(m)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.connect("127.0.0.1", port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.loop_start()
    client.subscribe("dozor/site-a/cmd/+", qos=1)
    return client, inbox


def test_bridge_carries_site_messages_out_and_commands_in(
    mosquitto: MosquittoBroker, site_broker: int
) -> None:
    viewer = RawClient(mosquitto, "viewer", "bridge-viewer")
    viewer.subscribe("dozor/#")
    local, inbox = local_client(site_broker)
    try:
        deadline = time.monotonic() + 15
        got = None
        while got is None and time.monotonic() < deadline:  # until the bridge is up
            local.publish("dozor/site-a/events", b"{}", qos=1)
            try:
                got = viewer.next_message(timeout_s=0.5)
            except queue.Empty:
                continue
        assert got is not None and got.topic == "dozor/site-a/events"
        viewer.publish("dozor/site-a/cmd/ack", b"{}")
        assert inbox.get(timeout=5).topic == "dozor/site-a/cmd/ack"
    finally:
        local.disconnect()
        local.loop_stop()
        viewer.close()
