"""``callagent bench --clock virtual`` (bench.virtual): every corpus and field call through the real
agent, media server and emulators on one virtual clock, so turn-taking is judged without the machine's
load. Behaviour only: the latency figures are the bench's to report, not a test's to assert."""

import pytest

from bench.corpus.model import CORPUS_DIR, FIELD_DIR, load_corpus
from bench.runner import BenchOptions
from bench.virtual import run_virtual, unsupported, virtual_options

VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])  # bench/virtual_time.py


def _where(figures, flag):
    return [(t["script"], t["step"]) for t in figures["turns"] if t[flag]]


@pytest.mark.slow
@VIRTUAL
@pytest.mark.parametrize(("stt_engine", "mark_echo"), [("deepgram", "played"), ("telnyx", "played"),
                                                     ("deepgram", "never")])
async def test_every_corpus_and_field_call_answers_every_turn(stt_engine, mark_echo):
    """Deepgram (Finalize, interims) and a finals-only engine, and carriers that never echo a mark:
    no call fails, no turn goes unanswered; with Deepgram's punctuated lines the pause scripts get no
    reply mid-line."""
    humans = [s for root in (CORPUS_DIR, FIELD_DIR) for s in load_corpus(root) if s.answer == "human"]
    figures = await run_virtual(virtual_options(callers="all", stt_engine=stt_engine,
                                                mark_echo=mark_echo))
    assert figures["calls_completed"] == len(humans) and figures["calls_failed"] == 0, figures["failures"]
    assert figures["missed_turns"] == 0, _where(figures, "missed")
    # Without echoes the engine's playout clock takes each reply as played (it used to spin at the
    # very deadline on this clock: a float round trip).
    assert (figures["engine_mark_echoes"]["overdue"] > 0) == (mark_echo == "never")
    if stt_engine == "deepgram":
        pauses = [t for t in figures["turns"] if t["script"].startswith("pauses-")]
        assert pauses and not [t for t in pauses if t["premature"]]


@pytest.mark.slow
@VIRTUAL
async def test_pause_scripts_without_punctuation_get_no_premature_reply_and_the_same_figures_each_run():
    runs = [await run_virtual(virtual_options(categories=("pauses",), stt_punctuation="none")) for _ in range(2)]
    assert runs[0]["calls_completed"] == 3 and runs[0]["turns_measured"] > 0
    assert runs[0]["premature_replies"] == 0 and runs[0]["missed_turns"] == 0, _where(runs[0], "premature")
    assert runs[0]["turns"] == runs[1]["turns"]  # load-independent: every latency, to the millisecond


def test_options_that_measure_the_machine_are_refused():
    assert unsupported(virtual_options()) == []
    problems = unsupported(BenchOptions(clock="virtual", capacity=True, target="http://x", events="on",
                                        knowledge_passages=5))
    assert [p.split()[0] for p in problems] == ["--capacity", "--target", "--path", "--events", "--knowledge"]


def test_the_command_line_refuses_them_in_one_line(capsys):
    from callagent.cli import main

    assert main(["bench", "--clock", "virtual", "--capacity"]) == 2
    assert "--clock virtual: --capacity" in capsys.readouterr().err
    assert main(["bench", "--clock", "virtual", "--path", "full"]) == 2
    assert "media path only" in capsys.readouterr().err
    assert main(["bench", "micro", "--clock", "virtual"]) == 2
    assert main(["bench", "--clock", "virtual", "--webhooks", "10"]) == 2
    assert "calls scenario only" in capsys.readouterr().err


@VIRTUAL
async def test_each_reply_the_callee_heard_carries_the_engines_account_of_its_turn():
    figures = await run_virtual(virtual_options(categories=("pauses",), stt_punctuation="none"))
    replies = [t for t in figures["turns"] if t["latency_ms"] is not None]
    assert replies and all(t["outcome"] for t in replies), [t for t in replies if not t["outcome"]]
    # The pause scripts' callers stop mid-line past the end of turn: held, then they go on.
    (first,) = [t["outcome"] for t in replies if (t["script"], t["step"]) == ("pauses-01-order-number", "u1")]
    assert (first["end"], first["hold"], first["merged"]) == ("vad", "incomplete", True)
    assert sum(figures["turn_ends"].values()) == figures["engine_turns"]
    assert figures["turn_ends"]["vad after a broken hold (incomplete words)"] >= 1


@VIRTUAL
async def test_a_reply_to_a_turn_noise_ended_has_its_account_though_the_engine_did_not_measure_it():
    # babble keeps the VAD on past the caller's "Hello?": noise ends the turn and the reply goes out
    # before the VAD's end of turn, so no measured turn is it; its committed turn says how it ended.
    figures = await run_virtual(virtual_options(categories=("noise",)))
    (hello,) = [t for t in figures["turns"] if (t["script"], t["step"]) == ("noise-babble-10db", "u1")]
    assert hello["latency_ms"] is not None and hello["outcome"]["end"] == "noise"
