"""The async ONVIF driver: one camera, on top of onvif-zeep-async.

Every network call goes through `_call`, which bounds it by timeout_s and converts zeep,
aiohttp and socket errors into camera_drivers.errors at this one boundary. Camera quirks
handled here are listed in docs/onvif.md; each workaround says which quirk it is for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.client import ONVIFService
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

from camera_drivers.errors import (
    CameraAuthError,
    CameraCommandError,
    CameraError,
    CameraTimeout,
    CameraUnreachable,
    NotOnvifDevice,
    NoUsableProfile,
)
from camera_drivers.event_parsers import EventParser, notification_from_zeep
from camera_drivers.models import (
    CameraEvent,
    CameraProbe,
    Capabilities,
    DeviceInfo,
    PtzPreset,
    StreamProfile,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
DEVICE_SERVICE_PATH = "/onvif/device_service"
RECORDABLE_ENCODINGS = ("H264", "H265")
_PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
_AUTH_SUBCODES = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})
_ENCODING_ALIASES = {"H.264": "H264", "AVC": "H264", "H.265": "H265", "HEVC": "H265"}


_WSDL_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _wsdl_lock() -> asyncio.Lock:
    """Serializes service creation: onvif-zeep-async caches a parsed WSDL only after
    parsing it, so 32 cameras connecting at once would parse it 32 times (8 s of CPU
    measured here); one at a time, the first parses and the rest hit the cache."""
    loop = asyncio.get_running_loop()
    lock = _WSDL_LOCKS.get(loop)
    if lock is None:
        lock = _WSDL_LOCKS[loop] = asyncio.Lock()
    return lock


def parse_device_url(url: str) -> tuple[str, int]:
    """`http://host:port[/onvif/device_service]` or `host[:port]` -> (host, port)."""
    text = url.strip()
    if not text:
        raise ValueError("empty camera address")
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme != "http":
        raise ValueError(f"camera address must be http://host:port, got scheme {parts.scheme!r}")
    if parts.path not in ("", "/", DEVICE_SERVICE_PATH):
        raise ValueError(
            f"ONVIF device service must be at {DEVICE_SERVICE_PATH}, got path {parts.path!r}"
        )
    try:
        port = parts.port or 80
    except ValueError as err:
        raise ValueError(f"bad port in camera address {url!r}") from err
    if not parts.hostname:
        raise ValueError(f"no host in camera address {url!r}")
    return parts.hostname, port


def strip_credentials(uri: str) -> str:
    """Quirk: some cameras embed user:password@ in stream and snapshot URIs. Drop it."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def normalize_encoding(name: str | None) -> str:
    """Quirk: "H.264", "h264", "HEVC"... all name two codecs. Upper case, no dots."""
    value = (name or "").strip().upper()
    return _ENCODING_ALIASES.get(value, value.replace(".", ""))


def _subcode_names(fault: zeep.exceptions.Fault) -> set[str]:
    codes = fault.subcodes if isinstance(fault.subcodes, list) else [fault.subcodes]
    names = set()
    for code in codes:
        if code is None:
            continue
        text = getattr(code, "localname", None) or getattr(code, "text", None) or str(code)
        names.add(str(text).rpartition(":")[2].rpartition("}")[2])
    return names


class OnvifCamera:
    """One ONVIF camera. Use as `async with OnvifCamera(...) as cam:`.

    Entering connects (clock handshake, service addresses); every later call is bounded
    by timeout_s and raises only camera_drivers.errors.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        timeout_s: float = 10.0,
        name: str | None = None,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.timeout_s = timeout_s
        self.name = name or f"{host}:{port}"
        self._device: ONVIFCamera | None = None
        self._profiles: list[StreamProfile] | None = None
        self._subscription: ONVIFService | None = None
        self._parser = EventParser(self.name)
        self._spoke_onvif = False  # set once the camera answered ONVIF SOAP

    @property
    def onvif_url(self) -> str:
        return f"http://{self.host}:{self.port}{DEVICE_SERVICE_PATH}"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> OnvifCamera:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Clock handshake and service addresses (GetServices, else GetCapabilities)."""
        await self.close()
        # adjust_time: sign WS-UsernameTokens with the camera's clock, because cameras
        # reject a token whose Created is minutes away from their own time.
        # no_cache: the WSDLs are local files; zeep's cache would write a SQLite file
        # under the user's home, which a hardened daemon may not have.
        self._device = ONVIFCamera(
            self.host, self.port, self.user, self.password, adjust_time=True, no_cache=True
        )
        try:
            # Loads the WSDL from disk (slow the first time): outside the network timeout.
            async with _wsdl_lock():
                await self._device.create_devicemgmt_service()
            await self._call("connect", self._device.update_xaddrs())
            self._spoke_onvif = True
        except (AttributeError, TypeError, KeyError, IndexError) as err:
            # zeep trips over answers that are not XML at all (a plain "Not Found" body
            # parses to nothing): at this first exchange that means "not ONVIF".
            await self.close()
            raise NotOnvifDevice(
                f"camera {self._label()}: connect: the answer is not ONVIF "
                f"SOAP: not an ONVIF device ({type(err).__name__})"
            ) from err
        except BaseException:
            await self.close()
            raise
        log.info("camera %s: connected to %s", self.name, self.onvif_url)

    async def close(self) -> None:
        if self._device is None:
            return
        if self._subscription is not None:
            with contextlib.suppress(CameraError):
                await self._unsubscribe()
        device, self._device = self._device, None
        self._profiles = None
        try:
            await device.close()
        except (aiohttp.ClientError, OSError) as err:
            log.debug("camera %s: error while closing: %s", self.name, err)

    # -- the error boundary ------------------------------------------------------------

    async def _call(self, what: str, awaitable: Awaitable[T], timeout_s: float | None = None) -> T:
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit_s):
                return await awaitable
        except CameraError:
            raise
        except Exception as err:
            converted = self._convert(err, what, limit_s)
            if converted is None:
                raise
            raise converted from err

    def _convert(self, err: BaseException, what: str, limit_s: float) -> CameraError | None:
        where = f"camera {self._label()}: {what}"
        if isinstance(err, ONVIFError) and not isinstance(err, ONVIFTimeoutError | ONVIFAuthError):
            cause = err.__cause__
            if cause is not None and not isinstance(cause, ONVIFError):
                return self._convert(cause, what, limit_s)
        if isinstance(err, TimeoutError | ONVIFTimeoutError):
            return CameraTimeout(f"{where}: no answer within {limit_s:g} s")
        if isinstance(err, ONVIFAuthError):
            return CameraAuthError(f"{where}: user name or password rejected")
        if isinstance(err, zeep.exceptions.Fault):
            message = str(err.message or "")
            lowered = message.lower()
            if _subcode_names(err) & _AUTH_SUBCODES or "authoriz" in lowered or (
                "authenticat" in lowered
            ):
                return CameraAuthError(f"{where}: user name or password rejected ({message})")
            return CameraCommandError(f"{where}: the camera refused: {message}")
        if isinstance(err, zeep.exceptions.TransportError):
            if err.status_code in (401, 403):
                return CameraAuthError(
                    f"{where}: user name or password rejected (HTTP {err.status_code})"
                )
            if self._spoke_onvif:  # e.g. HTTP 500 from a camera we already talked to
                return CameraCommandError(f"{where}: HTTP {err.status_code} without a SOAP answer")
            return NotOnvifDevice(
                f"{where}: HTTP {err.status_code} without a SOAP answer: not an ONVIF device"
            )
        if isinstance(
            err,
            zeep.exceptions.XMLSyntaxError
            | zeep.exceptions.XMLParseError
            | zeep.exceptions.ValidationError
            | zeep.exceptions.UnexpectedElementError,
        ):
            if self._spoke_onvif:
                return CameraCommandError(f"{where}: the answer is not valid ONVIF SOAP")
            return NotOnvifDevice(f"{where}: the answer is not ONVIF SOAP: not an ONVIF device")
        if isinstance(err, aiohttp.ClientError | OSError):
            return CameraUnreachable(f"{where}: {type(err).__name__}: {err}")
        if isinstance(err, ONVIFError):
            return CameraCommandError(f"{where}: {err}")
        return None

    def _label(self) -> str:
        default = self.name == f"{self.host}:{self.port}"
        return self.onvif_url if default else f"{self.name} ({self.onvif_url})"

    def _require(self) -> ONVIFCamera:
        if self._device is None:
            raise CameraError(f"camera {self.name}: not connected (use `async with`)")
        return self._device

    async def _service(self, name: str) -> ONVIFService:
        """A service client; WSDL loading is local work, kept outside the timeout."""
        device = self._require()
        try:
            async with _wsdl_lock():
                return await device.create_onvif_service(name)
        except ONVIFError as err:
            raise CameraCommandError(
                f"camera {self.name}: no {name} service ({err})"
            ) from err

    # -- probe -------------------------------------------------------------------------

    async def probe(self) -> CameraProbe:
        """Identity, recordable streams, clock offset and what the camera supports."""
        devicemgmt = await self._service("devicemgmt")
        info = await self._call("GetDeviceInformation", devicemgmt.GetDeviceInformation())
        device = DeviceInfo(
            manufacturer=str(info.Manufacturer or ""),
            model=str(info.Model or ""),
            firmware_version=str(info.FirmwareVersion or ""),
            serial_number=str(info.SerialNumber or ""),
            hardware_id=str(info.HardwareId or ""),
        )
        clock_offset_s = await self.clock_offset_s()
        profiles = await self.profiles()
        recordable = [p for p in profiles if p.encoding in RECORDABLE_ENCODINGS]
        if not recordable:
            found = ", ".join(f"{p.token} ({p.encoding or 'no video'})" for p in profiles)
            raise NoUsableProfile(
                f"camera {self.name}: no H.264/H.265 video profile; found: {found or 'none'}"
            )
        main = max(recordable, key=lambda p: (p.pixels, p.fps or 0.0))
        sub = min(recordable, key=lambda p: (p.pixels, -(p.fps or 0.0)))
        capabilities = Capabilities(
            events=await self._try("GetEventProperties", self._has_events()),
            ptz=await self._try("GetNodes", self._has_ptz()),
            snapshot=main.snapshot_uri is not None,
        )
        return CameraProbe(
            onvif_url=self.onvif_url,
            device=device,
            profiles=tuple(profiles),
            main=main,
            sub=sub,
            clock_offset_s=clock_offset_s,
            capabilities=capabilities,
        )

    async def _try(self, what: str, check: Awaitable[bool]) -> bool:
        try:
            return await check
        except (CameraCommandError, NotOnvifDevice) as err:
            log.info("camera %s: %s not supported: %s", self.name, what, err)
            return False

    async def _has_events(self) -> bool:
        events = await self._service("events")
        await self._call("GetEventProperties", events.GetEventProperties())
        return True

    async def _has_ptz(self) -> bool:
        ptz = await self._service("ptz")
        nodes = await self._call("GetNodes", ptz.GetNodes())
        return bool(nodes)

    async def clock_offset_s(self) -> float:
        """Camera clock minus ours, +-0.5 s (cameras give whole seconds)."""
        devicemgmt = await self._service("devicemgmt")
        before = time.time()
        answer = await self._call(
            "GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime()
        )
        after = time.time()
        utc = answer.UTCDateTime
        if utc is None:
            raise CameraCommandError(f"camera {self.name}: GetSystemDateAndTime without UTC")
        camera = dt.datetime(
            utc.Date.Year, utc.Date.Month, utc.Date.Day,
            utc.Time.Hour, utc.Time.Minute, utc.Time.Second, tzinfo=dt.UTC,
        ).timestamp()
        return round(camera + 0.5 - (before + after) / 2, 3)

    async def profiles(self) -> list[StreamProfile]:
        """Media profiles that carry video, with their stream and snapshot URIs."""
        if self._profiles is not None:
            return self._profiles
        media = await self._service("media")
        raw = await self._call("GetProfiles", media.GetProfiles())
        profiles = []
        for profile in raw or []:
            encoder = profile.VideoEncoderConfiguration
            if encoder is None or encoder.Resolution is None:
                log.info("camera %s: profile %s has no video encoder", self.name, profile.token)
                continue
            rate = encoder.RateControl
            setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            try:
                stream = await self._call(
                    "GetStreamUri",
                    media.GetStreamUri({"StreamSetup": setup, "ProfileToken": profile.token}),
                )
            except CameraCommandError as err:
                # Quirk: some cameras list profiles they refuse to stream (disabled ones).
                log.info("camera %s: profile %s has no stream: %s", self.name, profile.token, err)
                continue
            profiles.append(
                StreamProfile(
                    token=str(profile.token),
                    name=str(profile.Name or profile.token),
                    encoding=normalize_encoding(encoder.Encoding),
                    width=int(encoder.Resolution.Width),
                    height=int(encoder.Resolution.Height),
                    fps=float(rate.FrameRateLimit) if rate and rate.FrameRateLimit else None,
                    bitrate_kbps=int(rate.BitrateLimit) if rate and rate.BitrateLimit else None,
                    stream_uri=strip_credentials(str(stream.Uri)),
                    snapshot_uri=await self._snapshot_uri(media, str(profile.token)),
                )
            )
        self._profiles = profiles
        return profiles

    async def _snapshot_uri(self, media: ONVIFService, token: str) -> str | None:
        try:
            answer = await self._call(
                "GetSnapshotUri", media.GetSnapshotUri({"ProfileToken": token})
            )
        except (CameraCommandError, NotOnvifDevice) as err:
            log.info("camera %s: no snapshot URI for profile %s: %s", self.name, token, err)
            return None
        uri = getattr(answer, "Uri", None)
        return strip_credentials(str(uri)) if uri else None

    async def _main_profile(self) -> StreamProfile:
        profiles = await self.profiles()
        if not profiles:
            raise NoUsableProfile(f"camera {self.name}: no video profile")
        return max(profiles, key=lambda p: p.pixels)

    # -- snapshot ----------------------------------------------------------------------

    async def snapshot(self, profile_token: str | None = None) -> bytes:
        """A JPEG from the camera's snapshot URI (HTTP digest or basic auth)."""
        profiles = await self.profiles()
        profile = next((p for p in profiles if p.token == profile_token), None)
        if profile is None:
            profile = await self._main_profile()
        if not profile.snapshot_uri:
            raise CameraCommandError(f"camera {self.name}: no snapshot URI")
        return await self._call("snapshot", self._fetch_jpeg(profile.snapshot_uri))

    async def _fetch_jpeg(self, uri: str) -> bytes:
        digest = aiohttp.DigestAuthMiddleware(self.user, self.password)
        async with aiohttp.ClientSession(middlewares=(digest,)) as session:
            status, challenge, body = await _http_get(session, uri)
            if status == 401 and challenge.lower().startswith("basic"):
                # Quirk: some cameras protect snapshots with Basic rather than Digest.
                basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
                status, challenge, body = await _http_get(session, uri, f"Basic {basic}")
        if status in (401, 403):
            raise CameraAuthError(f"camera {self.name}: snapshot: user name or password rejected")
        if status != 200:
            raise CameraCommandError(f"camera {self.name}: snapshot: HTTP {status}")
        if not body.startswith(b"\xff\xd8"):
            raise CameraCommandError(f"camera {self.name}: snapshot is not a JPEG image")
        return body

    # -- events ------------------------------------------------------------------------

    async def events(
        self, *, pull_timeout_s: float = 5.0, subscription_s: float = 60.0
    ) -> AsyncIterator[CameraEvent]:
        """Events from a pull-point subscription, renewed at half its life, until closed.

        The first events are the states at subscription time (`initial=True`). Raises
        CameraUnreachable/CameraTimeout when the camera goes away; the caller retries.
        Use `contextlib.aclosing(cam.events())` so the subscription is removed on exit.
        """
        pull_s = max(1, round(pull_timeout_s))
        subscription_s = max(10.0, subscription_s)
        pullpoint = await self._subscribe(subscription_s)
        renew_at = time.monotonic() + subscription_s / 2
        resubscribed = False
        try:
            while True:
                if time.monotonic() >= renew_at:
                    pullpoint = await self._renew_or_resubscribe(subscription_s, pullpoint)
                    renew_at = time.monotonic() + subscription_s / 2
                # Never wait past the renewal time: a quiet camera must not let it lapse.
                wait_s = max(1, min(pull_s, math.ceil(renew_at - time.monotonic())))
                try:
                    answer = await self._call(
                        "PullMessages",
                        pullpoint.PullMessages({"Timeout": f"PT{wait_s}S", "MessageLimit": 32}),
                        timeout_s=self.timeout_s + wait_s,
                    )
                except CameraCommandError as err:
                    if resubscribed:
                        raise  # a fresh subscription fails too: give up, the caller retries
                    # Quirk: a camera that rebooted (or expired us) forgets the subscription.
                    log.info("camera %s: pull point lost (%s); subscribing again", self.name, err)
                    self._subscription = None
                    pullpoint = await self._subscribe(subscription_s)
                    renew_at = time.monotonic() + subscription_s / 2
                    resubscribed = True
                    continue
                resubscribed = False
                for message in answer.NotificationMessage or []:
                    event = self._parser.parse(notification_from_zeep(message))
                    if event is not None:
                        yield event
        finally:
            with contextlib.suppress(CameraError):
                await self._unsubscribe()

    async def _subscribe(self, subscription_s: float) -> ONVIFService:
        device = self._require()
        events = await self._service("events")
        answer = await self._call(
            "CreatePullPointSubscription",
            events.CreatePullPointSubscription(
                {"InitialTerminationTime": f"PT{int(subscription_s)}S"}
            ),
        )
        address = answer.SubscriptionReference.Address._value_1
        device.xaddrs[_PULLPOINT_NS] = address
        # The subscription manager (Renew, Unsubscribe) and the pull point share the address.
        self._subscription = await self._require_service(
            device.create_subscription_service("PullPointSubscription")
        )
        log.info("camera %s: subscribed to events at %s", self.name, address)
        return await self._require_service(device.create_pullpoint_service())

    async def _require_service(self, creating: Awaitable[ONVIFService]) -> ONVIFService:
        try:
            async with _wsdl_lock():
                return await creating
        except ONVIFError as err:
            raise CameraCommandError(f"camera {self.name}: {err}") from err

    async def _renew_or_resubscribe(
        self, subscription_s: float, pullpoint: ONVIFService
    ) -> ONVIFService:
        if self._subscription is None:
            return await self._subscribe(subscription_s)
        try:
            await self._call("Renew", self._subscription.Renew(f"PT{int(subscription_s)}S"))
            return pullpoint
        except CameraCommandError as err:
            # Quirk: cameras forget subscriptions on reboot or expiry; start a new one.
            log.info("camera %s: renewing events failed (%s); subscribing again", self.name, err)
            self._subscription = None
            return await self._subscribe(subscription_s)

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None and self._device is not None:
            await self._call("Unsubscribe", subscription.Unsubscribe(), timeout_s=2.0)

    # -- PTZ and clock -----------------------------------------------------------------

    async def _ptz_call(self, what: str, build: str, params: dict[str, Any]) -> Any:
        ptz = await self._service("ptz")
        if "ProfileToken" not in params or params["ProfileToken"] is None:
            params["ProfileToken"] = (await self._main_profile()).token
        return await self._call(what, getattr(ptz, build)(params))

    async def ptz_move(
        self,
        pan: float,
        tilt: float,
        zoom: float = 0.0,
        *,
        timeout_s: float | None = None,
        profile_token: str | None = None,
    ) -> None:
        """Continuous move at the given velocities in [-1, 1] until ptz_stop (or timeout_s)."""
        for axis, value in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{axis} velocity must be within [-1, 1], got {value}")
        params: dict[str, Any] = {
            "ProfileToken": profile_token,
            "Velocity": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}},
        }
        if timeout_s is not None:
            params["Timeout"] = dt.timedelta(seconds=timeout_s)
        await self._ptz_call("ContinuousMove", "ContinuousMove", params)

    async def ptz_stop(self, *, profile_token: str | None = None) -> None:
        await self._ptz_call(
            "Stop", "Stop", {"ProfileToken": profile_token, "PanTilt": True, "Zoom": True}
        )

    async def ptz_presets(self, *, profile_token: str | None = None) -> list[PtzPreset]:
        presets = await self._ptz_call("GetPresets", "GetPresets", {"ProfileToken": profile_token})
        return [PtzPreset(token=str(p.token), name=str(p.Name or p.token)) for p in presets or []]

    async def ptz_goto_preset(self, preset_token: str, *, profile_token: str | None = None) -> None:
        await self._ptz_call(
            "GotoPreset",
            "GotoPreset",
            {"ProfileToken": profile_token, "PresetToken": preset_token},
        )

    async def set_clock(self, when: dt.datetime | None = None) -> None:
        """Set the camera's clock (UTC, manual) to `when` or to our clock now."""
        utc = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        devicemgmt = await self._service("devicemgmt")
        await self._call(
            "SetSystemDateAndTime",
            devicemgmt.SetSystemDateAndTime(
                {
                    "DateTimeType": "Manual",
                    "DaylightSavings": False,
                    "UTCDateTime": {
                        "Date": {"Year": utc.year, "Month": utc.month, "Day": utc.day},
                        "Time": {"Hour": utc.hour, "Minute": utc.minute, "Second": utc.second},
                    },
                }
            ),
        )
        log.info("camera %s: clock set to %s", self.name, utc.isoformat(timespec="seconds"))
        # Our WS-Security tokens were signed against the old camera clock: shake hands again.
        await self.connect()


async def _http_get(
    session: aiohttp.ClientSession, uri: str, authorization: str | None = None
) -> tuple[int, str, bytes]:
    headers = {"Authorization": authorization} if authorization else None
    async with session.get(uri, headers=headers) as response:
        return response.status, response.headers.get("WWW-Authenticate", ""), await response.read()
