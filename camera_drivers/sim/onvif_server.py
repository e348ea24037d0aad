"""The ONVIF services of one simulated camera: device, media, events (pull point) and PTZ.

SOAP 1.2 over HTTP (aiohttp) with WS-UsernameToken authentication, as real cameras speak
it. Operations are dispatched on the body element's name whatever the path, like most
camera firmwares do; subscription operations carry their subscription id in the path.
While the camera is "offline" (fault injection) every request has its connection dropped.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from camera_drivers.sim.camera import SimCamera
from camera_drivers.sim.soap import (
    NS,
    SoapRequest,
    SoapRequestError,
    check_username_token,
    envelope,
    fault,
    format_utc,
    parse_request,
    parse_utc,
    xml_attr,
    xml_text,
)

log = logging.getLogger(__name__)

MANUFACTURER = "Dozor"
MODEL = "SimCam"
FIRMWARE_VERSION = "0.1.0"
SNAPSHOT_PATH = "/onvif/snapshot.jpg"
SNAPSHOT_REALM = "dozor-camsim"
# Operations real cameras answer before authentication (ONVIF Core "PRE_AUTH" class).
_UNAUTHENTICATED = frozenset({"GetSystemDateAndTime"})
_WAKE_S = 0.5  # a waiting PullMessages notices an "offline" fault within this
_MAX_PULL_WAIT_S = 30.0
_DEFAULT_SUBSCRIPTION_S = 60.0
_MAX_SUBSCRIPTIONS = 32
_MOTION_TOPIC = "tns1:VideoSource/MotionAlarm"
_VIDEO_SOURCE = "VideoSource_1"
_SERVICES = {  # path -> (namespace, version)
    "device_service": (NS["tds"], (2, 60)),
    "media_service": (NS["trt"], (2, 60)),
    "events_service": (NS["tev"], (2, 60)),
    "ptz_service": (NS["tptz"], (2, 60)),
}
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration_s(text: str) -> float:
    """An xsd:duration such as PT60S or PT1M30S, in seconds (days at most)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise SoapRequestError("ter:InvalidArgVal", f"not an xsd:duration: {text!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (
        parts.get("d", 0.0) * 86400
        + parts.get("h", 0.0) * 3600
        + parts.get("m", 0.0) * 60
        + parts.get("s", 0.0)
    )


@dataclass(frozen=True)
class _ProfileSpec:
    token: str
    stream: str  # "main" or "sub", as in SimCamera.rtsp_url
    width: int
    height: int
    bitrate_kbps: int


_PROFILES = (
    _ProfileSpec("main", "main", 1920, 1080, 4096),
    _ProfileSpec("sub", "sub", 640, 360, 512),
)
_PRESETS = {  # token -> (name, pan, tilt, zoom)
    "1": ("Home", 0.0, 0.0, 0.0),
    "2": ("Gate", -0.5, 0.1, 0.3),
    "3": ("Road", 0.6, -0.2, 0.6),
}


@dataclass
class PtzState:
    """Pan/tilt in [-1, 1], zoom in [0, 1], moving at a constant velocity until stopped."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    since_monotonic: float = field(default_factory=time.monotonic)
    until_monotonic: float | None = None

    def position(self, now_monotonic: float) -> tuple[float, float, float]:
        end = now_monotonic if self.until_monotonic is None else min(
            now_monotonic, self.until_monotonic
        )
        dt_s = max(0.0, end - self.since_monotonic)
        vp, vt, vz = self.velocity
        return (
            min(1.0, max(-1.0, self.pan + vp * dt_s)),
            min(1.0, max(-1.0, self.tilt + vt * dt_s)),
            min(1.0, max(0.0, self.zoom + vz * dt_s)),
        )

    def moving(self, now_monotonic: float) -> bool:
        if self.velocity == (0.0, 0.0, 0.0):
            return False
        return self.until_monotonic is None or now_monotonic < self.until_monotonic

    def settle(self, now_monotonic: float) -> None:
        self.pan, self.tilt, self.zoom = self.position(now_monotonic)
        self.since_monotonic = now_monotonic

    def move(
        self, velocity: tuple[float, float, float], timeout_s: float | None, now: float
    ) -> None:
        self.settle(now)
        self.velocity = velocity
        self.until_monotonic = None if timeout_s is None else now + timeout_s

    def stop(self, now: float) -> None:
        self.move((0.0, 0.0, 0.0), None, now)

    def goto(self, pan: float, tilt: float, zoom: float, now: float) -> None:
        self.stop(now)
        self.pan, self.tilt, self.zoom = pan, tilt, zoom


@dataclass
class _Subscription:
    sub_id: str
    terminates_at: dt.datetime  # true UTC
    reported_state: bool | None = None  # None: the initial state is still to be sent


class OnvifServer:
    """ONVIF device, media, events and PTZ services of one SimCamera."""

    def __init__(self, camera: SimCamera):
        self.camera = camera
        self.ptz = PtzState()
        self._subscriptions: dict[str, _Subscription] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._snapshot_nonces: set[str] = set()
        self._ops: dict[str, Callable[[SoapRequest, web.Request], Awaitable[str]]] = {
            "GetSystemDateAndTime": self._get_system_date_and_time,
            "SetSystemDateAndTime": self._set_system_date_and_time,
            "GetDeviceInformation": self._get_device_information,
            "GetCapabilities": self._get_capabilities,
            "GetServices": self._get_services,
            "GetProfiles": self._get_profiles,
            "GetProfile": self._get_profile,
            "GetStreamUri": self._get_stream_uri,
            "GetSnapshotUri": self._get_snapshot_uri,
            "GetVideoSources": self._get_video_sources,
            "GetEventProperties": self._get_event_properties,
            "CreatePullPointSubscription": self._create_pull_point_subscription,
            "PullMessages": self._pull_messages,
            "Renew": self._renew,
            "Unsubscribe": self._unsubscribe,
            "SetSynchronizationPoint": self._set_synchronization_point,
            "GetNodes": self._get_nodes,
            "GetConfigurations": self._get_configurations,
            "GetStatus": self._get_status,
            "ContinuousMove": self._continuous_move,
            "Stop": self._stop,
            "GetPresets": self._get_presets,
            "GotoPreset": self._goto_preset,
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str, port: int = 0) -> None:
        """Listen on host:port (0: a free port) and record the port in camera.onvif_port."""
        app = web.Application(middlewares=[self._offline_middleware])
        app.router.add_post("/onvif/{path:.*}", self._handle_soap)
        app.router.add_get(SNAPSHOT_PATH, self._handle_snapshot)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        self.camera.onvif_port = int(sockets[0][1])
        log.info("camera %s: ONVIF on %s", self.camera.name, self.camera.onvif_url())

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _offline_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            if self.camera.faults.offline():
                _drop(request)
            return await handler(request)
        except _Dropped:
            return web.Response(status=204)  # never reaches the client: the socket is gone

    def _base_url(self) -> str:
        return f"http://{self.camera.host}:{self.camera.onvif_port}"

    def camera_now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.camera.clock_offset_s)

    async def _handle_soap(self, request: web.Request) -> web.Response:
        try:
            soap = parse_request(await request.read())
            op = self._ops.get(soap.operation)
            if op is None:
                raise SoapRequestError(
                    "ter:ActionNotSupported", f"{soap.operation} is not supported by {MODEL}"
                )
            if soap.operation not in _UNAUTHENTICATED:
                check_username_token(
                    soap, self.camera.user, self.camera.password, self.camera_now()
                )
            body = await op(soap, request)
        except SoapRequestError as err:
            log.info(
                "camera %s: ONVIF %s fault %s: %s",
                self.camera.name, request.path, err.subcode, err.reason,
            )
            return _soap_response(fault(err), status=err.status)
        return _soap_response(envelope(body))

    async def _handle_snapshot(self, request: web.Request) -> web.Response:
        if not self._snapshot_authorized(request):
            nonce = secrets.token_hex(16)
            self._snapshot_nonces.add(nonce)
            if len(self._snapshot_nonces) > 256:
                self._snapshot_nonces.pop()
            challenge = (
                f'Digest realm="{SNAPSHOT_REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
            )
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        render = self.camera.snapshot_jpeg
        if render is None:
            return web.Response(status=503, text="no frame rendered yet")
        jpeg = await asyncio.get_running_loop().run_in_executor(None, render)
        return web.Response(body=jpeg, content_type="image/jpeg")

    def _snapshot_authorized(self, request: web.Request) -> bool:
        """HTTP Digest (RFC 7616, MD5, qop=auth) or Basic with the camera's credentials."""
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(rest).decode().partition(":")
            except ValueError:
                return False
            return user == self.camera.user and hmac.compare_digest(
                password.encode(), self.camera.password.encode()
            )
        if scheme.lower() != "digest":
            return False
        params = dict(
            (k, v.strip('"')) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', rest)
        )
        if params.get("username") != self.camera.user or params.get("nonce") not in (
            self._snapshot_nonces
        ):
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.camera.user}:{SNAPSHOT_REALM}:{self.camera.password}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = md5(
                f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}"
                f":{params['qop']}:{ha2}"
            )
        else:
            expected = md5(f"{ha1}:{params['nonce']}:{ha2}")
        return hmac.compare_digest(expected.encode(), params.get("response", "").encode())

    # -- device --------------------------------------------------------------------------

    async def _get_system_date_and_time(self, req: SoapRequest, _: web.Request) -> str:
        now = self.camera_now()
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>Manual</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime>{_date_time(now)}</tt:UTCDateTime>"
            f"<tt:LocalDateTime>{_date_time(now)}</tt:LocalDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    async def _set_system_date_and_time(self, req: SoapRequest, _: web.Request) -> str:
        kind = req.text("tds:DateTimeType", "Manual")
        if kind == "Manual":
            utc = req.body.find(f"{{{NS['tds']}}}UTCDateTime")
            if utc is None:
                raise SoapRequestError("ter:InvalidArgVal", "Manual time without UTCDateTime")
            try:
                fields = {
                    name: int(utc.findtext(f".//{{{NS['tt']}}}{name}", default=""))
                    for name in ("Year", "Month", "Day", "Hour", "Minute", "Second")
                }
                wanted = dt.datetime(**{k.lower(): v for k, v in fields.items()}, tzinfo=dt.UTC)
            except ValueError as err:
                raise SoapRequestError(
                    "ter:InvalidDateTime", f"UTCDateTime is not a valid date and time: {err}"
                ) from err
            offset_s = (wanted - dt.datetime.now(dt.UTC)).total_seconds()
            self.camera.clock_offset_s = offset_s
            log.info("camera %s: clock set, offset now %+.1f s", self.camera.name, offset_s)
        return "<tds:SetSystemDateAndTimeResponse/>"

    async def _get_device_information(self, req: SoapRequest, _: web.Request) -> str:
        cam = self.camera
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{MANUFACTURER}</tds:Manufacturer>"
            f"<tds:Model>{MODEL}</tds:Model>"
            f"<tds:FirmwareVersion>{FIRMWARE_VERSION}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>SIM{cam.index:06d}</tds:SerialNumber>"
            f"<tds:HardwareId>{xml_text(cam.name)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    async def _get_capabilities(self, req: SoapRequest, _: web.Request) -> str:
        base = self._base_url()
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{base}/onvif/events_service</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
            "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
            f"<tt:Media><tt:XAddr>{base}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"<tt:PTZ><tt:XAddr>{base}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    async def _get_services(self, req: SoapRequest, _: web.Request) -> str:
        base = self._base_url()
        services = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
            f"<tds:XAddr>{base}/onvif/{path}</tds:XAddr>"
            f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version>"
            "</tds:Service>"
            for path, (ns, (major, minor)) in _SERVICES.items()
        )
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    # -- media ---------------------------------------------------------------------------

    def _profile_xml(self, spec: _ProfileSpec, element: str) -> str:
        fps = self.camera.scene.fps
        encoding = "H265" if self.camera.codec == "h265" else "H264"
        gov = max(1, round(self.camera.scene.gop_s * fps))
        return (
            f'<{element} token="{spec.token}" fixed="true">'
            f"<tt:Name>{spec.token}</tt:Name>"
            '<tt:VideoSourceConfiguration token="vsc0"><tt:Name>vsc0</tt:Name>'
            f"<tt:UseCount>{len(_PROFILES)}</tt:UseCount>"
            f"<tt:SourceToken>{_VIDEO_SOURCE}</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="1920" height="1080"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="vec_{spec.token}">'
            f"<tt:Name>vec_{spec.token}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{encoding}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{spec.width}</tt:Width>"
            f"<tt:Height>{spec.height}</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval>"
            f"<tt:BitrateLimit>{spec.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
            f"<tt:H264><tt:GovLength>{gov}</tt:GovLength>"
            "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout>"
            "</tt:VideoEncoderConfiguration>"
            '<tt:PTZConfiguration token="ptz0"><tt:Name>ptz0</tt:Name>'
            "<tt:UseCount>2</tt:UseCount><tt:NodeToken>ptznode0</tt:NodeToken>"
            "</tt:PTZConfiguration>"
            f"</{element}>"
        )

    def _profile(self, req: SoapRequest) -> _ProfileSpec:
        token = req.text("trt:ProfileToken") or req.text("tptz:ProfileToken")
        for spec in _PROFILES:
            if spec.token == token:
                return spec
        raise SoapRequestError("ter:NoProfile", f"no media profile with token {token!r}")

    async def _get_profiles(self, req: SoapRequest, _: web.Request) -> str:
        profiles = "".join(self._profile_xml(spec, "trt:Profiles") for spec in _PROFILES)
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"

    async def _get_profile(self, req: SoapRequest, _: web.Request) -> str:
        profile = self._profile_xml(self._profile(req), "trt:Profile")
        return f"<trt:GetProfileResponse>{profile}</trt:GetProfileResponse>"

    @staticmethod
    def _media_uri(element: str, uri: str) -> str:
        return (
            f"<{element}><trt:MediaUri><tt:Uri>{xml_text(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></{element}>"
        )

    async def _get_stream_uri(self, req: SoapRequest, _: web.Request) -> str:
        spec = self._profile(req)
        return self._media_uri("trt:GetStreamUriResponse", self.camera.rtsp_url(spec.stream))

    async def _get_snapshot_uri(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        uri = self._base_url() + SNAPSHOT_PATH
        return self._media_uri("trt:GetSnapshotUriResponse", uri)

    async def _get_video_sources(self, req: SoapRequest, _: web.Request) -> str:
        return (
            f'<trt:GetVideoSourcesResponse><trt:VideoSources token="{_VIDEO_SOURCE}">'
            f"<tt:Framerate>{self.camera.scene.fps}</tt:Framerate>"
            "<tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution>"
            "</trt:VideoSources></trt:GetVideoSourcesResponse>"
        )

    # -- events --------------------------------------------------------------------------

    async def _get_event_properties(self, req: SoapRequest, _: web.Request) -> str:
        return (
            "<tev:GetEventPropertiesResponse>"
            "<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/"
            "topicns.xml</tev:TopicNamespaceLocation>"
            "<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>"
            '<wstop:TopicSet><tns1:VideoSource><tns1:MotionAlarm wstop:topic="true">'
            '<tt:MessageDescription IsProperty="true"><tt:Source>'
            '<tt:SimpleItemDescription Name="Source" Type="tt:ReferenceToken"/></tt:Source>'
            '<tt:Data><tt:SimpleItemDescription Name="State" Type="xs:boolean"/></tt:Data>'
            "</tt:MessageDescription></tns1:MotionAlarm></tns1:VideoSource></wstop:TopicSet>"
            "<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/"
            "ConcreteSet</wsnt:TopicExpressionDialect>"
            "<tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/"
            "messageContentFilter/ItemFilter</tev:MessageContentFilterDialect>"
            "<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/"
            "onvif.xsd</tev:MessageContentSchemaLocation>"
            "</tev:GetEventPropertiesResponse>"
        )

    def _termination(self, text: str | None, now: dt.datetime) -> dt.datetime:
        """InitialTerminationTime / TerminationTime: a duration or an absolute camera time."""
        if not text:
            return now + dt.timedelta(seconds=_DEFAULT_SUBSCRIPTION_S)
        if text.strip().startswith("P"):
            return now + dt.timedelta(seconds=parse_duration_s(text))
        try:
            camera_time = parse_utc(text)
        except ValueError as err:
            raise SoapRequestError(
                "ter:InvalidArgVal", f"TerminationTime is neither a duration nor a time: {text!r}"
            ) from err
        return camera_time - dt.timedelta(seconds=self.camera.clock_offset_s)

    def _subscription(self, request: web.Request) -> _Subscription:
        sub_id = request.match_info["path"].rpartition("/")[2]
        sub = self._subscriptions.get(sub_id)
        if sub is None or sub.terminates_at <= dt.datetime.now(dt.UTC):
            self._subscriptions.pop(sub_id, None)
            raise SoapRequestError(
                "ter:InvalidArgVal", f"no subscription {sub_id!r} (unknown or expired)"
            )
        return sub

    def _times(self, sub: _Subscription) -> tuple[str, str]:
        offset = dt.timedelta(seconds=self.camera.clock_offset_s)
        return format_utc(self.camera_now()), format_utc(sub.terminates_at + offset)

    async def _create_pull_point_subscription(self, req: SoapRequest, _: web.Request) -> str:
        now = dt.datetime.now(dt.UTC)
        for sub_id in [k for k, s in self._subscriptions.items() if s.terminates_at <= now]:
            del self._subscriptions[sub_id]
        if len(self._subscriptions) >= _MAX_SUBSCRIPTIONS:
            raise SoapRequestError(
                "ter:MaxPullPoints", "too many pull-point subscriptions", sender=False,
                status=500,
            )
        sub = _Subscription(
            sub_id=str(next(self._ids)),
            terminates_at=self._termination(req.text("tev:InitialTerminationTime"), now),
        )
        self._subscriptions[sub.sub_id] = sub
        current, terminates = self._times(sub)
        log.info("camera %s: pull-point subscription %s created", self.camera.name, sub.sub_id)
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{self._base_url()}/onvif/subscription/{sub.sub_id}</wsa:Address>"
            "</tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{current}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{terminates}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    async def _pull_messages(self, req: SoapRequest, request: web.Request) -> str:
        sub = self._subscription(request)
        wait_s = min(parse_duration_s(req.text("tev:Timeout", "PT0S") or "PT0S"), _MAX_PULL_WAIT_S)
        limit_text = req.text("tev:MessageLimit", "10") or "10"
        try:
            limit = int(limit_text)
        except ValueError as err:
            raise SoapRequestError(
                "ter:InvalidArgVal", f"MessageLimit is not an integer: {limit_text!r}"
            ) from err
        deadline = time.monotonic() + wait_s
        messages: list[str] = []
        while limit > 0:
            if self.camera.faults.offline():
                _drop(request)
            now = time.monotonic()
            state = self.camera.motion_active(now)
            if sub.reported_state is None or state != sub.reported_state:
                operation = "Initialized" if sub.reported_state is None else "Changed"
                sub.reported_state = state
                messages.append(self._motion_message(state, operation))
                break
            if now >= deadline or sub.sub_id not in self._subscriptions:
                break
            # Sleep until the scene's next scripted change (no polling), but wake up
            # now and then to notice an injected "offline" fault.
            await asyncio.sleep(
                min(deadline - now, self._to_next_scene_change_s(now) + 0.001, _WAKE_S)
            )
        current, terminates = self._times(sub)
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{current}</tev:CurrentTime>"
            f"<tev:TerminationTime>{terminates}</tev:TerminationTime>"
            f"{''.join(messages)}</tev:PullMessagesResponse>"
        )

    def _to_next_scene_change_s(self, now_monotonic: float) -> float:
        """Seconds until the next object enters or leaves, or the loop restarts."""
        scene = self.camera.scene
        t_s = scene.loop_time(self.camera.elapsed_s(now_monotonic))
        marks = [m for o in scene.objects for m in (o.start_s, o.end_s)] + [scene.loop_s]
        return min((m - t_s for m in marks if m - t_s > 1e-6), default=scene.loop_s)

    def _motion_message(self, state: bool, operation: str) -> str:
        return (
            "<wsnt:NotificationMessage>"
            '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
            f"{_MOTION_TOPIC}</wsnt:Topic>"
            f'<wsnt:Message><tt:Message UtcTime="{format_utc(self.camera_now())}" '
            f'PropertyOperation="{operation}">'
            f'<tt:Source><tt:SimpleItem Name="Source" Value="{_VIDEO_SOURCE}"/></tt:Source>'
            f'<tt:Data><tt:SimpleItem Name="State" Value="{str(state).lower()}"/></tt:Data>'
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        )

    async def _renew(self, req: SoapRequest, request: web.Request) -> str:
        sub = self._subscription(request)
        now = dt.datetime.now(dt.UTC)
        sub.terminates_at = self._termination(req.text("wsnt:TerminationTime"), now)
        current, terminates = self._times(sub)
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{terminates}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{current}</wsnt:CurrentTime></wsnt:RenewResponse>"
        )

    async def _unsubscribe(self, req: SoapRequest, request: web.Request) -> str:
        sub = self._subscription(request)
        del self._subscriptions[sub.sub_id]
        log.info("camera %s: pull-point subscription %s removed", self.camera.name, sub.sub_id)
        return "<wsnt:UnsubscribeResponse/>"

    async def _set_synchronization_point(self, req: SoapRequest, request: web.Request) -> str:
        self._subscription(request).reported_state = None  # resend the current state
        return "<tev:SetSynchronizationPointResponse/>"

    # -- PTZ -----------------------------------------------------------------------------

    async def _get_nodes(self, req: SoapRequest, _: web.Request) -> str:
        return (
            '<tptz:GetNodesResponse><tptz:PTZNode token="ptznode0" FixedHomePosition="false">'
            "<tt:Name>ptznode0</tt:Name><tt:SupportedPTZSpaces>"
            "<tt:ContinuousPanTiltVelocitySpace><tt:URI>http://www.onvif.org/ver10/tptz/"
            "PanTiltSpaces/VelocityGenericSpace</tt:URI>"
            "<tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:XRange>"
            "<tt:YRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:YRange>"
            "</tt:ContinuousPanTiltVelocitySpace></tt:SupportedPTZSpaces>"
            f"<tt:MaximumNumberOfPresets>{len(_PRESETS)}</tt:MaximumNumberOfPresets>"
            "<tt:HomeSupported>false</tt:HomeSupported>"
            "</tptz:PTZNode></tptz:GetNodesResponse>"
        )

    async def _get_configurations(self, req: SoapRequest, _: web.Request) -> str:
        return (
            '<tptz:GetConfigurationsResponse><tptz:PTZConfiguration token="ptz0">'
            "<tt:Name>ptz0</tt:Name><tt:UseCount>2</tt:UseCount>"
            "<tt:NodeToken>ptznode0</tt:NodeToken>"
            "</tptz:PTZConfiguration></tptz:GetConfigurationsResponse>"
        )

    async def _get_status(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        now = time.monotonic()
        pan, tilt, zoom = self.ptz.position(now)
        state = "MOVING" if self.ptz.moving(now) else "IDLE"
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            f'<tt:PanTilt x="{pan:.4f}" y="{tilt:.4f}"/><tt:Zoom x="{zoom:.4f}"/>'
            f"</tt:Position><tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt>"
            f"<tt:Zoom>{state}</tt:Zoom></tt:MoveStatus>"
            f"<tt:UtcTime>{format_utc(self.camera_now())}</tt:UtcTime>"
            "</tptz:PTZStatus></tptz:GetStatusResponse>"
        )

    async def _continuous_move(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        try:
            pan = float(req.text("tptz:Velocity/tt:PanTilt/@x", "0") or 0)
            tilt = float(req.text("tptz:Velocity/tt:PanTilt/@y", "0") or 0)
            zoom = float(req.text("tptz:Velocity/tt:Zoom/@x", "0") or 0)
        except ValueError as err:
            raise SoapRequestError("ter:InvalidArgVal", f"bad PTZ velocity: {err}") from err
        if not all(-1.0 <= v <= 1.0 for v in (pan, tilt, zoom)):
            raise SoapRequestError("ter:InvalidArgVal", "PTZ velocity outside [-1, 1]")
        timeout = req.text("tptz:Timeout")
        self.ptz.move((pan, tilt, zoom), parse_duration_s(timeout) if timeout else None,
                      time.monotonic())
        log.info("camera %s: PTZ move %+.2f %+.2f %+.2f", self.camera.name, pan, tilt, zoom)
        return "<tptz:ContinuousMoveResponse/>"

    async def _stop(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        self.ptz.stop(time.monotonic())
        return "<tptz:StopResponse/>"

    async def _get_presets(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        presets = "".join(
            f"<tptz:Preset token={xml_attr(token)}><tt:Name>{xml_text(name)}</tt:Name>"
            f'<tt:PTZPosition><tt:PanTilt x="{pan}" y="{tilt}"/><tt:Zoom x="{zoom}"/>'
            "</tt:PTZPosition></tptz:Preset>"
            for token, (name, pan, tilt, zoom) in _PRESETS.items()
        )
        return f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>"

    async def _goto_preset(self, req: SoapRequest, _: web.Request) -> str:
        self._profile(req)
        token = req.text("tptz:PresetToken")
        if token not in _PRESETS:
            raise SoapRequestError("ter:NoToken", f"no PTZ preset with token {token!r}")
        _name, pan, tilt, zoom = _PRESETS[token]
        self.ptz.goto(pan, tilt, zoom, time.monotonic())
        log.info("camera %s: PTZ preset %s", self.camera.name, token)
        return "<tptz:GotoPresetResponse/>"


def _soap_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(
        body=body, status=status, content_type="application/soap+xml", charset="utf-8"
    )


class _Dropped(Exception):
    """The connection was aborted on purpose (offline fault)."""


def _drop(request: web.Request) -> None:
    """Close the connection without answering, as a camera that went away would."""
    log.debug("dropping an ONVIF connection: camera offline")
    if request.transport is not None:
        request.transport.abort()
    raise _Dropped


def _date_time(when: dt.datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute>"
        f"<tt:Second>{when.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{when.month}</tt:Month>"
        f"<tt:Day>{when.day}</tt:Day></tt:Date>"
    )
