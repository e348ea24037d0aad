"""Errors raised by the viewer. Third-party errors are converted at the boundary."""

from __future__ import annotations


class ViewerError(Exception):
    """Base class of every viewer error."""


class ConfigError(ViewerError):
    """viewer.toml is missing, malformed or holds a bad value; the message names the key."""


class CertificateError(ViewerError):
    """The TLS certificate could not be read or generated."""


class DatabaseError(ViewerError):
    """The viewer's SQLite database could not be opened or written."""


class AccountError(ViewerError):
    """A user account operation failed (unknown user, duplicate name, bad role...)."""


class AuthError(ViewerError):
    """A login attempt was refused."""


class BadCredentials(AuthError):
    """Unknown user, wrong password or disabled account (deliberately indistinguishable)."""


class LoginThrottled(AuthError):
    """Too many recent failures: try again after retry_after_s."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AccountLocked(AuthError):
    """The account reached the failure limit; an administrator must reset it."""


class RequestInvalid(ViewerError):
    """An HTTP request carried a bad field; becomes a 400 naming the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class AcknowledgeError(ViewerError):
    """An alert could not be acknowledged (unknown alert, site unreachable...)."""
