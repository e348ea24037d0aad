"""A site process killed with SIGKILL: its outbox survives, its will marks it offline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from police_link import EventMessage, SiteStatus, ViewerLink
from tests.fixtures.mosquitto import REPO, MosquittoBroker
from tests.police_link.conftest import next_of


def spawn_site(broker: MosquittoBroker, outbox: Path, alerts: int) -> subprocess.Popen[str]:
    settings = dataclasses.asdict(broker.settings("site-a"))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.police_link.site_script", "--site", "site-a",
         "--settings", json.dumps(settings), "--outbox", str(outbox), "--alerts", str(alerts)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def read_line(proc: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout_s)).strip()


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def test_sigkilled_site_with_100_alerts_in_outbox_delivers_all_after_restart(
    mosquitto: MosquittoBroker, viewer: ViewerLink, tmp_path: Path
) -> None:
    outbox = tmp_path / "site-a.db"
    mosquitto.stop()  # the viewer's persistent session survives in the broker's persistence
    proc = spawn_site(mosquitto, outbox, alerts=100)
    try:
        assert await read_line(proc) == "stored 100"
    finally:
        kill9(proc)
    mosquitto.start()
    assert await viewer.wait_connected(10)
    proc = spawn_site(mosquitto, outbox, alerts=0)
    try:
        seqs: list[int] = []
        while len(seqs) < 100:
            seqs.append((await next_of(viewer, EventMessage, timeout_s=10)).seq)
        assert seqs == list(range(1, 101))
    finally:
        kill9(proc)


async def test_will_marks_site_offline_when_its_process_is_killed(
    mosquitto: MosquittoBroker, viewer: ViewerLink, tmp_path: Path
) -> None:
    proc = spawn_site(mosquitto, tmp_path / "site-a.db", alerts=0)
    try:
        assert await read_line(proc) == "stored 0"
        assert await read_line(proc) == "connected"
        assert await next_of(viewer, SiteStatus) == SiteStatus("site-a", True)
    finally:
        kill9(proc)
    assert await next_of(viewer, SiteStatus, timeout_s=5) == SiteStatus("site-a", False)
