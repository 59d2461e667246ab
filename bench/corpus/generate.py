"""Regenerate the call corpus: ``python -m bench.corpus.generate [--out DIR] [--only NAME ...]``.

Every call in :data:`CALLS` becomes ``<out>/<name>/script.json`` (the format in
:mod:`bench.corpus.model`) plus one 8 kHz mono μ-law WAV per caller utterance,
and ``noise.wav`` for the noisy calls. Caller speech comes from espeak-ng, goes
through sox (``gain -3 highpass 300 lowpass 3400`` down to 8 kHz, no dither),
and everything after that (trimming, pauses, levels, noise, μ-law, the WAV
header) is done here in pure Python with fixed seeds, so the same espeak-ng and
sox versions give byte-identical files. Each call draws from its own seed, so
``--only`` regenerates a call exactly as a full run would.

Labels: an utterance's voiced span (``speech_start_s``/``speech_end_s``) runs
from the first to the last sample above -40 dB of its peak; around it are
20-60 ms of the synthesiser's own near-silence (0.25-0.35 s of background noise
in the noisy calls). Sentences of one utterance are synthesised separately and
joined by 120-220 ms, so the only gaps of 300 ms or more inside a voiced span
are the labelled ``pauses``.

Noisy calls: the speech is mixed with one loop of noise (``noise.wav``, 8 s),
each utterance continuing the loop where the previous one left off, so the
noise under every sample is known and the tests can subtract it.

Needs ``apt-get install espeak-ng sox``. About 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus.model import CATEGORIES, CORPUS_DIR
from engine import _audioop as audioop

__all__ = ["CALLS", "ToolMissing", "generate", "main", "require_tools", "run_cli", "ulaw_wav", "write_calls"]

RATE = 8000
SEED = 20250601
TRIM_DB = -40.0
LEAD_S = (0.02, 0.06)  # clean lead-in / lead-out around the voiced span
NOISE_LEAD_S = (0.25, 0.35)  # noise alone before and after the voiced span
SENTENCE_GAP_S = (0.10, 0.18)  # between two sentences of one utterance
LEVEL_DBFS = (-22.0, -18.0)  # active speech RMS of a caller
LEVEL_JITTER_DB = 1.0  # per utterance, around the caller's level
PEAK_LIMIT = 0.7 * 32767  # about -3 dBFS: room for the noise, no clipping
NOISE_WAV_S = 8.0
NOISE_FADE_S = 0.25  # the noise.wav loop seam is cross-faded over this
BACKCHANNEL_S = (0.17, 0.33)  # voiced length a backchannel is sped up to
BEEP_HZ, BEEP_S, BEEP_GAP_S = 1000.0, 0.4, 0.6
SOX_CHAIN = ("gain", "-3", "highpass", "300", "lowpass", "3400")


class ToolMissing(RuntimeError):
    """espeak-ng or sox is not installed."""


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise ToolMissing(
            f"generating the call corpus needs {' and '.join(missing)} (not found on PATH): "
            "apt-get install espeak-ng sox"
        )


# --------------------------------------------------------------------------- call specs


@dataclass(frozen=True)
class Say:
    """A caller utterance: text parts, with floats between them for labelled pauses (s)."""

    parts: tuple[str | float, ...]
    after: str = "agent_done"
    delay_s: float | None = None  # None: drawn from the call's rng
    expect: str = "reply"
    speak: str = ""  # what espeak-ng reads instead of the text (backchannel phonemes)
    backchannel: bool = False  # sped up to a 170-330 ms voiced length


@dataclass(frozen=True)
class Dtmf:
    digits: str
    after: str = "agent_done"
    delay_s: float | None = None
    interval_s: float = 0.3
    expect: str = "reply"


@dataclass(frozen=True)
class Wait:
    duration_s: float
    after: str = "previous"


@dataclass(frozen=True)
class Hangup:
    after: str = "agent_done"
    delay_s: float = 1.0


@dataclass(frozen=True)
class Noise:
    kind: str  # babble | street | hum
    snr_db: float
    hum_hz: float = 0.0


@dataclass(frozen=True)
class Call:
    name: str
    category: str
    voice: str
    speed: int
    summary: str
    steps: tuple[Say | Dtmf | Wait | Hangup, ...]
    answer: str = "human"
    noise: Noise | None = None
    beep: bool = False  # voicemail: a 1 kHz beep ends the (single) utterance


def say(*parts: str | float, **kw: object) -> Say:
    return Say(parts=parts, **kw)  # type: ignore[arg-type]


def hello(text: str = "Hello?") -> Say:
    """The callee speaks first, shortly after the media starts."""
    return Say(parts=(text,), after="call_start")


def backchannel(text: str, delay_s: float) -> Say:
    speak = {"mm-hmm": "[[m'hm]]"}.get(text, "")
    return Say(parts=(text,), after="agent_start", delay_s=delay_s, expect="no_interrupt", speak=speak,
               backchannel=True)


def barge(text: str, delay_s: float) -> Say:
    return Say(parts=(text,), after="agent_start", delay_s=delay_s, expect="barge_in")


BYE = Hangup()

CALLS: tuple[Call, ...] = (
    # ---------------------------------------------------------------- plain
    Call("plain-01-order-status", "plain", "en-us", 165, "A customer chasing an order that has not shipped.", (
        say("Hi, yes. I'm calling about an order I placed last week, it still hasn't shipped."),
        say("The order number is four seven two nine one eight."),
        say("Okay, great. Thanks for checking, bye."),
        BYE)),
    Call("plain-02-appointment", "plain", "en-gb", 170, "A patient moving a dental appointment.", (
        hello(),
        say("Yes, speaking. Is this about my dental appointment on Thursday?"),
        say("Could we move it to Friday morning instead?"),
        say("Ten thirty works for me. Thank you."),
        BYE)),
    Call("plain-03-billing", "plain", "en-us+f3", 180, "A customer disputing a double charge.", (
        say("Hi. I was charged twice on my last bill and I'd like a refund for the second charge."),
        say("It was forty nine ninety nine, on the twelfth of March."),
        say("Yes please, send the confirmation to my email."),
        BYE)),
    Call("plain-04-delivery", "plain", "en-gb-x-rp", 155, "A customer arranging a delivery slot.", (
        hello("Good afternoon, who's calling?"),
        say("Oh right, the delivery. I'll be home after three o'clock today."),
        BYE)),
    Call("plain-05-reservation", "plain", "en-us+m3", 190, "A diner booking a table.", (
        say("Hi, I'd like to book a table for four on Saturday evening."),
        say("Around seven thirty, if you have anything."),
        say("The name is Patel. And could we sit outside if the weather is nice?"),
        say("Perfect, thank you so much."),
        BYE)),
    # ---------------------------------------------------------------- pauses
    Call("pauses-01-order-number", "pauses", "en-us", 160,
         "A caller who stops mid-sentence to look up numbers; the agent must wait through the pauses.", (
        say("Hi, I need to check on a parcel. The order number is", 0.55, "four seven two, nine one eight."),
        say("I think it went out on", 0.45, "Tuesday? No, sorry,", 0.35, "Wednesday of last week."),
        say("Okay, thanks, that helps."),
        BYE)),
    Call("pauses-02-address", "pauses", "en-gb", 175,
         "A caller dictating a new address with hesitations.", (
        hello(),
        say("Yes, I moved last month. The new address is", 0.6, "twenty one", 0.4, "Station Road."),
        say("And the postcode is", 0.65, "S W one A, two B B."),
        say("That's all, thanks very much."),
        BYE)),
    Call("pauses-03-card", "pauses", "en-us+f3", 150,
         "A caller fetching a card and a date while talking.", (
        say("Sure, let me just find my card", 0.7, "okay, it ends in four four one two."),
        say("The appointment was for", 0.5, "the ninth, I think, at two."),
        say("Great, goodbye."),
        BYE)),
    # ---------------------------------------------------------------- barge-in, early
    Call("barge-early-01-cancel", "barge_in_early", "en-us+m3", 170,
         "A caller who cuts the retention pitch short right after it starts.", (
        say("Hi, I'm calling to cancel my subscription."),
        barge("Sorry, no, I don't want a discount, I just want to cancel it today.", 0.4),
        say("Yes, please confirm it by email."),
        BYE)),
    Call("barge-early-02-parcel", "barge_in_early", "en-gb-x-rp", 185,
         "The callee interrupts the agent's introduction.", (
        hello("Hello, who is this?"),
        barge("Hang on, is this about the parcel? I already rescheduled it yesterday.", 0.35),
        say("Okay, thank you. Goodbye."),
        BYE)),
    Call("barge-early-03-address", "barge_in_early", "en-us+f2", 160,
         "A caller who adds the order number before the agent gets going.", (
        say("Hello, I need to change the delivery address on my order."),
        barge("Wait, before you go on, it's for order number five five eight two.", 0.55),
        say("It should go to my office instead, forty Main Street."),
        BYE)),
    # ---------------------------------------------------------------- barge-in, late
    Call("barge-late-01-balance", "barge_in_late", "en-gb", 165,
         "A caller who interrupts a long balance explanation.", (
        say("Hi there, can you tell me what my current balance is?"),
        barge("Sorry to interrupt, but I only need the amount due this month.", 2.0),
        say("Great, thanks, that's all I needed."),
        BYE)),
    Call("barge-late-02-driving", "barge_in_late", "en-us", 180,
         "The callee is driving and cuts the agent off to ask for a call back.", (
        hello(),
        barge("Actually, I'm driving right now. Could you call me back in an hour?", 1.8),
        Hangup(delay_s=0.5))),
    Call("barge-late-03-slots", "barge_in_late", "en-us+f3", 155,
         "A caller who picks a slot while the agent is still listing them.", (
        say("Which time slots do you have next week?"),
        barge("Thursday afternoon would be perfect, let's do that one.", 2.3),
        say("Yes, three o'clock. Thank you."),
        BYE)),
    # ---------------------------------------------------------------- backchannels
    Call("backchannel-01-plans", "backchannel", "en-us", 170,
         "A caller who says uh-huh and mm-hmm while the agent explains; none of it is a turn.", (
        say("Can you explain the different plans you offer?"),
        backchannel("uh-huh", 1.2),
        say("Which one is the cheapest?"),
        backchannel("mm-hmm", 1.0),
        say("Okay, I'll think about it. Thanks, bye."),
        BYE)),
    Call("backchannel-02-visit", "backchannel", "en-gb", 160,
         "A callee acknowledging an appointment reminder with yeah and okay.", (
        hello(),
        backchannel("yeah", 1.5),
        say("Sounds good. What do I need to bring?"),
        backchannel("okay", 0.9),
        say("Perfect, see you then."),
        BYE)),
    Call("backchannel-03-returns", "backchannel", "en-us+f3", 185,
         "A caller following the returns process with mm-hmm and uh-huh.", (
        say("Hi, how does the return process work?"),
        backchannel("mm-hmm", 1.8),
        say("And how long does the refund take?"),
        backchannel("uh-huh", 0.8),
        say("Great, thank you."),
        BYE)),
    # ---------------------------------------------------------------- noise
    Call("noise-babble-20db", "noise", "en-gb-x-rp", 170, "A caller in a busy cafe.", (
        say("Hi, I'm calling about the table I booked for tonight."),
        say("Can we make it six people instead of four?"),
        say("Brilliant, thanks a lot."),
        BYE), noise=Noise("babble", 20)),
    Call("noise-babble-10db", "noise", "en-us", 160, "A caller in a crowded office.", (
        hello(),
        say("Yes, this is Jordan. Is this about the invoice I sent?"),
        say("The invoice number is three three one seven."),
        say("Okay, I'll wait for the email then."),
        BYE), noise=Noise("babble", 10)),
    Call("noise-street-20db", "noise", "en-us+m3", 180, "A caller walking down a street.", (
        say("Hi, I missed a delivery this morning and I'd like to rebook it."),
        say("Tomorrow afternoon would be best."),
        say("Thanks, bye."),
        BYE), noise=Noise("street", 20)),
    Call("noise-street-10db", "noise", "en-gb", 165, "A caller at a busy junction.", (
        hello(),
        say("Sorry, it's loud here. Yes, I booked the car service for Monday."),
        say("Can you move it to Wednesday morning?"),
        say("Great, see you Wednesday."),
        BYE), noise=Noise("street", 10)),
    Call("noise-hum-20db-60hz", "noise", "en-us+f3", 175, "A caller on a line with 60 Hz mains hum.", (
        say("Hello, I'm calling to update the card on my account."),
        say("It's the same card, it just has a new expiry date."),
        say("Thank you, goodbye."),
        BYE), noise=Noise("hum", 20, hum_hz=60.0)),
    Call("noise-hum-10db-50hz", "noise", "en-gb-x-rp", 150, "A caller on a line with strong 50 Hz mains hum.", (
        hello(),
        say("Yes, I'd like to know when my prescription will be ready."),
        say("The name is Margaret Hill."),
        say("Lovely, thank you."),
        BYE), noise=Noise("hum", 10, hum_hz=50.0)),
    # ---------------------------------------------------------------- dtmf
    Call("dtmf-01-account", "dtmf", "en-us", 170, "A caller who keys in an account PIN when asked.", (
        say("Hi, I'd like to check my account balance, please."),
        Dtmf("4271#"),
        say("Thanks, that's all I needed."),
        BYE)),
    Call("dtmf-02-zip", "dtmf", "en-gb+f4", 180, "A callee who keys in a postcode digit by digit.", (
        hello(),
        say("Yes, I can confirm my details."),
        Dtmf("80451#"),
        say("That's right. Thank you."),
        BYE)),
    # ---------------------------------------------------------------- silent
    Call("silent-01", "silent", "en-us", 170,
         "The callee answers and says nothing for 8 s, then hangs up.", (
        Wait(8.0, after="call_start"),
        Hangup(after="previous", delay_s=0.0))),
    # ---------------------------------------------------------------- voicemail
    Call("voicemail-01", "voicemail", "en-us+f2", 165,
         "A voicemail greeting that ends with a beep; the agent should leave a message after it.", (
        Say(parts=("Hi, you've reached Dana at Brightside Dental. I can't take your call right now. "
                   "Please leave your name and number after the tone.",),
            after="call_start", delay_s=0.5, expect="none"),
        Wait(6.0),
        Hangup(after="previous", delay_s=0.0)),
        answer="voicemail", beep=True),
)


# --------------------------------------------------------------------------- audio helpers


# PCM here is 16-bit in native byte order, as audioop expects.


def _samples(pcm: bytes) -> array.array:
    return array.array("h", pcm)


def _pcm(samples: array.array) -> bytes:
    return samples.tobytes()


def _to_pcm(values: Sequence[float]) -> bytes:
    return _pcm(array.array("h", (max(-32768, min(32767, round(v))) for v in values)))


def _voiced(pcm: bytes) -> tuple[int, int]:
    """``[first, last + 1)`` sample indices above ``TRIM_DB`` of the peak."""
    samples = _samples(pcm)
    limit = audioop.max(pcm, 2) * 10 ** (TRIM_DB / 20)
    first = next(i for i, s in enumerate(samples) if abs(s) > limit)
    last = next(i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > limit)
    return first, last + 1


def _slice(pcm: bytes, start: int, end: int) -> bytes:
    """Samples ``[start, end)`` of ``pcm``, zero-padded where the range leaves it."""
    n = len(pcm) // 2
    head = bytes(2 * max(0, -start))
    tail = bytes(2 * max(0, end - n))
    return head + pcm[2 * max(0, start) : 2 * min(n, end)] + tail


def _fade(pcm: bytes, fade_in: bool) -> bytes:
    """A linear fade over all of ``pcm``: the synthesiser's edges taper to zero away from the speech,
    so no sample just under the trim threshold sits far from the labelled span."""
    x = _samples(pcm)
    n = len(x)
    for k in range(n):
        x[k] = round(x[k] * ((k + 1) / (n + 1) if fade_in else (n - k) / (n + 1)))
    return _pcm(x)


def _power(pcm: bytes) -> float:
    return float(audioop.rms(pcm, 2)) ** 2 if pcm else 0.0


def ulaw_wav(ulaw: bytes, rate: int = RATE) -> bytes:
    """A RIFF/WAVE file holding μ-law bytes: ``fmt `` (format 7, 18 bytes), ``fact``, ``data``."""
    fmt = struct.pack("<HHIIHHH", 7, 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(ulaw))
    pad = b"\x00" if len(ulaw) % 2 else b""
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(ulaw)) + ulaw + pad)
    return b"RIFF" + struct.pack("<I", len(body)) + body


class Synth:
    """espeak-ng -> sox -> 8 kHz PCM16 through the telephone band, memoised per run."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int], bytes] = {}
        self.calls = 0

    def describe(self, voice: str, speed: int) -> str:
        """The caller voice, as a script's description names it."""
        return f"espeak-ng {voice} at {speed} wpm"

    def __call__(self, text: str, voice: str, speed: int) -> bytes:
        key = (text, voice, speed)
        if key not in self._cache:
            self.calls += 1
            wav = self._run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text])
            pcm = self._run(
                ["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c",
                 "1", "-L", "-", *SOX_CHAIN], stdin=wav)
            if not pcm or audioop.max(pcm, 2) < 100:
                raise RuntimeError(f"espeak-ng -v {voice} -s {speed} produced silence for {text!r}")
            self._cache[key] = pcm if sys.byteorder == "little" else audioop.byteswap(pcm, 2)
        return self._cache[key]

    @staticmethod
    def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
        try:
            return subprocess.run(argv, input=stdin, check=True, capture_output=True).stdout
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{' '.join(argv[:5])} ... failed ({exc.returncode}): {err}") from None


# --------------------------------------------------------------------------- utterances


@dataclass
class Utterance:
    text: str
    pcm: bytes  # PCM16 at RATE, speech only (lead-in/out included)
    start: int  # voiced span, samples
    end: int
    pauses: list[tuple[int, int]] = field(default_factory=list)

    def active(self) -> bytes:
        """The voiced span without the labelled pauses: what speech power is measured over."""
        cuts = [self.start, *(x for p in self.pauses for x in p), self.end]
        return b"".join(self.pcm[2 * a : 2 * b] for a, b in zip(cuts[::2], cuts[1::2], strict=False))


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def _text(parts: Sequence[str | float]) -> str:
    words: list[str] = []
    for part in parts:
        if isinstance(part, str):
            words.append(part)
        elif words:
            words[-1] = words[-1].rstrip(",.;") + "..."
    return " ".join(words)


def _segments(spec: Say, voice: str, speed: int, synth: Synth) -> list[tuple[bytes, float]]:
    """(PCM of one sentence, gap after it in seconds; a negative gap marks a labelled pause)."""
    out: list[tuple[bytes, float]] = []
    for part in spec.parts:
        if isinstance(part, float | int) and not isinstance(part, bool):
            if not out:
                raise ValueError("a pause must follow speech")
            out[-1] = (out[-1][0], -float(part))
            continue
        assert isinstance(part, str)
        for sentence in _SENTENCE_END.split(part.strip()):
            out.append((synth(spec.speak or sentence, voice, speed), 0.0))
    return out


def _backchannel_speed(spec: Say, voice: str, speed: int, synth: Synth) -> int:
    lo, hi = (round(x * RATE) for x in BACKCHANNEL_S)
    for s in range(speed, 451, 15):
        start, end = _voiced(synth(spec.speak or spec.parts[0], voice, s))  # type: ignore[arg-type]
        if lo <= end - start <= hi:
            return s
    raise RuntimeError(f"espeak-ng -v {voice} cannot say {spec.parts[0]!r} in {BACKCHANNEL_S} s")


def render(spec: Say, voice: str, speed: int, rng: random.Random, synth: Synth | None = None) -> Utterance:
    """Synthesise and join an utterance's sentences, with 60 ms of faded natural edge around each.

    ``start``/``end`` and the pauses are provisional here (each sentence trimmed against its own
    peak); :func:`finish` measures the final span against the utterance's peak and crops to it.
    """
    synth = synth or _SYNTH
    if spec.backchannel:
        speed = _backchannel_speed(spec, voice, speed, synth=synth)
    segments = _segments(spec, voice, speed, synth)
    spans = [_voiced(pcm) for pcm, _ in segments]
    gaps = [round((-g if g < 0 else rng.uniform(*SENTENCE_GAP_S)) * RATE) for _, g in segments[:-1]]
    natural = round(LEAD_S[1] * RATE)  # never more of the synthesiser's edge than this

    chunks: list[bytes] = []
    pos = 0
    pauses: list[tuple[int, int]] = []
    for i, ((pcm, g), (s, e)) in enumerate(zip(segments, spans, strict=False)):
        before = natural if i == 0 else gaps[i - 1] - gaps[i - 1] // 2
        edge = min(before, natural)
        chunks.append(bytes(2 * (before - edge)) + _fade(_slice(pcm, s - edge, s), True) + pcm[2 * s : 2 * e])
        pos += before + (e - s)
        after = natural if i == len(segments) - 1 else gaps[i] // 2
        edge = min(after, natural)
        chunks.append(_fade(_slice(pcm, e, e + edge), False) + bytes(2 * (after - edge)))
        if i < len(segments) - 1 and g < 0:
            pauses.append((pos, pos + gaps[i]))
        pos += after
    pcm = b"".join(chunks)
    return Utterance(_text(spec.parts), pcm, natural, pos - natural, pauses)


def _beep(n: int) -> bytes:
    ramp = round(0.005 * RATE)
    values = []
    for k in range(n):
        env = min(1.0, k / ramp, (n - 1 - k) / ramp)
        values.append(env * math.sin(2 * math.pi * BEEP_HZ * k / RATE))
    return _to_pcm([v * 32767 for v in values])


def add_beep(utt: Utterance) -> int:
    """Append a gap and a 1 kHz beep to ``utt``; the gap becomes a pause. Returns the beep's first sample."""
    lead_out = len(utt.pcm) // 2 - utt.end
    gap = round(BEEP_GAP_S * RATE)
    beep = _beep(round(BEEP_S * RATE))
    # The beep's RMS sits 3 dB above the speech, as answering machines do.
    beep = audioop.mul(beep, 2, math.sqrt(2 * _power(utt.active())) / audioop.rms(beep, 2))
    tail = utt.pcm[2 * utt.end : 2 * (utt.end + min(gap // 2, lead_out))]
    utt.pcm = utt.pcm[: 2 * utt.end] + tail + bytes(2 * gap - len(tail)) + beep + bytes(2 * lead_out)
    beep_start = utt.end + gap
    utt.pauses.append((utt.end, beep_start))
    utt.end = beep_start + len(beep) // 2
    return beep_start


def finish(utt: Utterance, dbfs: float, lead_in: int, lead_out: int, hard: bool = False) -> int:
    """Set the level, then label the span as a μ-law decoder will measure it and crop around it.

    The active-speech RMS becomes ``dbfs`` unless the peak would pass ``PEAK_LIMIT``. The voiced
    span is measured (-40 dB of the peak) on the μ-law round trip, and the PCM cut to ``lead_in``
    samples before it and ``lead_out`` after (zero-padded); with ``hard``, only the span is kept and
    the rest is zero (the noise will fill it). Returns the shift applied to positions.
    """
    gain = 32768 * 10 ** (dbfs / 20) / math.sqrt(_power(utt.active()))
    gain = min(gain, PEAK_LIMIT / audioop.max(utt.pcm, 2))
    pcm = audioop.mul(utt.pcm, 2, gain)
    start, end = _voiced(audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2))
    if utt.pauses and not (start < utt.pauses[0][0] and utt.pauses[-1][1] < end):
        raise RuntimeError(f"{utt.text!r}: a pause is not inside the voiced span")
    if hard:
        utt.pcm = bytes(2 * lead_in) + pcm[2 * start : 2 * end] + bytes(2 * lead_out)
    else:
        utt.pcm = _slice(pcm, start - lead_in, end + lead_out)
    shift = lead_in - start
    utt.start, utt.end = lead_in, lead_in + end - start
    utt.pauses = [(a + shift, b + shift) for a, b in utt.pauses]
    return shift


# --------------------------------------------------------------------------- noise

BABBLE_VOICES = ("en-us", "en-gb", "en-us+f2", "en-us+f4", "en-gb+m2", "en-029", "en-gb-scotland", "en-us+m1")
BABBLE_TALKERS = 6
BABBLE_SENTENCES = (
    "Could you pass me the menu, please?",
    "We were thinking about going to the coast this weekend.",
    "I told him the meeting moved to Thursday afternoon.",
    "Honestly, the coffee here is much better than it used to be.",
    "She said the train was running twenty minutes late again.",
    "Did you see the match last night? It was unbelievable.",
    "Let's split the bill, I only had the soup.",
    "The new manager starts on Monday, apparently.",
    "My sister just moved into a flat across town.",
    "I can't remember where I parked the car this morning.",
    "Are you coming to the party on Saturday or not?",
    "They finally fixed the lift in our building.",
)


def _one_pole(values: list[float], cutoff_hz: float, highpass: bool = False) -> list[float]:
    a = math.exp(-2 * math.pi * cutoff_hz / RATE)
    out, y = [], 0.0
    for x in values:
        y = (1 - a) * x + a * y
        out.append(x - y if highpass else y)
    return out


def _normalised(values: list[float]) -> bytes:
    """Float samples -> PCM16 at an RMS of 3000 (the caller scales it to the SNR)."""
    rms = math.sqrt(sum(v * v for v in values) / len(values))
    return _to_pcm([v * 3000 / rms for v in values])


def babble(n: int, rng: random.Random) -> bytes:
    """Several quiet espeak talkers, each sentence played backwards, over a faint room tone."""
    total = bytes(2 * n)
    for _ in range(BABBLE_TALKERS):
        voice, speed = rng.choice(BABBLE_VOICES), rng.randrange(150, 200, 10)
        order = list(BABBLE_SENTENCES)
        rng.shuffle(order)
        skip = rng.randrange(0, 3 * RATE)  # each talker joins mid-stream
        stream: list[bytes] = []
        length = 0
        i = 0
        while length < n + skip:
            pcm = _SYNTH(order[i % len(order)], voice, speed)
            s, e = _voiced(pcm)
            rev = _samples(pcm[2 * s : 2 * e])
            rev.reverse()
            rev_pcm = _pcm(rev)
            rev_pcm = audioop.mul(rev_pcm, 2, 1200 * rng.uniform(0.6, 1.0) / audioop.rms(rev_pcm, 2))
            gap = bytes(2 * round(rng.uniform(0.05, 0.4) * RATE))
            stream += [rev_pcm, gap]
            length += (len(rev_pcm) + len(gap)) // 2
            i += 1
        total = audioop.add(total, b"".join(stream)[2 * skip : 2 * (skip + n)], 2)
    room = _to_pcm(_one_pole([rng.gauss(0, 1) * 120 for _ in range(n)], 1500))
    return audioop.add(total, room, 2)


def street(n: int, rng: random.Random) -> bytes:
    """Low-passed pink and brown noise, swelling with passing cars, with the odd horn."""
    b0 = b1 = b2 = brown = 0.0
    values = []
    for _ in range(n):
        w = rng.gauss(0, 1)
        b0 = 0.99765 * b0 + w * 0.0990460
        b1 = 0.96300 * b1 + w * 0.2965164
        b2 = 0.57000 * b2 + w * 1.0526913
        brown = 0.995 * brown + 0.1 * w
        values.append(b0 + b1 + b2 + w * 0.1848 + 2.0 * brown)
    values = _one_pole(_one_pole(values, 900), 120, highpass=True)
    rms = math.sqrt(sum(v * v for v in values) / n)
    # Passing cars: +6..+10 dB swells every 3.5-5.5 s.
    t = rng.uniform(0.5, 3.0)
    while t < n / RATE:
        centre, sigma = t, rng.uniform(0.5, 1.0)
        boost = 10 ** (rng.uniform(6, 10) / 20) - 1
        lo, hi = max(0, round((centre - 4 * sigma) * RATE)), min(n, round((centre + 4 * sigma) * RATE))
        for k in range(lo, hi):
            values[k] *= 1 + boost * math.exp(-0.5 * ((k / RATE - centre) / sigma) ** 2)
        t += rng.uniform(3.5, 5.5)
    # Horns: 0.25-0.4 s two-tone blasts every 8-14 s, 6 dB over the traffic.
    t = rng.uniform(1.0, 6.0)
    while t < n / RATE - 0.5:
        length = round(rng.uniform(0.25, 0.4) * RATE)
        f1, f2 = rng.uniform(380, 420), rng.uniform(470, 520)
        amp = 2 * rms * 10 ** (6 / 20) / 3
        start = round(t * RATE)
        ramp = round(0.02 * RATE)
        for k in range(length):
            env = min(1.0, k / ramp, (length - 1 - k) / ramp)
            tt = k / RATE
            tone = sum(math.sin(2 * math.pi * h * f * tt) / h for f in (f1, f2) for h in (1, 2, 3))
            values[start + k] += amp * env * tone
        t += rng.uniform(8.0, 14.0)
    return _normalised(values)


def hum(n: int, rng: random.Random, hz: float) -> bytes:
    """Mains hum: ``hz`` and 9 harmonics (odd ones stronger), plus white noise 26 dB down."""
    harmonics = [(k, (1.0 if k % 2 else 0.4) / k, rng.uniform(0, 2 * math.pi)) for k in range(1, 11)]
    hum_rms = math.sqrt(sum(a * a for _, a, _ in harmonics) / 2)
    sigma = hum_rms * 10 ** (-26 / 20)
    w = 2 * math.pi * hz / RATE
    return _normalised([
        sum(a * math.sin(k * w * i + ph) for k, a, ph in harmonics) + rng.gauss(0, sigma) for i in range(n)
    ])


def noise_track(noise: Noise, n: int, rng: random.Random) -> bytes:
    if noise.kind == "babble":
        return babble(n, rng)
    if noise.kind == "street":
        return street(n, rng)
    if noise.kind == "hum":
        return hum(n, rng, noise.hum_hz)
    raise ValueError(f"unknown noise kind {noise.kind!r}")


def loop(pcm: bytes, n: int, fade: int, coherent: bool) -> bytes:
    """``n`` samples that loop without a seam: the last ``fade`` samples are faded into the start."""
    x = _samples(pcm)
    out = array.array("h", x[:n])
    for i in range(fade):
        f = i / fade
        a, b = (f, 1 - f) if coherent else (math.sqrt(f), math.sqrt(1 - f))
        out[i] = max(-32768, min(32767, round(a * x[i] + b * x[n + i])))
    return _pcm(out)


NOISE_NAMES = {
    "babble": f"babble ({BABBLE_TALKERS} espeak talkers, every sentence reversed, over a faint room tone)",
    "street": "street noise (low-passed pink and brown noise, passing cars +6-10 dB, the odd car horn)",
    "hum": "mains hum at {hz:g} Hz with 9 harmonics and a little white noise",
}


# --------------------------------------------------------------------------- calls


_SYNTH = Synth()


def _delay(value: float | None, after: str, rng: random.Random) -> float:
    if value is not None:
        return value
    return round(rng.uniform(0.4, 0.8) if after == "call_start" else rng.uniform(0.3, 0.8), 2)


def _seconds(samples: int) -> float:
    return round(samples / RATE, 4)


def build(call: Call, out: Path, synth: Synth | None = None) -> dict:
    """Write one call into ``out/<name>/``; return a summary row. ``synth`` (default espeak-ng)
    speaks the caller's lines: :mod:`bench.corpus.field` passes piper for its second voice."""
    synth = synth or _SYNTH
    rng = random.Random(f"{SEED}:{call.name}")
    level = rng.uniform(*LEVEL_DBFS)
    lead = NOISE_LEAD_S if call.noise else LEAD_S
    steps: list[dict] = []
    utterances: list[tuple[dict[str, Any], Utterance]] = []
    beep: tuple[float, float] | None = None
    for spec in call.steps:
        if isinstance(spec, Say):
            uid = f"u{len(utterances) + 1}"
            utt = render(spec, call.voice, call.speed, rng, synth)
            beep_at = add_beep(utt) if call.beep else None
            lead_in, lead_out = (round(rng.uniform(*lead) * RATE) for _ in range(2))
            shift = finish(utt, level + rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB), lead_in, lead_out,
                           hard=call.noise is not None)
            _check(call.name, uid, utt)
            if beep_at is not None:
                beep = ((beep_at + shift) / RATE, (beep_at + shift) / RATE + BEEP_S)
            step: dict[str, Any] = {"kind": "say", "id": uid, "text": utt.text, "audio": f"{uid}.wav",
                                    "after": spec.after, "delay_s": _delay(spec.delay_s, spec.after, rng)}
            utterances.append((step, utt))
        elif isinstance(spec, Dtmf):
            step = {"kind": "dtmf", "digits": spec.digits, "after": spec.after,
                    "delay_s": _delay(spec.delay_s, spec.after, rng), "interval_s": spec.interval_s,
                    "expect": spec.expect}
        elif isinstance(spec, Wait):
            step = {"kind": "wait", "after": spec.after, "duration_s": spec.duration_s}
        else:
            step = {"kind": "hangup", "after": spec.after, "delay_s": spec.delay_s}
        steps.append(step)
    say_specs = [s for s in call.steps if isinstance(s, Say)]

    description = call.summary
    if utterances:
        description += f" Caller voice: {synth.describe(call.voice, call.speed)}"
        if any(spec.backchannel for spec in say_specs):
            description += " (backchannels sped up to last 170-330 ms)"
        description += "."
    wavs: dict[str, bytes] = {}
    if call.noise:
        # One loop of noise per call: noise.wav. Each utterance carries that loop, starting where the
        # previous utterance's left off, so the noise under a WAV is known to the sample.
        speech = b"".join(u.active() for _, u in utterances)
        target = math.sqrt(_power(speech) / 10 ** (call.noise.snr_db / 10))
        loop_n, fade = round(NOISE_WAV_S * RATE), round(NOISE_FADE_S * RATE)
        noise = loop(noise_track(call.noise, loop_n + fade, rng), loop_n, fade, call.noise.kind == "hum")
        noise = audioop.mul(noise, 2, target / audioop.rms(noise, 2))
        pos = 0
        for _, utt in utterances:
            n = len(utt.pcm) // 2
            first = pos % loop_n
            under = (noise * (2 + n // loop_n))[2 * first : 2 * (first + n)]
            utt.pcm = audioop.add(utt.pcm, under, 2)
            if audioop.max(utt.pcm, 2) >= 32767:
                raise RuntimeError(f"{call.name}: speech plus noise clips")
            pos += n
        wavs["noise.wav"] = ulaw_wav(audioop.lin2ulaw(noise, 2))
        what = NOISE_NAMES[call.noise.kind].format(hz=call.noise.hum_hz)
        description += (
            f" Background: {what} at {call.noise.snr_db:g} dB SNR (the caller's active speech power against"
            f" the noise's mean power). noise.wav holds {NOISE_WAV_S:g} s of that noise alone, at the same"
            f" level, looping seamlessly: play it instead of silence between utterances. Every uN.wav carries"
            f" the noise from its first sample to its last (about 0.3 s of noise alone before and after the"
            f" voiced span): it is noise.wav looped, starting where the previous utterance's left off (u1 at"
            f" sample 0), so subtracting it leaves the caller's speech alone."
        )
    if beep:
        description += (
            f" u1.wav: the greeting, then a {BEEP_HZ / 1000:g} kHz beep from {beep[0]:.3f} s to {beep[1]:.3f} s"
            f" ({BEEP_S * 1000:.0f} ms); speech_end_s is the end of the beep and the gap before it is"
            f" listed as a pause."
        )

    total = 0.0
    for (step, utt), spec in zip(utterances, say_specs, strict=False):
        ulaw = audioop.lin2ulaw(utt.pcm, 2)
        wavs[step["audio"]] = ulaw_wav(ulaw)
        total += len(ulaw) / RATE
        step["speech_start_s"] = _seconds(utt.start)
        step["speech_end_s"] = _seconds(utt.end)
        if utt.pauses:
            step["pauses"] = [[_seconds(a), _seconds(b)] for a, b in utt.pauses]
        step["expect"] = spec.expect

    script = {"name": call.name, "category": call.category, "answer": call.answer,
              "description": description, "steps": steps}
    target_dir = out / call.name
    tmp = out / f".{call.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    text = json.dumps(script, indent=2, ensure_ascii=False)
    text = re.sub(r"\[\s*(-?[0-9.]+),\s*(-?[0-9.]+)\s*\]", r"[\1, \2]", text)  # pauses on one line
    (tmp / "script.json").write_text(text + "\n", encoding="utf-8")
    for name, data in wavs.items():
        (tmp / name).write_bytes(data)
    if target_dir.exists():
        shutil.rmtree(target_dir)
    tmp.rename(target_dir)
    return {"name": call.name, "category": call.category, "voice": call.voice,
            "utterances": len(utterances), "seconds": round(total, 2)}


def silences(pcm: bytes, start: int, end: int, min_len: int) -> list[tuple[int, int]]:
    """Runs of at least ``min_len`` samples inside ``[start, end)`` all at or under -40 dB of the peak."""
    samples = _samples(pcm)
    limit = audioop.max(pcm, 2) * 10 ** (TRIM_DB / 20)
    runs, run_start = [], None
    for i in range(start, end):
        if abs(samples[i]) <= limit:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            if i - run_start >= min_len:
                runs.append((run_start, i))
            run_start = None
    if run_start is not None and end - run_start >= min_len:
        runs.append((run_start, end))
    return runs


def _check(name: str, uid: str, utt: Utterance) -> None:
    """The labels must match a -40 dB-of-peak measurement of the μ-law speech (before any noise),
    and every silence of 280 ms or more inside the span must be a labelled pause."""
    pcm = audioop.ulaw2lin(audioop.lin2ulaw(utt.pcm, 2), 2)
    start, end = _voiced(pcm)
    if (start, end) != (utt.start, utt.end):
        raise RuntimeError(f"{name} {uid}: labelled {utt.start}-{utt.end}, measured {start}-{end}")
    for a, b in silences(pcm, start, end, round(0.28 * RATE)):
        if not any(a < pe and ps < b for ps, pe in utt.pauses):
            raise RuntimeError(f"{name} {uid}: unlabelled {(b - a) / RATE:.3f} s silence at {a / RATE:.3f} s")


def generate(out: Path = CORPUS_DIR, only: Sequence[str] = (), quiet: bool = False) -> list[dict]:
    """Write the corpus (or the calls named in ``only``) under ``out``; return one summary row per call."""
    return write_calls(CALLS, CATEGORIES, out, only, quiet)


def write_calls(calls: Sequence[Call], categories: Sequence[str], out: Path, only: Sequence[str] = (),
                quiet: bool = False, synth_for: Callable[[Call], Synth | None] = lambda call: None) -> list[dict]:
    """Write ``calls`` (or those named in ``only``) under ``out``, each spoken by ``synth_for(call)``
    (None: espeak-ng); one summary row per call. A full run drops calls no longer defined."""
    known = {c.name for c in calls}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(f"unknown call(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    require_tools()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for call in calls:
        if only and call.name not in only:
            continue
        if call.category not in categories:
            raise ValueError(f"{call.name}: unknown category {call.category}")
        rows.append(build(call, out, synth_for(call)))
        if not quiet:
            r = rows[-1]
            print(f"{r['name']:<24} {r['category']:<17} {r['voice']:<15} {r['utterances']:>2} utt"
                  f" {r['seconds']:6.2f} s", flush=True)
    if not only:  # a full run drops calls that are no longer defined
        for d in sorted(out.iterdir()):
            if d.is_dir() and d.name not in known and (d / "script.json").is_file():
                shutil.rmtree(d)
    return rows


def run_cli(argv: Sequence[str] | None, *, prog: str, description: str, out: Path,
            generate_calls: Callable[[Path, Sequence[str]], list[dict]]) -> int:
    """``--out DIR`` and ``--only NAME`` for a call generator; prints what it wrote."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", type=Path, default=out, help=f"output directory (default {out})")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="regenerate only this call (repeatable)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        rows = generate_calls(args.out, args.only)
    except (ToolMissing, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for r in rows for f in (args.out / r["name"]).iterdir())
    print(f"{len(rows)} calls, {sum(r['seconds'] for r in rows):.1f} s of caller audio, {size / 1e6:.2f} MB,"
          f" {_SYNTH.calls} espeak-ng runs, {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m bench.corpus.generate", out=CORPUS_DIR, generate_calls=generate,
                   description="Regenerate the call corpus (espeak-ng and sox) reproducibly.")


if __name__ == "__main__":
    sys.exit(main())
