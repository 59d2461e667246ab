"""A campaign's configuration and the campaign API's request and response bodies.

:class:`CampaignConfig` is what the dialer runs with; it is stored as JSON in
``campaign_dialer.config`` and fixed once the campaign is created. Request models are strict
and forbid unknown fields, like the calls API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..api.schemas import CallAgentConfig
from ..phone import E164
from ..voicemail import VoicemailPolicy, check_speakable
from .settings import CostRates
from .timezones import DAYS, UnknownTimeZone, parse_hhmm, zone

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RetryOutcome = Literal["busy", "no_answer", "failed", "machine"]
CampaignStatus = Literal["draft", "running", "paused", "completed", "cancelled"]
ContactStatus = Literal["pending", "outside_window", "retry_scheduled", "claimed", "dialing", "in_progress",
                        "completed", "failed", "dnc_skipped", "cancelled", "erased"]

DUE_STATUSES = ("pending", "retry_scheduled", "outside_window")
ACTIVE_STATUSES = ("claimed", "dialing", "in_progress")
TERMINAL_CONTACT_STATUSES = ("completed", "failed", "dnc_skipped", "cancelled", "erased")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CallingWindow(_Strict):
    """Daily calling hours, in each contact's own time zone (see ``timezone``)."""

    start: str = Field("09:00", examples=["09:00"], description="HH:MM local time the window opens.")
    end: str = Field("20:00", examples=["20:00"], description="HH:MM it closes (before start: overnight).")
    days: tuple[Day, ...] = Field(cast("tuple[Day, ...]", DAYS), min_length=1,
                                  description="Days of the week (the day a window opens).")
    timezone: str = Field("UTC", examples=["America/New_York"],
                          description="IANA zone for contacts whose zone is neither given nor derivable "
                                      "from their number (area code, or country).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zone(value)
        except UnknownTimeZone as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d for d in DAYS if d in value)

    @model_validator(mode="after")
    def _not_empty(self) -> CallingWindow:
        if parse_hhmm(self.start) == parse_hhmm(self.end):
            raise ValueError("start and end must differ")
        return self


class RetryPolicy(_Strict):
    on: tuple[RetryOutcome, ...] = Field(("busy", "no_answer", "failed"),
                                         description="Outcomes that are dialled again.")
    max_attempts: int = Field(3, ge=1, le=20, description="Dials per contact, the first included.")
    backoff_s: float = Field(1800.0, ge=0, le=30 * 86400, description="Wait before the second attempt.")
    backoff_multiplier: float = Field(1.0, ge=1, le=10, description="Each later wait is this many times longer.")

    def delay_s(self, attempt: int) -> float:
        """Wait after attempt ``attempt`` (1-based) failed."""
        return self.backoff_s * self.backoff_multiplier ** max(0, attempt - 1)


class CampaignConfig(_Strict):
    """How a campaign dials. Stored with the campaign; the dialer reads nothing else."""

    caller_numbers: tuple[E164, ...] = Field(min_length=1, max_length=200,
                                             description="Caller IDs, used round robin.")
    max_concurrent_calls: int = Field(10, ge=1, le=10_000, description="Live calls of this campaign at most.")
    calls_per_minute: int = Field(60, ge=1, le=60_000, description="Dials a minute at most (paced evenly).")
    max_calls_per_number: int | None = Field(None, ge=1, le=10_000,
                                             description="Live calls per caller number (all of the "
                                                         "organisation's calls from it); unset: no cap.")
    window: CallingWindow | None = Field(None, description="Calling hours; unset: any time.")
    retry: RetryPolicy = RetryPolicy()
    ring_timeout_s: int = Field(30, ge=5, le=600)
    answering_machine_detection: bool = Field(True, description="Dial with AMD (detect, or detect_beep to "
                                                                "leave a voicemail message).")
    voicemail: VoicemailPolicy = VoicemailPolicy()
    success_outcomes: tuple[str, ...] = Field(
        ("resolved", "follow_up"), max_length=20,
        description="Agent outcomes (outcome.outcome) that count a call as successful.")
    cost_rates: CostRates | None = Field(
        None, description="Unset: the server's campaigns.cost_rates, else its pricing table.")

    @property
    def amd_mode(self) -> str | None:
        if not self.answering_machine_detection:
            return None
        return "detect_beep" if self.voicemail.action == "message" else "detect"


class CreateCampaignRequest(_Strict):
    name: str = Field(min_length=1, max_length=200)
    agent_config: CallAgentConfig
    caller_numbers: list[E164] = Field(min_length=1, max_length=200, description="The pool of caller IDs.")
    max_concurrent_calls: int = Field(10, ge=1, le=10_000)
    calls_per_minute: int = Field(60, ge=1, le=60_000)
    max_calls_per_number: int | None = Field(None, ge=1, le=10_000)
    window: CallingWindow | None = None
    retry: RetryPolicy = RetryPolicy()
    ring_timeout_s: int = Field(30, ge=5, le=600)
    answering_machine_detection: bool = True
    voicemail: VoicemailPolicy = VoicemailPolicy()
    success_outcomes: list[str] = Field(["resolved", "follow_up"], max_length=20)
    cost_rates: CostRates | None = None

    @field_validator("voicemail")
    @classmethod
    def _speakable(cls, value: VoicemailPolicy) -> VoicemailPolicy:
        return check_speakable(value)

    def config(self) -> CampaignConfig:
        data = self.model_dump(exclude={"name", "agent_config"})
        return CampaignConfig.model_validate(data, strict=False)


class ContactsUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: list[Any] = Field(description="{phone, name?, timezone?, variables?: {k: v}} each; "
                                            "invalid items are reported, not refused.")


class RejectedRow(BaseModel):
    row: int = Field(description="CSV: the record's row in the file, the header being row 1. JSON: 1-based index.")
    reason: str


class ContactImportReport(BaseModel):
    received: int = Field(description="Data rows read (header and blank lines excluded).")
    accepted: int = Field(description="New contacts added to the campaign (dnc_skipped included).")
    rejected: int
    duplicates: int = Field(description="Rejected as already in the campaign (same number).")
    dnc_skipped: int = Field(description="Accepted but on the do-not-call list: never dialled.")
    rejected_by_reason: dict[str, int]
    rejected_rows: list[RejectedRow] = Field(description="The first rejected rows (see rejected_rows_truncated).")
    rejected_rows_truncated: bool
    total_contacts: int


class CostOut(BaseModel):
    amount: str
    currency: str


class CampaignOut(BaseModel):
    id: UUID
    name: str
    status: CampaignStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total_contacts: int
    pending: int = Field(description="Waiting for their first dial.")
    outside_window: int = Field(description="Waiting for their calling window to open.")
    retry_scheduled: int
    in_progress: int = Field(description="Being dialled or on a live call.")
    completed_calls: int = Field(description="Contacts whose call was answered (by a person or a machine).")
    successful_calls: int = Field(description="Answered by a person and not an unsuccessful agent outcome.")
    failed: int = Field(description="Gave up: busy / no answer / failed after the last attempt, or refused.")
    dnc_skipped: int
    cancelled: int
    erased: int
    calls_placed: int = Field(description="Dials made, retries included.")
    live_calls: int
    average_turn_latency_ms: float | None
    cost: CostOut
    config: CampaignConfig | None
    agent_config: dict[str, Any]


class CampaignSummary(BaseModel):
    id: UUID
    name: str
    status: CampaignStatus
    created_at: datetime
    updated_at: datetime


class CampaignList(BaseModel):
    data: list[CampaignSummary]
