"""The bench's accounts after a run (issue 18's done-when figures): the event receiver of
``callagent bench --events on`` (standardwebhooks signatures, de-duplication, events per call
against the call records) and the usage check (the organisation's totals against the sum of its
calls, and both against what the emulators served)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from bench.events import EventReceiver, expected_events
from bench.usage import usage_figures
from control_plane.webhooks.signing import headers as signed_headers
from control_plane.webhooks.signing import new_message_id, new_secret


def _body(kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "timestamp": datetime.now(UTC).isoformat(), "data": data})


async def test_the_receiver_verifies_signatures_deduplicates_and_counts_per_call():
    receiver = EventReceiver()
    url = await receiver.start()
    secret = receiver.secret = new_secret()
    try:
        async with aiohttp.ClientSession() as http:
            async def post(body: bytes, key: str = secret, message_id: str | None = None) -> int:
                sent = signed_headers(message_id or new_message_id(), datetime.now(UTC), body, [key])
                async with http.post(url, data=body, headers=sent) as response:
                    return response.status

            assert await post(_body("call.started", {"call_id": "a"})) == 204
            turn = _body("call.turn", {"call_id": "a", "index": 0})
            assert await post(turn, message_id="msg_1") == 204
            assert await post(turn, message_id="msg_1") == 204  # a retry of a delivered event
            assert await post(_body("call.turn", {"call_id": "a", "index": 1})) == 204
            assert await post(_body("call.ended", {"call_id": "a"}), key=new_secret()) == 401  # forged
            assert await post(_body("call.started", {"call_id": "b"})) == 204
    finally:
        await receiver.close()
    figures = receiver.figures({
        "a": Counter({"call.started": 1, "call.turn": 2, "call.ended": 1}),
        "b": Counter({"call.started": 1}),
    })
    assert figures["events_expected"] == 5 and figures["events_received"] == 4
    assert figures["events_missing"] == 1 and figures["events_missing_by_type"] == {"call.ended": 1}
    assert figures["bad_signatures"] == 1 and figures["duplicates"] == 1
    assert figures["events_out_of_order_calls"] == 0
    assert figures["delivery_lag_ms"]["n"] == 4 and figures["delivery_lag_ms"]["p50"] >= 0


def test_the_events_a_call_should_have_sent_follow_its_record():
    ended = {"status": "completed", "answered_at": "x", "summary": "s", "outcome": {"a": 1},
             "turns": [{}, {}, {}], "recording_url": None, "amd_result": None}
    assert expected_events(ended) == Counter({"call.started": 1, "call.answered": 1, "call.ended": 1,
                                              "call.summary": 1, "call.turn": 3})
    unanswered = {"status": "no_answer", "answered_at": None, "summary": None, "outcome": None, "turns": []}
    assert expected_events(unanswered) == Counter({"call.started": 1, "call.ended": 1})


def _detail(prompt: int, completion: int, *, estimated: tuple[int, int] = (0, 0), tts: int = 100,
            stt: float = 10.0, llm_cost: str = "0.000100") -> dict[str, Any]:
    return {"usage": {"llm_prompt_tokens": prompt, "llm_completion_tokens": completion,
                      "llm_estimated_prompt_tokens": estimated[0], "llm_estimated_completion_tokens": estimated[1],
                      "tts_characters": tts, "stt_seconds": stt, "tts_seconds": 2.0},
            "cost_items": {"telephony": "0.01", "streaming": "0", "stt": "0", "tts": "0", "llm": llm_cost,
                           "llm_estimated": "0", "total": str(0.01 + float(llm_cost))}}


def _total(details: list[dict[str, Any]], **override: Any) -> dict[str, Any]:
    from decimal import Decimal

    lines = ("telephony", "streaming", "stt", "tts", "llm", "llm_estimated", "total")
    total: dict[str, Any] = {
        "calls": len(details),
        **{k: sum(d["usage"][k] for d in details) for k in details[0]["usage"]},
        "cost": {**{k: str(sum(Decimal(d["cost_items"][k]) for d in details)) for k in lines}, "currency": "USD"},
    }
    total.update(override)
    return total


def test_usage_that_adds_up_has_no_mismatches():
    details = [_detail(100, 10), _detail(200, 20, estimated=(50, 3))]
    served = {"prompt_tokens": 300, "completion_tokens": 30, "unreported_prompt_tokens": 48,
              "unreported_completion_tokens": 3, "tts_characters": 200, "stt_seconds": 20.0}
    usage = usage_figures(_total(details), details, served)
    assert usage["parts_match"] is True and usage["mismatches"] == []
    assert usage["unreported_tokens"] == {"prompt_tokens": 48, "completion_tokens": 3}
    assert usage["estimate_error_pct"]["prompt_tokens"] == round(100 * 2 / 48, 1)


def test_every_disagreement_is_named():
    details = [_detail(100, 10), _detail(200, 20)]
    total = _total(details, llm_prompt_tokens=301)
    total["cost"]["llm"] = "0.000999"
    served = {"prompt_tokens": 250, "completion_tokens": 40, "tts_characters": 210, "stt_seconds": 21.0}
    usage = usage_figures(total, details, served)
    assert usage["parts_match"] is False
    text = "\n".join(usage["mismatches"])
    assert "usage llm_prompt_tokens 301 != sum of calls 300" in text
    assert "usage cost.llm 0.000999" in text
    assert "more than the LLM emulator reported (250)" in text  # prompt: counted 300 > served 250
    assert "10 completion_tokens served but neither reported nor estimated" in text
    assert "TTS emulator received 210" in text and "STT emulator received 21.0 s" in text
