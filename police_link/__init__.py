"""The police link: the MQTT protocol shared by site recorders and the police-station viewer.

See docs/mqtt.md (topics and payloads) and docs/security.md (trust model).
"""

from .commands import COMMAND_SCHEMAS, ArgSpec, CommandHandler, CommandRequest, ErrorCode
from .errors import (
    CommandError,
    LinkError,
    OutboxError,
    PoliceLinkError,
    RequestFailed,
    RequestTimeout,
    SettingsError,
    ValidationError,
)
from .messages import (
    ALARM_KINDS,
    CAMERA_STATES,
    EVENT_TYPES,
    AckMessage,
    AlarmMessage,
    CameraStatusMessage,
    DropReport,
    EventMessage,
    LiveChunk,
    SeqGap,
    SiteStatus,
    Snapshot,
    StatsMessage,
    ViewerMessage,
)
from .settings import BrokerSettings
from .site_client import LinkStats, SiteLink
from .topics import Topics
from .viewer_client import ViewerLink

__all__ = [
    "ALARM_KINDS",
    "CAMERA_STATES",
    "COMMAND_SCHEMAS",
    "EVENT_TYPES",
    "AckMessage",
    "AlarmMessage",
    "ArgSpec",
    "BrokerSettings",
    "CameraStatusMessage",
    "CommandError",
    "CommandHandler",
    "CommandRequest",
    "DropReport",
    "ErrorCode",
    "EventMessage",
    "LinkError",
    "LinkStats",
    "LiveChunk",
    "OutboxError",
    "PoliceLinkError",
    "RequestFailed",
    "RequestTimeout",
    "SeqGap",
    "SettingsError",
    "SiteLink",
    "SiteStatus",
    "Snapshot",
    "StatsMessage",
    "Topics",
    "ValidationError",
    "ViewerLink",
    "ViewerMessage",
]
