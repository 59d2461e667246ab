"""The engine's account of the replies the callee heard: matched by stream and time, then listed."""

from rich.console import Console

from bench.callee import CallMeasurement, TurnResult
from bench.engine_turns import EngineTurns, ends
from bench.report import RunFigures, on_virtual_clock, print_turns

VAD = {"end": "vad", "hold": None, "contour": False, "speculation": "kept", "merged": False}
HELD = {"end": "hold_ran_out", "hold": "unsure", "contour": True, "speculation": "restarted", "merged": False}


def _engine(stream: str, sent: float, outcome: dict | None) -> dict:
    return {"stream_id": stream, "first_frame_sent": sent, "outcome": outcome}


def _call() -> CallMeasurement:
    call = CallMeasurement("pauses-01", "pauses", completed=True, stream_id="s1")
    call.turns = [
        TurnResult("u1", "reply", speech_start_sent=1.0, speech_end_sent=2.0, first_agent_audio=2.33),
        TurnResult("u2", "reply", speech_start_sent=5.0, speech_end_sent=6.0, first_agent_audio=6.71),
        TurnResult("u3", "reply", speech_start_sent=9.0, speech_end_sent=10.0, first_agent_audio=10.5),
        TurnResult("u4", "reply", speech_start_sent=12.0, speech_end_sent=13.0, premature=True, premature_at=12.5,
                   first_agent_audio=13.3),
        TurnResult("u5", "reply", speech_start_sent=15.0, speech_end_sent=16.0),
    ]
    return call


ENGINE = [
    _engine("s1", 2.32, VAD),
    _engine("s1", 6.7, HELD),
    _engine("s2", 10.4, VAD),  # another call's, at the time u3 was heard
    _engine("s1", 12.48, VAD),
]


def test_a_reply_is_the_engines_last_turn_on_its_stream_sent_by_then_and_since_the_caller_began():
    accounts, call = EngineTurns(ENGINE), _call()
    assert [accounts.outcome(call, t) for t in call.turns] == [VAD, HELD, None, VAD, None]
    other = CallMeasurement("pauses-01", "pauses", stream_id="s3", turns=call.turns[:1])
    assert accounts.outcome(other, other.turns[0]) is None  # a stream the engine kept nothing for


def test_the_lists_say_how_the_engine_ended_each_turn_and_count_the_ends():
    figures = on_virtual_clock(RunFigures(concurrency=1, calls=[_call()], engine_turns=ENGINE).as_json())
    assert [t["outcome"] for t in figures["turns"]] == [VAD, HELD, None, VAD, None]
    assert figures["turn_ends"] == {"vad": 3, "hold: unsure words": 1}
    console = Console(record=True, width=400)
    print_turns(figures, console)
    text = console.export_text()
    assert "premature replies (1): pauses-01 u4 300 ms (vad)" in text
    assert "missed turns (1): pauses-01 u5\n" in text  # no reply: nothing to account for
    assert ("replies at 400 ms or later (2): pauses-01 u2 710 ms (hold: unsure words (pitch rose), speculation "
            "restarted), pauses-01 u3 500 ms (no engine account)") in text
    assert "how the engine's turns ended: vad 3, hold: unsure words 1" in text


def test_ends_reads_the_merged_and_broken_holds_apart():
    merged = {**VAD, "merged": True}
    broken = {**VAD, "hold": "incomplete", "merged": True}
    assert ends([{"outcome": o} for o in (VAD, merged, broken, broken, None)]) == {
        "vad after a broken hold (incomplete words)": 2, "vad": 1, "vad after more speech (merged)": 1}


def test_a_reply_the_engine_did_not_measure_is_its_turn_committed_last_by_then():
    # u4's reply went out once the caller had begun again (premature): the engine measured no turn
    # for it, but kept how the turn it answered ended, committed at 12.2.
    noise = {**VAD, "end": "noise"}
    unmeasured = [{"stream_id": "s1", "stt_final": 12.2, "first_frame_sent": None, "outcome": noise},
                  {"stream_id": "s1", "stt_final": 3.0, "first_frame_sent": None, "outcome": HELD}]
    accounts, call = EngineTurns(ENGINE[:2], unmeasured), _call()
    assert [accounts.outcome(call, t) for t in call.turns] == [VAD, HELD, None, noise, None]
