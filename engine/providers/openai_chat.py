"""Chat completions on any OpenAI-compatible endpoint (OpenAI, Telnyx inference
``https://api.telnyx.com/v2/ai/openai``, vLLM, Ollama, ...) through the ``openai`` package.

:meth:`OpenAIChatModel.stream` yields text as it arrives and tool calls once their
argument fragments (streamed by index) are complete, which is when the model says why it
stopped; that last delta carries the ``finish_reason``. The SDK's own retries are off by
default: a retried request is seconds of dead air on a call, and the caller decides.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Literal

import openai
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .base import ChatDelta, ChatModel, ProviderError, TokenUsage, ToolCall

PROVIDER = "openai-chat"


class OpenAIChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    base_url: str = "https://api.openai.com/v1"
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="OpenAI's newer models take max_completion_tokens; most compatible servers max_tokens.",
    )
    reasoning_effort: str | None = Field(None, description="Sent as reasoning_effort when set (reasoning models).")
    timeout_s: float = Field(20.0, gt=0, description="Per request; also bounds each wait between streamed chunks.")
    max_retries: int = Field(0, ge=0)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    include_usage: bool = Field(
        True, description="Ask for the stream's token usage (stream_options.include_usage): the call's LLM "
                          "tokens and cost. Turn off for a compatible server that refuses stream_options.")


def provider_error(provider: str, exc: BaseException) -> ProviderError:
    """An ``openai`` exception as a ProviderError: server-side and transport trouble is
    retryable, a request the server refused (4xx except 408/409/429) is not."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status >= 500 or status in (408, 409, 429)
        return ProviderError(provider, f"HTTP {status}: {_message(exc)}", retryable=retryable)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(provider, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(provider, f"connection failed: {exc.__cause__ or exc}")
    if isinstance(exc, openai.APIError):  # e.g. an error event inside the stream
        return ProviderError(provider, f"stream error: {_message(exc)}")
    return ProviderError(provider, f"{exc.__class__.__name__}: {exc}")


def _message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(message := inner.get("message"), str):
            return message
    return exc.message


def _transport_errors() -> tuple[type[BaseException], ...]:
    # Older openai releases let httpx errors escape a stream being read; catch those too.
    found: list[type[BaseException]] = [openai.OpenAIError]
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


_ERRORS = _transport_errors()


class _PartialCall:
    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class OpenAIChatModel(ChatModel):
    def __init__(self, config: OpenAIChatConfig, *, client: openai.AsyncOpenAI | None = None) -> None:
        self.config = config
        self._client = client or openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            default_headers=config.extra_headers or None,
        )

    @property
    def model_name(self) -> str | None:
        return self.config.model

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"model": self.config.model}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            options[self.config.max_tokens_param] = self.config.max_tokens
        if self.config.reasoning_effort is not None:
            options["reasoning_effort"] = self.config.reasoning_effort
        return options

    async def stream(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[ChatDelta]:
        options = self._options()
        if tools:
            options["tools"] = tools
        if self.config.include_usage:
            # OpenAI then sends one more chunk before [DONE]: empty choices and the request's usage.
            options["stream_options"] = {"include_usage": True}
        calls: dict[int, _PartialCall] = {}
        finished = False
        try:
            # The low-level post skips the SDK's recursive request transform, and casting the
            # chunks to plain dicts skips building a pydantic model per token (≈125 µs each,
            # measured): together they cost more CPU than a call's whole media path.
            response = await self._client.post(
                "/chat/completions",
                body={"messages": messages, "stream": True, **options},
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            async with response:
                async for chunk in response:
                    choices = chunk.get("choices") if isinstance(chunk, dict) else None
                    if not choices:
                        usage = TokenUsage.parse(chunk.get("usage")) if isinstance(chunk, dict) else None
                        if usage is not None:
                            yield ChatDelta(usage=usage)
                        continue
                    choice = choices[0]
                    delta = choice.get("delta")
                    if delta:
                        content = delta.get("content")
                        if content:
                            yield ChatDelta(text=content)
                        for fragment in delta.get("tool_calls") or ():
                            call = calls.setdefault(fragment.get("index", 0), _PartialCall())
                            call.id = fragment.get("id") or call.id
                            function = fragment.get("function")
                            if function:
                                call.name = function.get("name") or call.name
                                if function.get("arguments"):
                                    call.arguments.append(function["arguments"])
                    reason = choice.get("finish_reason")
                    if reason and not finished:
                        finished = True
                        yield ChatDelta(tool_calls=_complete(calls), finish_reason=reason)
        except _ERRORS as exc:
            raise provider_error(PROVIDER, exc) from None
        if not finished:
            # Some compatible servers end the stream without a finish_reason.
            yield ChatDelta(tool_calls=_complete(calls), finish_reason="tool_calls" if calls else "stop")

    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return (await self.complete_json_with_usage(messages, schema))[0]

    async def complete_json_with_usage(
        self, messages: list[dict[str, Any]], schema: dict[str, Any]
    ) -> tuple[dict[str, Any], TokenUsage | None]:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "response"))[:64]
        response_format = {
            "type": "json_schema",
            # strict needs every property required and no extra ones; only ask for it when
            # the schema is written that way, or OpenAI rejects the request.
            "json_schema": {"name": name, "schema": schema, "strict": schema.get("additionalProperties") is False},
        }
        try:
            completion = await self._client.post(  # the low-level post, as in stream()
                "/chat/completions",
                body={"messages": messages, "response_format": response_format, **self._options()},
                cast_to=object,
            )
        except _ERRORS as exc:
            raise provider_error(PROVIDER, exc) from None
        if not isinstance(completion, dict) or not (choices := completion.get("choices")):
            raise ProviderError(PROVIDER, "completion without choices")
        choice = choices[0]
        if choice.get("finish_reason") == "length":
            raise ProviderError(PROVIDER, "JSON answer cut off at max_tokens", retryable=False)
        content = (choice.get("message") or {}).get("content") or ""
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise ProviderError(PROVIDER, f"answer is not valid JSON ({len(content)} chars)") from None
        if not isinstance(value, dict):
            raise ProviderError(PROVIDER, f"answer is JSON {type(value).__name__}, not an object")
        return value, TokenUsage.parse(completion.get("usage"))

    async def aclose(self) -> None:
        await self._client.close()


def _complete(calls: dict[int, _PartialCall]) -> tuple[ToolCall, ...]:
    done = tuple(ToolCall(c.id, c.name, "".join(c.arguments) or "{}") for _, c in sorted(calls.items()))
    calls.clear()
    return done
