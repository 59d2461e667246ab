"""What a call does when answering machine detection says a machine answered: the policy (a
campaign's ``voicemail``, or a call's ``agent_config.voicemail``) and the verdicts' names.

Import-light (pydantic, the voice catalogue, the speak languages): the API's schemas and the
agent overrides use it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.providers.voices import speak_voice

from .telnyx.client import SPEAK_LANGUAGES

DETECTION_ENDED = frozenset({"call.machine.detection.ended", "call.machine.premium.detection.ended"})
GREETING_ENDED = frozenset({"call.machine.greeting.ended", "call.machine.premium.greeting.ended"})


_VARIABLE = re.compile(r"{([A-Za-z0-9_\- ]{1,64})}")


def fill_variables(text: str, variables: dict[str, Any]) -> str:
    """``{name}`` placeholders filled from the call's variables; unknown ones left as they are."""
    return _VARIABLE.sub(lambda m: str(variables.get(m.group(1), m.group(0))), text)


def holds_agent(amd_mode: str | None) -> bool:
    """Whether a call dialled with this AMD mode waits for the verdict before its stream starts."""
    return amd_mode is not None and amd_mode != "disabled"


def is_machine(amd_result: str | None) -> bool:
    """Telnyx's verdict names a machine: ``machine``, premium's ``machine``/``fax_detected`` (and a
    greeting's ``machine/beep_detected`` as stored). ``human``, ``human_residence``,
    ``human_business``, ``not_sure``, ``silence`` are not machines: the agent talks."""
    return bool(amd_result) and (amd_result.startswith("machine") or amd_result.startswith("fax"))  # type: ignore[union-attr]


class VoicemailPolicy(BaseModel):
    """What to do when answering machine detection says a machine answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["hangup", "message"] = "hangup"
    message: str | None = Field(None, min_length=1, max_length=3000,
                                description="Spoken after the beep; {variables} of the call are filled in.")
    voice: str = Field("Telnyx.NaturalHD.astra", min_length=1, max_length=200,
                       description="A Call Control speak voice: natural, natural_hd, <Provider>.<Model>.<VoiceId>, "
                                   "male or female.")
    language: str | None = Field(None, max_length=20,
                                 description="Call Control speak language, e.g. en-US (the codes Telnyx's speak "
                                             "accepts); unset: the voice's own.")

    @model_validator(mode="after")
    def _message_needed(self) -> VoicemailPolicy:
        if self.action == "message" and not self.message:
            raise ValueError("action 'message' needs a message")
        return self


def check_speakable(value: VoicemailPolicy) -> VoicemailPolicy:
    """A policy given in a request: its voice and language must be ones Call Control speak takes
    (checked on requests only, so policies stored before keep loading)."""
    speak_voice(value.voice)
    if value.language is not None and value.language not in SPEAK_LANGUAGES:
        raise ValueError("voicemail.language must be a Call Control speak language such as en-US, en-GB, "
                         "es-ES or fr-FR (a bare 'en' is refused by Telnyx)")
    return value
