"""The price table (``settings.pricing``; env ``CALLAGENT_PRICING__TELEPHONY_PER_MIN=...``) and the
cost of one call, per line item, from what it used.

Kept free of other control-plane imports: :mod:`control_plane.settings` imports this module.
Where each default comes from is in ``docs/usage.md``; defaults that are assumptions say so.
Set your contract's prices: a bill is only as right as its table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

QUANTUM = Decimal("0.000001")


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("USD", min_length=3, max_length=3)
    telephony_per_min: Decimal = Field(
        Decimal("0.01"), ge=0, le=100,
        description="Telnyx call minutes (answered time). Telnyx's flat outbound rate; replaced per call by "
                    "the call.cost webhook when it comes.")
    telephony_increment_s: int = Field(6, ge=1, le=60, description="Billing increment: Telnyx bills 6/6.")
    streaming_per_min: Decimal = Field(Decimal("0.0035"), ge=0, le=100,
                                       description="Media streaming, answered time (assumption).")
    stt_per_min: Decimal = Field(Decimal("0.0043"), ge=0, le=100,
                                 description="Speech-to-text, per minute of audio sent (assumption).")
    tts_per_1m_characters: Decimal = Field(Decimal("15"), ge=0, le=10_000,
                                           description="Text-to-speech, per million characters (assumption).")
    tts_per_min: Decimal = Field(Decimal(0), ge=0, le=100,
                                 description="Text-to-speech per minute of audio, for providers billing by time.")
    llm_prompt_per_1m_tokens: Decimal = Field(Decimal("0.15"), ge=0, le=10_000,
                                              description="LLM input tokens (OpenAI gpt-4o-mini).")
    llm_completion_per_1m_tokens: Decimal = Field(Decimal("0.60"), ge=0, le=10_000,
                                                  description="LLM output tokens (OpenAI gpt-4o-mini).")


@dataclass(frozen=True, slots=True)
class CostLines:
    telephony: Decimal
    telephony_source: str
    """``telnyx`` (the call.cost webhook) or ``estimate`` (billed minutes at the table's rate)."""
    streaming: Decimal
    stt: Decimal
    tts: Decimal
    llm: Decimal
    currency: str

    @property
    def total(self) -> Decimal:
        return self.telephony + self.streaming + self.stt + self.tts + self.llm

    def as_dict(self) -> dict[str, str]:
        return {"telephony": str(self.telephony), "telephony_source": self.telephony_source,
                "streaming": str(self.streaming), "stt": str(self.stt), "tts": str(self.tts),
                "llm": str(self.llm), "total": str(self.total), "currency": self.currency}


def answered_seconds(answered_at: datetime | None, ended_at: datetime | None) -> float:
    if answered_at is None or ended_at is None:
        return 0.0
    return max(0.0, (ended_at - answered_at).total_seconds())


def billed_seconds(seconds: float, increment_s: int) -> int:
    """Rounded up to the billing increment (6/6: 1 s is billed 6 s, 7 s is billed 12 s)."""
    return math.ceil(round(seconds, 3) / increment_s) * increment_s if seconds > 0 else 0


def price_call(table: PriceTable, *, seconds: float, stt_seconds: float, tts_characters: int,
               tts_seconds: float, prompt_tokens: int, completion_tokens: int,
               telnyx_cost: Decimal | None) -> CostLines:
    """One call's cost per line item. Each line is rounded to a millionth on its own, so a total is
    the exact sum of its calls' lines."""
    if telnyx_cost is not None:
        telephony, source = telnyx_cost, "telnyx"
    else:
        minutes = Decimal(billed_seconds(seconds, table.telephony_increment_s)) / 60
        telephony, source = minutes * table.telephony_per_min, "estimate"
    answered_min = Decimal(str(round(seconds, 3))) / 60
    return CostLines(
        telephony=telephony.quantize(QUANTUM), telephony_source=source,
        streaming=(answered_min * table.streaming_per_min).quantize(QUANTUM),
        stt=(Decimal(str(round(stt_seconds, 3))) / 60 * table.stt_per_min).quantize(QUANTUM),
        tts=(Decimal(tts_characters) / 1_000_000 * table.tts_per_1m_characters
             + Decimal(str(round(tts_seconds, 3))) / 60 * table.tts_per_min).quantize(QUANTUM),
        llm=((Decimal(prompt_tokens) * table.llm_prompt_per_1m_tokens
              + Decimal(completion_tokens) * table.llm_completion_per_1m_tokens) / 1_000_000).quantize(QUANTUM),
        currency=table.currency,
    )
