"""Writes that report themselves: a listener told of a change inside the change's transaction.

The webhook outbox (``control_plane.webhooks.writer``) is the listener: its rows then commit or
roll back with the change. :class:`ChangeHooks` is one holder shared by the aggregates'
repositories, so a listener set after the store is opened reaches every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from .db import Conn
from .records import Call, Turn


class ChangeHook(Protocol):
    async def call_changed(self, conn: Conn, before: Call | None, after: Call) -> None: ...
    async def turn_recorded(self, conn: Conn, turn: Turn) -> None: ...
    async def erased(self, conn: Conn, org_id: UUID, call_ids: Sequence[UUID]) -> None: ...
    async def campaign_changed(self, conn: Conn, org_id: UUID, campaign_id: UUID, status: str, *,
                               completed: bool) -> None: ...


class ChangeHooks:
    __slots__ = ("listener",)

    def __init__(self) -> None:
        self.listener: ChangeHook | None = None
