"""What the dashboard's handlers share: the control plane, its settings and the session store."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from .auth import Viewer, current_viewer
from .sessions import DashboardSessionStore, MemoryDashboardSessions, RedisDashboardSessions

if TYPE_CHECKING:
    from ..services import ControlPlane
    from .settings import DashboardSettings


class Dashboard:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.settings: DashboardSettings = cp.settings.dashboard
        self._memory = MemoryDashboardSessions()
        self._redis: RedisDashboardSessions | None = None
        self._closing = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """The app is shutting down or draining: long-lived responses (live streams) end now."""
        return self._closing.is_set() or self.cp.draining

    async def pause(self, seconds: float) -> None:
        """Sleep between live-stream reads, woken early by :meth:`close`."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    async def close(self, _app: web.Application | None = None) -> None:
        """``on_shutdown``: before aiohttp waits for open connections, end the live streams."""
        self._closing.set()

    def sessions(self) -> DashboardSessionStore:
        """Redis when the control plane has it (shared by every instance), else in-process.
        Decided on use: Redis is connected when the app starts, after the routes are built."""
        redis = self.cp.redis
        if redis is None:
            return self._memory
        if self._redis is None:
            self._redis = RedisDashboardSessions(redis, self.cp.settings.redis_key_prefix)
        return self._redis

    async def viewer(self, session_id: str | None) -> Viewer | None:
        return await current_viewer(self.cp, self.sessions(), session_id)


DASHBOARD = web.AppKey("dashboard", Dashboard)
