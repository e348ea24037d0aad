"""Log lines that always name the site and, where there is one, the camera and stream.

Modules log with ``extra={"site": ..., "camera": ...}`` or through `context_logger`; a filter
fills in the site (from `configure`) and ``-`` for a missing camera, so the format never fails.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

FORMAT = "%(asctime)s %(levelname)s site=%(site)s camera=%(camera)s %(name)s: %(message)s"


class _ContextFilter(logging.Filter):
    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "site"):
            record.site = self.site
        if not hasattr(record, "camera"):
            record.camera = "-"
        return True


def configure(site: str, level: str | int = "INFO") -> None:
    """Send the root logger's lines to stderr (the journal under systemd) with context."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ContextFilter(site))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())


class ContextLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds this site/camera to every line, keeping any extra the call passes."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def context_logger(logger: logging.Logger, site: str, camera: str = "-") -> ContextLogger:
    return ContextLogger(logger, {"site": site, "camera": camera})
