"""dozor-viewer: the police-station web application (accounts, alert desk, health board,
live view relay, audit log). See docs/viewer.md."""

from viewer.accounts import Accounts, Role, User
from viewer.app import build_context, create_app
from viewer.auth import ROLE_PERMISSIONS, Permission
from viewer.config import ViewerConfig, ensure_certificate, load_config, parse_config
from viewer.errors import ViewerError
from viewer.web import CTX, ViewerContext, client_address, context, require

__all__ = [
    "CTX",
    "ROLE_PERMISSIONS",
    "Accounts",
    "Permission",
    "Role",
    "User",
    "ViewerConfig",
    "ViewerContext",
    "ViewerError",
    "build_context",
    "client_address",
    "context",
    "create_app",
    "ensure_certificate",
    "load_config",
    "parse_config",
    "require",
]
