"""The final pitch contour (:mod:`engine.prosody`) at every pause inside the callers' lines and
at every line end: does the voice tell a comma from a full stop? (issue 13)

Each reply line of the corpus and the field callers runs through the engine's VAD and
endpointer (default settings, as :mod:`bench.corpus.gaps`); at each tentative end the contour
is read from the half second of audio the session holds then. Pauses are placed at the line's
marks as :func:`bench.corpus.gaps.line_pauses` places them, and classed by the mark before
them: ``,`` or ``...`` (the caller goes on: should not read as a fall), ``.?!`` (a sentence
ended mid-line), or unplaced. Line ends are classed by their final mark (a question may rise).

    python -m bench.corpus.contour [--min-ms 150] [--list]
"""

from __future__ import annotations

import argparse
import base64
import re
from collections import Counter
from pathlib import Path

from engine import _audioop as audioop
from engine.config import EndpointingConfig, VadConfig
from engine.conversation.turn_completion import judge_text
from engine.endpointing import Endpointer, EndpointEvent
from engine.prosody import CONTOUR_WINDOW_S, Contour, final_contour
from engine.vad import Talker, make_vad

from ..callee import wav_frames
from .gaps import _MARK_END, _NEAR
from .model import CORPUS_DIR, FIELD_DIR, load_corpus

_CONTINUES = re.compile(r"(,|\.\.\.|…)$")
_RING = int(CONTOUR_WINDOW_S * 8000) * 2


def line_contours(audio: Path, text: str) -> list[tuple[str, int, str | None, Contour]]:
    """(kind, silence ms, words before, contour) for each pause ("pause") and the end ("end")."""
    vad = make_vad(VadConfig(), 8000)
    endpointer = Endpointer(EndpointingConfig(end_of_turn_ms=3000))
    frames = [audioop.ulaw2lin(base64.b64decode(f), 2) for f in wav_frames(audio)] + [b"\x00\x00" * 160] * 200
    heard = b""
    found: list[tuple[str, int, int, Contour]] = []  # kind, voiced frames before, silence ms, contour
    voiced_frames, at_pause = 0, (0, Contour.UNKNOWN)
    for pcm in frames:
        heard = (heard + pcm)[-_RING:]
        voiced = vad.is_speech(pcm, Talker.CALLER)
        last = endpointer.last_voiced_frame
        event = endpointer.process(voiced, False)
        if event is EndpointEvent.TENTATIVE_END:
            at_pause = (voiced_frames, final_contour(heard))
        elif event is EndpointEvent.SPEECH_RESUMED:
            found.append(("pause", at_pause[0], (endpointer.frame_index - 2 - last) * 20, at_pause[1]))
        voiced_frames += voiced
        if event is EndpointEvent.TURN_END:
            found.append(("end", at_pause[0], 0, at_pause[1]))
            break
    words = text.split()
    marks = [(len(" ".join(words[:i + 1])) / len(text), " ".join(words[:i + 1]))
             for i, word in enumerate(words[:-1]) if _MARK_END.search(word)]
    out: list[tuple[str, int, str | None, Contour]] = []
    for kind, before, gap, contour in found:
        if kind == "end":
            out.append((kind, gap, text, contour))
            continue
        share = before / max(1, voiced_frames)
        near = min(marks, key=lambda m: abs(m[0] - share), default=None)
        out.append((kind, gap, near[1] if near is not None and abs(near[0] - share) < _NEAR else None, contour))
    return out


def _class(kind: str, words: str | None) -> str:
    if kind == "end":
        return "line end ?" if words and words.rstrip().endswith("?") else "line end .!"
    if words is None:
        return "mid-line, unplaced"
    return "mid-line , ..." if _CONTINUES.search(words) else "mid-line .?!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-ms", type=int, default=150, help="shortest mid-line pause counted")
    parser.add_argument("--list", action="store_true", help="every pause and line end")
    args = parser.parse_args()
    table: dict[tuple[str, str], Counter[Contour]] = {}
    for root in (CORPUS_DIR, FIELD_DIR):
        for script in load_corpus(root):
            voice = "noise" if script.category == "noise" else "piper" if "piper" in script.description else "espeak"
            for step in script.steps:
                if not (step.kind == "say" and step.expect == "reply" and step.audio):
                    continue
                for kind, gap, words, contour in line_contours(root / script.name / step.audio, step.text):
                    if kind == "pause" and gap < args.min_ms:
                        continue
                    cls = _class(kind, words)
                    for key in ((cls, "all"), (cls, voice)):
                        table.setdefault(key, Counter())[contour] += 1
                    if args.list:
                        bare = re.sub(r"[^\w\s']", "", words or "")
                        print(f"{gap:5d} {contour.value:7s} {judge_text(bare).value:10s} "
                              f"{script.name}/{step.id:3s} {(words or '(unplaced)')[-60:]}")
    print(f"{'where':20s} {'voice':7s} {'n':>4s}" + "".join(f"{c.value:>8s}" for c in Contour))
    for (cls, voice), counts in sorted(table.items()):
        print(f"{cls:20s} {voice:7s} {sum(counts.values()):4d}" + "".join(f"{counts[c]:8d}" for c in Contour))


if __name__ == "__main__":
    main()
