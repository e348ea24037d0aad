"""WS-Discovery responder for simulated cameras: answers Probe on UDP 3702.

Joins 239.255.255.250 on the given interface and answers multicast and unicast Probes
for NetworkVideoTransmitter (or untyped Probes) with one ProbeMatches per camera, sent
back to the prober. SO_REUSEADDR/SO_REUSEPORT let several simulator processes share the
port: each gets its own copy of a multicast probe, but the kernel hands a unicast probe
to one socket only, so with several processes use multicast.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

from lxml import etree

from camera_drivers.discovery import (
    ACTION_PROBE,
    ACTION_PROBE_MATCHES,
    MULTICAST_GROUP,
    NS,
    WSD_PORT,
)
from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.onvif_server import MODEL

log = logging.getLogger(__name__)

_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_MATCHING_TYPES = {"NetworkVideoTransmitter", "Device"}


def endpoint_ref(camera: SimCamera) -> str:
    """A stable urn:uuid for the camera, derived from its name and address."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'dozor-camsim:{camera.host}:{camera.name}')}"


def probe_matches(camera: SimCamera, relates_to: str) -> bytes:
    scopes = " ".join(
        (
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/type/ptz",
            f"onvif://www.onvif.org/hardware/{MODEL}",
            f"onvif://www.onvif.org/name/{camera.name}",
            "onvif://www.onvif.org/location/country/ukraine",
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" '
        f'xmlns:dn="{NS["dn"]}" xmlns:tds="{NS["tds"]}"><s:Header>'
        f"<a:Action>{ACTION_PROBE_MATCHES}</a:Action>"
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo><a:To>{_ANONYMOUS}</a:To>"
        "</s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
        f"<a:EndpointReference><a:Address>{endpoint_ref(camera)}</a:Address>"
        "</a:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
        f"<d:Scopes>{scopes}</d:Scopes><d:XAddrs>{camera.onvif_url()}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion>"
        "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


def parse_probe(data: bytes) -> str | None:
    """The MessageID of a Probe we should answer, or None."""
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        return None
    if root.findtext("s:Header/a:Action", namespaces=NS, default="").strip() != ACTION_PROBE:
        return None
    probe = root.find("s:Body/d:Probe", NS)
    if probe is None:
        return None
    types = probe.findtext("d:Types", namespaces=NS, default="").split()
    if types and not {t.rpartition(":")[2] for t in types} & _MATCHING_TYPES:
        return None
    message_id = root.findtext("s:Header/a:MessageID", namespaces=NS, default="").strip()
    return message_id or None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, responder: DiscoveryResponder):
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        message_id = parse_probe(data)
        if message_id is None or self.transport is None:
            return
        for camera in self.responder.cameras:
            if camera.faults.offline():
                continue
            try:
                self.transport.sendto(probe_matches(camera, message_id), addr)
            except OSError as err:
                log.warning("camera %s: cannot answer a probe from %s: %s", camera.name, addr, err)
        log.debug("discovery: answered a probe from %s:%d", *addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery responder: socket error: %s", exc)


class DiscoveryResponder:
    """Answers WS-Discovery Probes for a list of simulated cameras on one interface."""

    def __init__(self, cameras: list[SimCamera], interface_ip: str, *, port: int = WSD_PORT):
        self.cameras = cameras
        self.interface_ip = interface_ip
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("", self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        membership = socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton(
            "0.0.0.0" if self.interface_ip in ("", "0.0.0.0") else self.interface_ip
        )
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as err:
            # e.g. `lo` without the MULTICAST flag: unicast probes still work.
            log.warning(
                "discovery responder: cannot join %s on %s (%s); answering unicast probes only",
                MULTICAST_GROUP, self.interface_ip, err,
            )
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), sock=sock
        )
        log.info(
            "discovery responder on %s:%d for %d camera(s)",
            self.interface_ip, self.port, len(self.cameras),
        )

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
