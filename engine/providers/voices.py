"""Agent voices as users write them, and what each TTS makes of them.

An agent's ``voice`` is one of:

* an alias of the design: ``natural`` (Telnyx.Natural.allison) or ``natural_hd``
  (Telnyx.NaturalHD.astra), documented voices of Telnyx's two families that stream
  ``linear16`` over the TTS WebSocket (docs/telnyx-protocol.md §4.2);
* a full Telnyx id ``Telnyx.Natural.<voice>`` or ``Telnyx.NaturalHD.<voice>``. Other
  documented ``<Provider>.<Model>.<VoiceId>`` families are refused unless the operator
  lists them in ``providers.tts_extra_voices``: KokoroTTS answers in MP3 whatever the
  format asked (§4.2 [3P]; decoded, at some CPU cost per reply), Ultra is REST only, and
  whether the others stream ``linear16`` is not documented, so they would fail on the
  first call rather than at the API;
* a voice of the TTS in use: OpenAI's built-in voices, an installed espeak-ng voice, the
  bundled piper voice.

The first two are *portable*: a TTS that cannot speak a Telnyx voice (OpenAI, the offline
ones) speaks them with its own default voice, so a configuration written for production
also runs in the offline demo. Anything else is :class:`UnknownVoice`, whose message names
the accepted forms and never repeats the value.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ProvidersConfig

NATURAL = "Telnyx.Natural.allison"
NATURAL_HD = "Telnyx.NaturalHD.astra"
ALIASES = {"natural": NATURAL, "natural_hd": NATURAL_HD}
TELNYX_FORMS = "natural, natural_hd, Telnyx.Natural.<voice> or Telnyx.NaturalHD.<voice> (e.g. Telnyx.NaturalHD.astra)"

_TELNYX_PCM = re.compile(r"Telnyx\.(?:Natural|NaturalHD)\.[A-Za-z0-9_-]{1,64}")
_VOICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# The openai package's ``audio.speech`` voices (types/audio/speech_create_params.py).
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
                           "fable", "onyx", "nova"})
OPENAI_DEFAULT = "alloy"
PIPER_VOICE = "en_US-joe-medium"

# Call Control ``speak`` (voicemail): ``<Provider>.<Model>.<VoiceId>`` or ``<Provider>.<VoiceId>``
# (``Azure.en-US-AvaNeural``, ``xAI.eve``), or the legacy ``male``/``female`` (§1.4).
_SPEAK_VOICE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,31}(?:\.[A-Za-z0-9_-]{1,64}){1,2}")
SPEAK_FORMS = ("natural, natural_hd, <Provider>.<Model>.<VoiceId> (e.g. Telnyx.NaturalHD.astra, "
               "AWS.Polly.Joanna-Neural), male or female")


class UnknownVoice(ValueError):
    """A voice this server's TTS does not take; the message names what it takes."""


@dataclass(frozen=True, slots=True)
class Extras:
    """The operator's ``tts_extra_voices``: exact names, and prefixes written ``AWS.Polly.*``."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Extras:
        entries = tuple(entries)
        return cls(frozenset(e for e in entries if not e.endswith("*")),
                   tuple(e[:-1] for e in entries if e.endswith("*")))

    def __contains__(self, voice: object) -> bool:
        if not isinstance(voice, str):
            return False
        if voice in self.names:
            return True
        return any(voice.startswith(prefix) and _VOICE_ID.fullmatch(voice[len(prefix):]) for prefix in self.prefixes)

    def describe(self) -> str:
        return ", ".join(sorted(self.names) + [f"{p}<voice>" for p in self.prefixes])


def telnyx_voice(voice: str, extras: Extras = Extras()) -> str | None:
    """The Telnyx voice id ``voice`` means (aliases resolved), or ``None`` if it is not one."""
    alias = ALIASES.get(voice)
    if alias is not None:
        return alias
    if _TELNYX_PCM.fullmatch(voice) or voice in extras:
        return voice
    return None


@dataclass(frozen=True, slots=True)
class VoiceCatalogue:
    """What one TTS accepts as an agent voice, and the voice it speaks each with."""

    tts: str
    own: frozenset[str] = frozenset()
    """The TTS's own voice names, used as written."""
    own_forms: str = ""
    default: str | None = None
    """What a portable (Telnyx) voice is spoken with; ``None``: the Telnyx id itself."""
    extras: Extras = Extras()

    def resolve(self, voice: str) -> str:
        """The voice to ask the TTS for; :class:`UnknownVoice` when it does not take ``voice``."""
        if voice in self.own:
            return voice
        telnyx = telnyx_voice(voice, self.extras)
        if telnyx is None:
            raise UnknownVoice(self.describe())
        return telnyx if self.default is None else self.default

    def speak_as(self, voice: str) -> str:
        """For the TTS itself: ``voice`` resolved, or its default for one it would refuse."""
        try:
            return self.resolve(voice)
        except UnknownVoice:
            return self.default if self.default is not None else voice

    def describe(self) -> str:
        forms = TELNYX_FORMS
        if self.extras.names or self.extras.prefixes:
            forms += ", " + self.extras.describe()
        if self.default is None:
            return f"unknown voice: this server's TTS ({self.tts}) takes {forms}"
        return (f"unknown voice: this server's TTS ({self.tts}) takes {self.own_forms}, "
                f"or {forms} (spoken with {self.default})")


def telnyx_catalogue(extras: Extras = Extras()) -> VoiceCatalogue:
    return VoiceCatalogue("telnyx", extras=extras)


def openai_catalogue(extras: Extras = Extras()) -> VoiceCatalogue:
    own = OPENAI_VOICES | extras.names
    return VoiceCatalogue("openai", own=own, own_forms="one of " + ", ".join(sorted(own)), default=OPENAI_DEFAULT,
                          extras=Extras(prefixes=extras.prefixes))


def piper_catalogue(extras: Extras = Extras()) -> VoiceCatalogue:
    return VoiceCatalogue("piper", own=frozenset({PIPER_VOICE}), own_forms=PIPER_VOICE, default=PIPER_VOICE,
                          extras=extras)


def espeak_catalogue(default: str, binary: str = "espeak-ng", extras: Extras = Extras()) -> VoiceCatalogue:
    own = espeak_voices(binary) | {default}
    return VoiceCatalogue("espeak", own=own, own_forms="an installed espeak-ng voice (espeak-ng --voices, e.g. en-us)",
                          default=default, extras=extras)


@functools.lru_cache(maxsize=4)
def espeak_voices(binary: str = "espeak-ng") -> frozenset[str]:
    """The language names ``espeak-ng -v`` takes here (``en-us``, ``en-gb-x-rp``, ...); empty without it.

    Read once per process (a subprocess of a few milliseconds), at start-up where possible."""
    try:
        listing = subprocess.run((binary, "--voices"), capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        # Pty Language Age/Gender VoiceName File [Other Languages]
        if len(fields) >= 5:
            names.add(fields[1])
    return frozenset(names)


def catalogue_for(config: ProvidersConfig) -> VoiceCatalogue:
    """The catalogue of the TTS these settings choose."""
    extras = Extras.parse(config.tts_extra_voices)
    if config.tts == "openai":
        return openai_catalogue(extras)
    if config.tts == "piper":
        return piper_catalogue(extras)
    if config.tts == "espeak":
        return espeak_catalogue(config.espeak_voice, extras=extras)
    return telnyx_catalogue(extras)


def speak_voice(voice: str) -> str:
    """A voice for Call Control ``speak`` (voicemail messages): aliases resolved, any documented
    form kept; :class:`UnknownVoice` otherwise."""
    alias = ALIASES.get(voice)
    if alias is not None:
        return alias
    if voice in ("male", "female") or _SPEAK_VOICE.fullmatch(voice):
        return voice
    raise UnknownVoice(f"unknown voice: takes {SPEAK_FORMS}")
