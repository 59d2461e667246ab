"""Python function tools: the schema from hints and docstring, sync and async, every failure a
result for the model (issue 18, item 2). The packaged example runs in a whole call in
tests/examples."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import pytest

from callagent.tools import ToolContext, ToolError, function_tool
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.function_tools import build_tool
from engine.conversation.tools import ToolClient, tool_definitions


@function_tool
def book_slot(day: Literal["mon", "tue"], hour: int = 9, notes: str | None = None) -> dict:
    """Book a visit.

    Longer explanation that the model also reads.

    Args:
        day: Which day.
        hour: Hour of the day, 24 h
            clock.
    """
    return {"booked": f"{day} {hour}:00", "thread": threading.current_thread() is threading.main_thread()}


def test_the_schema_comes_from_type_hints_defaults_and_the_docstring():
    assert book_slot.description == "Book a visit. Longer explanation that the model also reads."
    params = book_slot.parameters
    assert params["required"] == ["day"]
    assert params["properties"]["day"] == {"enum": ["mon", "tue"], "type": "string", "description": "Which day."}
    assert params["properties"]["hour"] == {"type": "integer", "default": 9,
                                            "description": "Hour of the day, 24 h clock."}
    assert "title" not in str(params)
    assert book_slot("mon") == {"booked": "mon 9:00", "thread": True}  # still callable as itself


async def test_sync_tools_run_in_a_thread_and_results_become_text():
    result = await book_slot.run('{"day": "tue", "hour": 14}')
    assert result == '{"booked":"tue 14:00","thread":false}'


async def test_bad_arguments_errors_and_timeouts_are_results_not_exceptions():
    @function_tool(timeout_s=0.05)
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(10)
        return "late"

    @function_tool
    def broken(x: int) -> str:
        """Broken."""
        raise KeyError("secret detail")

    @function_tool
    def refuses() -> str:
        """Refuses."""
        raise ToolError("the shop is closed on Sundays")

    wrong, not_json, extra, timed_out, failed, refused = (
        await book_slot.run('{"day": "sun"}'), await book_slot.run("not json"),
        await book_slot.run('{"day": "mon", "extra": 1}'), await slow.run("{}"),
        await broken.run('{"x": 1}'), await refuses.run(""))
    assert wrong.startswith("error: invalid arguments for book_slot: day")
    assert not_json.startswith("error: invalid arguments for book_slot")
    assert extra.startswith("error: invalid arguments for book_slot: extra")
    assert timed_out == "error: slow timed out after 0.05 s"
    assert failed == "error: broken failed (KeyError)" and "secret" not in failed
    assert refused == "error: the shop is closed on Sundays"


async def test_a_sync_tool_past_its_timeout_does_not_hold_the_call():
    release = threading.Event()

    @function_tool(timeout_s=0.05)
    def stuck() -> str:
        """Stuck."""
        release.wait(5)
        return "late"

    try:
        result = await stuck.run("{}")
    finally:
        release.set()  # (the thread is let go only so that the test's loop can close)
    assert result == "error: stuck timed out after 0.05 s"


async def test_the_context_parameter_is_injected_and_hidden_from_the_model():
    @function_tool
    async def whoami(context: ToolContext, greeting: str = "hi") -> str:
        """Who is calling."""
        return f"{greeting} {context.from_number} on {context.call_id} ({context.variables['plan']})"

    assert "context" not in whoami.parameters.get("properties", {})
    ctx = ToolContext(call_id="c-1", from_number="+15550100", variables={"plan": "gold"})
    assert await whoami.run("{}", ctx) == "hi +15550100 on c-1 (gold)"


def test_tools_that_cannot_be_described_are_refused_at_definition():
    with pytest.raises(TypeError):
        build_tool(lambda *args: None, name="star")
    with pytest.raises(ValueError):
        build_tool(lambda: None, name="bad name")
    with pytest.raises(ValueError):
        build_tool(lambda: None, name="ok", timeout_s=60)


async def test_only_tools_the_agent_enabled_are_offered_or_run(monkeypatch):
    from engine.conversation import function_tools

    monkeypatch.setattr(function_tools, "installed_tools", lambda: {"book_slot": book_slot})
    monkeypatch.setattr("engine.conversation.tools.installed_tools", lambda: {"book_slot": book_slot})
    monkeypatch.setattr("engine.conversation.config.installed_tools", lambda: {"book_slot": book_slot})
    off = resolve(AgentConfig())
    on = resolve(AgentConfig(function_tools=("book_slot",)))
    assert "book_slot" not in str(tool_definitions(off))
    assert [t["function"]["name"] for t in tool_definitions(on)][-1] == "book_slot"

    client = ToolClient()
    try:
        refused = await client.call(off.config, "book_slot", '{"day": "mon"}')
        ran = await client.call(on.config, "book_slot", '{"day": "mon"}')
    finally:
        await client.aclose()
    assert refused == "error: unknown tool book_slot"
    assert '"booked":"mon 9:00"' in ran
