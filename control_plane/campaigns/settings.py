"""Dialer settings (``settings.campaigns``; env ``CALLAGENT_CAMPAIGNS__LEASE_S=...``) and cost rates.

Kept free of other control-plane imports but the import-light :mod:`control_plane.pricing`:
:mod:`control_plane.settings` imports this module.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..pricing import PriceTable


class CostRates(BaseModel):
    """A campaign's own contract prices (its ``cost_rates``), applied to its calls' real figures:
    answered minutes (or Telnyx's ``call.cost``), STT and TTS audio minutes, LLM tokens.
    Unset, a campaign's calls are priced with the server's ``pricing`` table like any call.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("USD", min_length=3, max_length=3)
    voice_per_min: Decimal = Field(Decimal("0.007"), ge=0, le=100, description="Carrier minutes (answered time).")
    streaming_per_min: Decimal = Field(Decimal("0.0035"), ge=0, le=100, description="Media streaming.")
    stt_per_min: Decimal = Field(Decimal("0.0043"), ge=0, le=100, description="Speech-to-text.")
    tts_per_min: Decimal = Field(Decimal("0.015"), ge=0, le=100, description="Text-to-speech.")
    llm_per_1k_tokens: Decimal = Field(Decimal("0.0006"), ge=0, le=100,
                                       description="LLM tokens (prompt and completion), as the model reported them.")

    def price_table(self) -> PriceTable:
        """These rates as a price table (billed per second, TTS by audio time)."""
        return PriceTable(
            currency=self.currency, telephony_per_min=self.voice_per_min, telephony_increment_s=1,
            streaming_per_min=self.streaming_per_min, stt_per_min=self.stt_per_min,
            tts_per_1m_characters=Decimal(0), tts_per_min=self.tts_per_min,
            llm_prompt_per_1m_tokens=self.llm_per_1k_tokens * 1000,
            llm_completion_per_1m_tokens=self.llm_per_1k_tokens * 1000,
        )


class CampaignSettings(BaseModel):
    """How the campaign dialer runs (in the app, and in ``python -m control_plane.campaigns.worker``)."""

    model_config = ConfigDict(extra="forbid")

    dialer: bool = Field(True, description="Run the dialer as a background task of the control plane app.")
    lease_s: float = Field(
        30.0, gt=0, le=300,
        description="A claimed contact not dialled and recorded within this time is taken by another worker. "
                    "Keep it well under dedupe_window_s so a crashed dial is re-sent inside Telnyx's window.",
    )
    poll_interval_s: float = Field(1.0, gt=0, description="How often idle workers look for due contacts.")
    sweep_interval_s: float = Field(2.0, gt=0, description="Expired leases, missed outcomes, stale calls.")
    capacity_poll_s: float = Field(0.25, gt=0, description="Re-check period while a campaign is at its cap.")
    dedupe_window_s: float = Field(60.0, gt=0, description="Telnyx ignores a repeated dial command_id this long.")
    resend_margin_s: float = Field(
        15.0, ge=0, description="A dial is re-sent with its command_id only while it started less than "
                                "dedupe_window_s - resend_margin_s ago (clock skew, request time).")
    unconfirmed_grace_s: float = Field(
        120.0, ge=0, description="Past the window, how long to wait for a webhook proving an unrecorded dial "
                                 "happened before the attempt is given up (never re-dialled).")
    stale_call_s: float = Field(300.0, gt=0, description="A live call silent this long is checked with Telnyx.")
    outcome_grace_s: float = Field(30.0, ge=0, description="How long a finished call waits for the agent's outcome.")
    dial_timeout_s: float = Field(
        10.0, gt=0, description="Telnyx dial request budget (with its retries); the lease taken before a send "
                                "outlasts it, so no other worker re-sends an attempt while its request is in flight.")
    max_upload_bytes: int = Field(256 << 20, ge=1024, description="Largest contacts upload (CSV is streamed).")
    max_upload_rows: int = Field(1_000_000, ge=1, description="Rows accepted by one contacts upload.")
    max_json_contacts: int = Field(10_000, ge=1, description="Contacts in one JSON upload.")
    import_batch_size: int = Field(1000, ge=1, le=2000, description="Rows written per transaction on upload.")
    max_rejected_listed: int = Field(100, ge=0, le=10_000, description="Rejected rows listed in an upload report.")
    cost_rates: CostRates | None = Field(
        None, description="Server-wide campaign contract prices; unset: the server's pricing table.")

    @model_validator(mode="after")
    def _lease_inside_window(self) -> CampaignSettings:
        if self.lease_s >= self.dedupe_window_s - self.resend_margin_s:
            raise ValueError("lease_s must be shorter than dedupe_window_s - resend_margin_s")
        if self.dial_timeout_s > self.resend_margin_s:
            # A re-send starts at most dedupe_window_s - resend_margin_s after the first; its tries
            # must be over before Telnyx stops de-duplicating the command_id.
            raise ValueError("dial_timeout_s must not exceed resend_margin_s")
        return self
