"""Does a bench run's usage and cost add up? The organisation's totals (``GET /api/usage``)
against the sum of its calls' own records (``GET /api/calls/{id}``), and both against what the
provider emulators served (LLM tokens, TTS characters, STT audio seconds): what a real provider
would bill.

``parts_match``: the total is exactly the sum of its calls, line by line. ``mismatches``: every
figure that does not agree, said in words (the bench prints them). Tokens the LLM emulator
served that no call counted as reported (a reply cut off before its stream's usage chunk) are
``unreported_tokens``; the calls' *estimate* of those (``llm_estimated_*``, see docs/usage.md)
stands beside them, never mixed into the reported figures.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp

COST_LINES = ("telephony", "streaming", "stt", "tts", "llm", "llm_estimated", "total")
INT_FIELDS = ("llm_prompt_tokens", "llm_completion_tokens", "llm_estimated_prompt_tokens",
              "llm_estimated_completion_tokens", "tts_characters")
FLOAT_FIELDS = ("stt_seconds", "tts_seconds")
ROUNDING_S = 0.0005
"""Each call's seconds are rounded to a millisecond, so a sum may differ from the emulators' by half
a millisecond a call."""


async def call_details(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every call of the key's organisation, as ``GET /api/calls/{id}`` shows it."""
    calls: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        async with http.get(f"{base}/api/calls", params=params, headers=headers) as response:
            page = await response.json()
            assert response.status == 200, page
        calls += page["data"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    details = []
    for call in calls:
        async with http.get(f"{base}/api/calls/{call['id']}", headers=headers) as response:
            details.append(await response.json())
    return details


async def usage_report(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                       served: dict[str, float], details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The organisation's totals and its calls read as one snapshot: a call still reporting between
    the reads would make them disagree, so they are read again (a few times) until the totals
    before and after the calls' reads are the same."""
    async def total() -> dict[str, Any]:
        async with http.get(f"{base}/api/usage", headers=headers) as response:
            report = await response.json()
            assert response.status == 200, report
        return dict(report["total"])

    before = await total()
    for _ in range(5):
        if details is None:
            details = await call_details(http, base, headers)
        after = await total()
        if after == before:
            break
        before, details = after, None
    if details is None:
        details = await call_details(http, base, headers)
    return usage_figures(before, details, served)


def usage_figures(total: dict[str, Any], details: list[dict[str, Any]], served: dict[str, float]) -> dict[str, Any]:
    """``total``: ``GET /api/usage``'s; ``details``: the calls'; ``served``: the emulators' counts
    (``prompt_tokens``, ``completion_tokens``, and where known ``tts_characters``, ``stt_seconds``)."""
    mismatches: list[str] = []
    sums: dict[str, Any] = dict.fromkeys(INT_FIELDS, 0) | dict.fromkeys(FLOAT_FIELDS, 0.0)
    cost = dict.fromkeys(COST_LINES, Decimal(0))
    for detail in details:
        usage = detail["usage"]
        for name in sums:
            sums[name] += usage.get(name, 0)
        for line in COST_LINES:
            cost[line] += Decimal(detail["cost_items"][line])
    if total["calls"] != len(details):
        mismatches.append(f"usage counts {total['calls']} calls, the organisation has {len(details)}")
    for name in INT_FIELDS:
        if total.get(name, 0) != sums[name]:
            mismatches.append(f"usage {name} {total.get(name, 0)} != sum of calls {sums[name]}")
    for name in FLOAT_FIELDS:
        if abs(total[name] - sums[name]) > ROUNDING_S:
            mismatches.append(f"usage {name} {total[name]} != sum of calls {round(sums[name], 3)}")
    for line in COST_LINES:
        if Decimal(total["cost"][line]) != cost[line]:
            mismatches.append(f"usage cost.{line} {total['cost'][line]} != sum of calls {cost[line]}")
    parts_match = not mismatches
    reported = {"prompt_tokens": sums["llm_prompt_tokens"], "completion_tokens": sums["llm_completion_tokens"]}
    estimated = {"prompt_tokens": sums["llm_estimated_prompt_tokens"],
                 "completion_tokens": sums["llm_estimated_completion_tokens"]}
    tokens_served = {k: int(served.get(k, 0)) for k in reported}
    cut = {k: int(served.get(f"unreported_{k}", 0)) for k in reported}
    # Served in all (reported to a client or not) but not counted as reported by any call.
    unreported = {k: tokens_served[k] + cut[k] - reported[k] for k in reported}
    for k in reported:
        if reported[k] > tokens_served[k]:
            mismatches.append(f"calls report {reported[k]} {k}, more than the LLM emulator reported "
                              f"({tokens_served[k]})")
        elif unreported[k] > 0 and estimated[k] == 0:
            mismatches.append(f"{unreported[k]} {k} served but neither reported nor estimated")
    if "tts_characters" in served and int(served["tts_characters"]) != sums["tts_characters"]:
        mismatches.append(f"calls count {sums['tts_characters']} TTS characters, "
                          f"the TTS emulator received {int(served['tts_characters'])}")
    if "stt_seconds" in served and abs(served["stt_seconds"] - sums["stt_seconds"]) > ROUNDING_S * max(1, len(details)):
        mismatches.append(f"calls count {round(sums['stt_seconds'], 3)} s of STT audio, "
                          f"the STT emulator received {round(served['stt_seconds'], 3)} s")
    return {
        "calls": total["calls"], "llm_prompt_tokens": total["llm_prompt_tokens"],
        "llm_completion_tokens": total["llm_completion_tokens"],
        "llm_estimated_prompt_tokens": total.get("llm_estimated_prompt_tokens", 0),
        "llm_estimated_completion_tokens": total.get("llm_estimated_completion_tokens", 0),
        "stt_seconds": total["stt_seconds"], "tts_characters": total["tts_characters"],
        "tts_seconds": total["tts_seconds"], "cost": total["cost"],
        "calls_cost_sum": str(cost["total"]), "calls_tokens_sum": reported,
        "emulator_reported_tokens": tokens_served,
        "emulators_served": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in served.items()},
        "unreported_tokens": unreported, "estimated_tokens": estimated,
        "estimate_error_pct": {k: (round(100 * (estimated[k] - unreported[k]) / unreported[k], 1)
                                   if unreported[k] > 0 else None) for k in reported},
        "parts_match": parts_match, "mismatches": mismatches,
    }


def usage_line(usage: dict[str, Any]) -> str:
    est, unrep = usage["estimated_tokens"], usage["unreported_tokens"]
    return (f"{usage['llm_prompt_tokens']}+{usage['llm_completion_tokens']} tokens reported "
            f"(the LLM emulator reported {usage['emulator_reported_tokens']['prompt_tokens']}"
            f"+{usage['emulator_reported_tokens']['completion_tokens']}); not reported to the calls "
            f"{unrep['prompt_tokens']}+{unrep['completion_tokens']}, estimated by them "
            f"{est['prompt_tokens']}+{est['completion_tokens']}; "
            f"STT {usage['stt_seconds']} s, TTS {usage['tts_characters']} chars, "
            f"cost {usage['cost']['total']} {usage['cost']['currency']} (parts match: {usage['parts_match']}; "
            f"{len(usage['mismatches'])} mismatches)")
