"""The bench report's split by callers (corpus against field) and by final punctuation."""

from rich.console import Console

from bench.callee import CallMeasurement, TurnResult
from bench.report import RunFigures, print_categories


def _call(script: str, category: str, *turns: tuple[float, bool | None]) -> CallMeasurement:
    call = CallMeasurement(script, category, completed=True)
    call.turns = [TurnResult(f"u{i}", "reply", speech_end_sent=10.0 * i, first_agent_audio=10.0 * i + ms / 1000,
                             punctuated=punctuated) for i, (ms, punctuated) in enumerate(turns, 1)]
    return call


def test_figures_split_corpus_from_field_callers_and_punctuated_from_bare_lines():
    calls = [
        _call("plain-01", "plain", (320, True), (330, True)),
        _call("field-01-espeak-140", "field_espeak_140", (350, True), (1000, False)),
        _call("field-02-piper-140", "field_piper_140", (1020, False), (900, None)),  # None: keys
    ]
    out = RunFigures(concurrency=3, calls=calls).as_json()
    assert out["by_callers"] == {
        "corpus": {"calls": 1, "turn_latency_ms": {"p50": 320.0, "p95": 330.0, "n": 2}},
        "field": {"calls": 2, "turn_latency_ms": {"p50": 900.0, "p95": 1020.0, "n": 4}},
    }
    assert out["by_final_punctuation"] == {
        "ends .?!": {"turn_latency_ms": {"p50": 330.0, "p95": 350.0, "n": 3}},
        "no final punctuation": {"turn_latency_ms": {"p50": 1000.0, "p95": 1020.0, "n": 2}},
    }
    assert set(out["by_category"]) == {"plain", "field_espeak_140", "field_piper_140"}

    console = Console(record=True, width=100)
    print_categories(out, console)
    text = console.export_text()
    for row in ("field_piper_140", "all corpus", "all field", "lines: no final punctuation"):
        assert row in text
