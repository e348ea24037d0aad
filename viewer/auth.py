"""Logins (throttled, with lock-out), sessions, CSRF tokens and the role/permission matrix."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from recorder.clock import Clock
from viewer.accounts import Accounts, Role, User, verify_dummy, verify_password
from viewer.config import SecurityConfig
from viewer.db import ViewerDB
from viewer.errors import AccountLocked, BadCredentials, LoginThrottled

log = logging.getLogger(__name__)

SESSION_COOKIE = "__Host-dozor_session"  # __Host-: Secure, Path=/, no Domain
PRELOGIN_COOKIE = "__Host-dozor_prelogin"  # double-submit token for the login form
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# A police station may put every officer behind one address: be more lenient there.
ADDRESS_FREE_FACTOR = 5
MAX_THROTTLE_KEYS = 10_000


class Permission(enum.StrEnum):
    WALL = "wall"  # the camera grid with status
    ALERTS = "alerts"  # read the alert feed and snapshots
    ACKNOWLEDGE = "acknowledge"
    LIVE = "live"
    HEALTH = "health"
    USERS = "users"
    AUDIT = "audit"
    ACCOUNT = "account"  # one's own password and language


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.DUTY_OFFICER: frozenset(
        {Permission.WALL, Permission.ALERTS, Permission.ACKNOWLEDGE, Permission.LIVE,
         Permission.HEALTH, Permission.ACCOUNT}
    ),
    Role.REVIEWER: frozenset({Permission.WALL, Permission.ALERTS, Permission.ACCOUNT}),
    Role.TECHNICIAN: frozenset(
        {Permission.WALL, Permission.HEALTH, Permission.LIVE, Permission.ACCOUNT}
    ),
    Role.ADMINISTRATOR: frozenset(Permission),
}


def has_permission(user: User, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[user.role]


class Throttle:
    """Growing delay per key after a number of free failures; forgets quiet keys.

    Attempts inside the delay window are refused without checking the password, so a
    guesser gains nothing by hammering.
    """

    def __init__(
        self, clock: Clock, *, free_failures: int, base_delay_s: float, max_delay_s: float
    ) -> None:
        self._clock = clock
        self._free = free_failures
        self._base_s = base_delay_s
        self._max_s = max_delay_s
        self._failures: dict[str, tuple[int, float]] = {}

    def delay_s(self, failures: int) -> float:
        if failures < self._free or failures == 0:
            return 0.0
        return min(self._base_s * 2 ** (failures - self._free), self._max_s)

    def retry_after_s(self, key: str) -> float:
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        failures, last = entry
        now = self._clock.monotonic()
        if now - last > 2 * self._max_s:
            del self._failures[key]
            return 0.0
        return max(0.0, last + self.delay_s(failures) - now)

    def fail(self, key: str) -> None:
        if len(self._failures) > MAX_THROTTLE_KEYS:
            self._forget_quiet()
        failures, _ = self._failures.get(key, (0, 0.0))
        self._failures[key] = (failures + 1, self._clock.monotonic())

    def _forget_quiet(self) -> None:
        """Bound memory under a flood of made-up user names."""
        horizon = self._clock.monotonic() - 2 * self._max_s
        for key, (_, last) in list(self._failures.items()):
            if last < horizon:
                del self._failures[key]

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class Authenticator:
    def __init__(self, accounts: Accounts, clock: Clock, security: SecurityConfig) -> None:
        self._accounts = accounts
        self._security = security
        self._users = Throttle(
            clock, free_failures=security.throttle_free_failures,
            base_delay_s=security.throttle_base_delay_s,
            max_delay_s=security.throttle_max_delay_s,
        )
        self._addresses = Throttle(
            clock, free_failures=security.throttle_free_failures * ADDRESS_FREE_FACTOR,
            base_delay_s=security.throttle_base_delay_s,
            max_delay_s=security.throttle_max_delay_s,
        )

    async def login(self, username: str, password: str, address: str) -> User:
        """Return the user, or raise LoginThrottled, AccountLocked or BadCredentials."""
        user_key, addr_key = f"user:{username.lower()}", f"addr:{address}"
        wait_s = max(self._users.retry_after_s(user_key), self._addresses.retry_after_s(addr_key))
        if wait_s > 0:
            raise LoginThrottled(f"too many failed logins; retry in {wait_s:.0f} s", wait_s)
        user = self._accounts.by_name(username)
        loop = asyncio.get_running_loop()
        if user is None:
            await loop.run_in_executor(None, verify_dummy, password)
            self._users.fail(user_key)
            self._addresses.fail(addr_key)
            raise BadCredentials("unknown user or wrong password")
        if user.locked:
            raise AccountLocked(f"account {username} is locked; an administrator must reset it")
        encoded = self._accounts.password_hash(user)  # the database stays on this thread
        ok = await loop.run_in_executor(None, verify_password, password, encoded)
        if not ok or user.disabled:
            self._users.fail(user_key)
            self._addresses.fail(addr_key)
            if not ok:
                user = self._accounts.record_failure(user, self._security.max_failed_logins)
                if user.locked:
                    raise AccountLocked(
                        f"account {username} is locked; an administrator must reset it"
                    )
            raise BadCredentials("unknown user or wrong password")
        self._users.reset(user_key)
        self._accounts.record_success(user)
        return user


@dataclass(frozen=True)
class Session:
    token_hash: str
    user: User
    csrf_token: str
    created_at: float


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Sessions live in the database, keyed by a hash of the cookie's token."""

    def __init__(self, db: ViewerDB, accounts: Accounts, clock: Clock,
                 security: SecurityConfig) -> None:
        self._db = db
        self._accounts = accounts
        self._clock = clock
        self._idle_s = security.session_idle_s
        self._max_s = security.session_max_s

    def create(self, user: User, address: str) -> tuple[str, Session]:
        """Return (cookie token, session). The token itself is never stored."""
        token = secrets.token_urlsafe(32)
        now = self._clock.wall()
        session = Session(_hash_token(token), user, secrets.token_urlsafe(32), now)
        self._db.insert_session(
            {"token_hash": session.token_hash, "user_id": user.id,
             "csrf_token": session.csrf_token, "address": address, "created_at": now,
             "last_seen_at": now}
        )
        return token, session

    def lookup(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        token_hash = _hash_token(token)
        row = self._db.session(token_hash)
        if row is None:
            return None
        now = self._clock.wall()
        if now - row["last_seen_at"] > self._idle_s or now - row["created_at"] > self._max_s:
            self._db.delete_session(token_hash)
            return None
        user = self._accounts.get(row["user_id"])
        if user.disabled or user.locked:
            self._db.delete_session(token_hash)
            return None
        if now - row["last_seen_at"] > 30:  # spare the disk a write per request
            self._db.touch_session(token_hash, now)
        return Session(token_hash, user, row["csrf_token"], row["created_at"])

    def refresh(self, session: Session) -> bool:
        """For long-lived connections: is the session still valid? Counts as activity."""
        row = self._db.session(session.token_hash)
        if row is None:
            return False
        now = self._clock.wall()
        user = self._accounts.get(row["user_id"])
        if (now - row["last_seen_at"] > self._idle_s or now - row["created_at"] > self._max_s
                or user.disabled or user.locked):
            self._db.delete_session(session.token_hash)
            return False
        self._db.touch_session(session.token_hash, now)
        return True

    def end(self, session: Session) -> None:
        self._db.delete_session(session.token_hash)

    def purge(self) -> None:
        now = self._clock.wall()
        self._db.purge_sessions(now - self._idle_s, now - self._max_s)


def tokens_match(expected: object, given: object) -> bool:
    """Constant-time comparison; anything but two non-empty strings is a mismatch."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
