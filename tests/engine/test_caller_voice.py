"""When the caller's own voice was last heard, apart from their line's background."""

from __future__ import annotations

import math

from bench.signals import silence, voiced
from engine.caller_voice import VOICE_OVER_BACKGROUND, CallerVoice
from tests.engine.test_session import Call


def feed(voice: CallerVoice, frames: list[tuple[int, bool]], start: float) -> float:
    """Frames of (rms, voiced) 20 ms apart from ``start``; returns the next frame's time."""
    now = start
    for rms, is_voiced in frames:
        voice.frame(rms, is_voiced, now)
        now = round(now + 0.02, 6)
    return now


def test_nothing_heard_yet_is_no_voice():
    assert CallerVoice().voice_at == -math.inf


def test_on_a_clean_line_even_a_quiet_stretch_of_the_caller_is_their_voice():
    voice = CallerVoice()
    now = feed(voice, [(0, False)] * 25, 0.0)  # digital silence
    now = feed(voice, [(3000, True)] * 25, now)  # their words
    now = feed(voice, [(300, True)] * 25, now)  # ~20 dB down, still voiced: a dip mid-line
    assert voice.voice_at == now - 0.02


def test_babble_the_vad_calls_speech_is_not_the_callers_voice_and_their_words_are():
    voice = CallerVoice()
    babble = [(400, False), (800, False), (600, False), (700, False)] * 25  # median ~600
    now = feed(voice, babble, 0.0)
    assert 400 < voice.background < 800
    now = feed(voice, [(6000, True)] * 10, now)  # the caller's words over it
    words_end = now - 0.02
    assert voice.voice_at == words_end
    # babble after they stopped: "speech" to the VAD, at twice its median level
    now = feed(voice, [(1200, True), (500, False)] * 25, now)
    assert voice.voice_at == words_end


def test_the_background_follows_a_new_line_within_half_a_second():
    voice = CallerVoice()
    now = feed(voice, [(20, False)] * 50, 0.0)
    feed(voice, [(2000, False)] * 25, now)  # babble starts
    assert voice.background * VOICE_OVER_BACKGROUND > 2 * 2000  # its peaks are no voice


def test_the_session_tracks_the_callers_voice_and_not_the_silence_after():
    call = Call()
    call.play(silence(0.5) + voiced(1.0) + silence(0.6))
    assert 1.45 <= call.session.caller_voice.voice_at <= 1.56


def test_while_the_agent_is_heard_a_click_on_the_callers_line_is_their_background():
    # The caller listens: their line is their background, as the VAD learns it (until a sound
    # over the agent lasts long enough to hold the reply: then it is theirs).
    call = Call()
    call.play(silence(0.5) + voiced(0.6) + silence(0.4))
    words_end = call.session.caller_voice.voice_at
    assert 1.05 <= words_end <= 1.16
    call.session.speak(1, voiced(3.0, seed=5))
    call.session.finish_utterance(1)
    call.play(silence(0.4) + voiced(0.04, seed=6) + silence(0.6))
    assert call.session.stats.barge_in_holds == 0
    assert call.session.caller_voice.voice_at == words_end
