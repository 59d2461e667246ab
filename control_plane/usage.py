"""Usage and cost of calls: one call's line items, and an organisation's totals per day or campaign.

Every total is the sum of its calls' own priced lines (each rounded on its own), so the calls of
a report add up to its total exactly, and a campaign's cost is the same figure its calls show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from .pricing import CostLines, PriceTable, answered_seconds, price_call
from .store.usage import CallUsageRow, UsageFigures

GroupBy = Literal["day", "campaign"]
ZERO = Decimal(0)
LINES = ("telephony", "streaming", "stt", "tts", "llm", "llm_estimated", "total")


def call_cost(table: PriceTable, *, answered_at: datetime | None, ended_at: datetime | None,
              telnyx_cost: Decimal | None, usage: UsageFigures) -> CostLines:
    return price_call(
        table, seconds=answered_seconds(answered_at, ended_at), stt_seconds=usage.stt_seconds,
        tts_characters=usage.tts_characters, tts_seconds=usage.tts_seconds, prompt_tokens=usage.llm_prompt_tokens,
        completion_tokens=usage.llm_completion_tokens, telnyx_cost=telnyx_cost,
        estimated_prompt_tokens=usage.llm_estimated_prompt_tokens,
        estimated_completion_tokens=usage.llm_estimated_completion_tokens, llm_model=usage.llm_model,
    )


def row_cost(table: PriceTable, row: CallUsageRow) -> CostLines:
    return call_cost(table, answered_at=row.answered_at, ended_at=row.ended_at, telnyx_cost=row.cost_amount,
                     usage=row.usage)


@dataclass(slots=True)
class Totals:
    calls: int = 0
    answered_seconds: float = 0.0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_estimated_prompt_tokens: int = 0
    llm_estimated_completion_tokens: int = 0
    llm_default_priced_calls: int = 0
    stt_seconds: float = 0.0
    tts_characters: int = 0
    tts_seconds: float = 0.0
    telnyx_costed_calls: int = 0
    cost: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(
        LINES, ZERO))

    def add(self, row: CallUsageRow, lines: CostLines) -> None:
        usage = row.usage
        self.calls += 1
        self.answered_seconds += answered_seconds(row.answered_at, row.ended_at)
        self.llm_prompt_tokens += usage.llm_prompt_tokens
        self.llm_completion_tokens += usage.llm_completion_tokens
        self.llm_estimated_prompt_tokens += usage.llm_estimated_prompt_tokens
        self.llm_estimated_completion_tokens += usage.llm_estimated_completion_tokens
        used_llm = usage.llm_requests + usage.llm_estimated_requests > 0
        self.llm_default_priced_calls += used_llm and lines.llm_priced_as == "default"
        self.stt_seconds += usage.stt_seconds
        self.tts_characters += usage.tts_characters
        self.tts_seconds += usage.tts_seconds
        self.telnyx_costed_calls += lines.telephony_source == "telnyx"
        for name in LINES:
            self.cost[name] += getattr(lines, name)

    def as_dict(self, currency: str) -> dict[str, Any]:
        return {
            "calls": self.calls, "answered_seconds": round(self.answered_seconds, 3),
            "llm_prompt_tokens": self.llm_prompt_tokens, "llm_completion_tokens": self.llm_completion_tokens,
            "llm_estimated_prompt_tokens": self.llm_estimated_prompt_tokens,
            "llm_estimated_completion_tokens": self.llm_estimated_completion_tokens,
            "llm_default_priced_calls": self.llm_default_priced_calls,
            "stt_seconds": round(self.stt_seconds, 3), "tts_characters": self.tts_characters,
            "tts_seconds": round(self.tts_seconds, 3), "telnyx_costed_calls": self.telnyx_costed_calls,
            "cost": {**{k: str(v) for k, v in self.cost.items()}, "currency": currency},
        }


def _key(row: CallUsageRow, group_by: GroupBy) -> str | None:
    if group_by == "day":
        return row.created_at.date().isoformat()  # created_at is UTC
    return str(row.campaign_id) if row.campaign_id is not None else None


async def totals(rows: AsyncIterator[CallUsageRow], table: PriceTable,
                 group_by: GroupBy | None) -> tuple[Totals, dict[str | None, Totals]]:
    """The total of ``rows`` and, with ``group_by``, per day (UTC) or campaign (None: not a campaign's)."""
    total = Totals()
    groups: dict[str | None, Totals] = {}
    async for row in rows:
        lines = row_cost(table, row)
        total.add(row, lines)
        if group_by is not None:
            groups.setdefault(_key(row, group_by), Totals()).add(row, lines)
    return total, groups


async def campaign_cost(rows: AsyncIterator[CallUsageRow], table: PriceTable) -> Decimal:
    total, _ = await totals(rows, table, None)
    return total.cost["total"]
