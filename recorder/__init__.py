"""Dozor's site recorder: ingest, segments, index, retention, motion, health.

Run it as ``dozor-recorder --config site.toml`` (see docs/ingest.md and docs/storage.md).
"""

from recorder.config import (
    BrokerConfig,
    CameraConfig,
    ConfigError,
    HealthConfig,
    SiteConfig,
    StorageConfig,
    load_config,
)
from recorder.errors import RecorderError
from recorder.stream_types import PacketSink, StreamInfo

__all__ = [
    "BrokerConfig",
    "CameraConfig",
    "ConfigError",
    "HealthConfig",
    "PacketSink",
    "RecorderError",
    "SiteConfig",
    "StorageConfig",
    "StreamInfo",
    "load_config",
]
