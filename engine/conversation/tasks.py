"""The background tasks of one call: spawned, logged if they fail, cancelled together at its end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class CallTasks:
    __slots__ = ("call_control_id", "_tasks", "_closing")

    def __init__(self) -> None:
        self.call_control_id: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[Any]] = set()

    def close_later(self, coro: Awaitable[Any]) -> None:
        """Close something the call is done with (a provider socket): run to its end, never
        cancelled with the rest, and awaited by :meth:`cancel_all`. (A close cancelled before it
        ran left its socket for the garbage collector: "Unclosed connection".)"""
        task = asyncio.ensure_future(coro)
        self._closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[Any]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("call %s: closing failed: %s", self.call_control_id, task.exception())

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
        if self._closing:  # (each bounded by its provider's close timeout)
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._tasks))
