"""Viewer fixtures: a real HTTPS server on a random loopback port with its own SQLite file,
a clock tests can move forward, and an HTTP client that logs in like a browser."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from viewer.accounts import Role
from viewer.app import build_context, create_app
from viewer.config import SecurityConfig, ViewerConfig, ensure_certificate
from viewer.web import ViewerContext

TEST_PASSWORD = "correct horse battery"
FAST_HASH_N = 2**10  # scrypt cost for test accounts; production uses 2**15
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class ShiftClock:
    """The real clock plus an offset that tests can advance."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def wall(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed pair made once per test session (what the viewer does on first start)."""
    state = tmp_path_factory.mktemp("viewer-tls")
    ensure_certificate(ViewerConfig(state_dir=state))
    return state


@dataclasses.dataclass
class RunningViewer:
    ctx: ViewerContext
    url: str
    clock: ShiftClock
    runner: web.AppRunner

    def add_user(self, username: str, role: Role | str, **scope: Any) -> None:
        self.ctx.accounts.add(username, TEST_PASSWORD, role, now=self.clock.wall(), **scope)


def make_config(tmp_path: Path, tls_dir: Path, **overrides: Any) -> ViewerConfig:
    security = SecurityConfig(
        max_failed_logins=overrides.pop("max_failed_logins", 20),
        throttle_free_failures=overrides.pop("throttle_free_failures", 3),
        throttle_base_delay_s=1.0,
        throttle_max_delay_s=60.0,
    )
    return ViewerConfig(
        listen="127.0.0.1", port=0, state_dir=tls_dir, database_path=tmp_path / "viewer.db",
        security=security, **overrides,
    )


@pytest.fixture
async def start_viewer(
    tmp_path: Path, tls_dir: Path
) -> AsyncIterator[Callable[..., Any]]:
    """start_viewer(link=None, **config overrides) -> RunningViewer on https://127.0.0.1:port."""
    import ssl

    running: list[RunningViewer] = []

    async def start(link: Any | None = None, **overrides: Any) -> RunningViewer:
        config = make_config(tmp_path, tls_dir, **overrides)
        clock = ShiftClock()
        ctx = build_context(config, clock=clock, link=link, hash_n=FAST_HASH_N)
        app = create_app(ctx)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        tls = ensure_certificate(config)
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(str(tls.cert_path), str(tls.key_path))
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
        await site.start()
        port = runner.addresses[0][1]
        viewer = RunningViewer(ctx, f"https://127.0.0.1:{port}", clock, runner)
        running.append(viewer)
        return viewer

    yield start
    for viewer in running:
        await viewer.runner.cleanup()
        viewer.ctx.db.close()


class Browser:
    """An aiohttp client that behaves like a browser: cookies, CSRF token, no TLS check."""

    def __init__(self, viewer: RunningViewer) -> None:
        self.viewer = viewer
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=False),
        )
        self.csrf: str | None = None

    async def close(self) -> None:
        await self.http.close()

    def url(self, path: str) -> str:
        return self.viewer.url + path

    async def login(
        self, username: str, password: str = TEST_PASSWORD
    ) -> aiohttp.ClientResponse:
        async with self.http.get(self.url("/login")) as resp:
            token = CSRF_RE.search(await resp.text())
        assert token is not None
        resp = await self.http.post(
            self.url("/login"),
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
        )
        await resp.read()
        if resp.status == 303:
            async with self.http.get(self.url("/"), allow_redirects=True) as page:
                found = re.search(r'name="csrf-token" content="([^"]+)"', await page.text())
                self.csrf = found.group(1) if found else None
        return resp

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        kw.setdefault("allow_redirects", False)
        resp = await self.http.get(self.url(path), **kw)
        await resp.read()
        return resp

    async def post(self, path: str, *, csrf: bool = True, **kw: Any) -> aiohttp.ClientResponse:
        kw.setdefault("allow_redirects", False)
        headers = dict(kw.pop("headers", {}))
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        resp = await self.http.post(self.url(path), headers=headers, **kw)
        await resp.read()
        return resp


async def log_in(page: Any, base_url: str, username: str = "officer",
                 password: str = TEST_PASSWORD) -> None:
    """Through the real login form in a Playwright page; returns on the start page."""
    await page.goto(base_url + "/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(base_url + "/")


@pytest.fixture
async def browser_factory() -> AsyncIterator[Callable[[RunningViewer], Browser]]:
    made: list[Browser] = []

    def make(viewer: RunningViewer) -> Browser:
        b = Browser(viewer)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close()
