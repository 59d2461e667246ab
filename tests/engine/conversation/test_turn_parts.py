"""The turn policy's parts on their own: barge-in judge, end-of-turn judgements, timers."""

from engine.conversation.turn import CancelTimer, ConfirmBargeIn, ResumeAfterHold, StartTimer, Timer
from engine.conversation.turn.barge_in import BargeInJudge
from engine.conversation.turn.endpoint import NoiseFlaps, recogniser_ends_turn, worth_speculating
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


def test_noise_flaps_end_the_turn_only_after_two_wordless_pauses_on_finished_text():
    flaps = NoiseFlaps()
    assert not flaps.pause("I need a refund.", final_owed=False)
    assert not flaps.pause("I need a refund.", final_owed=False)
    assert flaps.pause("I need a refund.", final_owed=False)
    flaps.reset()
    assert not flaps.pause("I need a refund.", final_owed=False)
    # a pause inside a line (comma) flaps alike but never ends the turn
    other = NoiseFlaps()
    assert not any(other.pause("so the thing is,", final_owed=False) for _ in range(4))
    # a pause whose finalize is unanswered does not count
    owed = NoiseFlaps()
    assert not any(owed.pause("Done.", final_owed=True) for _ in range(4))
    # no punctuation (an engine that does not punctuate): the words decide, on a third flap
    bare = NoiseFlaps()
    assert [bare.pause("i need a refund", final_owed=False) for _ in range(4)] == [False, False, False, True]
    for unfinished in ("my order number is", "okay thanks", "Hi, I need to check on a parcel. The order"):
        words = NoiseFlaps()
        assert not any(words.pause(unfinished, final_owed=False) for _ in range(5)), unfinished
    opening = NoiseFlaps()
    assert [opening.pause("hello", final_owed=False, opening=True) for _ in range(4)] == [False, False, False, True]
    # quiet "speech" before a pause (a breath) neither counts nor clears the count
    breath = NoiseFlaps()
    assert not breath.pause("I need a refund.", final_owed=False)
    assert not any(breath.pause("I need a refund.", final_owed=False, quiet_run=True) for _ in range(4))
    assert not breath.pause("I need a refund.", final_owed=False)
    assert not breath.pause("I need a refund.", final_owed=False, quiet_run=True)
    assert breath.pause("I need a refund.", final_owed=False)


def test_the_recogniser_ends_the_turn_only_after_the_vad_heard_enough():
    common = dict(voice_since=1.0, turn_since=0.0, final_wait_s=0.8)
    assert recogniser_ends_turn(1.7, speech_final=True, can_finalize=True, **common)
    assert not recogniser_ends_turn(1.3, speech_final=True, can_finalize=True, **common)
    assert not recogniser_ends_turn(1.7, speech_final=False, can_finalize=True, **common)
    assert recogniser_ends_turn(0.9, speech_final=False, can_finalize=False, **common)
    assert not recogniser_ends_turn(0.7, speech_final=False, can_finalize=False, **common)


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
