"""The health board: which sites are offline, which cameras are offline, stalled or tampered
with, and which disks are nearly full. Changes reach browsers as soon as they are known."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from recorder.clock import Clock
from viewer.accounts import User
from viewer.auth import Permission, has_permission
from viewer.db import ViewerDB
from viewer.push import Broadcaster

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 1.0


# police_link camera states that are a problem worth showing on the board
PROBLEM_CAMERA_STATES = frozenset({"offline", "stalled", "tamper", "video_loss", "error"})


@dataclass(frozen=True)
class CameraHealth:
    camera: str
    state: str  # one of police_link.messages.CAMERA_STATES
    since: float  # wall time of the last change (as reported by the site)
    detail: str = ""


@dataclass(frozen=True)
class SiteHealth:
    site: str
    online: bool
    since: float  # wall time the online flag last changed
    last_seen_at: float  # wall time of the last message from the site
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    disk_low: bool = False
    cameras: dict[str, CameraHealth] = field(default_factory=dict)
    alarms: dict[str, Alarm] = field(default_factory=dict)  # active ones, keyed kind[/camera]


@dataclass(frozen=True)
class Alarm:
    kind: str  # one of police_link.messages.ALARM_KINDS
    camera: str | None
    since: float
    detail: str


def _may_see(user: User) -> bool:
    return has_permission(user, Permission.WALL) or has_permission(user, Permission.HEALTH)


def site_view(site: SiteHealth, user: User) -> dict[str, Any] | None:
    """What one user may see of a site; None when the site is not theirs."""
    if not _may_see(user) or not user.may_see_site(site.site):
        return None
    return {
        "site": site.site,
        "online": site.online,
        "since": site.since,
        "last_seen_at": site.last_seen_at,
        "disk_free_bytes": site.disk_free_bytes,
        "disk_total_bytes": site.disk_total_bytes,
        "disk_low": site.disk_low,
        "cameras": [
            {"camera": c.camera, "state": c.state, "since": c.since, "detail": c.detail,
             "problem": c.state in PROBLEM_CAMERA_STATES}
            for name, c in sorted(site.cameras.items())
            if user.may_see_camera(site.site, name)
        ],
        "alarms": [
            {"kind": a.kind, "camera": a.camera, "since": a.since, "detail": a.detail}
            for _, a in sorted(site.alarms.items())
            if a.camera is None or user.may_see_camera(site.site, a.camera)
        ],
    }


class HealthBoard:
    """Holds the latest health of every site; a site silent for offline_after_s is offline
    even if its last-will message never arrives (broker restart, half-open connection)."""

    def __init__(
        self, db: ViewerDB, broadcaster: Broadcaster, clock: Clock, *, offline_after_s: float,
        disk_low_free_bytes: int,
    ) -> None:
        self._disk_low_free_bytes = disk_low_free_bytes
        self._db = db
        self._broadcaster = broadcaster
        self._clock = clock
        self._offline_after_s = offline_after_s
        self._sites: dict[str, SiteHealth] = {}
        self._seen_mono: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._load()

    def _load(self) -> None:
        cameras: dict[str, dict[str, CameraHealth]] = {}
        for row in self._db.cameras():
            cameras.setdefault(row["site"], {})[row["camera"]] = CameraHealth(
                row["camera"], row["state"], row["since"], row["detail"] or "",
            )
        for row in self._db.sites():
            status = json.loads(row["status"] or "{}")
            # The stored state is the truth at shutdown; the viewer's persistent MQTT session
            # delivers every change since (the broker does not resend retained messages to
            # a session that is still subscribed).
            self._sites[row["site"]] = SiteHealth(
                site=row["site"], online=bool(row["online"]),
                since=status.get("since", row["last_seen_at"]),
                last_seen_at=row["last_seen_at"],
                disk_free_bytes=status.get("disk_free_bytes"),
                disk_total_bytes=status.get("disk_total_bytes"),
                disk_low=bool(status.get("disk_low")),
                cameras=cameras.get(row["site"], {}),
                alarms={key: Alarm(**a) for key, a in status.get("alarms", {}).items()},
            )
            if row["online"]:  # the silence watchdog counts from the restart
                self._seen_mono[row["site"]] = self._clock.monotonic()

    # inputs (from the police link feed)

    def site_seen(self, site: str) -> None:
        """Any message from the site proves it is alive."""
        self._seen_mono[site] = self._clock.monotonic()
        current = self._sites.get(site)
        if current is None or not current.online:
            self.set_site_online(site, True)
        else:
            self._sites[site] = replace(current, last_seen_at=self._clock.wall())

    def set_site_online(self, site: str, online: bool) -> None:
        now = self._clock.wall()
        if online:
            self._seen_mono[site] = self._clock.monotonic()
        current = self._sites.get(site) or SiteHealth(site, online, now, now)
        changed = current.online != online or site not in self._sites
        updated = replace(
            current, online=online, since=now if changed else current.since,
            last_seen_at=now if online else current.last_seen_at,
        )
        self._store(updated, changed)
        if changed:
            log.info("viewer: site %s is %s", site, "online" if online else "OFFLINE")

    def set_camera(
        self, site: str, camera: str, state: str, since: float, detail: str = ""
    ) -> None:
        self.site_seen(site)
        current = self._sites[site]
        old = current.cameras.get(camera)
        if old is not None and (old.state, old.since, old.detail) == (state, since, detail):
            return
        if old is None or old.state != state:
            log.info("viewer: site %s camera %s is %s", site, camera, state)
        cam = CameraHealth(camera, state, since, detail)
        self._store(replace(current, cameras={**current.cameras, camera: cam}), True)
        self._db.upsert_camera(site, camera, state, since, detail)

    def set_alarm(
        self, site: str, kind: str, camera: str | None, active: bool, since: float,
        detail: str = "",
    ) -> None:
        self.site_seen(site)
        current = self._sites[site]
        key = f"{kind}/{camera}" if camera else kind
        alarms = dict(current.alarms)
        if active:
            alarms[key] = Alarm(kind, camera, since, detail)
        elif alarms.pop(key, None) is None:
            return
        log.info("viewer: site %s camera %s alarm %s %s", site, camera or "-", kind,
                 "raised" if active else "cleared")
        self._store(replace(current, alarms=alarms), True)

    def set_disk(self, site: str, *, free_bytes: int, total_bytes: int) -> None:
        self.site_seen(site)
        current = self._sites[site]
        low = free_bytes < self._disk_low_free_bytes
        if (current.disk_free_bytes, current.disk_total_bytes) == (free_bytes, total_bytes):
            return
        if low != current.disk_low:
            log.info("viewer: site %s disk %s (%d bytes free)", site,
                     "nearly full" if low else "fine", free_bytes)
        publish = low != current.disk_low or abs(
            (current.disk_free_bytes or 0) - free_bytes) > total_bytes // 100
        self._store(
            replace(current, disk_free_bytes=free_bytes, disk_total_bytes=total_bytes,
                    disk_low=low),
            publish,
        )

    # outputs

    def sites_for(self, user: User) -> list[dict[str, Any]]:
        views = (site_view(s, user) for _, s in sorted(self._sites.items()))
        return [v for v in views if v is not None]

    def site(self, site: str) -> SiteHealth | None:
        return self._sites.get(site)

    def _store(self, site: SiteHealth, publish: bool) -> None:
        self._sites[site.site] = site
        self._db.upsert_site(
            site.site, site.online, site.last_seen_at,
            {"since": site.since, "disk_free_bytes": site.disk_free_bytes,
             "disk_total_bytes": site.disk_total_bytes, "disk_low": site.disk_low,
             "alarms": {key: dataclasses.asdict(a) for key, a in site.alarms.items()}},
        )
        if publish:
            self._broadcaster.publish(
                lambda user: (
                    {"type": "site", "site": view}
                    if (view := site_view(site, user)) is not None else None
                )
            )

    # the silence watchdog

    def check_silence(self) -> None:
        if self._offline_after_s <= 0:
            return
        now = self._clock.monotonic()
        for name, site in list(self._sites.items()):
            seen = self._seen_mono.get(name)
            if site.online and seen is not None and now - seen > self._offline_after_s:
                log.warning("viewer: site %s silent for %.0f s", name, now - seen)
                self.set_site_online(name, False)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                self.check_silence()
            except Exception:
                log.exception("viewer: health check failed")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
