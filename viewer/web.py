"""What every request handler shares: the context, the current session, permission checks,
input validation helpers and error responses. Route modules (including viewer.live) use
these instead of reaching into the session cookie themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from recorder.clock import Clock
from viewer.accounts import Accounts
from viewer.audit import Action, AuditLog
from viewer.auth import Authenticator, Permission, Session, SessionStore, has_permission
from viewer.config import ViewerConfig
from viewer.db import ViewerDB
from viewer.errors import RequestInvalid
from viewer.push import Broadcaster

if TYPE_CHECKING:
    from viewer.desk import AlertDesk
    from viewer.feed import Feed
    from viewer.health import HealthBoard

log = logging.getLogger(__name__)


@dataclass
class ViewerContext:
    """Everything the handlers need; `link` is the police_link.ViewerLink (None without a
    broker, e.g. in page tests)."""

    config: ViewerConfig
    clock: Clock
    db: ViewerDB
    accounts: Accounts
    authenticator: Authenticator
    sessions: SessionStore
    audit: AuditLog
    broadcaster: Broadcaster
    desk: AlertDesk
    health: HealthBoard
    feed: Feed
    link: Any | None

    def attach_link(self, link: Any) -> None:
        """Set the police link (before create_app, so live view can be mounted)."""
        self.link = link
        self.desk.set_link(link)


CTX = web.AppKey("dozor_viewer_ctx", ViewerContext)
# request[SESSION_KEY]: Session | None, set by the session middleware
SESSION_KEY = web.RequestKey[Session | None]("dozor_session")


def context(request: web.Request) -> ViewerContext:
    return request.app[CTX]


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def current_session(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def wants_html(request: web.Request) -> bool:
    return not request.path.startswith(("/api/", "/ws")) and request.method == "GET"


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def require(
    request: web.Request,
    permission: Permission,
    *,
    site: str | None = None,
    camera: str | None = None,
) -> Session:
    """Return the session of a user holding permission (and allowed site/camera).

    Raises 401 (or a redirect to /login for pages) without a session, 403 otherwise.
    Refusals are written to the audit log.
    """
    session = current_session(request)
    if session is None:
        if wants_html(request):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(
            text='{"error": "not_logged_in", "message": "log in first"}',
            content_type="application/json",
        )
    user = session.user
    allowed = has_permission(user, permission)
    if allowed and site is not None:
        allowed = user.may_see_site(site)
    if allowed and site is not None and camera is not None:
        allowed = user.may_see_camera(site, camera)
    if not allowed:
        context(request).audit.record(
            Action.PERMISSION_DENIED, username=user.username, address=client_address(request),
            outcome="denied", site=site, camera=camera, permission=permission.value,
            path=request.path,
        )
        raise web.HTTPForbidden(
            text='{"error": "forbidden", "message": "your role may not do this"}',
            content_type="application/json",
        )
    return session


def text_field(
    data: Any, name: str, *, max_len: int, required: bool = True, default: str = ""
) -> str:
    """A string field from a form or JSON object, validated; raises RequestInvalid."""
    if not hasattr(data, "get"):
        raise RequestInvalid("body", "must be an object")
    value = data.get(name)
    if value is None:
        if required:
            raise RequestInvalid(name, "missing")
        return default
    if not isinstance(value, str):
        raise RequestInvalid(name, "must be text")
    if len(value) > max_len:
        raise RequestInvalid(name, f"longer than {max_len} characters")
    if any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise RequestInvalid(name, "contains control characters")
    return value


def int_param(value: str | None, name: str, *, minimum: int = 0, maximum: int = 2**62) -> int:
    if value is None:
        raise RequestInvalid(name, "missing")
    try:
        number = int(value)
    except ValueError as err:
        raise RequestInvalid(name, f"{value[:40]!r} is not a whole number") from err
    if not minimum <= number <= maximum:
        raise RequestInvalid(name, f"must be {minimum}..{maximum}")
    return number
