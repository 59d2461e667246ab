"""The bench's figures from per-call measurements."""

from bench.callee import CallMeasurement, TurnResult
from bench.report import RunFigures, _p99_over_frames


def test_lateness_p99_is_over_every_frame_the_caller_heard():
    assert _p99_over_frames([], 1000) == 0.0
    assert _p99_over_frames([12.0] * 5, 1000) == 0.0  # 0.5 % of frames late: the p99 frame is on time
    assert _p99_over_frames([3.0] * 20 + [40.0], 1000) == 3.0  # 2.1 % late: the p99 frame is 3 ms late
    assert _p99_over_frames([7.0, 9.0], 2) == 9.0


def test_figures_count_turns_and_flag_premature_and_missed():
    call = CallMeasurement("plain-01", "plain", completed=True, agent_frames=1000, lateness_ms=[12.0] * 5)
    call.turns = [
        TurnResult("u1", "reply", speech_start_sent=1.0, speech_end_sent=2.0, first_agent_audio=2.35),
        TurnResult("u2", "reply", speech_start_sent=5.0, speech_end_sent=6.0, premature=True, first_agent_audio=6.01),
        TurnResult("u3", "reply", speech_start_sent=9.0, speech_end_sent=10.0),
    ]
    out = RunFigures(concurrency=1, calls=[call]).as_json()
    assert out["turns_measured"] == 2 and out["missed_turns"] == 1 and out["premature_replies"] == 1
    assert out["turn_latency_ms"]["p50"] == 10.0 and out["turn_latency_ms"]["p99"] == 350.0
    assert out["outbound_late_ms"] == {"p99": 0.0, "n": 5, "max": 12.0}
    assert out["pass"]["outbound_late_p99"] and not out["pass"]["no_premature_replies"]
    assert [t["step"] for t in out["turns"]] == ["u1", "u2", "u3"] and out["turns"][2]["missed"]


def test_figures_split_turn_latency_first_vs_later_turns_and_name_the_mark_echo_mode():
    from bench.telnyx_emulator import MarkEcho

    calls = []
    for first, later in ((300.0, 500.0), (320.0, 540.0)):
        call = CallMeasurement("plain-01", "plain", completed=True)
        call.turns = [
            TurnResult("u1", "reply", speech_end_sent=1.0, first_agent_audio=1.0 + first / 1000),
            TurnResult("u2", "reply", speech_end_sent=5.0, first_agent_audio=5.0 + later / 1000),
            TurnResult("u3", "reply", speech_end_sent=9.0, first_agent_audio=9.0 + later / 1000),
        ]
        calls.append(call)
    out = RunFigures(concurrency=2, calls=calls, mark_echo=MarkEcho("late", 1.5)).as_json()
    by_index = out["turn_latency_by_index_ms"]
    assert by_index["first"] == {"p50": 300.0, "p95": 320.0, "n": 2}
    assert by_index["later"] == {"p50": 500.0, "p95": 540.0, "n": 4}
    assert out["mark_echo"] == {"mode": "late", "late_s": 1.5}
    assert [t["turn_index"] for t in out["turns"]] == [0, 1, 2, 0, 1, 2]
    assert RunFigures(concurrency=1, calls=calls).as_json()["mark_echo"] == {"mode": "played"}


def test_the_table_shows_the_mark_echo_mode_and_both_turn_indexes():
    from rich.console import Console

    from bench.report import print_table
    from bench.telnyx_emulator import MarkEcho

    call = CallMeasurement("plain-01", "plain", completed=True)
    call.turns = [TurnResult("u1", "reply", speech_end_sent=1.0, first_agent_audio=1.3),
                  TurnResult("u2", "reply", speech_end_sent=5.0, first_agent_audio=5.5)]
    console = Console(record=True, width=200)
    figures = RunFigures(concurrency=1, calls=[call], mark_echo=MarkEcho("never"),
                         engine_mark_echoes={"overdue": 7, "late": 0})
    print_table(figures.as_json(), console)
    text = console.export_text()
    assert "marks echoed: never" in text
    assert figures.as_json()["engine_mark_echoes"] == {"overdue": 7, "late": 0}
    assert "mark echoes overdue / late (engine)" in text and "7 / 0" in text
    assert "first caller turn" in text and "later caller turns" in text


def test_on_the_virtual_clock_the_report_leaves_out_the_machine_and_lists_the_turns_to_look_at():
    from rich.console import Console

    from bench.report import MACHINE_FIGURES, on_virtual_clock, print_table, print_turns

    call = CallMeasurement("pauses-01", "pauses", completed=True, agent_frames=100, lateness_ms=[3.0])
    call.turns = [TurnResult("u1", "reply", speech_end_sent=1.0, first_agent_audio=1.32),
                  TurnResult("u2", "reply", speech_end_sent=5.0, premature=True, first_agent_audio=4.9),
                  TurnResult("u3", "reply", speech_end_sent=9.0, first_agent_audio=9.61),
                  TurnResult("u4", "reply", speech_end_sent=13.0)]
    figures = on_virtual_clock(RunFigures(concurrency=1, calls=[call], load_cpu_pct=99.0).as_json())
    assert figures["clock"] == "virtual" and not set(MACHINE_FIGURES) & set(figures)
    assert set(figures["pass"]) == {"turn_latency_p95", "barge_in_reaction_p95", "no_false_barge_ins",
                                    "no_premature_replies"}
    console = Console(record=True, width=300)
    print_table(figures, console)
    print_turns(figures, console)
    text = console.export_text()
    assert "on the virtual clock" in text and "premature replies" in text
    for machine in ("engine-added", "CPU", "RSS", "outbound late", "INVALID"):
        assert machine not in text
    assert "premature replies (1): pauses-01 u2" in text and "missed turns (1): pauses-01 u4" in text
    assert "replies at 400 ms or later (1): pauses-01 u3 610 ms" in text
