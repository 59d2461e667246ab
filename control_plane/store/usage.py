"""What each call used of its providers (``call_usage``), and the figures usage reports are built from.

A call's row is added to, never replaced: each agent that ran on the call (a stream picked up
again after it was lost runs a second one) adds what it used. Totals are read joined to the
calls they belong to, for one organisation only.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from .db import Database, time_column


@dataclass(frozen=True, slots=True)
class UsageFigures:
    """A call's usage, as counted by its agent(s)."""

    llm_requests: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    stt_seconds: float = 0.0
    tts_characters: int = 0
    tts_seconds: float = 0.0

    @classmethod
    def parse(cls, value: Any) -> UsageFigures:
        """From an agent's report: unknown keys dropped, anything not a finite non-negative number is 0."""
        if not isinstance(value, dict):
            return cls()
        out: dict[str, Any] = {}
        for f in fields(cls):
            raw = value.get(f.name)
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 <= raw < 10**12:
                out[f.name] = int(raw) if f.type == "int" else float(raw)
            else:
                out[f.name] = f.default
        return cls(**out)

    @property
    def llm_tokens(self) -> int:
        return self.llm_prompt_tokens + self.llm_completion_tokens

    def at_least(self, other: UsageFigures) -> UsageFigures:
        """Each figure the larger of the two (an agent's running totals only grow)."""
        return UsageFigures(**{f.name: max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    def minus(self, other: UsageFigures) -> UsageFigures:
        """What these figures add to ``other`` (none below 0)."""
        return UsageFigures(**{f.name: max(getattr(self, f.name) - getattr(other, f.name), 0) for f in fields(self)})

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class CallUsageRow:
    """One call of a usage report: its usage, and what its call row says of minutes and Telnyx's cost."""

    call_id: UUID
    campaign_id: UUID | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    cost_amount: Decimal | None
    cost_currency: str | None
    usage: UsageFigures


_COLUMNS = tuple(f.name for f in fields(UsageFigures))


class UsageRepository(abc.ABC):
    @abc.abstractmethod
    async def add_usage(self, call_id: UUID, org_id: UUID, usage: UsageFigures, now: datetime) -> UsageFigures:
        """Add one agent's usage to the call's; the call's totals after it."""
    @abc.abstractmethod
    async def get_usage(self, org_id: UUID, call_id: UUID) -> UsageFigures | None: ...
    @abc.abstractmethod
    def usage_rows(self, org_id: UUID, *, since: datetime | None, until: datetime | None,
                   campaign_id: UUID | None = None) -> AsyncIterator[CallUsageRow]:
        """The organisation's calls created in [since, until), with their usage (zero where none was
        recorded), in pages."""


class SqlUsageRepository(UsageRepository):
    PAGE = 1000

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_usage(self, call_id: UUID, org_id: UUID, usage: UsageFigures, now: datetime) -> UsageFigures:
        values = [getattr(usage, c) for c in _COLUMNS]
        names = ", ".join(_COLUMNS)
        marks = ", ".join(f"${i + 3}" for i in range(len(_COLUMNS)))
        adds = ", ".join(f"{c} = call_usage.{c} + excluded.{c}" for c in _COLUMNS)
        row = await self.db.fetchrow(
            f"INSERT INTO call_usage (call_id, org_id, {names}, updated_at)"
            f" VALUES ($1, $2, {marks}, ${len(values) + 3})"
            f" ON CONFLICT (call_id) DO UPDATE SET {adds}, updated_at = excluded.updated_at"
            f" RETURNING {names}",
            call_id, org_id, *values, now,
        )
        assert row is not None
        return _figures(row)

    async def get_usage(self, org_id: UUID, call_id: UUID) -> UsageFigures | None:
        row = await self.db.fetchrow(
            f"SELECT {', '.join(_COLUMNS)} FROM call_usage WHERE call_id = $1 AND org_id = $2", call_id, org_id)
        return _figures(row) if row is not None else None

    async def usage_rows(self, org_id: UUID, *, since: datetime | None, until: datetime | None,
                         campaign_id: UUID | None = None) -> AsyncIterator[CallUsageRow]:
        where = ["c.org_id = $1"]
        args: list[Any] = [org_id]
        for clause, value in (("c.created_at >= ${}", since), ("c.created_at < ${}", until),
                              ("c.campaign_id = ${}", campaign_id)):
            if value is not None:
                args.append(value)
                where.append(clause.format(len(args)))
        usage = ", ".join(f"u.{c}" for c in _COLUMNS)
        after: tuple[datetime, UUID] | None = None
        while True:
            page_where = list(where)
            page_args = list(args)
            if after is not None:
                page_args += [after[0], after[1]]
                page_where.append(f"(c.created_at, c.id) > (${len(page_args) - 1}, ${len(page_args)})")
            rows = await self.db.fetch(
                f"SELECT c.id, c.campaign_id, c.created_at, c.answered_at, c.ended_at, c.cost_amount,"
                f" c.cost_currency, {usage} FROM calls c LEFT JOIN call_usage u ON u.call_id = c.id"
                f" WHERE {' AND '.join(page_where)} ORDER BY c.created_at, c.id LIMIT {self.PAGE}",
                *page_args,
            )
            for row in rows:
                yield CallUsageRow(
                    call_id=_uuid(row["id"]), campaign_id=_uuid(row["campaign_id"]) if row["campaign_id"] else None,
                    created_at=time_column(row["created_at"]),
                    answered_at=time_column(row["answered_at"]) if row["answered_at"] else None,
                    ended_at=time_column(row["ended_at"]) if row["ended_at"] else None,
                    cost_amount=Decimal(str(row["cost_amount"])) if row["cost_amount"] is not None else None,
                    cost_currency=row["cost_currency"], usage=_figures(row),
                )
            if len(rows) < self.PAGE:
                return
            last = rows[-1]
            after = (time_column(last["created_at"]), _uuid(last["id"]))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


_FLOATS = frozenset(f.name for f in fields(UsageFigures) if f.type == "float")


def _figures(row: dict[str, Any]) -> UsageFigures:
    figures: dict[str, Any] = {c: (float if c in _FLOATS else int)(row[c] or 0) for c in _COLUMNS}
    return UsageFigures(**figures)
