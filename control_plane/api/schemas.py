"""Request and response bodies of the REST API. The OpenAPI document is generated from these.

Request models are strict (a number where a string belongs is a 400, never a silent
coercion) and forbid unknown top-level fields, so a typo is reported, not ignored.
``agent_config`` is the conversation pipeline's own model (plus ``record``), so what the API
accepts is exactly what a call can run with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..agents import AgentOverrides
from ..phone import E164
from ..store.records import Call, CallStatus, Turn


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# -- calls ------------------------------------------------------------------------------


class CallAgentConfig(AgentOverrides):
    personality: str = Field(
        "friendly", min_length=1, max_length=64, examples=["friendly"],
        description="A built-in (friendly, professional, sales) or configured personality. Left out: the "
                    "server's default agent's (CALLAGENT_AGENT__PERSONALITY), not this default.")




def agent_overrides(config: AgentOverrides) -> dict[str, Any]:
    """What is stored with a call or number: the fields the client gave, as JSON."""
    return config.model_dump(mode="json", exclude_unset=True)


AmdMode = Literal["disabled", "detect", "detect_beep", "detect_words", "greeting_end", "premium"]


class StartCallRequest(_Request):
    to: E164
    from_: E164 = Field(alias="from")
    campaign_id: UUID | None = None
    agent_config: CallAgentConfig = Field(
        default_factory=CallAgentConfig,
        description="Overrides of the server's default agent; only the fields given are stored.")
    ring_timeout_s: int | None = Field(None, ge=5, le=600, description="Give up when unanswered after this long.")
    answering_machine_detection: AmdMode | None = None


class StartCallResponse(_Response):
    success: bool = True
    call_id: UUID
    call_control_id: str | None
    status: CallStatus


class HangupResponse(_Response):
    success: bool = True
    status: CallStatus
    hangup_requested: bool = True


class StatusChangeOut(_Response):
    status: CallStatus
    at: datetime
    reason: str


class CostOut(_Response):
    amount: str
    currency: str | None


class TurnOut(_Response):
    index: int
    caller_text: str | None
    agent_text: str | None
    interrupted: bool
    latency: dict[str, Any]
    created_at: datetime
    end_reason: str | None = Field(description=(
        "what ended the caller's turn: vad (the VAD's silence), confident (a shorter silence after words "
        "surely finished), recogniser (its own end, the VAD hearing babble), noise (noise kept the VAD on "
        "without new words), keys, words (heard without a VAD turn), hold_ran_out (see hold), final_late "
        "(committed without a late transcript); null: no account (turns recorded before it was kept)"))
    hold: str | None = Field(description=(
        "the last hold the turn waited through because its words read unfinished: incomplete (the whole "
        "incomplete_turn_hold_ms) or unsure (half); it ran out (end_reason hold_ran_out) or speech broke it "
        "(merged); null: none"))
    contour: bool = Field(description=(
        "the caller's final pitch contour decided the words' verdict: a rise held words that read "
        "complete, or a fall ended unsure words at once"))
    speculation: str | None = Field(description=(
        "the reply started before the turn was committed: kept (it answered the turn), restarted "
        "(on other words: answered anew), none"))
    merged: bool = Field(description=(
        "the turn had ended once and the VAD heard speech again before it was answered (the caller went "
        "on, or noise): it merged into a longer turn; with hold set, the hold it broke"))

    @classmethod
    def of(cls, turn: Turn) -> TurnOut:
        return cls(index=turn.index, caller_text=turn.caller_text, agent_text=turn.agent_text,
                   interrupted=turn.interrupted, latency=turn.latency, created_at=turn.created_at,
                   end_reason=turn.end_reason, hold=turn.hold, contour=turn.contour, speculation=turn.speculation,
                   merged=turn.merged)


class EventOut(_Response):
    id: str
    type: str
    occurred_at: datetime | None


class CallOut(_Response):
    id: UUID
    direction: Literal["outbound", "inbound"]
    to: str | None = Field(description="null once the number was erased")
    from_: str | None = Field(alias="from")
    status: CallStatus
    status_history: list[StatusChangeOut]
    campaign_id: UUID | None
    call_control_id: str | None
    created_at: datetime
    updated_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None = Field(description="answered_at -> ended_at")
    hangup_cause: str | None
    hangup_source: str | None
    sip_hangup_cause: str | None
    summary: str | None
    outcome: dict[str, Any] | None
    recording_url: str | None
    cost: CostOut | None
    amd_result: str | None
    error: dict[str, Any] | None
    erased: bool

    @classmethod
    def fields_of(cls, call: Call) -> dict[str, Any]:
        duration = None
        if call.answered_at and call.ended_at:
            duration = max(0.0, (call.ended_at - call.answered_at).total_seconds())
        return {
            "id": call.id, "direction": call.direction, "to": call.to_number, "from": call.from_number,
            "status": call.status,
            "status_history": [StatusChangeOut(status=s.status, at=s.at, reason=s.reason) for s in call.status_history],
            "campaign_id": call.campaign_id, "call_control_id": call.call_control_id,
            "created_at": call.created_at, "updated_at": call.updated_at, "answered_at": call.answered_at,
            "ended_at": call.ended_at, "duration_s": duration, "hangup_cause": call.hangup_cause,
            "hangup_source": call.hangup_source, "sip_hangup_cause": call.sip_hangup_cause,
            "summary": call.summary, "outcome": call.outcome, "recording_url": call.recording_url,
            "cost": CostOut(amount=str(call.cost_amount), currency=call.cost_currency)
            if call.cost_amount is not None else None,
            "amd_result": call.amd_result, "error": call.error, "erased": call.erased_at is not None,
        }

    @classmethod
    def of(cls, call: Call) -> CallOut:
        return cls(**cls.fields_of(call))


class CallDetail(CallOut):
    agent_config: dict[str, Any]
    quality: dict[str, Any] | None
    turns: list[TurnOut]
    events: list[EventOut]
    usage: dict[str, Any] = Field(description="What the call used: LLM tokens, STT seconds, TTS characters and "
                                              "seconds (zero until its agent reports).")
    cost_items: dict[str, str] = Field(description="Cost per line item at the server's price table; telephony is "
                                                   "Telnyx's call.cost once it came (telephony_source).")


class CallList(_Response):
    data: list[CallOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class ListCallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CallStatus | None = None
    campaign_id: UUID | None = None
    since: datetime | None = Field(None, description="created_at >= since (ISO 8601; UTC if no offset)")
    until: datetime | None = Field(None, description="created_at < until")
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=512)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("date out of range") from None


# -- API keys -----------------------------------------------------------------------------


class CreateApiKeyRequest(_Request):
    name: str = Field("api", min_length=1, max_length=100)


class ApiKeyOut(_Response):
    id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it; the key itself is never shown again.")
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown once: store it now.")


class ApiKeyList(_Response):
    data: list[ApiKeyOut]


# -- do-not-call --------------------------------------------------------------------------


class DncAddRequest(_Request):
    phone: E164
    reason: str | None = Field(None, max_length=500)


class DncStatus(_Response):
    phone: str
    blocked: bool
    reason: str | None = None
    source: str | None = None
    created_at: datetime | None = None


class DncAdded(DncStatus):
    added: bool = Field(description="false when the number was already listed")


class DncRemoved(_Response):
    phone: str
    removed: bool = True


class DncImportResult(_Response):
    rows: int = Field(description="data rows read (header excluded)")
    valid: int
    added: int
    already_listed: int
    invalid: int
    invalid_rows: list[int] = Field(description="1-based line numbers of rejected rows (first 100)")


# -- GDPR -----------------------------------------------------------------------------------


class ErasureCountsOut(_Response):
    calls: int
    transcripts: int
    summaries: int
    outcomes: int
    recordings: int
    agent_configs: int
    call_events: int
    campaign_contacts: int
    sessions: int


class ErasureReceipt(_Response):
    phone_hash: str = Field(description="The keyed hash that now stands in for the number in call records.")
    erased_at: datetime
    erased: ErasureCountsOut
    retained: dict[str, Any] = Field(description="What is kept and why (no personal data).")
    carrier_recordings: list[str] = Field(
        description="Telnyx recording ids of erased calls: delete them at Telnyx too (recordings live there)."
    )


# -- the organisation's numbers and settings ---------------------------------------------


class AddNumberRequest(_Request):
    number: E164 = Field(description="A number the organisation owns at Telnyx, for inbound calls.")
    agent_config: AgentOverrides = Field(
        default_factory=AgentOverrides,
        description="How inbound calls to it are answered: overrides of the server's default agent.")


class UpdateNumberRequest(_Request):
    agent_config: AgentOverrides = Field(
        description="The number's new agent config, replacing the old one whole (overrides of the server's "
                    "default agent).")


class NumberOut(_Response):
    number: str
    agent_config: dict[str, Any]
    created_at: datetime


class NumberList(_Response):
    data: list[NumberOut]


class NumberRemoved(_Response):
    number: str
    removed: bool = True


class OrganisationSettingsPatch(_Request):
    record_calls: bool | None = Field(
        None, description="Record every call from answer (dual channel); null: the server's default (off).")
    tool_allowed_destinations: list[str] | None = Field(
        None, max_length=50,
        description="Internal host names or CIDRs this organisation's HTTP tools may reach, only inside the "
                    "operator's tools.tenant_allowable_networks (every other internal address is refused); "
                    "null: none.")


class ToolSigningSecret(_Response):
    secrets: list[str] = Field(
        description="The organisation's HTTP tool signing secrets, newest first (two during a key rotation); "
                    "each one's UTF-8 bytes are an HMAC-SHA256 key.")
    timestamp_header: str = Field(description="Unix seconds when the request was signed.")
    signature_header: str = Field(
        description="v1=<hex HMAC-SHA256(secret, timestamp + '.' + raw body)>, comma-separated per secret.")


class OrganisationOut(_Response):
    id: UUID
    name: str
    settings: dict[str, Any] = Field(description="record_calls, when set")
    created_at: datetime


class EraseOrganisationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: UUID = Field(description="The organisation's own id, to confirm: the erasure cannot be undone.")


class OrganisationErasureReceipt(_Response):
    organisation_id: UUID
    erased_at: datetime
    erased: dict[str, int] = Field(description="Rows removed, by kind: calls, turns, call_events, campaigns, "
                                               "phone_numbers, api_keys, knowledge_bases, knowledge_passages...")
    sessions: int = Field(description="Live call sessions deleted.")
    carrier_recordings: list[str] = Field(
        description="Telnyx recording ids of the erased calls: delete them at Telnyx too (recordings live there).")
