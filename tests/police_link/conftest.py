"""Shared helpers of the police link tests: a site link and a viewer on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from police_link import SiteLink, ViewerLink
from tests.fixtures.mosquitto import MosquittoBroker

T = TypeVar("T")


@pytest.fixture
def make_site(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[Callable[..., SiteLink]]:
    links: list[SiteLink] = []

    def make(site: str = "site-a", *, user: str | None = None, start: bool = True,
             cameras: tuple[str, ...] = ("cam1", "cam2"), **kwargs: Any) -> SiteLink:
        link = SiteLink(site, mosquitto.settings(user or site), str(tmp_path / f"{site}.db"),
                        cameras=cameras, **kwargs)
        links.append(link)
        if start:
            link.start()
            assert link.wait_connected(10), mosquitto.log_text()
        return link

    yield make
    for link in links:
        link.stop()


@pytest.fixture
async def viewer(mosquitto: MosquittoBroker) -> AsyncIterator[ViewerLink]:
    link = ViewerLink(mosquitto.settings("viewer", client_id="test-viewer"))
    await link.start()
    assert await link.wait_connected(10), mosquitto.log_text()
    yield link
    await link.stop()


async def next_of(link: ViewerLink, kind: type[T], timeout_s: float = 5.0) -> T:
    """The next delivered message of type `kind`, skipping others."""
    async def find() -> T:
        while True:
            message = await link.receive()
            if isinstance(message, kind):
                return message

    return await asyncio.wait_for(find(), timeout_s)
