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


class LlmPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_per_1m_tokens: Decimal = Field(ge=0, le=10_000)
    completion_per_1m_tokens: Decimal = Field(ge=0, le=10_000)


DEFAULT_LLM_MODELS = {
    # OpenAI's list price (platform.openai.com/docs/pricing, as cited in docs/usage.md).
    "gpt-4o-mini": LlmPrice(prompt_per_1m_tokens=Decimal("0.15"), completion_per_1m_tokens=Decimal("0.60")),
}


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
    llm_models: dict[str, LlmPrice] = Field(
        default_factory=lambda: dict(DEFAULT_LLM_MODELS),
        description="LLM token prices per model name (as the call asked its server for it). Setting it replaces "
                    "the default list; a model not in it is priced at llm_prompt_per_1m_tokens / "
                    "llm_completion_per_1m_tokens, and its calls say so (cost_items.llm_priced_as: default).")
    llm_prompt_per_1m_tokens: Decimal = Field(
        Decimal("0.15"), ge=0, le=10_000,
        description="LLM input tokens of a model not in llm_models (or of a call whose model is unknown). The "
                    "default is gpt-4o-mini's list price, an explicit stand-in: set your model's price.")
    llm_completion_per_1m_tokens: Decimal = Field(
        Decimal("0.60"), ge=0, le=10_000,
        description="LLM output tokens of a model not in llm_models (default: gpt-4o-mini's list price).")

    def llm_price(self, model: str | None) -> tuple[LlmPrice, str]:
        """The price of ``model``'s tokens, and what it was priced as: the model's name, or
        ``default`` (not in ``llm_models``, or unknown)."""
        listed = self.llm_models.get(model) if model else None
        if listed is not None:
            return listed, model  # type: ignore[return-value]
        return LlmPrice(prompt_per_1m_tokens=self.llm_prompt_per_1m_tokens,
                        completion_per_1m_tokens=self.llm_completion_per_1m_tokens), "default"


@dataclass(frozen=True, slots=True)
class CostLines:
    telephony: Decimal
    telephony_source: str
    """``telnyx`` (the call.cost webhook) or ``estimate`` (billed minutes at the table's rate)."""
    streaming: Decimal
    stt: Decimal
    tts: Decimal
    llm: Decimal
    """Tokens the model's server reported."""
    llm_estimated: Decimal
    """Tokens estimated for requests cut off before the server reported their usage."""
    llm_priced_as: str
    """The model whose price ``llm_models`` gave, or ``default`` (llm_prompt/completion_per_1m_tokens)."""
    currency: str

    @property
    def total(self) -> Decimal:
        return self.telephony + self.streaming + self.stt + self.tts + self.llm + self.llm_estimated

    def as_dict(self) -> dict[str, str]:
        return {"telephony": str(self.telephony), "telephony_source": self.telephony_source,
                "streaming": str(self.streaming), "stt": str(self.stt), "tts": str(self.tts),
                "llm": str(self.llm), "llm_estimated": str(self.llm_estimated), "llm_priced_as": self.llm_priced_as,
                "total": str(self.total), "currency": self.currency}


def answered_seconds(answered_at: datetime | None, ended_at: datetime | None) -> float:
    if answered_at is None or ended_at is None:
        return 0.0
    return max(0.0, (ended_at - answered_at).total_seconds())


def billed_seconds(seconds: float, increment_s: int) -> int:
    """Rounded up to the billing increment (6/6: 1 s is billed 6 s, 7 s is billed 12 s)."""
    return math.ceil(round(seconds, 3) / increment_s) * increment_s if seconds > 0 else 0


def _tokens_cost(price: LlmPrice, prompt_tokens: int, completion_tokens: int) -> Decimal:
    return ((Decimal(prompt_tokens) * price.prompt_per_1m_tokens
             + Decimal(completion_tokens) * price.completion_per_1m_tokens) / 1_000_000).quantize(QUANTUM)


def price_call(table: PriceTable, *, seconds: float, stt_seconds: float, tts_characters: int,
               tts_seconds: float, prompt_tokens: int, completion_tokens: int,
               telnyx_cost: Decimal | None, estimated_prompt_tokens: int = 0,
               estimated_completion_tokens: int = 0, llm_model: str | None = None) -> CostLines:
    """One call's cost per line item. Each line is rounded to a millionth on its own, so a total is
    the exact sum of its calls' lines."""
    if telnyx_cost is not None:
        telephony, source = telnyx_cost, "telnyx"
    else:
        minutes = Decimal(billed_seconds(seconds, table.telephony_increment_s)) / 60
        telephony, source = minutes * table.telephony_per_min, "estimate"
    answered_min = Decimal(str(round(seconds, 3))) / 60
    llm_price, priced_as = table.llm_price(llm_model)
    return CostLines(
        telephony=telephony.quantize(QUANTUM), telephony_source=source,
        streaming=(answered_min * table.streaming_per_min).quantize(QUANTUM),
        stt=(Decimal(str(round(stt_seconds, 3))) / 60 * table.stt_per_min).quantize(QUANTUM),
        tts=(Decimal(tts_characters) / 1_000_000 * table.tts_per_1m_characters
             + Decimal(str(round(tts_seconds, 3))) / 60 * table.tts_per_min).quantize(QUANTUM),
        llm=_tokens_cost(llm_price, prompt_tokens, completion_tokens),
        llm_estimated=_tokens_cost(llm_price, estimated_prompt_tokens, estimated_completion_tokens),
        llm_priced_as=priced_as, currency=table.currency,
    )
