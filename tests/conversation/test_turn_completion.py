"""The end-of-turn judgement on punctuated and unpunctuated transcripts."""

import re

import pytest

from bench.corpus.model import CORPUS_DIR, FIELD_DIR, load_corpus
from bench.emulators.stt import strip_punctuation
from engine.conversation.turn_completion import Verdict, hold_ms, judge_text, judge_turn
from engine.prosody import Contour

COMPLETE, INCOMPLETE, UNSURE = Verdict.COMPLETE, Verdict.INCOMPLETE, Verdict.UNSURE


@pytest.mark.parametrize("text, verdict", [
    # Punctuation, where given, decides.
    ("The order number is...", INCOMPLETE),
    ("The order number is…", INCOMPLETE),
    ("Let me see,", INCOMPLETE),
    ("It shipped on Tuesday.", COMPLETE),
    ("Could we move it to Friday?", COMPLETE),
    ("It was \"express\".", COMPLETE),
    ("Thanks, bye!", COMPLETE),
    ("(unrecognised speech, 1.4 s)", COMPLETE),
    ("Hi, I need to check on a parcel. The order", UNSURE),  # punctuated, not closed
    ("Okay, I'll think about", INCOMPLETE),
    ("alright I guess I'll wait then, thanks", UNSURE),
    ("(unrecognised speech, 1.4 s) yes it is", COMPLETE),
    ("the order number in 4.5 to 9.1.8", UNSURE),  # decimals are not punctuation
    ("", COMPLETE),
    # Unpunctuated: the last words decide.
    ("my order number is", INCOMPLETE),
    ("i think it went out on", INCOMPLETE),
    ("i'd like to book a table for", INCOMPLETE),
    ("i want to", INCOMPLETE),
    ("it was delivered to the", INCOMPLETE),
    ("send it to my", INCOMPLETE),
    ("me and", INCOMPLETE),
    # (not corpus lines: prepositions a name or a place follows)
    ("it's under", INCOMPLETE),
    ("the booking is under the", INCOMPLETE),
    ("i'm ringing regarding", INCOMPLETE),
    ("the parcel is somewhere between", INCOMPLETE),
    ("it's under my name", COMPLETE),
    ("the reason is um", INCOMPLETE),
    ("yes it's", INCOMPLETE),
    ("I’m", INCOMPLETE),
    ("the package should", INCOMPLETE),
    ("sure let me just find my card", INCOMPLETE),
    ("hold on a second i need to", INCOMPLETE),
    ("it went out on tuesday no sorry", INCOMPLETE),
    ("it was the blue one i mean", INCOMPLETE),
    ("the new address is twenty one", UNSURE),
    ("the order number is four seven two", UNSURE),  # a group: "... nine one eight" follows
    ("it ends in four four one 2", COMPLETE),  # four digits: a whole number
    ("the new one ends in three three eight one", COMPLETE),
    ("it was forty nine ninety nine", COMPLETE),
    ("my pin is 4412", COMPLETE),
    ("it's oh double seven", UNSURE),  # three digits
    # "one" standing for a thing is no digit; a digit group still reads as one.
    ("thursday afternoon would be perfect let's do that one", COMPLETE),
    ("which one", COMPLETE),
    ("i'd rather have the other one", COMPLETE),
    ("the new one", COMPLETE),
    ("i'll take a cheaper one", COMPLETE),
    ("the postcode is s w one", UNSURE),
    ("it's the number one", UNSURE),
    ("the order number is four seven one", UNSURE),
    # A single number after a preposition of quantity or time is a whole answer ...
    ("can we make it six people instead of four", COMPLETE),
    ("the appointment was for the ninth i think at two", COMPLETE),
    ("i'd give the service a seven out of ten", COMPLETE),
    ("a table for 6", COMPLETE),
    ("i'll be home after three", COMPLETE),
    # ... not two number words, a dictation's "oh", nor a number after "is", "in" or "with".
    ("i live at twenty one", UNSURE),
    ("you can reach me at oh", UNSURE),
    ("the code is four", UNSURE),
    ("it ends in four", UNSURE),
    ("the tracking number starts with seven seven", UNSURE),  # a prefix given part by part
    ("hey there so i got a text saying my package was delayed", COMPLETE),
    ("yes it is", COMPLETE),
    ("can you tell me what my current balance is", COMPLETE),
    ("i don't know where the nearest store is", COMPLETE),
    ("i do", COMPLETE),
    ("i think so", COMPLETE),
    ("alright i'll wait then thanks", COMPLETE),
    ("not really that's all from me", COMPLETE),
    ("what would that come to per month roughly", COMPLETE),
    ("can you turn it off", COMPLETE),
    ("sorry what", COMPLETE),
    ("let me check okay it's the fifth", COMPLETE),
    ("mm-hmm", COMPLETE),
    ("okay", UNSURE),
    ("great thanks", UNSURE),
    ("yeah hello", UNSURE),
    ("hi who's this", COMPLETE),
    ("the appointment was for the ninth i think", UNSURE),
    ("i'd give the service a seven out of ten you know", UNSURE),
    ("okay let me think about it and call back bye now", COMPLETE),
])
def test_judgement_on_punctuated_and_unpunctuated_text(text, verdict):
    assert judge_text(text) is verdict


@pytest.mark.parametrize("text, verdict", [
    ("yeah hello", COMPLETE),
    ("hello yes", COMPLETE),
    ("hi", COMPLETE),
    ("hello i'm calling about", INCOMPLETE),
    ("my number is oh seven", UNSURE),
    ("Okay, thanks,", INCOMPLETE),  # punctuation still decides
])
def test_answering_the_phone_the_caller_waits_for_the_agent(text, verdict):
    # Before the agent has said a word, interjections alone are the callee picking up
    # ("Hello?"): they wait for the agent, they do not preface more.
    assert judge_text(text, opening=True) is verdict


def test_hold_is_the_setting_when_incomplete_half_when_unsure_none_when_complete():
    assert [hold_ms(v, 700) for v in (COMPLETE, UNSURE, INCOMPLETE)] == [0, 350, 700]


def _lines(root):
    return [s.text for script in load_corpus(root) if script.answer == "human" for s in script.utterances()]


@pytest.mark.parametrize("root", [CORPUS_DIR, FIELD_DIR], ids=["corpus", "field"])
def test_no_finished_line_of_the_callers_is_held_as_unfinished_with_or_without_punctuation(root):
    # A finished line judged incomplete costs the caller the whole hold (700 ms).
    held = [line for line in _lines(root) for text in (line, strip_punctuation(line))
            if judge_text(text) is INCOMPLETE]
    assert held == []


def test_every_mid_sentence_pause_of_the_pause_scripts_is_waited_through_without_punctuation():
    # The corpus's pause scripts mark each mid-line pause with "..." (the recogniser's trailing
    # off); an engine that does not punctuate drops it, and the words alone must keep the turn
    # open: a complete verdict there is a reply over the caller.
    pauses = [s for s in load_corpus(CORPUS_DIR) if s.category == "pauses"]
    assert pauses
    heard = []
    for script in pauses:
        for step in script.utterances():
            parts = re.split(r"\.\.\.|…", step.text)
            assert len(parts) - 1 == len(step.pauses or ()), step.text  # one "..." per labelled pause
            for i in range(1, len(parts)):
                before = "...".join(parts[:i])
                heard.append((strip_punctuation(before), judge_text(strip_punctuation(before))))
                assert judge_text(before + "...") is INCOMPLETE
    assert len(heard) >= 7
    assert [text for text, verdict in heard if verdict is COMPLETE] == []


FALL, LEVEL, RISE, UNKNOWN = Contour.FALL, Contour.LEVEL, Contour.RISE, Contour.UNKNOWN


@pytest.mark.parametrize("text, contour, verdict", [
    # A final fall ends what the words leave unsure...
    ("great thank you", FALL, COMPLETE),
    ("okay thanks", FALL, COMPLETE),
    ("it was a seven out of ten i think", FALL, COMPLETE),
    ("let's do that one", FALL, COMPLETE),
    ("Hi, I need to check on a parcel. The order", FALL, COMPLETE),  # punctuated inside, not closed
    ("great thank you", LEVEL, UNSURE),
    ("great thank you", RISE, UNSURE),
    ("great thank you", UNKNOWN, UNSURE),
    # ... a rise holds words that read complete ...
    ("alright i guess i'll wait then", RISE, UNSURE),
    ("it should go to my office instead", RISE, UNSURE),
    ("alright i guess i'll wait then", LEVEL, COMPLETE),
    ("alright i guess i'll wait then", FALL, COMPLETE),
    # ... unless they ask a question, which rises as it ends.
    ("can you move it to wednesday morning", RISE, COMPLETE),
    ("sounds good what do i need to bring", RISE, COMPLETE),
    ("is this about the invoice i sent", RISE, COMPLETE),
    ("good afternoon who's calling", RISE, COMPLETE),
    # Words that read unfinished stay so, whatever the voice.
    ("my order number is", FALL, INCOMPLETE),
    ("let me just find my card", FALL, INCOMPLETE),
    # The recogniser's final punctuation outranks the voice.
    ("Great, thank you,", FALL, INCOMPLETE),
    ("I'll wait then.", RISE, COMPLETE),
    ("Okay, thanks.", RISE, COMPLETE),
])
def test_the_final_contour_decides_what_unpunctuated_words_leave_open(text, contour, verdict):
    assert judge_turn(text, contour=lambda: contour) is verdict
    assert judge_turn(text) is judge_text(text)  # no audio: the words alone


def test_the_contour_is_read_only_when_it_could_change_the_verdict():
    def unreadable() -> Contour:
        raise AssertionError("read")

    for text in ("my order number is", "It shipped on Tuesday.", "Thanks,", "can you tell me my balance", ""):
        judge_turn(text, contour=unreadable)


def test_answering_the_phone_on_a_rise_is_not_held():
    # "hello" before the agent has spoken reads complete; its rise asks who is there.
    assert judge_turn("yeah hello", opening=True, contour=lambda: RISE) is COMPLETE
    assert judge_turn("hi this is sam", opening=True, contour=lambda: RISE) is COMPLETE
    assert judge_turn("hi this is sam", contour=lambda: RISE) is UNSURE
