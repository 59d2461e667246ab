"""The background tasks of one call: spawned, logged if they fail, cancelled together at its end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class CallTasks:
    __slots__ = ("call_control_id", "_tasks")

    def __init__(self) -> None:
        self.call_control_id: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: background task failed", self.call_control_id, exc_info=task.exception())

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._tasks))
