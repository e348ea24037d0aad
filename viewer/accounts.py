"""User accounts: scrypt password hashes, roles, and the sites and cameras each user may see."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass

from viewer.db import Row, ViewerDB
from viewer.errors import AccountError

log = logging.getLogger(__name__)

# scrypt cost: about 32 MiB and 50-100 ms on the station's PC; stored with each hash so it
# can be raised later without invalidating old hashes.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 128 * 1024 * 1024
MIN_PASSWORD_LEN = 10  # NIST SP 800-63B asks for at least 8
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
SCOPE_RE = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")


class Role(enum.StrEnum):
    DUTY_OFFICER = "duty_officer"
    REVIEWER = "reviewer"
    TECHNICIAN = "technician"
    ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    sites: tuple[str, ...]  # site names, or ("*",)
    cameras: tuple[str, ...]  # "site/camera", "site/*" or "*"
    language: str | None
    disabled: bool
    locked: bool
    failed_logins: int

    def may_see_site(self, site: str) -> bool:
        return "*" in self.sites or site in self.sites

    def may_see_camera(self, site: str, camera: str) -> bool:
        if not self.may_see_site(site):
            return False
        return "*" in self.cameras or f"{site}/*" in self.cameras or (
            f"{site}/{camera}" in self.cameras
        )


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_SCRYPT_MAXMEM,
        dklen=32,
    )
    b64 = base64.b64encode
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
            maxmem=_SCRYPT_MAXMEM, dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


# Verified when the user does not exist, so both paths cost the same time.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def verify_dummy(password: str) -> None:
    verify_password(password, _DUMMY_HASH)


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise AccountError(f"password: must be at least {MIN_PASSWORD_LEN} characters")
    if len(password) > 256:
        raise AccountError("password: must be at most 256 characters")


def parse_scope(values: list[str] | tuple[str, ...] | str, what: str) -> tuple[str, ...]:
    """Validate a list of sites ("*" or names) or cameras ("*", "site/*", "site/camera")."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    out = []
    for value in values:
        parts = value.split("/") if what == "cameras" and value != "*" else [value]
        if what == "cameras" and value != "*" and len(parts) != 2:
            raise AccountError(f"cameras: {value!r} must be '*', 'site/*' or 'site/camera'")
        for part in parts:
            if not SCOPE_RE.match(part):
                raise AccountError(f"{what}: {value!r} is not a valid name")
        out.append(value)
    return tuple(out)


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        sites=tuple(json.loads(row["sites"] or "[]")),
        cameras=tuple(json.loads(row["cameras"] or "[]")),
        language=row["language"],
        disabled=bool(row["disabled"]),
        locked=bool(row["locked"]),
        failed_logins=int(row["failed_logins"] or 0),
    )


class Accounts:
    def __init__(self, db: ViewerDB, *, hash_n: int = SCRYPT_N) -> None:
        self._db = db
        self._hash_n = hash_n

    def add(
        self,
        username: str,
        password: str,
        role: Role | str,
        *,
        sites: tuple[str, ...] | list[str] = ("*",),
        cameras: tuple[str, ...] | list[str] = ("*",),
        now: float,
    ) -> User:
        if not USERNAME_RE.match(username):
            raise AccountError(
                f"username: {username!r} must be 2-32 of a-z 0-9 . _ - starting with a letter "
                "or digit"
            )
        try:
            role = Role(role)
        except ValueError as err:
            raise AccountError(
                f"role: {role!r} is not one of {', '.join(r.value for r in Role)}"
            ) from err
        check_password_policy(password)
        if self._db.user_by_name(username) is not None:
            raise AccountError(f"username: {username!r} already exists")
        user_id = self._db.insert_user(
            {
                "username": username,
                "password_hash": hash_password(password, n=self._hash_n),
                "role": role.value,
                "sites": json.dumps(list(parse_scope(list(sites), "sites"))),
                "cameras": json.dumps(list(parse_scope(list(cameras), "cameras"))),
                "language": None,
                "disabled": 0,
                "failed_logins": 0,
                "locked": 0,
                "created_at": now,
                "password_changed_at": now,
            }
        )
        return self.get(user_id)

    def get(self, user_id: int) -> User:
        row = self._db.user_by_id(user_id)
        if row is None:
            raise AccountError(f"user id {user_id} does not exist")
        return _user(row)

    def by_name(self, username: str) -> User | None:
        row = self._db.user_by_name(username)
        return _user(row) if row else None

    def require(self, username: str) -> User:
        user = self.by_name(username)
        if user is None:
            raise AccountError(f"username: {username!r} does not exist")
        return user

    def list(self) -> list[User]:
        return [_user(r) for r in self._db.list_users()]

    def password_hash(self, user: User) -> str:
        row = self._db.user_by_id(user.id)
        return row["password_hash"] if row else ""

    def set_password(self, username: str, password: str, *, now: float) -> User:
        """Set a new password; also unlocks the account and ends its sessions."""
        user = self.require(username)
        check_password_policy(password)
        self._db.update_user(
            user.id,
            {"password_hash": hash_password(password, n=self._hash_n),
             "password_changed_at": now, "failed_logins": 0, "locked": 0},
        )
        self._db.delete_user_sessions(user.id)
        return self.get(user.id)

    def set_disabled(self, username: str, disabled: bool) -> User:
        user = self.require(username)
        self._db.update_user(user.id, {"disabled": int(disabled)})
        if disabled:
            self._db.delete_user_sessions(user.id)
        return self.get(user.id)

    def unlock(self, username: str) -> User:
        user = self.require(username)
        self._db.update_user(user.id, {"failed_logins": 0, "locked": 0})
        return self.get(user.id)

    def set_language(self, user_id: int, language: str) -> None:
        self._db.update_user(user_id, {"language": language})

    def record_failure(self, user: User, max_failed: int) -> User:
        count = self._db.add_failed_login(user.id)
        if count >= max_failed and not user.locked:
            self._db.update_user(user.id, {"locked": 1})
            log.warning("viewer: account %s locked after %d failed logins", user.username, count)
        return self.get(user.id)

    def record_success(self, user: User) -> None:
        if user.failed_logins:
            self._db.update_user(user.id, {"failed_logins": 0})

    def ensure_admin(self, *, now: float, username: str = "admin") -> str | None:
        """On first start (no users), create an administrator; return its password once."""
        if self._db.count_users() > 0:
            return None
        password = generate_password()
        self.add(username, password, Role.ADMINISTRATOR, now=now)
        return password
