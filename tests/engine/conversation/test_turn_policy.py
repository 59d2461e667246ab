"""The turn policy's rules, one test each, in virtual time: events in, commands out, no sockets,
no event loop. Times are seconds on the policy's (injected) clock."""

from __future__ import annotations

import pytest

from engine.config import EndpointingConfig
from engine.conversation.agent import turn_config
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.dtmf import GatherConfig
from engine.conversation.turn import (
    BargeIn,
    BargeInPending,
    BargeInRejected,
    CallerTurn,
    CancelTimer,
    Commit,
    CommitReply,
    ConfirmBargeIn,
    DiscardText,
    DropReply,
    EndTurn,
    FailCall,
    Failing,
    FinalizeStt,
    Greet,
    KeyPressed,
    KeysEntered,
    KeysHeard,
    PlayoutDone,
    ReplyAudioReady,
    ReplyFailed,
    ReplySpeaking,
    ResumeAfterHold,
    SayFiller,
    SpeechResumed,
    SpeechStarted,
    StampTurn,
    StartReply,
    StartTimer,
    Stopped,
    SttReady,
    TentativeEnd,
    Timer,
    TimerFired,
    ToolFinished,
    ToolStarted,
    Transcribed,
    TurnConfig,
    TurnEnded,
    TurnOver,
    TurnPolicy,
    VadBargeIn,
)
from engine.prosody import NO_AUDIO, Contour, PauseAudio

DEEPGRAM = TurnConfig()
FINALS_ONLY = TurnConfig(can_finalize=False, interim_results=False, final_wait_s=1.5)


class Driver:
    """A policy and the commands it gave, with the clock in the test's hands."""

    def __init__(self, config: TurnConfig = DEEPGRAM) -> None:
        self.policy = TurnPolicy(config)
        self.now = 0.0
        self.log: list[object] = []
        self.send(SttReady(True))

    def send(self, event: object) -> list[object]:
        out = self.policy.handle(event)  # type: ignore[arg-type]
        self.log += out
        return out

    def at(self, now: float) -> Driver:
        self.now = now
        return self

    def speech(self) -> list[object]:
        return self.send(SpeechStarted(self.now))

    def tentative(self, *, quiet_run: bool = False, contour: Contour | None = None) -> list[object]:
        audio = NO_AUDIO if contour is None else PauseAudio(contour=contour)
        return self.send(TentativeEnd(self.now, quiet_run=quiet_run, audio=audio))

    def resumed(self) -> list[object]:
        return self.send(SpeechResumed(self.now))

    def babble(self, pauses: int = 10) -> None:
        """The VAD flapping from 1.0: a pause every 0.2 s (1.1, 1.3, ...), never 300 ms of silence."""
        for i in range(pauses):
            self.at(1.1 + 0.2 * i).tentative()
            self.at(1.2 + 0.2 * i).resumed()

    def turn_end(self) -> list[object]:
        return self.send(TurnEnded(self.now))

    def interim(self, text: str) -> list[object]:
        return self.send(Transcribed(self.now, text, False))

    def final(self, text: str, speech_final: bool = False, *, voice_at: float = float("-inf")) -> list[object]:
        """``voice_at``: when the caller's own voice (over their line's background) was last heard."""
        return self.send(Transcribed(self.now, text, True, speech_final, voice_at))

    def replay(self, kind: str, text: str = "") -> list[object]:
        """One event of a real call's trace: a pause, speech resumed, an interim or a final."""
        if kind == "pause":
            return self.tentative()
        if kind == "resumed":
            return self.resumed()
        return self.final(text) if kind == "final" else self.interim(text)

    def fire(self, timer: Timer) -> list[object]:
        deadline = self.policy.timer_deadline(timer)
        assert deadline is not None, f"{timer} is not running"
        self.now = max(self.now, deadline)
        return self.send(TimerFired(timer, self.now))

    def speak(self, uid: int | None = None) -> list[object]:
        return self.send(ReplySpeaking(uid if uid is not None else self.policy.reply.utterance_id))

    def audio(self, uid: int | None = None) -> list[object]:
        """The speculative reply's first audio arrived (held)."""
        return self.send(ReplyAudioReady(uid if uid is not None else self.policy.reply.utterance_id))

    def played(self, uid: int | None = None) -> list[object]:
        return self.send(PlayoutDone(uid if uid is not None else self.policy.reply.utterance_id, self.now))


def of(kind: type, commands: list[object]) -> list:
    return [c for c in commands if type(c) is kind]


def one(kind: type, commands: list[object]):
    found = of(kind, commands)
    assert len(found) == 1, (kind.__name__, commands)
    return found[0]


def words_then_pause(text: str, *, opening: bool = True) -> Driver:
    """The caller says ``text`` (speech at 1.0), pauses (1.5), and the Finalize's answer brings it
    (1.6); no speculation. ``opening=False``: a later turn, the agent has spoken."""
    d = Driver(TurnConfig(speculative=False))
    d.policy.opening = opening
    d.at(1.0).speech()
    d.interim(text)
    d.at(1.5).tentative()
    d.at(1.6).final(text)
    return d


def a_turn(d: Driver, text: str, *, start: float = 1.0, length: float = 1.0, contour: Contour | None = None) -> None:
    """Deepgram: the caller speaks, a tentative end (its Finalize answered 100 ms later)."""
    d.at(start).speech()
    d.at(start + length / 2).interim(text)
    d.at(start + length + 0.02).tentative(contour=contour)
    d.at(start + length + 0.12).final(text)


# -- speculation ----------------------------------------------------------------------------


def test_a_finished_line_is_finalized_and_speculated_on_at_the_tentative_end():
    d = Driver()
    d.at(1.0).speech()
    d.at(1.5).interim("I'd like to check my order.")
    out = d.at(2.02).tentative()
    assert of(FinalizeStt, out) and d.policy.final_owed
    reply = one(StartReply, out)
    assert reply.speculative and not reply.committed and reply.user_text == "I'd like to check my order."
    assert d.policy.turn is CallerTurn.PAUSED


def test_an_unpunctuated_finished_line_is_speculated_on_too():
    d = Driver()
    d.at(1.0).speech()
    d.interim("hey there so i got a text saying my package was delayed")
    assert one(StartReply, d.at(2.0).tentative()).speculative


@pytest.mark.parametrize("text", ["my order number is", "The order number is...", "the order number is four seven two"])
def test_no_speculation_on_words_that_read_unfinished_or_unsure(text):
    d = Driver()
    d.at(1.0).speech()
    d.interim(text)
    assert not of(StartReply, d.at(2.0).tentative())


def test_new_words_drop_the_speculative_reply_with_a_reason():
    d = Driver()
    a_turn(d, "I'd like to check my order.")
    uid = d.policy.reply.utterance_id
    d.at(2.2).resumed()
    drop = one(DropReply, d.at(2.4).interim("I'd like to check my order. And my bill"))
    assert drop.utterance_id == uid and drop.reason
    assert d.policy.speculation.cancelled == 1


def test_the_commit_keeps_a_speculation_whose_words_match():
    d = Driver()
    a_turn(d, "I'd like to check my order.")
    uid = d.policy.reply.utterance_id
    out = d.at(2.3).turn_end()
    assert one(TurnOver, out).reason == "end of turn"
    assert one(Commit, out).text == "I'd like to check my order." and not one(Commit, out).forced
    assert one(CommitReply, out).utterance_id == uid and not of(StartReply, out)
    assert d.policy.speculation.kept == 1


def test_a_final_that_changes_the_words_restarts_the_speculation():
    d = Driver()
    d.at(1.0).speech()
    d.interim("I'd like to check my order.")
    d.at(2.0).tentative()
    out = d.at(2.1).final("I'd like to cheque my order.")
    assert one(DropReply, out) and one(StartReply, out).user_text == "I'd like to cheque my order."
    assert d.policy.speculation.restarted == 1


# -- the confident end ----------------------------------------------------------------------

SOONER = TurnConfig(confident_end=True)


def test_a_question_whose_final_is_in_asks_for_the_shorter_end_and_keeps_its_reply():
    d = Driver(SOONER)
    d.at(1.0).speech()
    d.at(1.5).interim("Could we move it to Friday morning instead?")
    d.at(2.02).tentative()
    uid = d.policy.reply.utterance_id
    d.at(2.1).audio()
    out = d.at(2.12).final("Could we move it to Friday morning instead?")
    assert out == [EndTurn()] and d.policy.ended_sooner == 1
    out = d.at(2.2).turn_end()  # the media session's end of turn, 200 ms into the silence
    assert one(Commit, out).text == "Could we move it to Friday morning instead?"
    assert one(CommitReply, out).utterance_id == uid


def test_a_sure_question_ends_sooner_only_once_its_reply_has_audio():
    # Ending before the reply can play gains nothing, and noise after the early end would
    # open a new "turn" that drops the reply still in the making.
    d = Driver(SOONER)
    d.at(1.0).speech()
    d.at(1.5).interim("Could we move it to Friday morning instead?")
    d.at(2.02).tentative()
    assert not of(EndTurn, d.at(2.12).final("Could we move it to Friday morning instead?"))
    assert d.at(2.27).audio() == [EndTurn()] and d.policy.ended_sooner == 1
    assert d.at(2.28).audio() == []  # news once


def test_audio_for_a_reply_the_caller_talked_over_asks_for_nothing():
    d = Driver(SOONER)
    d.at(1.0).speech()
    d.at(1.5).interim("Could we move it to Friday morning instead?")
    d.at(2.02).tentative()
    d.at(2.12).final("Could we move it to Friday morning instead?")
    d.at(2.16).resumed()
    assert not of(EndTurn, d.at(2.2).audio())


@pytest.mark.parametrize("text", [
    "Yes, three o'clock.",  # a statement: callers go on after one ("... Thank you.")
    "Hello?",  # interjections only, once the call is under way: "Hello? Can you hear me?"
    "I think it went out on... Tuesday?",  # hesitant
    "Is it four?",  # ends on a number
    "could we move it to friday morning instead",  # no punctuation: no evidence
])
def test_anything_short_of_a_sure_question_waits_for_the_vads_end_of_turn(text):
    d = Driver(SOONER)
    d.policy.opening = False
    a_turn(d, text)
    if d.policy.reply is not None:
        d.at(2.15).audio()
    assert not of(EndTurn, d.log)


@pytest.mark.parametrize("text", ["Hello?", "Yeah, hello?"])
def test_a_caller_answering_the_phone_with_a_question_ends_sooner(text):
    # "Hello?" as the call opens hands the floor to the agent, like any question that reads
    # finished; later in the call it does not (above).
    d = Driver(SOONER)
    a_turn(d, text)
    assert d.at(2.27).audio() == [EndTurn()] and d.policy.ended_sooner == 1


GUESS = TurnConfig(confident_end=True, opening_guess="Hello?")


def test_the_opening_guess_starts_as_the_caller_starts_and_ends_their_hello_sooner():
    # No interim covers a "Hello?" (Deepgram's come a second apart): without the guess the reply
    # starts on the final, ~120 ms into the silence, and has audio ~250 ms later.
    d = Driver(GUESS)
    out = d.at(1.0).speech()
    guess = one(StartReply, out)
    assert (guess.user_text, guess.speculative, guess.committed) == ("Hello?", True, False)
    d.at(1.3).audio()  # ready while "Hello?" is still being said
    assert not of(DropReply, d.at(1.52).tentative())  # no words yet are no new words
    assert d.at(1.62).final("Hello?") == [EndTurn()]  # the same words: the shorter end, at once
    out = d.at(1.72).turn_end()
    assert one(Commit, out).text == "Hello?" and one(CommitReply, out).utterance_id == guess.utterance_id
    assert not of(StartReply, out) and d.policy.speculation.kept == 1


def test_the_guess_is_kept_for_the_same_words_unpunctuated_at_the_vads_end():
    d = Driver(GUESS)
    guess = one(StartReply, d.at(1.0).speech())
    d.at(1.3).audio()
    d.at(1.52).tentative()
    assert d.at(1.62).final("hello") == []  # no question mark: no shorter end
    out = d.at(1.82).turn_end()
    assert one(CommitReply, out).utterance_id == guess.utterance_id and not of(StartReply, out)


@pytest.mark.parametrize("said", ["Yeah, hello?", "Hi, I'm calling about my order."])
def test_other_opening_words_drop_the_guess_and_answer_what_was_said(said):
    d = Driver(GUESS)
    guess = one(StartReply, d.at(1.0).speech())
    d.at(2.02).tentative()
    out = d.at(2.12).final(said)
    assert one(DropReply, out).utterance_id == guess.utterance_id
    if said.endswith("?"):
        assert one(StartReply, out).user_text == said  # restarted on the words
    d.at(2.4).turn_end()
    assert d.policy.reply is not None and d.policy.reply.user_text == said


def test_an_interim_with_other_words_drops_the_guess_while_the_caller_talks():
    d = Driver(GUESS)
    guess = one(StartReply, d.at(1.0).speech())
    assert one(DropReply, d.at(2.0).interim("Hi, I'm calling about")).utterance_id == guess.utterance_id


def test_the_guess_runs_once_a_call_not_once_per_burst_of_noise():
    d = Driver(GUESS)
    assert one(StartReply, d.at(1.0).speech())
    d.at(1.3).turn_end()  # a wordless burst: no words, nothing to answer
    d.at(1.4).final("")
    assert not of(StartReply, d.at(2.0).speech())


def test_no_guess_once_the_agent_has_spoken_nor_without_speculation_nor_by_default():
    d = Driver(GUESS)
    d.policy.opening = False
    assert not of(StartReply, d.at(1.0).speech())
    d = Driver(TurnConfig(speculative=False, opening_guess="Hello?"))
    assert not of(StartReply, d.at(1.0).speech())
    assert not of(StartReply, Driver().at(1.0).speech())


def test_the_agent_config_guess_reaches_the_policy_only_with_speculation():
    from engine.conversation.agent import turn_config as make

    class Stt:
        can_finalize = interim_results = True

    def config(**fields):
        return make(resolve(AgentConfig(**fields)), Stt(), 0.8)  # type: ignore[arg-type]

    assert config().opening_guess == "Hello?"
    assert config(opening_guess="Allô ?").opening_guess == "Allô ?"
    assert config(opening_guess=None).opening_guess == ""
    assert config(speculative=False).speculative is False


def test_an_opening_statement_still_waits_for_the_vads_end_of_turn():
    d = Driver(SOONER)
    a_turn(d, "Hello.")
    assert d.policy.reply is not None  # speculated on: the words read finished
    d.at(2.27).audio()
    assert not of(EndTurn, d.log)


def test_a_final_that_changes_the_words_asks_once_its_restarted_reply_has_them():
    d = Driver(SOONER)
    d.at(1.0).speech()
    d.at(1.5).interim("Could we move it to")
    d.at(2.02).tentative()  # no speculation on unfinished words
    out = d.at(2.12).final("Could we move it to Friday?")
    assert one(StartReply, out).user_text == "Could we move it to Friday?" and not of(EndTurn, out)
    assert d.at(2.25).audio() == [EndTurn()]


def test_a_final_while_the_caller_talks_asks_for_nothing():
    d = Driver(SOONER)
    d.at(1.0).speech()
    d.at(1.5).interim("Can you hear me?")
    d.at(2.02).tentative()
    d.at(2.08).resumed()
    assert not of(EndTurn, d.at(2.12).final("Can you hear me?"))


@pytest.mark.parametrize(("endpointing", "confident"), [
    (EndpointingConfig(confident_end_of_turn_ms=200), True),
    (EndpointingConfig(), True),  # the default: 200 ms
    (EndpointingConfig(confident_end_of_turn_ms=300), False),  # = end_of_turn_ms: off
    (EndpointingConfig(end_of_turn_ms=160, confident_end_of_turn_ms=200), False),
    (EndpointingConfig(tentative_end_ms=200, end_of_turn_ms=400, confident_end_of_turn_ms=200), False),
    (None, False),  # no media session yet
])
def test_the_confident_end_is_on_where_the_sessions_endpointing_has_one(endpointing, confident):
    config = turn_config(resolve(AgentConfig()), object(), 0.8, endpointing)  # type: ignore[arg-type]
    assert config.confident_end is confident


def test_without_the_setting_no_shorter_end_is_asked_for():
    d = Driver()
    a_turn(d, "Could we move it to Friday morning instead?")
    d.at(2.15).audio()
    assert not of(EndTurn, d.log)


# -- committing -----------------------------------------------------------------------------


def test_the_turn_waits_for_the_final_its_finalize_asked_for():
    d = Driver()
    d.at(1.0).speech()
    d.interim("Tomorrow works.")
    d.at(2.0).tentative()
    out = d.at(2.3).turn_end()  # the final is not in yet
    assert not of(Commit, out) and d.policy.turn is CallerTurn.ENDED
    assert one(StartTimer, out).timer is Timer.FINAL_WAIT
    out = d.at(2.35).final("Tomorrow works.")
    assert one(Commit, out).text == "Tomorrow works." and one(CommitReply, out)
    assert one(CancelTimer, out).timer is Timer.FINAL_WAIT


def test_a_final_that_never_comes_does_not_hold_the_turn_and_a_late_one_joins_the_next_turn():
    d = Driver()
    d.at(1.0).speech()
    d.interim("Tomorrow")
    d.at(2.0).tentative()
    d.at(2.3).turn_end()
    out = d.fire(Timer.FINAL_WAIT)  # 0.8 s later: the interim is all there is
    assert one(Commit, out).forced and of(CommitReply, out)  # (the speculation on "Tomorrow")
    assert d.policy.reply.committed and d.policy.reply.user_text == "Tomorrow"
    assert d.policy.late_final_owed and not d.policy.final_owed
    d.at(3.3).speak()
    out = d.at(3.5).final("Tomorrow works")  # late, while the reply plays: kept, not answered
    assert not of(StartReply, out) and not of(DiscardText, out)
    assert d.policy.finals == ["Tomorrow works"]
    d.at(4.0).played()
    a_turn(d, "Thanks.", start=5.0)
    d.at(6.3).turn_end()
    assert d.policy.reply.user_text == "Tomorrow works Thanks."


def test_a_turn_without_words_commits_nothing_and_drops_nothing_silently():
    d = Driver()
    d.at(1.0).speech()
    d.at(1.3).tentative()
    d.at(1.6).turn_end()
    out = d.fire(Timer.FINAL_WAIT)
    assert one(Commit, out).text == "" and not of(StartReply, out)
    assert d.policy.turn is CallerTurn.IDLE


def test_finals_only_engine_commits_on_its_own_final_after_the_end_of_turn():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    out = d.at(2.02).tentative()
    assert not of(StartReply, out) and d.policy.final_owed  # its words are still owed
    assert not of(Commit, d.at(2.3).turn_end())
    out = d.at(3.0).final("I'd like to check my order.")
    assert one(Commit, out).text == "I'd like to check my order." and one(StartReply, out).committed


def test_finals_only_engine_speculates_on_a_final_in_the_pause():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.at(2.02).tentative()
    out = d.at(2.2).final("I'd like to check my order.")
    assert one(StartReply, out).speculative
    assert one(CommitReply, d.at(2.3).turn_end())


def test_finals_only_engine_a_final_while_the_caller_talks_leaves_the_newer_words_owed():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.at(1.8).tentative()
    d.at(2.0).resumed()
    d.at(2.3).final("I moved last month")  # for the words before the pause
    assert d.policy.final_owed
    d.at(3.0).tentative()
    assert not of(Commit, d.at(3.3).turn_end())
    out = d.at(4.0).final("so the address changed.")
    assert one(Commit, out).text == "I moved last month so the address changed."


def test_finals_only_engine_a_final_later_than_the_wait_is_never_fatal_and_is_answered_once():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.at(2.02).tentative()
    d.at(2.3).turn_end()
    out = d.fire(Timer.FINAL_WAIT)
    assert one(Commit, out).text == "" and one(Commit, out).forced
    assert not of(FailCall, d.log)
    out = d.at(5.0).final("Tomorrow works.")  # words the VAD's turn is long over for
    assert one(TurnOver, out).reason == "words without a VAD turn"
    assert one(StartReply, out).user_text == "Tomorrow works."
    assert len(of(StartReply, d.log)) == 1


def test_the_recogniser_ends_a_turn_the_vad_holds_open_in_babble_and_it_is_answered_once():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.babble()  # the VAD flaps: never 300 ms of silence
    # The caller's voice stopped at 2.5; the babble the VAD hears since is near the background.
    out = d.at(3.3).final("Hi, I'm calling about my table.", voice_at=2.5)
    assert one(TurnOver, out).reason == "the recogniser heard the speech end"
    assert one(StartReply, out).committed
    assert not of(Commit, d.at(3.5).turn_end())  # the VAD catching up commits nothing again
    assert len(of(StartReply, d.log)) == 1


def test_a_finals_only_final_mid_line_while_the_caller_talks_does_not_end_the_turn():
    # field-08 on Google: a piper voice drops ~9 dB for half a second, the engine's segmentation
    # finalizes there, and its final lands while the caller's voice is still heard.
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.babble()  # no 300 ms of silence: the VAD holds the turn open all along
    out = d.at(3.3).final("No, I don't want to", voice_at=3.28)
    assert not of(TurnOver, out) and not of(Commit, out) and not of(StartReply, out)
    assert d.policy.turn is CallerTurn.SPEAKING and d.policy.final_owed  # the newer words are owed
    d.at(4.2).tentative()
    assert not of(Commit, d.at(4.5).turn_end())  # the VAD's end: their last words are owed
    out = d.at(5.2).final("freeze it. Just cancel it, please.", voice_at=4.2)
    assert one(Commit, out).text == "No, I don't want to freeze it. Just cancel it, please."
    assert len(of(StartReply, d.log)) == 1


def test_a_finals_only_final_after_the_callers_voice_stopped_ends_the_turn_in_a_pause_too():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.babble()
    d.at(3.25).tentative()  # babble's flapping, the caller silent since 2.5
    out = d.at(3.3).final("Okay, thanks.", voice_at=2.5)
    assert one(TurnOver, out).reason == "the recogniser heard the speech end"
    assert one(Commit, out).text == "Okay, thanks."


def test_deepgram_speech_final_ends_the_turn_only_after_enough_vad_speech():
    d = Driver(TurnConfig(speculative=False))
    d.at(1.0).speech()
    assert not of(TurnOver, d.at(1.3).final("Hi.", speech_final=True))  # the VAD just began
    d = Driver(TurnConfig(speculative=False))
    d.at(1.0).speech()
    assert one(TurnOver, d.at(2.0).final("Hi.", speech_final=True)).reason == "the recogniser heard the speech end"


def test_words_after_the_recogniser_ended_an_unfinished_turn_reopen_it():
    # field-08: "it's under the name Jordan Alvarez", a slow voice: the recogniser's own
    # endpointing closes "it's under" while the VAD still hears the caller.
    d = Driver()
    d.at(1.0).speech()
    d.at(1.3).interim("it's")
    out = d.at(1.8).final("it's under", speech_final=True)
    assert one(TurnOver, out).reason == "the recogniser heard the speech end"
    assert d.policy.turn is CallerTurn.HOLDING and not of(Commit, out)
    out = d.at(2.0).interim("the")  # their next words: they went on
    assert d.policy.turn is CallerTurn.SPEAKING and one(CancelTimer, out).timer is Timer.HOLD
    assert d.policy.reply is None  # the reply prepared in the hold was dropped
    assert not d.at(2.7).tentative() or d.policy.turn is CallerTurn.PAUSED
    d.at(2.75).final("the name Jordan Alvarez")
    out = d.at(3.0).turn_end()
    assert one(Commit, out).text == "it's under the name Jordan Alvarez"
    assert len(of(Commit, d.log)) == 1


def test_tags_after_the_recogniser_ended_an_unfinished_turn_do_not_reopen_it():
    d = Driver()
    d.at(1.0).speech()
    d.at(1.8).final("it's under", speech_final=True)
    d.at(2.0).interim("(unrecognised speech, 0.4 s)")
    assert d.policy.turn is CallerTurn.HOLDING
    assert one(Commit, d.fire(Timer.HOLD)).text.startswith("it's under")


def test_noise_that_keeps_the_vad_on_without_new_words_ends_the_turn():
    d = words_then_pause("Thanks, bye.", opening=False)
    # pause after pause, each Finalize answered without new words; the answer for the pause
    # 0.3 s after the one that followed the words ends the turn (not the pause itself: the
    # audio before it has no answer yet)
    d.at(1.62).resumed()
    d.at(1.64).tentative()
    assert not of(TurnOver, d.at(1.74).final(""))
    d.at(1.76).resumed()
    assert not of(TurnOver, d.at(1.8).tentative())
    out = d.at(1.9).final("")
    assert one(TurnOver, out).reason == "noise kept the VAD on without new words"
    assert one(Commit, out).text == "Thanks, bye."
    assert not of(Commit, d.at(2.2).turn_end())  # the VAD catching up commits nothing again


def test_noise_ends_an_unpunctuated_turn_on_words_that_read_finished_one_pause_later():
    # noise-babble-10db with a recogniser that does not punctuate: the babble keeps the VAD on,
    # the words read finished; three wordless answers end the turn (two with punctuation).
    d = words_then_pause("the invoice number is three three one seven", opening=False)
    ended = []
    for t in (1.65, 1.85, 2.05):
        d.at(t).resumed()
        d.at(t + 0.05).tentative()
        ended.append(bool(of(TurnOver, out := d.at(t + 0.15).final(""))))
    assert ended == [False, False, True]
    assert one(Commit, out).text == "the invoice number is three three one seven"


def test_noise_ends_the_turn_only_a_whole_end_of_turn_after_the_last_words():
    # noise-street-10db u2 as the bench's engine saw it (aligned STT emulator): "Sorry, it's loud
    # here. [240 ms] Yes, I booked the car service for Monday." Passing cars flap the VAD in the
    # 240 ms pause; two Finalizes come back without new words (the old rule ended the turn on
    # "Sorry, it's loud here." at the next pause), but only 0.14 s after the pause that followed
    # "here.", and the next answer has "Yes,".
    d = Driver()
    d.policy.opening = False  # u2: the agent has answered u1
    d.at(1.0).speech()
    for t, kind, text in ((1.279, "pause", ""), (1.359, "resumed", ""), (1.381, "final", "Sorry,"),
                          (1.5, "pause", ""), (1.599, "resumed", ""), (1.602, "final", ""),
                          (2.1, "interim", "it's loud"), (2.6, "interim", "it's loud here."),
                          (2.681, "pause", ""), (2.699, "resumed", ""), (2.783, "final", "it's loud here."),
                          (2.821, "pause", ""), (2.84, "resumed", ""), (2.942, "final", ""),
                          (3.02, "pause", ""), (3.1, "resumed", ""), (3.12, "final", "Yes,"),
                          (3.7, "interim", "I booked the car service"), (4.1, "pause", ""),
                          (4.2, "final", "I booked the car service for Monday.")):
        assert not of(TurnOver, d.at(t).replay(kind, text)), t
    out = d.at(4.38).turn_end()
    assert one(Commit, out).text == "Sorry, it's loud here. Yes, I booked the car service for Monday."
    assert len(of(Commit, d.log)) == 1


BABBLE_HELLO = ((1.14, "pause", ""), (1.242, "final", ""), (1.26, "resumed", ""),
                (1.36, "pause", ""), (1.461, "final", ""), (1.52, "resumed", ""),
                (1.761, "interim", "Hello?"), (1.92, "pause", ""), (2.001, "resumed", ""),
                (2.024, "final", "Hello?"), (2.06, "pause", ""), (2.08, "resumed", ""),
                (2.16, "final", ""))
"""noise-babble-10db u1, "Hello?", as the bench's engine saw it: the babble flaps the VAD for
seconds. The interim shows "Hello?" while it is still being said (1.761), so the words are
anchored at the pause after it (1.92); the answer for the pause at 2.06 has no new words."""


def test_babble_after_a_later_turns_words_ends_it_on_the_answer_a_whole_end_of_turn_later():
    d = Driver()
    d.policy.opening = False
    d.at(1.0).speech()
    for t, kind, text in (*BABBLE_HELLO, (2.22, "pause", ""), (2.24, "resumed", "")):
        assert not of(TurnOver, d.at(t).replay(kind, text)), t
    d.at(2.261).tentative(quiet_run=True)
    out = d.at(2.32).final("")
    assert one(TurnOver, out).reason == "noise kept the VAD on without new words"
    assert one(Commit, out).text == "Hello?" and one(CommitReply, out)  # the speculation on it


def test_babble_after_a_caller_answering_the_phone_ends_the_turn_at_the_pause_the_vad_would():
    # Answering the phone, the caller waits for the agent: the pause a whole end of turn after
    # "Hello?" (2.22), with the answers so far wordless, ends the turn then, not an answer later.
    d = Driver()
    d.at(1.0).speech()
    for t, kind, text in BABBLE_HELLO:
        assert not of(TurnOver, d.at(t).replay(kind, text)), t
    out = d.at(2.22).tentative()
    assert one(TurnOver, out).reason == "noise kept the VAD on without new words"
    assert one(Commit, out).text == "Hello?" and one(CommitReply, out)
    assert not of(FinalizeStt, out)  # nothing more to ask the recogniser for


def test_an_opening_pause_too_soon_after_the_words_waits():
    d = Driver()
    d.at(1.0).speech()
    for t, kind, text in BABBLE_HELLO[:-1]:  # the answer for 2.06 not in yet: no wordless answer
        d.at(t).replay(kind, text)
    assert not of(TurnOver, d.at(2.22).tentative())


def test_a_finals_only_engine_leaves_noise_to_its_own_endpointing():
    # Without Finalize no final answers a pause: the noise rule never ends the turn; the
    # recogniser's final does, once the turn is older than its lag.
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.at(1.5).tentative()
    for i in range(6):
        d.at(1.6 + 0.15 * i).resumed()
        d.at(1.65 + 0.15 * i).tentative()
        assert not of(TurnOver, d.at(1.7 + 0.15 * i).final("") if i % 2 else [])
    out = d.at(2.6).final("Thanks, bye.")
    assert one(TurnOver, out).reason == "the recogniser heard the speech end"


def test_deepgram_speech_final_answers_no_finalize():
    # A speech_final of Deepgram's own endpointing between a Finalize and its answer must not be
    # taken for that answer: the noise rule would think a later pause answered.
    d = words_then_pause("Thanks, bye.")
    d.at(1.62).resumed()
    d.at(1.64).tentative()
    d.at(1.66).resumed()
    d.at(1.8).tentative()
    assert not of(TurnOver, d.at(1.85).final("", speech_final=True))  # not the answer for 1.8
    assert not of(TurnOver, d.at(1.86).final(""))  # the answer for 1.64: 0.14 s
    assert one(TurnOver, d.at(1.9).final("")).reason == "noise kept the VAD on without new words"  # 1.8's


def test_a_breath_in_a_slow_callers_pause_is_not_noise():
    # field-07-espeak-140 u2: "Ah, about the library books. [320 ms] I returned them...". The
    # VAD flaps on the breath between the sentences, the recogniser adds no words: the same
    # events as babble, except that the "speech" in the pause is 25-30 dB under the words.
    d = words_then_pause("Ah, about the library books.")
    outs = []
    for t in (1.58, 1.86):  # two quiet runs, each a wordless pause
        d.at(t).resumed()
        outs.append(d.at(t + 0.1).tentative(quiet_run=True))
        d.at(t + 0.2).final("")
    assert not [c for out in outs for c in out if isinstance(c, (TurnOver, Commit))]
    assert d.policy.turn is CallerTurn.PAUSED
    d.at(2.2).resumed()
    d.interim("I returned them")  # the next sentence: one turn, answered once it is over
    d.at(2.9).tentative()
    d.at(3.0).final("I returned them on Friday.")
    assert one(Commit, d.at(3.2).turn_end()).text == "Ah, about the library books. I returned them on Friday."


def test_quiet_runs_between_loud_ones_do_not_save_a_turn_from_noise():
    # Babble swings: a quiet stretch among loud ones neither counts nor clears the count.
    d = words_then_pause("Thanks, bye.", opening=False)
    out = []
    for t, quiet in ((1.65, False), (1.8, True), (1.95, False)):
        d.at(t).resumed()
        d.at(t + 0.02).tentative(quiet_run=quiet)
        out = d.at(t + 0.12).final("")
    assert one(TurnOver, out).reason == "noise kept the VAD on without new words"


# -- the hold -------------------------------------------------------------------------------


def test_a_callee_answering_hello_is_answered_at_the_end_of_turn_and_later_okays_wait():
    # Unpunctuated, "hello" is only interjections: before the agent has spoken, it is the callee
    # picking up, answered at the end of turn; after, an "okay" may preface more and waits half
    # the hold.
    d = Driver()
    a_turn(d, "yeah hello")
    assert one(Commit, d.at(2.32).turn_end()).text == "yeah hello"
    reply = d.policy.reply
    assert reply is not None and d.policy.turn is CallerTurn.IDLE
    d.send(ReplySpeaking(reply.utterance_id))
    d.at(4.0).send(PlayoutDone(reply.utterance_id, 4.0))
    a_turn(d, "okay thanks", start=5.0)
    out = d.at(6.32).turn_end()
    assert not [c for c in out if isinstance(c, Commit)] and d.policy.turn is CallerTurn.HOLDING
    assert d.policy.timer_deadline(Timer.HOLD) == pytest.approx(6.32 + 0.35)


def test_a_turn_that_stops_mid_sentence_is_held_then_answered():
    d = Driver()
    a_turn(d, "my order number is")
    out = d.at(2.3).turn_end()
    assert d.policy.turn is CallerTurn.HOLDING and not of(Commit, out)
    hold = next(c for c in out if type(c) is StartTimer and c.timer is Timer.HOLD)
    assert hold.deadline == pytest.approx(2.3 + 0.7)
    assert one(StartReply, out).speculative  # ready when the hold runs out
    out = d.fire(Timer.HOLD)
    assert one(StampTurn, out).name == "turn_end"
    assert one(Commit, out).forced and one(CommitReply, out)


def test_a_number_is_held_half_as_long():
    d = Driver()
    a_turn(d, "the order number is four seven two")
    out = d.at(2.3).turn_end()
    assert [c.deadline for c in out if type(c) is StartTimer and c.timer is Timer.HOLD] == [pytest.approx(2.65)]


def test_speech_within_the_hold_merges_the_turns_into_one_reply():
    d = Driver()
    a_turn(d, "my order number is")
    d.at(2.3).turn_end()
    out = d.at(2.8).speech()
    assert one(DropReply, out) and one(CancelTimer, out).timer is Timer.HOLD
    a_turn(d, "four seven two nine one eight", start=2.8, length=1.8)
    d.at(4.9).turn_end()  # six digits: a whole number, answered at the end of turn
    assert d.policy.reply.committed
    assert d.policy.reply.user_text == "my order number is four seven two nine one eight"
    answered = [c for c in d.log if type(c) in (StartReply,) and c.committed] + of(CommitReply, d.log)
    assert len(answered) == 1


def test_without_the_hold_setting_the_unfinished_line_is_answered_at_the_end_of_turn():
    d = Driver(TurnConfig(incomplete_turn_hold_ms=0))
    a_turn(d, "my order number is")
    assert one(CommitReply, d.at(2.3).turn_end())


# -- the final contour ----------------------------------------------------------------------


def _after_a_first_reply(d: Driver) -> None:
    """The agent has spoken (interjections then read unsure, not as answering the phone)."""
    a_turn(d, "Hi.", start=0.0, length=0.5)
    d.at(0.82).turn_end()
    d.speak()
    d.at(0.9).played()


def test_unsure_words_that_end_on_a_falling_voice_are_speculated_on_and_answered_at_the_end_of_turn():
    # "great thank you", unpunctuated, reads unsure (an okay may preface more); the voice fell.
    d = Driver()
    _after_a_first_reply(d)
    d.at(1.0).speech()
    d.at(1.5).interim("great thank you")
    reply = one(StartReply, d.at(2.02).tentative(contour=Contour.FALL))
    assert reply.speculative and reply.user_text == "great thank you"
    d.at(2.12).final("great thank you")
    out = d.at(2.32).turn_end()
    assert one(CommitReply, out).utterance_id == reply.utterance_id
    assert Timer.HOLD not in [c.timer for c in of(StartTimer, out)] and d.policy.turn is CallerTurn.IDLE


def test_unsure_words_on_a_level_or_unknown_voice_wait_half_the_hold_as_before():
    for contour in (Contour.LEVEL, Contour.RISE, None):
        d = Driver()
        _after_a_first_reply(d)
        a_turn(d, "great thank you", contour=contour)
        out = d.at(2.32).turn_end()
        assert d.policy.turn is CallerTurn.HOLDING and not of(Commit, out)
        assert d.policy.timer_deadline(Timer.HOLD) == pytest.approx(2.32 + 0.35)


def test_complete_unpunctuated_words_on_a_rising_voice_wait_half_the_hold_and_the_caller_goes_on():
    # "alright I guess I'll wait then, [340 ms] thanks": stripped, the words read done.
    d = Driver()
    _after_a_first_reply(d)
    d.at(1.0).speech()
    d.at(1.5).interim("alright i guess i'll wait then")
    assert not of(StartReply, d.at(2.02).tentative(contour=Contour.RISE))  # no speculation on it
    d.at(2.12).final("alright i guess i'll wait then")
    out = d.at(2.32).turn_end()
    assert d.policy.turn is CallerTurn.HOLDING and not of(Commit, out)
    assert d.policy.timer_deadline(Timer.HOLD) == pytest.approx(2.32 + 0.35)
    d.at(2.36).speech()  # "thanks", within the hold: one merged turn
    a_turn(d, "thanks", start=2.36, length=0.4, contour=Contour.FALL)
    d.at(3.08).turn_end()
    assert d.policy.reply.committed and d.policy.reply.user_text == "alright i guess i'll wait then thanks"


def test_a_rising_question_and_punctuated_words_are_answered_as_the_words_say():
    for text in ("can you move it to wednesday morning", "I'll wait then.", "Can you move it?"):
        d = Driver()
        _after_a_first_reply(d)
        a_turn(d, text, contour=Contour.RISE)
        assert one(CommitReply, d.at(2.32).turn_end())
    d = Driver()
    _after_a_first_reply(d)
    a_turn(d, "Thanks, bye,", contour=Contour.FALL)  # the recogniser heard it trail off
    d.at(2.32).turn_end()
    assert d.policy.turn is CallerTurn.HOLDING


def test_the_contour_of_an_earlier_pause_does_not_judge_words_said_after_it():
    d = Driver()
    _after_a_first_reply(d)
    d.at(1.0).speech()
    d.at(1.5).interim("thanks")
    d.at(2.02).tentative(contour=Contour.FALL)
    d.at(2.1).resumed()  # the caller went on; the recogniser ends the turn on its own
    assert d.policy.pause_audio.contour() is Contour.UNKNOWN


def test_with_the_setting_off_the_voice_is_never_read():
    d = Driver(TurnConfig(final_contour=False))
    _after_a_first_reply(d)
    d.at(1.0).speech()
    d.at(1.5).interim("great thank you")
    unreadable = PauseAudio(b"\x01\x02" * 4000, sample_rate=11025)  # reading it would raise
    assert not of(StartReply, d.at(2.02).send(TentativeEnd(2.02, audio=unreadable)))
    d.at(2.12).final("great thank you")
    d.at(2.32).turn_end()
    assert d.policy.turn is CallerTurn.HOLDING


def test_the_agent_setting_reaches_the_policy():
    assert turn_config(resolve(AgentConfig()), object(), 0.8).final_contour  # type: ignore[arg-type]
    off = resolve(AgentConfig(final_contour=False))
    assert not turn_config(off, object(), 0.8).final_contour  # type: ignore[arg-type]


# -- one answer per turn --------------------------------------------------------------------


def test_a_caller_who_goes_on_before_hearing_the_reply_gets_one_merged_reply():
    d = Driver()
    a_turn(d, "Hi.")
    d.at(2.3).turn_end()
    out = d.at(2.4).speech()  # the reply is committed but not heard yet
    assert one(DropReply, out).reason == "the caller went on before hearing it"
    a_turn(d, "I need help with my bill.", start=2.4)
    d.at(3.7).turn_end()
    assert d.policy.reply.user_text == "Hi. I need help with my bill."


def test_answered_words_are_not_answered_again():
    d = Driver()
    a_turn(d, "Hi.")
    d.at(2.3).turn_end()
    d.at(2.5).speak()
    assert d.policy.finals == []
    d.at(3.5).played()
    a_turn(d, "Bye.", start=4.0)
    d.at(5.3).turn_end()
    assert d.policy.reply.user_text == "Bye."


# -- the playout end ------------------------------------------------------------------------


def test_until_the_reply_has_played_no_new_speculation_and_the_playout_end_frees_the_next_turn():
    # The session reports the end of playout from the carrier's mark echo, or from its own clock
    # when no echo comes (tests/engine/test_session.py); either way this frees the next turn.
    d = Driver()
    a_turn(d, "Hi.")
    d.at(2.3).turn_end()
    d.at(2.5).speak()
    assert d.policy.mode == "speaking"
    d.at(3.0).played()
    assert d.policy.mode == "listening" and d.policy.reply is None
    d.at(3.5).speech()
    d.interim("Where is my parcel?")
    assert one(StartReply, d.at(4.0).tentative()).speculative


def test_a_playout_end_for_another_utterance_changes_nothing():
    d = Driver()
    a_turn(d, "Hi.")
    d.at(2.3).turn_end()
    d.at(2.5).speak()
    d.played(uid=999)
    assert d.policy.mode == "speaking"


# -- barge-in -------------------------------------------------------------------------------


def answered_and_speaking(d: Driver) -> int:
    a_turn(d, "Hi.")
    d.at(2.3).turn_end()
    d.at(2.5).speak()
    return d.policy.reply.utterance_id


def test_a_barge_in_without_words_waits_for_them_and_noise_resumes_the_reply():
    d = Driver()
    answered_and_speaking(d)
    out = d.at(3.0).send(BargeInPending(3.0))
    assert one(StartTimer, out).timer is Timer.NOISE
    d.at(3.34).send(VadBargeIn(3.34))
    assert d.policy.barge_in_deferred
    out = d.fire(Timer.NOISE)
    assert one(ResumeAfterHold, out) and not d.policy.barge_in_deferred


def test_words_over_a_held_reply_confirm_the_barge_in():
    d = Driver()
    uid = answered_and_speaking(d)
    d.at(3.0).send(BargeInPending(3.0))
    d.at(3.34).send(VadBargeIn(3.34))
    out = d.at(3.4).interim("wait")
    assert one(ConfirmBargeIn, out)
    d.send(BargeIn(3.4, uid))
    assert d.policy.reply is None and not d.policy.barge_in_deferred


def test_words_heard_before_the_vad_confirms_make_it_a_barge_in_at_once():
    d = Driver()
    answered_and_speaking(d)
    d.at(3.0).send(BargeInPending(3.0))
    d.at(3.2).interim("actually")
    d.at(3.34).send(VadBargeIn(3.34))
    assert not d.policy.barge_in_deferred


def test_a_finals_only_engine_cannot_wait_for_words_so_the_vad_decides():
    d = Driver(FINALS_ONLY)
    d.at(1.0).speech()
    d.at(2.02).tentative()
    d.at(2.2).final("Hi.")
    d.at(2.3).turn_end()
    d.speak()
    assert not of(StartTimer, d.at(3.0).send(BargeInPending(3.0)))
    d.at(3.34).send(VadBargeIn(3.34))
    assert not d.policy.barge_in_deferred


def test_an_unheard_reply_cut_off_gives_its_words_back_to_the_next_turn():
    d = Driver()
    uid = answered_and_speaking(d)
    d.send(BargeIn(2.6, uid, returned_text="Hi."))
    assert d.policy.finals == ["Hi."]


def test_a_backchannel_over_the_agent_is_not_a_turn():
    d = Driver()
    answered_and_speaking(d)
    d.at(3.0).send(BargeInPending(3.0))
    out = d.at(3.2).send(BargeInRejected(3.2))
    assert of(FinalizeStt, out) and one(CancelTimer, out).timer is Timer.NOISE
    out = d.at(3.3).final("uh-huh")
    assert one(DiscardText, out).reason and d.policy.finals == []


def test_words_outside_any_turn_while_the_agent_speaks_are_discarded_with_a_reason():
    d = Driver()
    answered_and_speaking(d)
    assert one(DiscardText, d.at(3.0).final("hmm")).text == "hmm"


# -- keys -----------------------------------------------------------------------------------


def test_keys_end_on_a_pause_and_commit_like_words():
    d = Driver(TurnConfig(gather=GatherConfig(inter_digit_timeout_s=2.0)))
    d.at(1.0).send(KeyPressed(1.0, "4"))
    out = d.at(1.5).send(KeyPressed(1.5, "2"))
    assert [c.deadline for c in out if type(c) is StartTimer] == [3.5]
    assert one(KeysEntered, d.fire(Timer.DTMF)).digits == "42"
    out = d.send(KeysHeard(3.5, "The caller pressed 4 2 on the keypad."))
    assert one(TurnOver, out).reason == "keys" and one(StartReply, out).committed


def test_a_terminator_ends_the_keys_at_once():
    d = Driver()
    d.send(KeyPressed(1.0, "7"))
    out = d.send(KeyPressed(1.2, "#"))
    assert one(KeysEntered, out).digits == "7#" and one(CancelTimer, out).timer is Timer.DTMF


# -- the tool filler ------------------------------------------------------------------------


def committed_reply(d: Driver) -> int:
    a_turn(d, "Where is my order?")
    d.at(2.3).turn_end()
    return d.policy.reply.utterance_id


def test_a_slow_tool_gets_the_filler_line_once():
    d = Driver()
    uid = committed_reply(d)
    out = d.at(2.6).send(ToolStarted(uid, 2.6))
    assert [c.deadline for c in out if type(c) is StartTimer] == [pytest.approx(4.1)]
    assert one(SayFiller, d.fire(Timer.TOOL_FILLER)) == SayFiller(uid, "tool")
    d.send(ToolFinished(uid, 5.0))
    d.send(ToolStarted(uid, 5.5))  # a second slow tool in the same reply: no second filler
    assert d.policy.timer_deadline(Timer.TOOL_FILLER) is None and len(of(SayFiller, d.log)) == 1


def test_a_quick_tool_gets_no_filler():
    d = Driver()
    uid = committed_reply(d)
    d.send(ToolStarted(uid, 2.6))
    out = d.send(ToolFinished(uid, 3.0))
    assert one(CancelTimer, out).timer is Timer.TOOL_FILLER
    assert not of(SayFiller, d.log)


def test_no_filler_while_the_caller_is_talking_or_after_the_reply_is_gone():
    d = Driver()
    a_turn(d, "Where is my order?")
    uid = d.policy.reply.utterance_id  # speculative, the tool runs in it
    d.send(ToolStarted(uid, 2.2))
    d.at(2.25).speech()  # the caller goes on: the reply is dropped, its filler timer with it
    assert d.policy.timer_deadline(Timer.TOOL_FILLER) is None
    assert not of(SayFiller, d.log)


def test_the_filler_setting_zero_means_never():
    d = Driver(TurnConfig(tool_filler_after_s=0))
    uid = committed_reply(d)
    assert not of(StartTimer, d.send(ToolStarted(uid, 2.6)))


# -- failures, greeting, the end ------------------------------------------------------------


def test_a_failed_reply_is_retried_once_with_the_filler_then_fails_the_call():
    d = Driver()
    uid = committed_reply(d)
    out = d.send(ReplyFailed(uid, "stalled"))
    retry = one(StartReply, out)
    assert one(DropReply, out).utterance_id == uid and one(SayFiller, out).kind == "retry"
    assert retry.attempt == 1 and retry.user_text == "Where is my order?" and retry.committed
    assert one(FailCall, d.send(ReplyFailed(retry.utterance_id, "stalled again"))).reason.startswith("provider failure")


def test_a_failing_call_answers_nothing_more():
    d = Driver()
    d.send(Failing("speech recognition failed", apology_id=d.policy.new_utterance_id()))
    a_turn(d, "Hello?")
    out = d.at(2.3).turn_end()
    assert not of(StartReply, d.log) and not of(CommitReply, out)


def test_the_greeting_is_a_fixed_reply_the_caller_cannot_merge_into():
    d = Driver()
    greet = one(StartReply, d.send(Greet("Hello, how can I help?")))
    assert greet.fixed_text == "Hello, how can I help?" and greet.committed
    d.at(0.5).speech()  # over the greeting, before it played: it is not dropped
    assert d.policy.reply.utterance_id == greet.utterance_id


def test_a_turn_that_ends_before_the_greeting_is_heard_waits_for_the_next_one():
    # The callee answers ("yeah hello") before the greeting's first audio is out (a slow TTS, a
    # long setup): the greeting is the agent's turn, as it is once its audio is out. It is
    # neither dropped nor joined by a second reply; the words wait for the caller's next turn.
    d = Driver()
    greet = one(StartReply, d.send(Greet("Hi, this is Sam from Acme.")))
    a_turn(d, "yeah hello")
    d.at(2.32).turn_end()
    assert of(StartReply, d.log) == [greet] and not of(DropReply, d.log) and not of(Commit, d.log)
    assert d.policy.reply.utterance_id == greet.utterance_id and d.policy.turn is CallerTurn.IDLE
    assert d.policy.finals == ["yeah hello"]
    d.at(2.5).speak()
    d.at(4.0).played()
    a_turn(d, "Yes, speaking.", start=5.0)
    out = d.at(6.32).turn_end()
    assert one(Commit, out).text == "yeah hello Yes, speaking." == d.policy.reply.user_text


def test_keys_before_the_greeting_is_heard_wait_for_the_next_turn_too():
    d = Driver()
    greet = one(StartReply, d.send(Greet("Hi, this is Sam from Acme.")))
    d.send(KeysHeard(0.5, "The caller pressed 1 on the keypad."))
    assert of(StartReply, d.log) == [greet] and not of(DropReply, d.log)
    assert d.policy.reply.utterance_id == greet.utterance_id
    assert d.policy.finals == ["The caller pressed 1 on the keypad."]


def test_a_stale_timer_does_nothing_and_a_stopped_call_takes_no_events():
    d = Driver()
    a_turn(d, "my order number is")
    d.at(2.3).turn_end()
    d.at(2.5).speech()  # cancels the hold
    assert d.send(TimerFired(Timer.HOLD, 3.0)) == []
    out = d.send(Stopped(4.0))
    assert {c.timer for c in of(CancelTimer, out)} <= set(Timer)
    assert d.send(SpeechStarted(5.0)) == [] and d.send(TurnEnded(5.3)) == []


def test_words_that_end_a_turn_while_the_agent_speaks_never_start_a_second_voice():
    # A final later than the wait lands while the reply plays; then noise over the reply (no
    # words, so not a barge-in) makes a VAD turn that ends. Its text is the late final: it waits
    # for the caller's next turn instead of starting a reply over the one playing.
    d = Driver()
    d.at(1.0).speech()
    d.interim("my order")
    d.at(2.0).tentative()
    d.at(2.3).turn_end()
    d.fire(Timer.FINAL_WAIT)
    first = d.policy.reply.utterance_id
    d.at(3.4).speak()
    d.at(3.5).final("my order number")  # late: kept
    d.at(3.6).send(BargeInPending(3.6))
    d.at(3.8).send(VadBargeIn(3.8))
    d.at(3.8).send(SpeechStarted(3.8, barge_in=True))
    d.at(4.0).tentative()
    out = d.at(4.3).turn_end()
    assert of(ResumeAfterHold, out)
    d.fire(Timer.FINAL_WAIT)
    assert d.policy.reply.utterance_id == first and not of(Commit, d.log[-3:])
    assert [c for c in d.log if type(c) is StartReply] == [c for c in d.log if type(c) is StartReply][:1]
    assert d.policy.finals == ["my order number"]
