"""Browsers connected over WebSocket, and fan-out filtered by each user's permissions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from viewer.accounts import User

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 5.0


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    user: User
    address: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=500)
    )


class Broadcaster:
    def __init__(self) -> None:
        self._clients: set[Client] = set()

    @property
    def count(self) -> int:
        return len(self._clients)

    def add(self, client: Client) -> None:
        self._clients.add(client)

    def remove(self, client: Client) -> None:
        self._clients.discard(client)

    def publish(self, render: Callable[[User], dict[str, Any] | None]) -> None:
        """Queue render(user) for every client it returns a message for; never blocks.

        render does the permission filtering, so each user sees only their sites and cameras.
        """
        for client in list(self._clients):
            message = render(client.user)
            if message is None:
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning(
                    "viewer: browser of %s at %s is not reading; disconnecting it",
                    client.user.username, client.address,
                )
                self._clients.discard(client)
                asyncio.get_running_loop().create_task(client.ws.close())

    async def close_all(self) -> None:
        for client in list(self._clients):
            await client.ws.close(code=1001, message=b"server shutdown")
        self._clients.clear()
