"""Phone numbers an organisation answers inbound calls on, each with the agent that answers."""

from __future__ import annotations

import abc
from typing import Any
from uuid import UUID, uuid4

from .db import Conflict, Database, json_column
from .records import PhoneNumber, utcnow


class PhoneNumberRepository(abc.ABC):
    @abc.abstractmethod
    async def add_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber: ...
    @abc.abstractmethod
    async def find_phone_number(self, number: str) -> PhoneNumber | None:
        """Every organisation's (an inbound webhook names the dialled number, not the organisation)."""
    @abc.abstractmethod
    async def list_phone_numbers(self, org_id: UUID) -> list[PhoneNumber]: ...
    @abc.abstractmethod
    async def remove_phone_number(self, org_id: UUID, number: str) -> bool: ...
    @abc.abstractmethod
    async def update_phone_number(self, org_id: UUID, number: str,
                                  agent_config: dict[str, Any]) -> PhoneNumber | None:
        """Replace the agent config of one of the organisation's numbers; None if it has no such number."""


def _number(row: dict[str, Any]) -> PhoneNumber:
    return PhoneNumber(id=row["id"], org_id=row["org_id"], number=row["number"],
                       agent_config=json_column(row["agent_config"]), created_at=row["created_at"])


class SqlPhoneNumberRepository(PhoneNumberRepository):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber:
        record = PhoneNumber(id=uuid4(), org_id=org_id, number=number, agent_config=agent_config, created_at=utcnow())
        try:
            await self.db.execute(
                "INSERT INTO phone_numbers (id, org_id, number, agent_config, created_at) VALUES ($1, $2, $3, $4, $5)",
                record.id, org_id, number, agent_config, record.created_at,
            )
        except Exception as exc:
            if self.db.is_unique_violation(exc):
                raise Conflict("that number is already registered") from None
            raise
        return record

    async def find_phone_number(self, number: str) -> PhoneNumber | None:
        row = await self.db.fetchrow("SELECT * FROM phone_numbers WHERE number = $1", number)
        return None if row is None else _number(row)

    async def list_phone_numbers(self, org_id: UUID) -> list[PhoneNumber]:
        rows = await self.db.fetch("SELECT * FROM phone_numbers WHERE org_id = $1 ORDER BY created_at", org_id)
        return [_number(r) for r in rows]

    async def remove_phone_number(self, org_id: UUID, number: str) -> bool:
        n = await self.db.execute("DELETE FROM phone_numbers WHERE org_id = $1 AND number = $2", org_id, number)
        return n > 0

    async def update_phone_number(self, org_id: UUID, number: str,
                                  agent_config: dict[str, Any]) -> PhoneNumber | None:
        n = await self.db.execute("UPDATE phone_numbers SET agent_config = $3 WHERE org_id = $1 AND number = $2",
                                  org_id, number, agent_config)
        if not n:
            return None
        row = await self.db.fetchrow("SELECT * FROM phone_numbers WHERE org_id = $1 AND number = $2", org_id, number)
        return None if row is None else _number(row)
