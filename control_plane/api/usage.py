"""``GET /api/usage``: the key's organisation's usage and cost, in total and per day or campaign.

Calls are counted by when they were created (UTC), in ``[from, to)``. Each call is priced with the
server's price table (``settings.pricing``), its Telnyx minutes replaced by the ``call.cost``
webhook's figure once that came; the groups and the total are sums of the calls' own lines.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..context import control_plane
from ..errors import ApiError, json_response, parse_query
from ..usage import GroupBy, totals
from .handlers import _org


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime | None = Field(None, alias="from", description="created_at >= from (ISO 8601; UTC if no offset)")
    to: datetime | None = Field(None, description="created_at < to")
    group_by: GroupBy | None = Field(None, description="day (UTC) or campaign; unset: the total only")

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("date out of range") from None


class UsageCost(BaseModel):
    telephony: str
    streaming: str
    stt: str
    tts: str
    llm: str = Field(description="Tokens the model's server reported.")
    llm_estimated: str = Field(description="Tokens estimated for requests cut off before the server reported "
                                           "their usage (docs/usage.md).")
    total: str
    currency: str


class UsageTotals(BaseModel):
    calls: int
    answered_seconds: float
    llm_prompt_tokens: int
    llm_completion_tokens: int
    llm_estimated_prompt_tokens: int = Field(description="Estimated, for requests cut off before their usage.")
    llm_estimated_completion_tokens: int
    llm_default_priced_calls: int = Field(
        description="Calls whose model is not in pricing.llm_models, priced at the default LLM price.")
    stt_seconds: float
    tts_characters: int
    tts_seconds: float
    telnyx_costed_calls: int = Field(description="Calls whose telephony cost is Telnyx's call.cost, not an estimate.")
    cost: UsageCost


class UsageGroup(UsageTotals):
    key: str | None = Field(description="The day (YYYY-MM-DD, UTC) or the campaign id (null: calls of no campaign).")


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(alias="from")
    to: datetime | None
    group_by: GroupBy | None
    total: UsageTotals
    groups: list[UsageGroup]


async def usage_report(request: web.Request) -> web.Response:
    query = parse_query(request, UsageQuery)
    if query.from_ is not None and query.to is not None and query.from_ >= query.to:
        raise ApiError(400, "validation_error", "'from' must be before 'to'")
    cp = control_plane(request)
    repo = await cp.repository()
    table = cp.settings.pricing
    total, groups = await totals(repo.usage_rows(_org(request).id, since=query.from_, until=query.to),
                                 table, query.group_by)
    ordered = sorted(groups.items(), key=lambda item: (item[0] is None, item[0] or ""))
    report = UsageReport(
        from_=query.from_, to=query.to, group_by=query.group_by,
        total=UsageTotals(**total.as_dict(table.currency)),
        groups=[UsageGroup(key=key, **t.as_dict(table.currency)) for key, t in ordered],
    )
    return json_response(report)
