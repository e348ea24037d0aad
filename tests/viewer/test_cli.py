"""`dozor-viewer --config` as a real process: first start prints the admin password once,
serves HTTPS with a generated certificate, stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.fixtures.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]


def _start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "viewer.cli", "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_port(port: int, proc: subprocess.Popen[str], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"viewer did not listen on {port}")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out


async def test_first_start_prints_admin_password_once(tmp_path):
    port = free_port()
    config = tmp_path / "viewer.toml"
    config.write_text(f'[http]\nlisten = "127.0.0.1"\nport = {port}\n'
                      f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    proc = _start(config)
    _wait_port(port, proc)
    url = f"https://127.0.0.1:{port}"
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(ssl=False)
    ) as http:
        async with http.get(url + "/login") as resp:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        out = _stop(proc)
        found = re.search(r"password: (\S+)", out)
        assert found, out
        proc = _start(config)
        _wait_port(port, proc)
        async with http.get(url + "/login") as resp:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        async with http.post(url + "/login", allow_redirects=False, data={
            "username": "admin", "password": found.group(1), "csrf_token": token.group(1),
        }) as resp:
            assert resp.status == 303
    second = _stop(proc)
    assert "password" not in second
    assert (tmp_path / "state" / "tls" / "cert.pem").exists()


async def test_served_viewer_receives_alerts_from_the_broker(tmp_path, mosquitto):
    """The production wiring: config [broker] -> ViewerLink -> feed -> desk."""
    import asyncio

    from police_link.messages import EventMessage
    from police_link.site_client import SiteLink

    port = free_port()
    creds = mosquitto.credentials["viewer"]
    config = tmp_path / "viewer.toml"
    config.write_text(
        f'[http]\nlisten = "127.0.0.1"\nport = {port}\n'
        f'[storage]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nca_file = "{mosquitto.ca_file}"\n'
        f'username = "{creds.username}"\npassword = "{creds.password}"\n'
    )
    proc = _start(config)
    site = SiteLink("site-a", mosquitto.settings("site-a"), str(tmp_path / "outbox.db"),
                    cameras=["gate"])
    site.start()
    try:
        _wait_port(port, proc)
        assert site.wait_connected(10)
        site.publish_event(EventMessage(site="site-a", camera="gate", event_id="e1",
                                        type="new", start_unix_s=time.time()))
        out = ""
        url = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=False),
        ) as http:
            await asyncio.sleep(0.5)
            out = _stop(proc)
            password = re.search(r"password: (\S+)", out).group(1)
            proc = _start(config)
            _wait_port(port, proc)
            async with http.get(url + "/login") as resp:
                token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
            async with http.post(url + "/login", allow_redirects=False, data={
                "username": "admin", "password": password, "csrf_token": token.group(1),
            }) as resp:
                assert resp.status == 303
            async with http.get(url + "/api/state") as resp:
                state = await resp.json()
        assert [(a["site"], a["event_id"]) for a in state["alerts"]] == [("site-a", "e1")]
        assert state["sites"][0]["site"] == "site-a" and state["sites"][0]["online"]
    finally:
        site.stop()
        if proc.poll() is None:
            _stop(proc)
