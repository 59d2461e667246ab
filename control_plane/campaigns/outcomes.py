"""What a finished call means for its contact: outcome, success, retry or not, and its cost.

Pure functions over the call row (its final status from the ``call.hangup`` cause, its AMD
result, the agent's structured outcome) and the campaign's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ..store import Call
from ..voicemail import is_machine
from .models import CampaignConfig

_CALL_NS = uuid5(NAMESPACE_URL, "https://github.com/callagent/campaign-call")
UNCONFIRMED = "dial_unconfirmed"


def call_id_for(contact_id: UUID, attempt: int) -> UUID:
    """The call row id, and so the dial's ``command_id``, of a contact's attempt: the same on every
    worker that ever handles that attempt, so a re-sent dial is one Telnyx ignores."""
    return uuid5(_CALL_NS, f"{contact_id}:{attempt}")


def classify(call: Call, config: CampaignConfig) -> tuple[str, bool | None]:
    """``(outcome, success)`` of a finished call. ``success`` is ``None`` for a person who answered
    when the agent has not reported an outcome yet (the dialer settles it later)."""
    if isinstance(call.error, dict) and call.error.get("code") == UNCONFIRMED:
        return UNCONFIRMED, False  # never retried: the first dial may have rung
    agent = call.outcome if isinstance(call.outcome, dict) else {}
    label = agent.get("outcome")
    if call.status == "completed" or call.answered_at is not None:
        if is_machine(call.amd_result) or label == "voicemail":
            return ("voicemail" if config.voicemail.action == "message" else "machine"), False
        return "human", agent_success(agent, config)
    if call.status in ("busy", "no_answer"):
        return call.status, False
    return "failed", False


def agent_success(agent: dict[str, Any] | None, config: CampaignConfig) -> bool | None:
    if not agent:
        return None
    if isinstance(agent.get("success"), bool):
        return agent["success"]
    label = agent.get("outcome")
    if isinstance(label, str):
        return label in config.success_outcomes
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    status: str
    outcome: str
    success: bool | None
    next_attempt_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status not in ("retry_scheduled",)


def decide(outcome: str, success: bool | None, attempts: int, config: CampaignConfig, campaign_status: str,
           now: datetime) -> Decision:
    """The contact's next state after attempt ``attempts`` ended with ``outcome``."""
    kind = "machine" if outcome in ("machine", "voicemail") else outcome
    retryable = kind in config.retry.on and attempts < config.retry.max_attempts
    if outcome in ("human", "machine", "voicemail") and not (kind == "machine" and retryable):
        return Decision("completed", outcome, success, None)
    if not retryable:
        return Decision("failed", outcome, False, None)
    if campaign_status == "cancelled":
        return Decision("cancelled", outcome, False, None)
    return Decision("retry_scheduled", outcome, None,
                    now + timedelta(seconds=config.retry.delay_s(attempts)))
