"""SOAP 1.2 plumbing for the simulated ONVIF services: envelopes, faults, WS-UsernameToken.

Responses are built as text from small templates: the simulator answers a dozen operations
and real clients (zeep) parse them against the ONVIF schemas, so what matters is that the
element names and namespaces are right, not a general SOAP stack.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
}
PASSWORD_DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
# Real cameras reject a UsernameToken whose Created is too far from their own clock.
CREATED_WINDOW_S = 300.0

_XMLNS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


class SoapRequestError(Exception):
    """A request the simulator cannot accept; rendered as a SOAP fault."""

    def __init__(self, subcode: str, reason: str, *, sender: bool = True, status: int = 400):
        super().__init__(reason)
        self.subcode = subcode  # a ter: QName such as "ter:NotAuthorized"
        self.reason = reason
        self.sender = sender
        self.status = status


@dataclass(frozen=True)
class SoapRequest:
    """A parsed request: the first body element and the security header, if any."""

    operation: str  # local name of the body element, e.g. "GetProfiles"
    body: etree._Element
    header: etree._Element | None

    def text(self, path: str, default: str | None = None) -> str | None:
        """Text of the first element matching a prefixed XPath under the operation element."""
        found = self.body.xpath(path, namespaces=NS)
        if not found:
            return default
        first = found[0]
        return first if isinstance(first, str) else (first.text or "").strip()


def parse_request(data: bytes) -> SoapRequest:
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as err:
        raise SoapRequestError("ter:WellFormed", f"request is not well-formed XML: {err}") from err
    if etree.QName(root).localname != "Envelope":
        raise SoapRequestError("ter:WellFormed", "request is not a SOAP envelope")
    body = root.find(f"{{{NS['env']}}}Body")
    if body is None or len(body) == 0:
        raise SoapRequestError("ter:WellFormed", "SOAP 1.2 envelope without a Body element")
    operation = body[0]
    return SoapRequest(
        operation=etree.QName(operation).localname,
        body=operation,
        header=root.find(f"{{{NS['env']}}}Header"),
    )


def envelope(body_xml: str, header_xml: str = "") -> bytes:
    header = f"<env:Header>{header_xml}</env:Header>" if header_xml else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {_XMLNS}>{header}'
        f"<env:Body>{body_xml}</env:Body></env:Envelope>"
    ).encode()


def fault(err: SoapRequestError) -> bytes:
    code = "env:Sender" if err.sender else "env:Receiver"
    return envelope(
        "<env:Fault><env:Code>"
        f"<env:Value>{code}</env:Value>"
        f"<env:Subcode><env:Value>{err.subcode}</env:Value></env:Subcode>"
        "</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(err.reason)}</env:Text></env:Reason>'
        "</env:Fault>"
    )


def xml_text(value: object) -> str:
    return escape(str(value))


def xml_attr(value: object) -> str:
    return quoteattr(str(value))


def format_utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_utc(text: str) -> dt.datetime:
    """An xsd:dateTime as an aware UTC datetime (a missing zone is taken as UTC)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-UsernameToken PasswordDigest = Base64(SHA-1(nonce + created + password))."""
    sha = hashlib.sha1(nonce + created.encode() + password.encode())
    return base64.b64encode(sha.digest()).decode()


def check_username_token(
    request: SoapRequest, user: str, password: str, camera_now: dt.datetime
) -> None:
    """Raise ter:NotAuthorized unless the request carries a valid token for user/password.

    Like most cameras, PasswordText is accepted too; Created must be within
    CREATED_WINDOW_S of the camera's own clock (which is why clients sync time first).
    """
    not_authorized = SoapRequestError(
        "ter:NotAuthorized", "Sender not Authorized", status=400
    )
    if request.header is None:
        raise not_authorized
    token = request.header.find(f".//{{{NS['wsse']}}}UsernameToken")
    if token is None:
        raise not_authorized
    name = token.findtext(f"{{{NS['wsse']}}}Username", default="").strip()
    pw_elem = token.find(f"{{{NS['wsse']}}}Password")
    if name != user or pw_elem is None:
        raise not_authorized
    given = (pw_elem.text or "").strip()
    if pw_elem.get("Type", PASSWORD_DIGEST_TYPE).endswith("#PasswordText"):
        if not hmac.compare_digest(given.encode(), password.encode()):
            raise not_authorized
        return
    created = token.findtext(f"{{{NS['wsu']}}}Created", default="").strip()
    nonce_b64 = token.findtext(f"{{{NS['wsse']}}}Nonce", default="").strip()
    try:
        nonce = base64.b64decode(nonce_b64, validate=True)
        created_at = parse_utc(created)
    except ValueError as err:
        raise not_authorized from err
    if abs((created_at - camera_now).total_seconds()) > CREATED_WINDOW_S:
        raise not_authorized
    if not hmac.compare_digest(given.encode(), password_digest(nonce, created, password).encode()):
        raise not_authorized
