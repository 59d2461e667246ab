"""The OpenAI-compatible chat client against the LLM emulator, over real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from engine.providers.base import ChatDelta, ProviderError
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel

from .helpers import assert_no_tasks_left

END_CALL = {"type": "function", "function": {
    "name": "end_call", "description": "Hang up.",
    "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]}}}
TRANSFER = {"type": "function", "function": {
    "name": "transfer_call", "description": "Transfer to a person.",
    "parameters": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}}}


def model(emu, **overrides) -> OpenAIChatModel:
    fields = {"api_key": SecretStr(emu.api_key), "base_url": emu.llm_base_url, "model": "emulator-llm", **overrides}
    return OpenAIChatModel(OpenAIChatConfig(**fields))


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are a phone agent."}, {"role": "user", "content": text}]


async def collect(llm: OpenAIChatModel, text: str, tools=None) -> list[tuple[float, ChatDelta]]:
    loop = asyncio.get_running_loop()
    # The answer's deltas; the usage delta that ends a stream is tested on its own.
    return [(loop.time(), d) async for d in llm.stream(user(text), tools=tools) if d.usage is None]


async def test_text_streams_token_by_token(emu):
    llm = model(emu)
    await collect(llm, "warm up")  # the SDK's first request pays for its own setup
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    deltas = await collect(llm, "I'd like to check my order please")
    await llm.aclose()
    await emu.close()  # the leak check counts every task, the emulator's too
    text = "".join(d.text for _, d in deltas)
    assert text.startswith("Sure. ") and "check my order please" in text
    pieces = [d for _, d in deltas if d.text]
    assert len(pieces) >= 8
    first_token_ms = (deltas[0][0] - asked_at) * 1000
    # Never before the emulator profile's 150 ms to first token (later is what load does; the
    # exact figure is the benchmarks' business).
    assert first_token_ms >= 150
    assert deltas[-1][1].finish_reason == "stop" and not deltas[-1][1].tool_calls
    assert all(d.finish_reason is None for _, d in deltas[:-1])
    await assert_no_tasks_left()


async def test_goodbye_assembles_the_end_call_tool_call(emu):
    llm = model(emu)
    with_tools = await collect(llm, "ok that's all, goodbye", tools=[END_CALL, TRANSFER])
    without = await collect(llm, "ok that's all, goodbye")
    await llm.aclose()
    last = with_tools[-1][1]
    assert last.finish_reason == "tool_calls"
    (call,) = last.tool_calls
    assert call.name == "end_call" and call.id.startswith("call_")
    assert set(orjson.loads(call.arguments)) == {"reason"}
    assert all(not d.tool_calls for _, d in with_tools[:-1])  # only once complete
    assert "Goodbye" in "".join(d.text for _, d in with_tools)
    assert without[-1][1].finish_reason == "stop" and not without[-1][1].tool_calls


async def test_transfer_and_digits_scripts(emu):
    llm = model(emu)
    transfer = await collect(llm, "Can I talk to a human?", tools=[END_CALL, TRANSFER])
    digits = await collect(llm, "The caller pressed keys 4 2 #")
    await llm.aclose()
    assert [c.name for c in transfer[-1][1].tool_calls] == ["transfer_call"]
    assert "4 2 #" in "".join(d.text for _, d in digits)


async def test_streams_and_completions_report_the_tokens_the_server_billed(emu):
    """``stream_options.include_usage`` is asked for, and the usage chunk (empty choices, after the
    finish) becomes one last delta with the server's counts; a completion's ``usage`` comes back
    beside its JSON. What the client sums is what the emulator reported."""
    llm = model(emu)
    deltas = [d async for d in llm.stream(user("I'd like to check my order please"))]
    asked = emu.llm.stats.last_request
    value, completion = await llm.complete_json_with_usage(
        user("summarise"), {"type": "object", "properties": {"summary": {"type": "string"}},
                            "required": ["summary"]})
    quiet = model(emu, include_usage=False)
    silent = [d async for d in quiet.stream(user("hello"))]
    await llm.aclose()
    await quiet.aclose()
    stats = emu.llm.stats
    assert asked["stream_options"] == {"include_usage": True}
    usages = [d.usage for d in deltas if d.usage is not None]
    assert len(usages) == 1 and deltas[-1].usage is usages[0] and not deltas[-1].text
    assert deltas[-2].finish_reason == "stop"
    assert usages[0].prompt_tokens > 0 and usages[0].completion_tokens >= len([d for d in deltas if d.text]) - 1
    assert isinstance(value["summary"], str) and completion is not None and completion.prompt_tokens > 0
    assert not any(d.usage for d in silent)
    assert stats.prompt_tokens == usages[0].prompt_tokens + completion.prompt_tokens
    assert stats.completion_tokens == usages[0].completion_tokens + completion.completion_tokens


async def test_complete_json_returns_the_schema_keys(emu):
    schema = {
        "title": "Call outcome", "type": "object", "additionalProperties": False,
        "properties": {
            "summary": {"type": "string"},
            "outcome": {"enum": ["resolved", "callback", "escalated"]},
            "follow_up": {"anyOf": [{"$ref": "#/$defs/FollowUp"}, {"type": "null"}]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["summary", "outcome", "follow_up", "score"],
        "$defs": {"FollowUp": {"type": "object", "properties": {"date": {"type": "string", "format": "date"}},
                               "required": ["date"], "additionalProperties": False}},
    }

    llm = model(emu)
    value = await llm.complete_json(user("summarise the call"), schema)
    sent = emu.llm.stats.last_request["response_format"]
    await llm.aclose()
    assert set(value) == {"summary", "outcome", "follow_up", "score"}
    assert value["outcome"] == "resolved" and value["follow_up"] == {"date": "2026-01-01"}
    assert isinstance(value["summary"], str) and value["score"] == 1
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Call_outcome"
    assert sent["json_schema"]["strict"] is True


@pytest.mark.parametrize("api_key, fault, retryable, status", [
    ("emulator-key", "http_500", True, "500"),
    ("wrong-key", None, False, "401"),
])
async def test_http_errors_map_to_provider_errors(emu, api_key, fault, retryable, status):
    headers = {"X-Emulator-Fault": fault} if fault else {}
    llm = model(emu, api_key=SecretStr(api_key), extra_headers=headers)
    with pytest.raises(ProviderError) as streamed:
        await collect(llm, "hello")
    with pytest.raises(ProviderError) as completed:
        await llm.complete_json(user("hello"), {"type": "object"})
    await llm.aclose()
    for caught in (streamed, completed):
        assert caught.value.retryable is retryable and status in str(caught.value)
        assert "wrong-key" not in str(caught.value)


@pytest.mark.parametrize("fault", ["error_frame", "disconnect"])
async def test_mid_stream_failures_raise_retryable(emu, fault):
    llm = model(emu, extra_headers={"X-Emulator-Fault": fault})
    received = []
    with pytest.raises(ProviderError) as caught:
        async for delta in llm.stream(user("tell me about my order")):
            received.append(delta)
    await llm.aclose()
    assert len(received) == 3 and caught.value.retryable


async def test_stalled_model_hits_the_request_timeout(emu):
    emu.faults.arm("slow", "llm")
    llm = model(emu, timeout_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderError) as caught:
        await collect(llm, "hello")
    took = loop.time() - started
    await llm.aclose()
    assert caught.value.retryable and "timed out" in str(caught.value)
    # Cut off by the request timeout, not by the end of the stall (the profile's stall_s).
    assert 0.3 <= took < emu.profile.stall_s


async def test_emulator_speaks_the_openai_sse_shape(emu):
    async with aiohttp.ClientSession(headers={'Authorization': f'Bearer {emu.api_key}'}) as http:
        payload = {"model": "m", "messages": user("bye"), "tools": [END_CALL], "stream": True,
                   "stream_options": {"include_usage": True}}
        async with http.post(f"{emu.llm_base_url}/chat/completions", json=payload) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            raw = (await response.read()).decode()
        async with http.get(f"{emu.llm_base_url}/models") as response:
            models = await response.json()
    events = [line[len("data: "):] for line in raw.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in raw.split("\n\n") if line)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "end_call"
    assert all(tc["index"] == 0 for tc in calls)
    arguments = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert orjson.loads(arguments) == {"reason": "caller said goodbye"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert models["data"][0]["id"] == "emulator-llm"


async def test_reasoning_model_settings_send_max_completion_tokens_and_no_sampling_options(emu, monkeypatch):
    """OpenAI's reasoning models answer 400 to temperature and max_tokens: set from the
    environment, the request carries max_completion_tokens and reasoning_effort only."""
    from callagent.wiring import chat_config
    from control_plane.settings import Settings

    for name, value in {"LLM_TEMPERATURE": "none", "LLM_MAX_TOKENS": "1000",
                        "LLM_MAX_TOKENS_PARAM": "max_completion_tokens", "LLM_REASONING_EFFORT": "minimal"}.items():
        monkeypatch.setenv(f"CALLAGENT_PROVIDERS__{name}", value)
    cfg = Settings(_env_file=None).providers

    llm = OpenAIChatModel(chat_config(cfg, api_key=SecretStr(emu.api_key), base_url=emu.llm_base_url,
                                      model="o4-mini"))
    await collect(llm, "hello there")
    streamed = emu.llm.stats.last_request
    await llm.complete_json(user("summarise"), {"type": "object", "properties": {"x": {"type": "string"}}})
    summarised = emu.llm.stats.last_request
    await llm.aclose()
    for request in (streamed, summarised):
        assert request["max_completion_tokens"] == 1000 and request["reasoning_effort"] == "minimal"
        assert "temperature" not in request and "max_tokens" not in request


async def test_default_llm_settings_send_temperature_and_max_tokens(emu, monkeypatch):
    from callagent.wiring import chat_config
    from control_plane.settings import Settings

    monkeypatch.setenv("CALLAGENT_PROVIDERS__LLM_MAX_TOKENS", "none")
    cfg = Settings(_env_file=None).providers
    assert cfg.llm_max_tokens is None

    llm = OpenAIChatModel(chat_config(cfg, api_key=SecretStr(emu.api_key), base_url=emu.llm_base_url,
                                      model="m"))
    await collect(llm, "hello there")
    await llm.aclose()
    request = emu.llm.stats.last_request
    assert request["temperature"] == 0.4
    assert not {"max_tokens", "max_completion_tokens", "reasoning_effort"} & set(request)


@pytest.mark.parametrize("name,value", [("LLM_MAX_TOKENS_PARAM", "max_output_tokens"),
                                        ("LLM_REASONING_EFFORT", "low; drop table"), ("LLM_TEMPERATURE", "hot")])
def test_bad_llm_settings_are_refused_at_start(monkeypatch, name, value):
    from pydantic import ValidationError

    from control_plane.settings import Settings

    monkeypatch.setenv(f"CALLAGENT_PROVIDERS__{name}", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


async def test_direct_stream_and_the_sdks_agree(emu):
    """Streams are read off aiohttp unless retries are set (then the SDK does the request): both
    give the same deltas, and an error status the same ProviderError."""
    direct, sdk = model(emu), model(emu, max_retries=1)
    answers = []
    for llm in (direct, sdk):
        deltas = await collect(llm, "ok that's all, goodbye", tools=[END_CALL, TRANSFER])
        answers.append([(d.text, d.finish_reason, [(c.name, c.arguments) for c in d.tool_calls])
                        for _, d in deltas])
        await llm.aclose()
    failures = []
    for retries in (0, 1):
        llm = model(emu, api_key=SecretStr("wrong-key"), max_retries=retries)
        with pytest.raises(ProviderError) as caught:
            await collect(llm, "hello")
        failures.append((str(caught.value), caught.value.retryable))
        await llm.aclose()
    assert answers[0] == answers[1] and answers[0][-1][1] == "tool_calls"
    assert failures[0] == failures[1] == ("openai-chat: HTTP 401: Incorrect API key provided.", False)


async def test_a_proxy_in_the_environment_is_still_honoured(emu, monkeypatch):
    """httpx (the SDK) goes through HTTP(S)_PROXY; the shared aiohttp session would not, so with a
    proxy set the SDK does the request: here an unreachable proxy, so it fails."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    llm = model(emu)
    with pytest.raises(ProviderError) as caught:
        await collect(llm, "hello")
    await llm.aclose()
    assert "connection failed" in str(caught.value) and caught.value.retryable
