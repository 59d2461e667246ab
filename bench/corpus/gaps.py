"""Silences inside the callers' lines, and the words before them: what an end of turn shorter
than ``end_of_turn_ms`` would answer mid-line (issue 13).

For every reply line of the corpus and the field callers, the engine's own VAD and endpointer
(default settings) run over its audio; each pause after which the caller went on is listed
with its silence as the endpointer counted it (from the last voiced frame to the frame that
resumed the speech) and the words before it. The words are placed by the line's punctuation:
the pause is taken to follow the mark whose share of the line's characters is nearest the
share of voiced frames before the pause (the voices pause at marks); a pause no mark is near
is left unplaced. A recogniser that transcribes what was said would give those words at the
pause, so any pause at least as long as a shorter end of turn, after words the confident end
accepts, would be answered mid-line.

    python -m bench.corpus.gaps [--min-ms 120]
"""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

from engine import _audioop as audioop
from engine.config import EndpointingConfig, VadConfig
from engine.conversation.turn.endpoint import surely_finished
from engine.conversation.turn_completion import Verdict, punctuation_verdict
from engine.endpointing import Endpointer, EndpointEvent
from engine.vad import Talker, make_vad

from ..callee import wav_frames
from .model import CORPUS_DIR, FIELD_DIR, load_corpus

_MARK_END = re.compile(r"[.,?!;:…]$")
_NEAR = 0.12
"""Largest distance, as a share of the line, between a pause and the mark it is placed at."""


def line_pauses(audio: Path, text: str) -> list[tuple[int, str | None]]:
    """(silence in ms, the words before it or None when unplaced) for each pause in one line."""
    vad = make_vad(VadConfig(), 8000)
    endpointer = Endpointer(EndpointingConfig(end_of_turn_ms=3000))
    silence = b"\x00\x00" * 160
    frames = [audioop.ulaw2lin(base64.b64decode(f), 2) for f in wav_frames(audio)] + [silence] * 200
    pauses: list[tuple[int, int]] = []  # (voiced frames before, silence frames)
    voiced_frames = 0
    for pcm in frames:
        voiced = vad.is_speech(pcm, Talker.CALLER)
        last = endpointer.last_voiced_frame
        event = endpointer.process(voiced, False)
        if event is EndpointEvent.SPEECH_RESUMED:
            pauses.append((voiced_frames, endpointer.frame_index - 2 - last))
        voiced_frames += voiced
        if event is EndpointEvent.TURN_END:
            break
    words = text.split()
    marks = [(len(" ".join(words[:i + 1])) / len(text), " ".join(words[:i + 1]))
             for i, word in enumerate(words[:-1]) if _MARK_END.search(word)]
    out: list[tuple[int, str | None]] = []
    for before, gap in pauses:
        share = before / max(1, voiced_frames)
        near = min(marks, key=lambda m: abs(m[0] - share), default=None)
        out.append((gap * 20, near[1] if near is not None and abs(near[0] - share) < _NEAR else None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-ms", type=int, default=120)
    args = parser.parse_args()
    rows = []
    for root in (CORPUS_DIR, FIELD_DIR):
        for script in load_corpus(root):
            said = [step for step in script.steps if step.kind == "say"]
            for step in said:
                if step.expect == "reply" and step.audio:
                    opening = step is said[0]  # (upper bound: an inbound call's greeting may come first)
                    for ms, before in line_pauses(root / script.name / step.audio, step.text):
                        if ms >= args.min_ms:
                            rows.append((ms, f"{script.name}/{step.id}", before, opening))
    print("silence ms  closed sentence  sure (confident end)  line/step  words before the pause")
    for ms, where, before, opening in sorted(rows, key=lambda r: -r[0]):
        closed = before is not None and punctuation_verdict(before) is Verdict.COMPLETE
        sure = before is not None and surely_finished(before, opening=opening)
        flags = f"{'yes' if closed else '-':>15}  {'yes' if sure else '-':>20}"
        print(f"{ms:10d}  {flags}  {where}  {before or '(unplaced)'}")
    print("\npauses at least this long (ms): after a closed sentence / after words the confident end takes")
    for end_ms in range(160, 360, 20):
        closed_n = sum(1 for ms, _, b, _ in rows if ms >= end_ms and b is not None
                       and punctuation_verdict(b) is Verdict.COMPLETE)
        sure_n = sum(1 for ms, _, b, opening in rows
                     if ms >= end_ms and b is not None and surely_finished(b, opening=opening))
        print(f"{end_ms:5d}: {closed_n:3d} / {sure_n}")


if __name__ == "__main__":
    main()
