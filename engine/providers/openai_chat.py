"""Chat completions on any OpenAI-compatible endpoint (OpenAI, Telnyx inference
``https://api.telnyx.com/v2/ai/openai``, vLLM, Ollama, ...).

:meth:`OpenAIChatModel.stream` yields text as it arrives and tool calls once their
argument fragments (streamed by index) are complete, which is when the model says why it
stopped; that last delta carries the ``finish_reason``. The SDK's own retries are off by
default: a retried request is seconds of dead air on a call, and the caller decides.

The streamed reply, once or twice a turn on every call, is read straight off the shared
aiohttp session (:func:`_sse_events`): the ``openai`` package's request and SSE machinery
(httpx, anyio, a request id, headers and options objects per request) cost ~2 ms of CPU per
reply, more than the call's media path. The request and its errors are the SDK's: the same
URL, body, ``Authorization`` and extra headers, the same timeout per request and per chunk,
an error event in the stream or an HTTP status mapped as :func:`provider_error` maps the
SDK's. With ``max_retries`` set, with a proxy in the environment (which httpx honours and
the shared session does not), and for :meth:`OpenAIChatModel.complete_json` (once a call),
the SDK does the request.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import aiohttp
import openai
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._http import SessionHolder
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
    def __init__(self, config: OpenAIChatConfig, *, client: openai.AsyncOpenAI | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self._client = client or openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            default_headers=config.extra_headers or None,
        )
        # A client given by the caller (its own transport, retries...) does every request, and so
        # does the SDK's own where it would go through a proxy from the environment (httpx honours
        # HTTPS_PROXY and NO_PROXY; the shared aiohttp session does not).
        self._direct = client is None and config.max_retries == 0 and not _proxied(config.base_url)
        self._http = SessionHolder(session)
        self._url = config.base_url.rstrip("/") + "/chat/completions"  # as the SDK joins them
        # The SDK's own headers (Accept, Content-Type, User-Agent, the organisation and project
        # it reads from the environment, the configured extra headers) and its Authorization.
        client_headers = {**self._client.default_headers, **self._client.auth_headers}
        self._headers = {name: value for name, value in client_headers.items() if isinstance(value, str)}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.timeout_s, sock_read=config.timeout_s)

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
        body = {"messages": messages, "stream": True, **options}
        chunks = self._direct_chunks(body) if self._direct else self._sdk_chunks(body)
        calls: dict[int, _PartialCall] = {}
        finished = False
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
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

    async def _sdk_chunks(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        # The low-level post skips the SDK's recursive request transform, and casting the
        # chunks to plain dicts skips building a pydantic model per token (≈125 µs each,
        # measured).
        response = await self._client.post(
            "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object],
        )
        async with response:
            async for chunk in response:
                yield chunk

    async def _direct_chunks(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """The stream's JSON chunks, read off the shared aiohttp session (see the module doc)."""
        try:
            async with self._http.get().post(self._url, data=orjson.dumps(body), headers=self._headers,
                                             timeout=self._timeout) as response:
                if response.status >= 400:
                    raise _status_error(response.status, await response.read())
                async for data in _sse_events(response.content):
                    if data.startswith(b"[DONE]"):
                        await response.read()  # the rest of the body, so the connection is reused
                        return
                    chunk = orjson.loads(data)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        error = chunk["error"]
                        message = error.get("message") if isinstance(error, dict) else None
                        if not isinstance(message, str) or not message:
                            message = "An error occurred during streaming"  # (the SDK's words)
                        raise ProviderError(PROVIDER, f"stream error: {message}")
                    yield chunk
        except TimeoutError:
            raise ProviderError(PROVIDER, "request timed out") from None
        except ValueError:  # (a chunk that is not JSON, or a line past the reader's limit)
            raise ProviderError(PROVIDER, "stream error: a chunk is not JSON or too long") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(PROVIDER, f"connection failed: {exc}") from None

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
        await self._http.aclose()


def _proxied(url: str) -> bool:
    """Would a request to ``url`` go through a proxy named in the environment?"""
    proxies = urllib.request.getproxies()
    parts = urllib.parse.urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


async def _sse_events(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The data of each server-sent event (its ``data:`` lines joined by newlines); other
    fields and comments are skipped, as the SDK's decoder does for chat streams."""
    data: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == b" " else value)
    if data:
        yield b"\n".join(data)


def _status_error(status: int, body: bytes) -> ProviderError:
    """An error status as :func:`provider_error` words the SDK's ``APIStatusError``."""
    retryable = status >= 500 or status in (408, 409, 429)
    text = body.decode("utf-8", "replace")
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    message = f"Error code: {status} - {parsed if parsed is not None else text}"
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
    return ProviderError(PROVIDER, f"HTTP {status}: {message}", retryable=retryable)


def _complete(calls: dict[int, _PartialCall]) -> tuple[ToolCall, ...]:
    done = tuple(ToolCall(c.id, c.name, "".join(c.arguments) or "{}") for _, c in sorted(calls.items()))
    calls.clear()
    return done
