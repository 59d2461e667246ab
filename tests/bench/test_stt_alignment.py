"""The STT emulator's word timing (bench/emulators/alignment.py): at a caller's real pause the
transcript has exactly the words said before it, however unevenly the words fill the audio."""

from __future__ import annotations

from bench.emulators.alignment import word_breaks
from bench.emulators.stt import StreamRecogniser, UtteranceRecogniser
from bench.signals import silence, voiced, white_noise
from engine import _audioop as audioop


def levels(pcm: bytes) -> list[int]:
    return [audioop.rms(pcm[i:i + 320], 2) for i in range(0, len(pcm) - 319, 320)]


def heard_at_pauses(line: str, parts: list[bytes]) -> list[str]:
    """The finals a client gets finalizing after each part (the caller's pauses), as the engine
    does at its tentative ends."""
    recogniser = UtteranceRecogniser({line: b"".join(parts)})
    stream = StreamRecogniser(recogniser, 8000)
    said = []
    for part in parts:
        stream.push(part)
        said.append(stream.finalize().text)
    return said


def test_a_long_first_word_and_its_pause_give_that_word_alone():
    # "Hello." drawn out over 0.6 s, then 300 ms of silence, then the rest: spread evenly over
    # the speech, a hearing up to the pause would say "Hello. I need" (3 of 11 words in 30 % of
    # it); a recogniser that heard it says "Hello." and nothing it has not heard yet.
    line = "Hello. I need to change the delivery address on my order."
    parts = [voiced(0.6, seed=1), silence(0.3), voiced(1.4, f0=150.0, seed=2), silence(0.3)]
    assert heard_at_pauses(line, parts) == ["Hello.", "", "I need to change the delivery address on my order.", ""]


def test_an_unpunctuated_line_breaks_at_its_pause_on_the_nearest_word():
    # No punctuation to go by: the pause is placed at the word boundary the words' lengths put
    # nearest to it ("my apartment" ends ~52 % into the words, the pause ~50 % into the speech).
    line = "so the heating in my apartment has been off since last night"
    first, rest = voiced(1.5, seed=3), voiced(1.5, f0=140.0, seed=4)
    parts = [first, silence(0.25), rest, silence(0.2)]
    said = [t for t in heard_at_pauses(line, parts) if t]
    assert said == ["so the heating in my apartment", "has been off since last night"]


def test_punctuation_draws_a_long_pause_to_its_boundary():
    # The comma's boundary is two words from where the lengths would put the pause: a long
    # pause in a punctuated line is the punctuation's.
    words = ["Sorry,", "no,", "I", "really", "do", "not", "want", "a", "discount", "at", "all"]
    pcm = voiced(0.35, seed=5) + voiced(0.3, f0=130.0, seed=6) + silence(0.3) + voiced(2.2, f0=150.0, seed=7)
    (first, last, n), = word_breaks(words, levels(pcm))
    assert words[:n] == ["Sorry,", "no,"]
    assert first * 0.02 == 0.66 and 0.92 <= (last + 1) * 0.02 <= 0.96


def test_short_gaps_and_noisy_lines_have_no_pauses():
    words = ["can", "you", "explain", "the", "plans", "you", "offer"]
    closure = voiced(0.8, seed=8) + silence(0.08) + voiced(0.9, seed=9)  # a stop's closure, 80 ms
    assert word_breaks(words, levels(closure)) == ()
    # Over noise as loud as a tenth of the speech, the quiet stretch is not silence: no pause
    # is claimed, the words are spread over the audio as before.
    speech = closure + silence(0.4) + voiced(0.6, seed=10)
    noisy = audioop.add(speech, white_noise(len(speech) / 16000, level=0.05, seed=11)[: len(speech)], 2)
    assert word_breaks(words, levels(noisy)) == ()


def test_more_pauses_than_boundaries_keep_the_words_in_order():
    words = ["okay", "thanks"]
    pcm = b"".join(voiced(0.3, seed=12 + i) + silence(0.2) for i in range(4))[: -3200] + voiced(0.3, seed=20)
    breaks = word_breaks(words, levels(pcm))
    assert [n for _, _, n in breaks] == [1]
    assert heard_at_pauses(" ".join(words), [pcm]) == ["okay thanks"]
