"""WS-Discovery (2005/04, as ONVIF uses it): find cameras with a raw UDP Probe.

A raw socket rather than the `wsdiscovery` package because that package skips loopback,
and because the technician chooses the interface: the probe leaves through
IP_MULTICAST_IF = interface_ip. Cameras answer with unicast ProbeMatches to our port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Iterable
from urllib.parse import unquote

from lxml import etree

from camera_drivers.errors import DiscoveryError
from camera_drivers.models import DiscoveredDevice

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WSD_PORT = 3702
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
}
ACTION_PROBE = NS["d"] + "/Probe"
ACTION_PROBE_MATCHES = NS["d"] + "/ProbeMatches"
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
_REPEAT_AFTER_S = 0.25  # UDP may drop the probe: send it twice, dedupe the answers
_SCOPE_PREFIX = "onvif://www.onvif.org/"


def build_probe(message_id: str) -> bytes:
    """A Probe for ONVIF NetworkVideoTransmitter devices."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" '
        f'xmlns:dn="{NS["dn"]}"><s:Header>'
        f"<a:Action>{ACTION_PROBE}</a:Action><a:MessageID>{message_id}</a:MessageID>"
        f"<a:To>{DISCOVERY_TO}</a:To></s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _words(element: etree._Element | None) -> tuple[str, ...]:
    return tuple((element.text or "").split()) if element is not None else ()


def _scope_value(scopes: Iterable[str], kind: str) -> str | None:
    for scope in scopes:
        if scope.startswith(_SCOPE_PREFIX + kind + "/"):
            return unquote(scope[len(_SCOPE_PREFIX) + len(kind) + 1 :])
    return None


def parse_probe_matches(
    data: bytes, relates_to: str | None, from_ip: str
) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches message answering probe `relates_to` ([] otherwise)."""
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        log.debug("discovery: ignoring a datagram from %s that is not XML", from_ip)
        return []
    if root.findtext("s:Header/a:Action", namespaces=NS, default="").strip() != (
        ACTION_PROBE_MATCHES
    ):
        return []
    related = root.findtext("s:Header/a:RelatesTo", namespaces=NS, default="").strip()
    if relates_to is not None and related != relates_to:
        return []
    devices = []
    for match in root.iterfind("s:Body/d:ProbeMatches/d:ProbeMatch", namespaces=NS):
        xaddrs = _words(match.find("d:XAddrs", NS))
        scopes = _words(match.find("d:Scopes", NS))
        endpoint = match.findtext("a:EndpointReference/a:Address", namespaces=NS, default="")
        if not xaddrs:
            continue
        devices.append(
            DiscoveredDevice(
                endpoint_ref=endpoint.strip() or xaddrs[0],
                xaddrs=xaddrs,
                types=_words(match.find("d:Types", NS)),
                scopes=scopes,
                from_ip=from_ip,
                name=_scope_value(scopes, "name"),
                hardware=_scope_value(scopes, "hardware"),
            )
        )
    return devices


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str):
        self.message_id = message_id
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        for device in parse_probe_matches(data, self.message_id, addr[0]):
            self.found.setdefault(device.endpoint_ref, device)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery: socket error while collecting answers: %s", exc)


def _probe_socket(interface_ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if interface_ip not in ("", "0.0.0.0"):
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_ip)
            )
        sock.bind((interface_ip, 0))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise DiscoveryError(f"cannot probe on interface {interface_ip}: {err}") from err
    return sock


async def discover(
    interface_ip: str = "0.0.0.0",
    timeout_s: float = 2.0,
    *,
    unicast_hosts: Iterable[str] = (),
    port: int = WSD_PORT,
    multicast: bool = True,
) -> list[DiscoveredDevice]:
    """Probe for ONVIF cameras and collect ProbeMatches for timeout_s seconds.

    interface_ip: the local address the multicast probe leaves from ("0.0.0.0": the
    default multicast route). unicast_hosts: also probe these hosts directly (for
    networks where multicast does not pass). Devices are deduplicated by endpoint
    reference and sorted by their first XAddr.
    """
    try:
        socket.inet_aton(interface_ip)
    except OSError as err:
        raise DiscoveryError(f"interface must be an IPv4 address, got {interface_ip!r}") from err
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = build_probe(message_id)
    targets = [(MULTICAST_GROUP, port)] if multicast else []
    targets += [(host, port) for host in unicast_hosts]
    if not targets:
        raise DiscoveryError("nothing to probe: multicast off and no unicast hosts")
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id), sock=_probe_socket(interface_ip)
    )
    started = time.monotonic()
    try:
        for attempt in range(2):
            for target in targets:
                try:
                    transport.sendto(probe, target)
                except OSError as err:
                    raise DiscoveryError(
                        f"cannot send a probe to {target[0]}:{target[1]} from "
                        f"{interface_ip}: {err}"
                    ) from err
            if attempt == 0:
                await asyncio.sleep(min(_REPEAT_AFTER_S, timeout_s))
        await asyncio.sleep(max(0.0, timeout_s - (time.monotonic() - started)))
    finally:
        transport.close()
    devices = sorted(collector.found.values(), key=lambda d: d.xaddrs[0])
    log.info("discovery on %s: %d device(s) answered", interface_ip, len(devices))
    return devices
