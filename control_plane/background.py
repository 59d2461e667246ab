"""The control plane's background loops: one named task each, alive through failing rounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class SingleTask:
    """One named task: :meth:`start` makes it unless it is running, :meth:`stop` cancels it and
    waits for it to end."""

    __slots__ = ("_name", "_factory", "_task")

    def __init__(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._factory = factory
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._factory(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


async def run_rounds(round_: Callable[[], Awaitable[Any]], pause: Callable[[], Awaitable[Any]], *,
                     what: str, interval_s: float, log: logging.Logger) -> None:
    """``round_`` then ``pause``, for ever; a failing round is logged and tried again after the pause."""
    while True:
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.1f s", what, interval_s)
        await pause()
