"""Each Commit says how its turn ended, the hold it went through and what became of the speculation
(:class:`~engine.turn_outcome.TurnOutcome`): sans-IO, in virtual time, as test_turn_policy drives it."""

from __future__ import annotations

import pytest

from engine.conversation.dtmf import GatherConfig
from engine.conversation.turn import Commit, KeyPressed, KeysHeard, Timer, TurnConfig
from engine.conversation.turn.replies import Replies
from engine.conversation.turn.timers import Timers
from engine.prosody import Contour
from engine.turn_outcome import Hold, Speculation, TurnEnd, TurnOutcome, describe

from .test_turn_policy import FINALS_ONLY, SOONER, Driver, _after_a_first_reply, a_turn, of, one, words_then_pause


def outcome(out: list[object]) -> TurnOutcome:
    return one(Commit, out).outcome


def test_the_vads_end_on_a_kept_speculation():
    d = Driver()
    a_turn(d, "I'd like to check my order.")
    assert outcome(d.at(2.3).turn_end()) == TurnOutcome(TurnEnd.VAD, Speculation.KEPT)


def test_no_speculation_without_the_setting():
    d = words_then_pause("I'd like to check my order.")
    assert outcome(d.at(1.8).turn_end()) == TurnOutcome(TurnEnd.VAD, Speculation.NONE)


def test_the_confident_end_is_told_from_the_vads():
    d = Driver(SOONER)
    a_turn(d, "Could we move it to Friday morning instead?")
    d.at(2.15).audio()
    assert of(Commit, d.log) == [] and d.policy.ended_sooner == 1
    assert outcome(d.at(2.2).turn_end()).end is TurnEnd.CONFIDENT


def test_a_confident_end_the_caller_spoke_through_is_the_vads_again():
    d = Driver(SOONER)
    a_turn(d, "Could we move it to Friday morning instead?")
    d.at(2.15).audio()  # EndTurn asked
    d.at(2.18).resumed()  # ... but the caller went on: the session's end is its own silence
    d.at(2.3).interim("Could we move it to Friday morning instead? Or Monday")
    d.at(2.5).tentative()
    d.at(2.6).final("Could we move it to Friday morning instead? Or Monday?")
    assert d.policy.ended_sooner == 1  # (its new reply has no audio yet: not asked again)
    assert outcome(d.at(2.8).turn_end()).end is TurnEnd.VAD


def test_a_hold_that_ran_out_says_its_verdict():
    d = Driver()
    a_turn(d, "my order number is")
    d.at(2.3).turn_end()
    assert outcome(d.fire(Timer.HOLD)) == TurnOutcome(TurnEnd.HOLD_RAN_OUT, Speculation.KEPT, Hold.INCOMPLETE)


def test_a_rising_voice_that_held_complete_words_says_the_contour_decided():
    d = Driver()
    _after_a_first_reply(d)
    a_turn(d, "alright i guess i'll wait then", contour=Contour.RISE)
    d.at(2.32).turn_end()
    got = outcome(d.fire(Timer.HOLD))
    assert (got.end, got.hold, got.contour) == (TurnEnd.HOLD_RAN_OUT, Hold.UNSURE, True)


def test_unsure_words_held_on_a_level_voice_were_the_words_verdict():
    d = Driver()
    _after_a_first_reply(d)
    a_turn(d, "great thank you", contour=Contour.LEVEL)
    d.at(2.32).turn_end()
    got = outcome(d.fire(Timer.HOLD))
    assert (got.hold, got.contour) == (Hold.UNSURE, False)


def test_a_falling_voice_that_ended_unsure_words_says_the_contour_decided():
    d = Driver()
    _after_a_first_reply(d)
    a_turn(d, "great thank you", contour=Contour.FALL)
    assert outcome(d.at(2.32).turn_end()) == TurnOutcome(TurnEnd.VAD, Speculation.KEPT, None, contour=True)


def test_a_hold_speech_broke_is_told_with_the_merged_turns_end():
    # (In street noise the "speech" that breaks it can be noise: the reply then waits for the
    # merged turn's end, and the account says why.)
    d = Driver()
    a_turn(d, "my order number is")
    d.at(2.3).turn_end()
    d.at(2.8).speech()
    a_turn(d, "four seven two nine one eight", start=2.8, length=1.8)
    got = outcome(d.at(4.9).turn_end())
    assert (got.end, got.hold, got.merged) == (TurnEnd.VAD, Hold.INCOMPLETE, True)
    assert got.describe() == "vad after a broken hold (incomplete words), speculation kept"
    d.speak()
    d.at(5.5).played()
    a_turn(d, "Thanks.", start=6.0, length=0.5)  # the next turn starts its account afresh
    assert outcome(d.at(6.82).turn_end()).hold is None


def test_speech_after_the_turn_ended_and_before_its_final_merges_it():
    # noise-street-20db u3: "thanks bye", the VAD's end while its final is owed, then street noise
    # the VAD takes for speech; the reply waits for the merged turn's end.
    d = Driver()
    a_turn(d, "Tomorrow works.")
    assert outcome(d.at(2.3).turn_end()).merged is False  # (the plain case)
    d = Driver()
    d.at(1.0).speech()
    d.interim("Tomorrow works.")
    d.at(2.0).tentative()
    d.at(2.3).turn_end()  # its final is not in
    d.at(2.35).speech()
    d.at(2.4).final("Tomorrow works.")
    d.at(2.5).tentative()
    d.at(2.6).final("")
    got = outcome(d.at(2.8).turn_end())
    assert (got.end, got.hold, got.merged) == (TurnEnd.VAD, None, True)
    assert got.describe() == "vad after more speech (merged), speculation kept"


def test_speech_before_the_reply_was_heard_merges_the_answered_turn_into_the_next():
    # noise-street-20db u3 again: "thanks bye" answered at the VAD's end, then noise the VAD takes
    # for speech before the reply plays: the reply is dropped and the words answered again.
    d = Driver()
    a_turn(d, "Thanks, bye.")
    assert outcome(d.at(2.3).turn_end()).merged is False
    d.at(2.4).speech()
    d.at(2.6).tentative()
    d.at(2.7).final("")
    out = d.at(2.9).turn_end()
    assert one(Commit, out).text == "Thanks, bye." and (outcome(out).end, outcome(out).merged) == (TurnEnd.VAD, True)


def test_a_late_final():
    d = Driver()
    d.at(1.0).speech()
    d.interim("Tomorrow")
    d.at(2.0).tentative()
    d.at(2.3).turn_end()
    assert outcome(d.fire(Timer.FINAL_WAIT)).end is TurnEnd.FINAL_LATE


def test_the_recogniser_ended_a_turn_the_vad_held_open():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.babble()
    assert outcome(d.at(3.3).final("Hi, I'm calling about my table.")).end is TurnEnd.RECOGNISER


def test_noise_ended_the_turn():
    d = words_then_pause("Thanks, bye.", opening=False)
    d.at(1.62).resumed()
    d.at(1.64).tentative()
    d.at(1.74).final("")
    d.at(1.76).resumed()
    d.at(1.8).tentative()
    assert outcome(d.at(1.9).final("")).end is TurnEnd.NOISE


def test_keys_and_words_without_a_vad_turn():
    d = Driver(TurnConfig(gather=GatherConfig(inter_digit_timeout_s=2.0)))
    d.at(1.0).send(KeyPressed(1.0, "4"))
    d.fire(Timer.DTMF)
    assert outcome(d.send(KeysHeard(3.0, "The caller pressed 4 on the keypad."))).end is TurnEnd.KEYS
    d = Driver(FINALS_ONLY)
    assert outcome(d.at(5.0).final("Tomorrow works.")).end is TurnEnd.WORDS


def test_a_speculation_on_other_words_is_restarted_and_none_is_none():
    replies = Replies(Timers([]), 0.0)
    assert replies.speculation_on("Tomorrow works.") is Speculation.NONE
    replies.start("Tomorrow", 0, speculative=True, committed=False)
    assert replies.speculation_on("tomorrow") is Speculation.KEPT
    assert replies.speculation_on("Tomorrow works.") is Speculation.RESTARTED
    assert replies.speculation_on("") is Speculation.NONE
    replies.current.committed = True  # type: ignore[union-attr]
    assert replies.speculation_on("Tomorrow works.") is Speculation.NONE


def test_the_outcome_as_stored_and_read_back_and_told_to_people():
    held = TurnOutcome(TurnEnd.HOLD_RAN_OUT, Speculation.KEPT, Hold.UNSURE, contour=True)
    assert held.as_dict() == {"end": "hold_ran_out", "hold": "unsure", "contour": True, "speculation": "kept",
                              "merged": False}
    assert TurnOutcome.from_dict(held.as_dict()) == held
    assert held.describe() == "hold: unsure words (pitch rose), speculation kept"
    assert TurnOutcome(TurnEnd.NOISE).describe() == "noise, no speculation"
    assert TurnOutcome(TurnEnd.VAD, Speculation.RESTARTED, contour=True).describe() == (
        "vad (pitch fell), speculation restarted")
    assert describe(held.as_dict(), kept=False) == "hold: unsure words (pitch rose)"
    assert describe(None) == "no account"
    with pytest.raises(ValueError):
        TurnOutcome.from_dict({"end": "whenever"})
