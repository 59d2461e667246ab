"""What the dashboard's handlers share: the control plane, its settings and the session store."""

from __future__ import annotations

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
