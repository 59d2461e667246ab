"""The turn policy's parts on their own: barge-in judge, end-of-turn judgements, timers, speculation."""

import pytest

from engine.conversation.turn import (
    CancelTimer,
    ConfirmBargeIn,
    DropReply,
    ResumeAfterHold,
    StartReply,
    StartTimer,
    Timer,
    TurnConfig,
)
from engine.conversation.turn.barge_in import BargeInJudge
from engine.conversation.turn.endpoint import NoiseFlaps, recogniser_ends_turn, worth_speculating
from engine.conversation.turn.replies import Replies
from engine.conversation.turn.speculation import Speculator
from engine.conversation.turn.timers import Timers


def judge(interim: bool = True) -> tuple[BargeInJudge, list]:
    out: list = []
    return BargeInJudge(Timers(out), 0.6, interim), out


def test_words_during_a_deferred_barge_in_confirm_it():
    j, out = judge()
    j.pending(1.0)
    assert j.vad_confirmed(1.2, stt_ready=True) and j.deferred
    out.clear()
    j.heard_words()
    assert not j.deferred
    assert out == [CancelTimer(Timer.NOISE), ConfirmBargeIn()]


def test_no_words_by_the_deadline_resumes_the_reply():
    j, out = judge()
    j.pending(1.0)
    j.vad_confirmed(1.2, stt_ready=True)
    out.clear()
    j.noise_timer()
    assert out == [ResumeAfterHold()] and not j.deferred


def test_words_heard_before_the_vad_confirms_mean_no_wait():
    j, _out = judge()
    j.pending(1.0)
    j.heard_words()
    assert not j.vad_confirmed(1.2, stt_ready=True)
    assert not j.deferred


def test_without_interim_results_the_vad_alone_decides():
    j, out = judge(interim=False)
    j.pending(1.0)
    assert not j.vad_confirmed(1.2, stt_ready=True)
    assert not any(isinstance(c, StartTimer) for c in out)


def test_a_backchannel_marks_its_final_for_discarding_until_the_caller_begins():
    j, _ = judge()
    j.pending(1.0)
    assert j.rejected(backchannel=True) and j.discard_next_final
    j.caller_began()
    assert not j.discard_next_final
    assert not j.rejected(backchannel=False) and not j.discard_next_final


def flapping(flaps: NoiseFlaps, text: str, *, start: float = 1.0, every: float = 0.15, n: int = 5,
             quiet: bool = False, opening: bool = False) -> list[bool]:
    """Pauses ``every`` s apart from ``start`` on, each Finalize answered 0.1 s later without new
    words: whether each answer ended the turn."""
    ended = []
    for i in range(n):
        at = start + every * i
        flaps.asked(at, quiet_run=quiet)
        ended.append(flaps.heard(at + 0.1, text, answer=True, opening=opening))
    return ended


def words_at(flaps: NoiseFlaps, text: str, at: float) -> None:
    """The caller's words, seen by an interim at ``at`` (a pause at ``at`` + 0.02 follows)."""
    assert not flaps.heard(at, text, answer=False)


def test_noise_flaps_end_the_turn_after_two_wordless_answers_a_whole_end_of_turn_after_the_words():
    flaps = NoiseFlaps(0.28)
    words_at(flaps, "I need a refund.", 0.9)
    # the first pause after the words anchors them; its answer and the next are flaps, but the
    # stretch from that pause is only 0.15 s; the third answer's is 0.30 s
    assert flapping(flaps, "I need a refund.") == [False, False, True, True, True]
    # a pause inside a line (comma) flaps alike but never ends the turn
    other = NoiseFlaps(0.28)
    words_at(other, "so the thing is,", 0.9)
    assert not any(flapping(other, "so the thing is,", n=8))
    # no punctuation (an engine that does not punctuate): the words decide, on a third flap
    bare = NoiseFlaps(0.28)
    words_at(bare, "i need a refund", 0.9)
    assert flapping(bare, "i need a refund", every=0.3) == [False, False, False, True, True]
    for unfinished in ("my order number is", "okay thanks", "Hi, I need to check on a parcel. The order"):
        words = NoiseFlaps(0.28)
        words_at(words, unfinished, 0.9)
        assert not any(flapping(words, unfinished, n=8)), unfinished
    opening = NoiseFlaps(0.28)
    words_at(opening, "hello", 0.9)
    assert flapping(opening, "hello", every=0.3, opening=True) == [False, False, False, True, True]
    # a final that answers no Finalize (none is out) is no flap
    stray = NoiseFlaps(0.28)
    words_at(stray, "I need a refund.", 0.9)
    assert not any(stray.heard(1.0 + 0.3 * i, "I need a refund.", answer=True) for i in range(4))


def test_noise_flaps_wait_for_answers_a_sentence_pause_brings_words_to():
    # noise-street-10db u2: "Sorry, it's loud here. [240 ms] Yes, I booked ...": cars flap the VAD
    # in the pause; two answers come back without new words, but 0.14 s after the pause that
    # followed "here.", and the next answer has "Yes,".
    flaps = NoiseFlaps(0.28)
    words_at(flaps, "Sorry, it's loud here.", 2.6)
    assert flapping(flaps, "Sorry, it's loud here.", start=2.68, every=0.14, n=2) == [False, False]
    flaps.asked(3.02)
    assert not flaps.heard(3.12, "Sorry, it's loud here. Yes,", answer=True)
    # new words begin the count and the stretch again
    assert flapping(flaps, "Sorry, it's loud here. Yes,", start=3.16, n=2) == [False, False]


def test_an_opening_pause_ends_the_turn_a_whole_end_of_turn_after_the_words_with_a_flap_in():
    flaps = NoiseFlaps(0.28)
    words_at(flaps, "Hello?", 0.9)
    flaps.asked(0.92)
    assert not flaps.heard(1.02, "Hello?", answer=True)  # anchors the words at 0.92
    assert not flaps.opening_pause_ends(1.1, "Hello?")  # no wordless answer yet
    assert flapping(flaps, "Hello?", start=1.07, n=1) == [False]  # one: the pause at 1.07
    assert not flaps.opening_pause_ends(1.15, "Hello?")  # 0.23 s after the words: too soon
    assert flaps.opening_pause_ends(1.21, "Hello?")
    assert not flaps.opening_pause_ends(1.21, "Hello, I")  # words that read unfinished
    bare = NoiseFlaps(0.28)  # unpunctuated: one wordless answer more
    words_at(bare, "hello", 0.9)
    bare.asked(0.92)
    bare.heard(1.02, "hello", answer=True)
    flapping(bare, "hello", start=1.07, n=1)
    assert not bare.opening_pause_ends(1.21, "hello")
    flapping(bare, "hello", start=1.12, n=1)
    assert bare.opening_pause_ends(1.26, "hello")


def test_noise_flaps_anchor_words_at_the_pause_that_followed_them():
    # An interim can show a word still being said: its words end by the next pause, not by it.
    flaps = NoiseFlaps(0.28)
    words_at(flaps, "Hello?", 1.0)
    flaps.asked(1.5)  # 0.5 s later: the words anchor here, not at 1.0
    assert not flaps.heard(1.6, "Hello?", answer=True)
    # (anchored at the interim, the second answer would end the turn)
    assert flapping(flaps, "Hello?", start=1.55, n=3) == [False, False, True]
    # words an interim shows after a pause was asked, which that pause's answer then brings: said
    # by that pause
    late = NoiseFlaps(0.28)
    late.asked(1.0)
    assert not late.heard(1.05, "Thanks, bye.", answer=False)
    assert not late.heard(1.1, "Thanks, bye.", answer=True)
    assert flapping(late, "Thanks, bye.", start=1.15, n=3) == [False, True, True]


def test_quiet_runs_and_finalizes_away_from_pauses_are_no_evidence():
    # quiet "speech" before a pause (a breath) neither counts nor clears the count
    breath = NoiseFlaps(0.28)
    words_at(breath, "I need a refund.", 0.9)
    breath.asked(0.92)
    assert not breath.heard(1.02, "I need a refund.", answer=True)
    assert flapping(breath, "I need a refund.", start=1.0, n=1) == [False]
    assert not any(flapping(breath, "I need a refund.", start=1.2, n=4, quiet=True))
    assert flapping(breath, "I need a refund.", start=1.9, n=1) == [True]
    # a Finalize not sent at a tentative end (end of turn, a backchannel) counts for nothing
    other = NoiseFlaps(0.28)
    words_at(other, "I need a refund.", 0.9)
    for at in (1.0, 1.2, 1.4, 1.6):
        other.asked(at)
        assert not other.heard(at + 0.1, "I need a refund.", answer=True)
    # a new turn: the caller may have spoken up to its start
    fresh = NoiseFlaps(0.28)
    words_at(fresh, "I need a refund.", 0.9)
    fresh.asked(0.92)
    fresh.heard(1.02, "I need a refund.", answer=True)
    fresh.reset(2.0)  # (without it, the second answer would end the turn)
    assert flapping(fresh, "I need a refund.", start=2.05, n=3) == [False, False, True]


def test_the_recogniser_ends_the_turn_only_after_the_vad_heard_enough():
    common = dict(voice_since=1.0, turn_since=0.0, final_wait_s=0.8)
    assert recogniser_ends_turn(1.7, speech_final=True, can_finalize=True, **common)
    assert not recogniser_ends_turn(1.3, speech_final=True, can_finalize=True, **common)
    assert not recogniser_ends_turn(1.7, speech_final=False, can_finalize=True, **common)
    assert recogniser_ends_turn(0.9, speech_final=False, can_finalize=False, **common)
    assert not recogniser_ends_turn(0.7, speech_final=False, can_finalize=False, **common)


@pytest.mark.parametrize("can_finalize", [True, False])
def test_a_final_while_the_callers_own_voice_goes_on_never_ends_the_turn(can_finalize):
    # A recogniser cuts a line where the caller only drops their voice and says speech_final all
    # the same (field-08 "it's under the [voice dips] name Jordan Alvarez"): their voice, loud over
    # the background, was heard 20 ms ago. With interims a second apart none reopens the turn.
    common = dict(speech_final=True, can_finalize=can_finalize, voice_since=1.0, turn_since=0.0,
                  final_wait_s=0.8, voice_gap_s=0.28)
    assert not recogniser_ends_turn(2.0, voice_at=1.98, **common)
    assert not recogniser_ends_turn(2.0, voice_at=1.73, **common)
    assert recogniser_ends_turn(2.0, voice_at=1.72, **common)  # quiet for the VAD's end of turn
    assert recogniser_ends_turn(2.0, **common)  # babble only: no voice over the background at all


def test_past_four_seconds_of_unbroken_voice_deepgrams_speech_final_is_trusted_again():
    # Loud noise that began after the background was learnt reads as the caller's voice for as long
    # as it lasts: with Deepgram nothing else would end the turn. A finals-only engine waits on.
    common = dict(speech_final=True, turn_since=0.0, final_wait_s=0.8, voice_gap_s=0.28, voice_at=5.0)
    assert not recogniser_ends_turn(5.0, can_finalize=True, voice_since=1.1, **common)
    assert recogniser_ends_turn(5.0, can_finalize=True, voice_since=1.0, **common)
    assert not recogniser_ends_turn(5.0, can_finalize=False, voice_since=1.0, **common)


def test_speculation_only_on_text_the_turn_can_end_with():
    assert worth_speculating("I'd like to cancel my order.", 700)
    assert not worth_speculating("I'd like to cancel my order and", 700)
    assert worth_speculating("I'd like to cancel my order and", 0)
    assert not worth_speculating("", 0)


def test_a_timer_cancelled_before_it_fires_is_not_wanted():
    out: list = []
    t = Timers(out)
    t.start(Timer.HOLD, 2.0)
    t.cancel(Timer.HOLD)
    t.cancel(Timer.HOLD)  # twice: one command
    assert out == [StartTimer(Timer.HOLD, 2.0), CancelTimer(Timer.HOLD)]
    assert not t.fired(Timer.HOLD)
    t.start(Timer.DTMF, 3.0)
    assert t.fired(Timer.DTMF) and t.deadline(Timer.DTMF) is None


def speculator() -> tuple[Speculator, Replies, list]:
    out: list = []
    replies = Replies(Timers(out), 1.5)
    return Speculator(replies), replies, out


def test_speculation_starts_at_a_pause_on_finished_words_only():
    spec, replies, out = speculator()
    spec.at_pause("I need to", 1, TurnConfig(), opening=False, contour=None, final_owed=False)
    assert replies.current is None and out == []
    spec.at_pause("I need a refund.", 1, TurnConfig(), opening=False, contour=None, final_owed=False)
    assert replies.current is not None and replies.current.speculative and not replies.current.committed
    assert [type(c) for c in out] == [StartReply] and replies.speculation.started == 1


def test_without_finalize_a_pause_with_a_final_owed_waits_for_that_final():
    spec, replies, _ = speculator()
    spec.at_pause("I need a refund.", 1, TurnConfig(can_finalize=False), opening=False, contour=None,
                  final_owed=True)
    assert replies.current is None
    spec.on_final("I need a refund.", 1, TurnConfig(can_finalize=False), opening=False, contour=None)
    assert replies.current is not None and replies.speculation.started == 1


def test_a_final_that_changes_the_words_restarts_or_drops_the_reply():
    spec, replies, out = speculator()
    spec.at_pause("I need a refund.", 1, TurnConfig(), opening=False, contour=None, final_owed=False)
    first = replies.current.utterance_id
    spec.on_final("I need a refund.", 1, TurnConfig(), opening=False, contour=None)  # same words: kept
    assert replies.current.utterance_id == first
    spec.on_final("I need a refund today.", 1, TurnConfig(), opening=False, contour=None)
    assert replies.current.utterance_id != first and replies.speculation.restarted == 1
    spec.on_final("I need a refund today and", 1, TurnConfig(), opening=False, contour=None)
    assert replies.current is None and replies.speculation.cancelled == 1
    assert [c.reason for c in out if isinstance(c, DropReply)] == ["the final changed the words"] * 2


def test_sure_words_need_the_reply_on_them_with_its_audio_in():
    spec, replies, _ = speculator()
    spec.at_pause("Can you hear me?", 1, TurnConfig(), opening=False, contour=None, final_owed=False)
    assert not spec.sure("Can you hear me?", opening=False)  # no audio yet
    replies.current.audio_ready = True
    assert spec.sure("Can you hear me?", opening=False)
    assert not spec.sure("Can you hear me now?", opening=False)  # other words than the reply's
    spec.unless_one_runs("Can you hear me?", 1)  # a reply in flight already: none started
    assert replies.speculation.started == 1
