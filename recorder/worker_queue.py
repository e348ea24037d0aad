"""Helpers for the recorder's worker threads that drain a `queue.Queue`."""

from __future__ import annotations

import queue
import time
from typing import Any


def wait_queue_idle(q: queue.Queue[Any], timeout_s: float) -> bool:
    """True once every item put on `q` has been marked done, False after `timeout_s`.

    `Queue.join()` has no timeout; tests and orderly shutdown need one.
    """
    deadline = time.monotonic() + timeout_s
    with q.all_tasks_done:
        while q.unfinished_tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            q.all_tasks_done.wait(left)
    return True
