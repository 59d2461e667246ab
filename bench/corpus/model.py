"""The corpus script format, shared by the generator, the simulated callee and the STT emulator.

A call lives in ``bench/corpus/calls/<name>/`` as ``script.json`` plus one WAV per caller
utterance (8 kHz, mono, μ-law). The script says what the callee does and when, relative to
what it hears from the agent, and what the bench should expect.

``script.json``::

    {
      "name": "qa-plain-01",
      "category": "plain",            # see CATEGORIES
      "answer": "human",              # human | busy | no_answer | voicemail
      "description": "…",
      "steps": [
        {"kind": "say", "id": "u1", "text": "Hi, I'd like to check my order.", "audio": "u1.wav",
         "after": "agent_done", "delay_s": 0.4,
         "speech_start_s": 0.0, "speech_end_s": 1.62,     # voiced span inside the WAV
         "pauses": [[0.8, 1.3]],                          # mid-utterance pauses (not turn ends)
         "expect": "reply"},                              # reply | barge_in | no_interrupt | none
        {"kind": "dtmf", "digits": "42#", "after": "agent_done", "delay_s": 0.5, "interval_s": 0.3,
         "expect": "reply"},
        {"kind": "wait", "duration_s": 5.0},
        {"kind": "hangup", "after": "agent_done", "delay_s": 1.0}
      ]
    }

``after`` anchors a step: ``call_start`` (media stream started), ``agent_start`` (the
agent's next reply begins to arrive: barge-ins and backchannels), ``agent_done`` (the
agent's reply has stopped arriving for a moment), ``previous`` (right after the previous
step). ``delay_s`` counts from that anchor. Between steps the callee sends silence (or
the call's background noise, when the WAV files carry it), as a phone line does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CORPUS_DIR = Path(__file__).parent / "calls"
FIELD_DIR = Path(__file__).parent / "field"
"""Callers the corpus does not have (:mod:`bench.corpus.field`): new lines, two voices, three rates."""

CATEGORIES = (
    "plain", "pauses", "barge_in_early", "barge_in_late", "backchannel",
    "noise", "dtmf", "silent", "voicemail",
)
FIELD_CATEGORIES = tuple(f"field_{voice}_{wpm}" for voice in ("espeak", "piper") for wpm in (140, 175, 220))
Anchor = Literal["call_start", "agent_start", "agent_done", "previous"]
Expect = Literal["reply", "barge_in", "no_interrupt", "none"]


class CorpusError(ValueError):
    """A script or its audio is missing or malformed."""


@dataclass(frozen=True)
class Step:
    kind: Literal["say", "dtmf", "wait", "hangup"]
    after: Anchor = "previous"
    delay_s: float = 0.0
    id: str = ""
    text: str = ""
    audio: str = ""
    speech_start_s: float = 0.0
    speech_end_s: float = 0.0
    pauses: tuple[tuple[float, float], ...] = ()
    expect: Expect = "none"
    digits: str = ""
    interval_s: float = 0.3
    duration_s: float = 0.0


@dataclass(frozen=True)
class CallScript:
    name: str
    category: str
    answer: Literal["human", "busy", "no_answer", "voicemail"]
    steps: tuple[Step, ...]
    description: str = ""
    directory: Path = field(default=CORPUS_DIR)

    def audio_path(self, step: Step) -> Path:
        return self.directory / step.audio

    def utterances(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "say"]


_STEP_KINDS = {"say", "dtmf", "wait", "hangup"}
_ANCHORS = {"call_start", "agent_start", "agent_done", "previous"}
_EXPECTS = {"reply", "barge_in", "no_interrupt", "none"}


def _step(raw: dict, where: str) -> Step:
    kind = raw.get("kind")
    if kind not in _STEP_KINDS:
        raise CorpusError(f"{where}: unknown step kind {kind!r}")
    if raw.get("after", "previous") not in _ANCHORS:
        raise CorpusError(f"{where}: unknown anchor {raw.get('after')!r}")
    if raw.get("expect", "none") not in _EXPECTS:
        raise CorpusError(f"{where}: unknown expectation {raw.get('expect')!r}")
    if kind == "say" and not (raw.get("audio") and raw.get("text")):
        raise CorpusError(f"{where}: a say step needs text and audio")
    if kind == "dtmf" and not raw.get("digits"):
        raise CorpusError(f"{where}: a dtmf step needs digits")
    fields = dict(raw)
    fields["pauses"] = tuple(tuple(p) for p in raw.get("pauses", ()))
    try:
        return Step(**fields)
    except TypeError as exc:
        raise CorpusError(f"{where}: {exc}") from None


def load_script(directory: Path) -> CallScript:
    path = directory / "script.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: {exc}") from None
    steps = tuple(_step(s, f"{path} step {i}") for i, s in enumerate(raw.get("steps", [])))
    if raw.get("category") not in CATEGORIES + FIELD_CATEGORIES:
        raise CorpusError(f"{path}: unknown category {raw.get('category')!r}")
    script = CallScript(
        name=raw.get("name", directory.name), category=raw["category"], answer=raw.get("answer", "human"),
        steps=steps, description=raw.get("description", ""), directory=directory,
    )
    for step in script.utterances():
        if not script.audio_path(step).is_file():
            raise CorpusError(f"{path}: missing audio {step.audio}")
    return script


def load_corpus(root: Path = CORPUS_DIR) -> list[CallScript]:
    """Every call under ``root``, sorted by name."""
    if not root.is_dir():
        raise CorpusError(f"no calls at {root}; generate them with `python -m bench.corpus.generate`"
                          " (the corpus) or `python -m bench.corpus.field` (the field callers)")
    return [load_script(d) for d in sorted(root.iterdir()) if (d / "script.json").is_file()]
