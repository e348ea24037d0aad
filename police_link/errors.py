"""Errors of the police link. Every paho, sqlite3, ssl and json error is converted here."""

from __future__ import annotations


class PoliceLinkError(Exception):
    """Base class of every error the police link raises."""


class ValidationError(PoliceLinkError):
    """A message, command or setting is malformed; `field` names the offending part."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class SettingsError(ValidationError):
    """BrokerSettings (or a file they name) is unusable."""


class OutboxError(PoliceLinkError):
    """The durable outbox cannot be opened or written (sqlite3 errors end up here)."""


class LinkError(PoliceLinkError):
    """The MQTT connection cannot be set up or used."""


class CommandError(PoliceLinkError):
    """A command failed. Raised by site handlers; the site sends `code` and `message` back.

    Codes are short snake_case words; those the link itself uses are listed in
    `police_link.commands.ErrorCode`. Handlers may use their own (e.g. "unknown_event").
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RequestFailed(CommandError):
    """Viewer side: the site answered a request with an error response."""

    def __init__(self, site: str, kind: str, code: str, message: str) -> None:
        super().__init__(code, message)
        self.site = site
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.site} {self.kind}: {self.code}: {self.message}"


class RequestTimeout(PoliceLinkError):
    """Viewer side: no response arrived in time (site offline, or the link is down)."""

    def __init__(self, site: str, kind: str, timeout_s: float) -> None:
        super().__init__(f"{site} {kind}: no response within {timeout_s:g} s")
        self.site = site
        self.kind = kind
        self.timeout_s = timeout_s
