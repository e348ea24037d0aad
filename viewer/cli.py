"""dozor-viewer: serve the police-station web application, or manage its users."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import ssl
import sys
import time
from pathlib import Path

from aiohttp import web

from police_link.viewer_client import ViewerLink
from recorder.clock import SystemClock
from viewer.accounts import Accounts, Role, parse_scope
from viewer.app import build_context, create_app
from viewer.audit import Action, AuditLog
from viewer.config import ViewerConfig, ensure_certificate, load_config
from viewer.db import ViewerDB
from viewer.errors import ViewerError

log = logging.getLogger("viewer")
DEFAULT_CONFIG = Path("/etc/dozor/viewer.toml")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dozor-viewer", description=__doc__)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help=f"viewer.toml (default {DEFAULT_CONFIG})")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve HTTPS (the default)")
    user = sub.add_parser("user", help="manage user accounts")
    us = user.add_subparsers(dest="user_command", required=True)
    add = us.add_parser("add", help="add a user (password read from the terminal or stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--sites", default="*", help="comma-separated site names, or '*'")
    add.add_argument("--cameras", default="*", help="comma-separated site/camera, site/*, or *")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")
    pw = us.add_parser("passwd", help="set a new password (also unlocks the account)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    for name, text in (("disable", "disable an account and end its sessions"),
                       ("enable", "enable a disabled account"),
                       ("unlock", "unlock an account locked by failed logins")):
        us.add_parser(name, help=text).add_argument("username")
    us.add_parser("list", help="list the accounts")
    return p


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise ViewerError("password: the two entries differ")
    return first


def _user_command(args: argparse.Namespace, config: ViewerConfig) -> int:
    db = ViewerDB(config.database_path)
    try:
        accounts = Accounts(db)
        audit = AuditLog(db, SystemClock())
        who = f"cli:{getpass.getuser()}"
        now = time.time()
        cmd = args.user_command
        if cmd == "list":
            for u in accounts.list():
                state = "disabled" if u.disabled else "locked" if u.locked else "active"
                print(f"{u.username:20} {u.role.value:14} {state:9} sites={','.join(u.sites)} "
                      f"cameras={','.join(u.cameras)}")
            return 0
        if cmd == "add":
            password = _read_password(args.password_stdin)
            accounts.add(args.username, password, args.role,
                         sites=parse_scope(args.sites, "sites"),
                         cameras=parse_scope(args.cameras, "cameras"), now=now)
            detail = {"role": args.role, "sites": args.sites, "cameras": args.cameras}
        elif cmd == "passwd":
            accounts.set_password(args.username, _read_password(args.password_stdin), now=now)
            detail = {}
        elif cmd in ("disable", "enable"):
            accounts.set_disabled(args.username, cmd == "disable")
            detail = {}
        else:
            accounts.unlock(args.username)
            detail = {}
        audit.record(Action.CONFIG_CHANGE, username=who, address="local",
                     change=f"user_{cmd}", target=args.username, **detail)
        print(f"user {args.username}: {cmd} done")
        return 0
    finally:
        db.close()


def _open_link(config: ViewerConfig) -> ViewerLink | None:
    """The police_link.ViewerLink feeding the desk and the health board, or None."""
    if config.broker is None:
        log.warning("viewer: no [broker] configured; alerts and health will not arrive")
        return None
    return ViewerLink(config.broker)


async def serve(config: ViewerConfig) -> None:
    tls = ensure_certificate(config)
    ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
    ssl_context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
    ctx = build_context(config)
    password = ctx.accounts.ensure_admin(now=ctx.clock.wall())
    if password is not None:
        # Printed once, to the terminal or journal of the first start; never stored in clear.
        print(f"dozor-viewer: created user 'admin' (administrator) with password: {password}",
              flush=True)
        print("dozor-viewer: change it with `dozor-viewer user passwd admin`", flush=True)
    link = _open_link(config)
    if link is not None:
        ctx.attach_link(link)
    app = create_app(ctx)
    if link is not None:
        await link.start()  # before the app starts, whose feed task reads from it
    runner = web.AppRunner(app, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.listen, config.port, ssl_context=ssl_context)
        await site.start()
        log.info("viewer: serving https://%s:%d/", config.listen, config.port)
        await stop.wait()
    finally:
        await runner.cleanup()
        if link is not None:
            with contextlib.suppress(Exception):
                await link.stop()
        ctx.db.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        if args.command == "user":
            return _user_command(args, config)
        asyncio.run(serve(config))
        return 0
    except ViewerError as err:
        print(f"dozor-viewer: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
