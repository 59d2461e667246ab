"""The emulators' own pieces: recogniser, script, schema filler, profiles, faults, process entry."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from bench.emulators.llm import example_for_schema, script_reply, tokens
from bench.emulators.profiles import PROFILES, Delays, FaultSwitch, LatencyProfile
from bench.emulators.stt import StreamRecogniser, UtteranceRecogniser
from bench.emulators.tts import Synthesizer, decode_wav, split_sentences
from bench.signals import silence, voiced, white_noise
from engine import _audioop as audioop

from .helpers import FRAME, HELLO, HELLO_PCM, NUMBER, NUMBER_PCM, child_processes, frames, wait_for

ROOT = Path(__file__).resolve().parents[2]


def finals(recogniser: UtteranceRecogniser, pcm: bytes, finalize: bool = True) -> list[tuple[str, bool]]:
    stream = StreamRecogniser(recogniser, 8000)
    results = [r for f in frames(pcm) for r in stream.push(f)]
    if finalize:
        results.append(stream.finalize())
    return [(r.text, r.speech_final) for r in results if r.is_final]


def test_recogniser_separates_a_line_from_a_longer_line_it_prefixes():
    short, long = voiced(0.8, seed=5), voiced(1.6, seed=5)  # same signal: long starts with short
    recogniser = UtteranceRecogniser({"yes": short, "yes and then some more": long})
    assert finals(recogniser, short) == [("yes", False)]
    assert finals(recogniser, long) == [("yes and then some more", False)]
    assert finals(recogniser, short + long) == [("yes yes and then some more", False)]


def test_recogniser_reads_a_repeated_line_twice_and_a_cut_line_partially():
    recogniser = UtteranceRecogniser({HELLO: HELLO_PCM})
    assert finals(recogniser, HELLO_PCM + HELLO_PCM) == [(f"{HELLO} {HELLO}", False)]
    half = HELLO_PCM[: len(HELLO_PCM) // 2 // FRAME * FRAME]
    text = finals(recogniser, half)[0][0]
    assert HELLO.startswith(text) and 2 <= len(text.split()) < len(HELLO.split())


def test_deepgram_like_interims_come_once_a_second_of_the_segments_audio_pauses_included():
    # Deepgram documents no cadence; its example (and live logs) show a result per ~1 s of audio.
    line = HELLO_PCM + silence(0.4) + HELLO_PCM  # one segment: the pause is shorter than endpointing
    assert PROFILES["fast"].stt_interim_every_ms == 1000
    stream = StreamRecogniser(UtteranceRecogniser({HELLO: HELLO_PCM}), 8000, interim_every_ms=1000)
    interims = [(i, r.text) for i, f in enumerate(frames(line)) for r in stream.push(f) if not r.is_final]
    first_voiced = next(i for i, f in enumerate(frames(line)) if audioop.rms(f, 2) >= 300)
    assert [i - first_voiced for i, _ in interims] == [49 + 50 * k for k in range(len(interims))]
    assert len(interims) == (len(frames(line)) - first_voiced) // 50
    assert all(f"{HELLO} {HELLO}".startswith(text) for _, text in interims)


def test_a_line_split_at_a_pause_gives_each_part_its_own_words():
    stream = StreamRecogniser(UtteranceRecogniser({HELLO: HELLO_PCM}), 8000)
    middle = len(HELLO_PCM) // 2 // FRAME * FRAME
    stream.push(HELLO_PCM[:middle])
    first = stream.finalize().text  # the engine finalized at the caller's pause
    stream.push(silence(0.3) + HELLO_PCM[middle:])
    second = stream.finalize().text
    assert first and second and f"{first} {second}" == HELLO


def test_finalizing_at_every_short_pause_gives_each_word_exactly_once():
    # An engine with an early tentative end finalizes every few frames; a real recogniser keeps
    # its context, so the finals together say the line once, without repeats or lost words.
    stream = StreamRecogniser(UtteranceRecogniser({HELLO: HELLO_PCM}), 8000)
    said = []
    for i, frame in enumerate(frames(HELLO_PCM)):
        stream.push(frame)
        if i % 3 == 2:
            said.append(stream.finalize().text)
    said.append(stream.finalize().text)
    assert " ".join(t for t in said if t) == HELLO
    assert sum(1 for t in said if t) >= 3  # (the line really was cut into several finals)


def test_recogniser_matches_noisy_lines_and_ignores_the_noise_between():
    noisy = audioop.add(HELLO_PCM, white_noise(1.2, seed=4), 2)
    recogniser = UtteranceRecogniser([(HELLO, noisy), (NUMBER, NUMBER_PCM)])
    line_noise = white_noise(1.0, seed=8)
    results = finals(recogniser, line_noise + noisy + white_noise(0.7, seed=9), finalize=False)
    assert results == [(HELLO, True)]  # endpointed on its own, on noise rather than silence


def test_recogniser_added_lines_are_indexed_at_every_rate_already_in_use():
    recogniser = UtteranceRecogniser()
    recogniser.index(16000)
    recogniser.add(NUMBER, NUMBER_PCM)
    up = audioop.ratecv(NUMBER_PCM, 2, 1, 8000, 16000, None)[0]
    stream = StreamRecogniser(recogniser, 16000)
    stream.push(up)
    assert stream.finalize().text == NUMBER


def test_stream_recogniser_sends_nothing_for_silence_and_an_empty_final_on_finalize():
    stream = StreamRecogniser(UtteranceRecogniser({HELLO: HELLO_PCM}), 8000)
    assert stream.push(silence(2.0)) == []
    final = stream.finalize()
    assert final.text == "" and final.is_final


def test_script_replies():
    offered = [{"type": "function", "function": {"name": "end_call", "parameters": {"type": "object"}}}]
    bye = script_reply([{"role": "user", "content": "Goodbye then"}], offered)
    assert bye.tool_calls and bye.tool_calls[0][0] == "end_call"
    assert not script_reply([{"role": "user", "content": "connect me to an agent"}], offered).tool_calls
    first, _, rest = script_reply([{"role": "user", "content": "What time do you open?"}]).text.partition(" ")
    assert first == "Sure." and "What time do you open" in rest
    assert script_reply([]).text.startswith("Hello")
    assert "".join(tokens("Hello wonderful world.")) == "Hello wonderful world."


def test_schema_filler_honours_types_and_required_properties():
    schema = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "number"}, "minItems": 2},
        "flag": {"type": ["boolean", "null"]}, "kind": {"const": "x"}, "email": {"type": "string"},
    }, "required": ["items", "flag", "kind", "email"]}
    assert example_for_schema(schema) == {"items": [1.0, 1.0], "flag": True, "kind": "x",
                                          "email": "caller@example.com"}


def test_profiles_and_jitter():
    fast = PROFILES["fast"]
    assert (fast.stt_final_ms, fast.llm_first_token_ms, fast.tts_first_audio_ms) == (100, 150, 100)
    assert fast.tts_chunk_audio_ms / fast.tts_chunk_interval_ms > 1  # faster than real time
    jittery = LatencyProfile(jitter_ms=50, seed=3)
    a, b = Delays(jittery), Delays(jittery)
    values = [a(100) for _ in range(200)]
    assert values == [b(100) for _ in range(200)]  # seeded
    assert min(values) >= 0.05 and max(values) <= 0.15 and len(set(values)) > 100
    assert Delays(fast)(100) == 0.1


def test_fault_switch_counts_and_per_request_override():
    switch = FaultSwitch()
    switch.arm("disconnect", "tts", count=2)
    assert switch.take("stt", {}, {}) is None
    assert [switch.take("tts", {}, {}) for _ in range(3)] == ["disconnect", "disconnect", None]
    assert switch.take("llm", {"X-Emulator-Fault": "slow"}, {}) == "slow"
    assert switch.take("stt", {}, {"emulator_fault": "error_frame"}) == "error_frame"
    with pytest.raises(ValueError):
        switch.arm("meteor")


def test_sentence_splitting_and_wav_decoding():
    assert split_sentences("One. Two? Thr") == (["One.", "Two?"], " Thr")
    assert split_sentences("3.5 apples") == ([], "3.5 apples")
    pcm = b"\x01\x00\xff\x7f" * 10
    header = (b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80>\x00\x00"
              b"\x02\x00\x10\x00data\xff\xff\xff\x7f")  # the sizes a streaming writer leaves
    assert decode_wav(header + pcm) == (pcm, 8000)


async def test_tone_fallback_has_a_plausible_duration():
    synthesizer = Synthesizer(espeak=False)
    pcm, cached = await synthesizer.synthesize("Hello there, how are you?", 8000)
    again, cached_again = await synthesizer.synthesize("Hello there, how are you?", 8000)

    assert not cached and cached_again and again is pcm
    assert abs(len(pcm) / 16000 - 25 * 0.065) < 0.05
    assert audioop.rms(pcm, 2) > 1000


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_cancelled_synthesis_leaves_no_espeak_process():
    # The emulator closing mid-sentence must not leave espeak-ng running on (it is a child of
    # whoever runs the emulator: the bench, or this test process).
    synthesizer = Synthesizer(espeak=True)
    task = asyncio.ensure_future(synthesizer.synthesize("A long sentence to speak. " * 200, 8000))
    await wait_for(lambda: child_processes("espeak-ng"))  # it is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = child_processes("espeak-ng")

    assert result == []


async def test_server_runs_as_a_separate_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.emulators.server", "--port", "0", "--api-key", "k"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        info = orjson.loads(proc.stdout.readline())  # blocks the loop, but nothing else runs on it yet
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as http:
            async with http.get(f"{info['llm_base_url']}/models") as response:
                assert response.status == 200
            async with http.post(f"{info['control_url']}/utterances", params={"text": "hi"},
                                 data=HELLO_PCM) as response:
                assert (await response.json()) == {"utterances": 1}
            async with http.get(f"{info['control_url']}/stats") as response:
                assert "stt" in await response.json()
        assert info["stt_url"].startswith("ws://127.0.0.1:") and info["profile"] == "fast"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()


def test_corpus_background_noise_is_heard_as_nothing_and_the_lines_over_it_as_said():
    from bench.corpus.model import CORPUS_DIR, load_corpus
    from bench.emulators.server import load_corpus_utterances

    recogniser = UtteranceRecogniser(load_corpus_utterances(CORPUS_DIR))
    script = next(s for s in load_corpus() if s.name == "noise-babble-10db")
    noise, _ = decode_wav((script.directory / "noise.wav").read_bytes())
    stream = StreamRecogniser(recogniser, 8000)
    heard = [r.text for f in frames(noise[: 3 * 16000]) for r in stream.push(f) if r.text]
    heard.append(stream.finalize().text)
    assert not any(heard), heard  # babble is not words, nor "(unrecognised speech)"
    step = script.utterances()[1]
    line, _ = decode_wav(script.audio_path(step).read_bytes())
    stream = StreamRecogniser(recogniser, 8000)
    for f in frames(line):
        stream.push(f)
    assert stream.finalize().text == step.text


@pytest.mark.parametrize("text, bare", [
    ("Hi, I need to check on a parcel. The order number is...", "hi i need to check on a parcel the order number is"),
    ("I'll be home after three o'clock today.", "i'll be home after three o'clock today"),
    ("mm-hmm", "mm-hmm"),
    ("Tuesday? No, sorry... Wednesday!", "tuesday no sorry wednesday"),
    ("(unrecognised speech, 1.4 s) Hello, there.", "(unrecognised speech, 1.4 s) hello there"),
    ("\"Quoted\" - a dash; a colon: done", "quoted a dash a colon done"),
])
def test_stripping_punctuation_keeps_the_words_and_non_speech_tags(text, bare):
    from bench.emulators.stt import strip_punctuation

    assert strip_punctuation(text) == bare


def test_an_unknown_punctuation_mode_is_refused():
    from bench.emulators.stt import SttEmulator

    with pytest.raises(ValueError, match="punctuation mode"):
        SttEmulator(api_key="k", profile=PROFILES["fast"], faults=FaultSwitch(),
                    recogniser=UtteranceRecogniser(), punctuation="some")


def test_a_hearing_that_stops_at_a_marked_pause_has_exactly_the_words_before_it():
    # Words are spread over the line's audio in proportion, which is off by a word here and
    # there; at the pauses the line marks with "..." a recogniser that heard the audio up to
    # there knows every word before it ("is" included), so the emulator does too.
    line = "Well the order number for my parcel is... four seven two"
    first, pause, rest = voiced(1.6, seed=31), silence(0.6), voiced(0.9, f0=170.0, seed=32)
    recogniser = UtteranceRecogniser({line: first + pause + rest})
    stream = StreamRecogniser(recogniser, 8000)
    stream.push(silence(0.2) + first + silence(0.2))
    assert stream.finalize().text == "Well the order number for my parcel is..."
    stream.push(silence(0.4) + rest + silence(0.1))
    assert stream.finalize().text == "four seven two"
