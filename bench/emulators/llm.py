"""OpenAI-compatible emulator: chat completions, models and ``/v1/audio/speech``.

``POST /v1/chat/completions`` answers from a small deterministic script keyed on the last
user message (see :func:`script_reply`; a user tool is called when the caller names its topic
and gives the number it needs, and its result is then said back), streamed as SSE ``data:`` chunks of exactly the
OpenAI shape (text deltas, ``tool_calls`` fragments by index, ``finish_reason``, optional
usage chunk, ``data: [DONE]``) or as one completion. A ``json_schema`` response format gets
a JSON object with every property of the schema filled with a plausible value. The first
token comes ``llm_first_token_ms`` after the request, the rest every
``llm_token_interval_ms``. ``POST /v1/audio/speech`` returns PCM16 at 24 kHz (OpenAI's
``pcm`` format), streamed in paced chunks.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .common import bearer_ok, drop_connection
from .profiles import Delays, FaultSwitch, LatencyProfile
from .tts import Synthesizer

MODEL = "emulator-llm"
SPEECH_RATE = 24000


# -- the script -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    text: str
    tool_calls: tuple[tuple[str, str], ...] = ()
    """(function name, JSON arguments)."""


_BYE = re.compile(r"\b(bye|goodbye)\b", re.I)
_TRANSFER = re.compile(r"\b(transfer|human|agent)\b", re.I)
_KEYS = re.compile(r"\b(press(ed|es)?|digits?|keys?|keypad|dtmf)\b", re.I)
_DIGITS = re.compile(r"[0-9*#]")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _offered(tools: list[dict[str, Any]] | None, name: str) -> dict[str, Any] | None:
    for tool in tools or ():
        function = tool.get("function") or {}
        if tool.get("type", "function") == "function" and function.get("name") == name:
            return function
    return None


def script_reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Reply:
    """The emulated model's answer: deterministic, short first sentence (so TTS starts early)."""
    said = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            said = _text_of(message.get("content")).strip()
            break
    calls: list[tuple[str, str]] = []

    def call(name: str, reason: str) -> None:
        function = _offered(tools, name)
        if function is not None:
            arguments = example_for_schema(function.get("parameters") or {"type": "object"}, hint=reason)
            calls.append((name, orjson.dumps(arguments).decode()))

    answered = _user_tool_result(messages)
    if answered is not None:
        if answered.startswith("error:"):
            return Reply("I'm sorry, I couldn't check that just now.")
        return Reply(f"I checked for you. {answered}")
    if not said:
        return Reply("Hello! How can I help you today?")
    if _BYE.search(said):
        call("end_call", "caller said goodbye")
        return Reply("Thanks for calling. Goodbye!", tuple(calls))
    if _TRANSFER.search(said):
        call("transfer_call", "caller asked for a person")
        return Reply("Of course. Let me transfer you to a colleague now.", tuple(calls))
    user_call = _user_tool_call(said, tools)
    if user_call is not None:
        return Reply("Let me check that.", (user_call,))
    digits = _DIGITS.findall(said)
    if digits and _KEYS.search(said):
        return Reply(f"Got it. You entered {' '.join(digits)}, let me look that up.")
    words = said.split()
    snippet = " ".join(words[:8]).rstrip(".,;:!?")
    if len(words) > 8:
        snippet += " …"
    return Reply(f"Sure. You said “{snippet}”, and I can help you with that.")


BUILTIN_TOOLS = frozenset({"end_call", "transfer_call", "send_dtmf", "pause_recording", "resume_recording"})
_GENERIC_NAME_WORDS = frozenset({"get", "check", "lookup", "look", "find", "fetch", "search", "status", "info"})
_SPOKEN_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                  "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_IDENTIFIER_PARAM = re.compile(r"(number|_id$|^id$|code|reference)")


def spoken_number(said: str) -> str | None:
    """The longest run of 3+ digits the caller gave, written or spoken ("four seven two" -> "472")."""
    runs, run = [], ""
    for word in re.findall(r"[a-z]+|[0-9]+", said.lower()):
        digit = word if word.isdigit() else _SPOKEN_DIGITS.get(word)
        if digit is None:
            runs.append(run)
            run = ""
        else:
            run += digit
    runs.append(run)
    best = max(runs, key=len)
    return best if len(best) >= 3 else None


def _user_tool_call(said: str, tools: list[dict[str, Any]] | None) -> tuple[str, str] | None:
    """The scripted model calls a user tool (not a built-in) when the caller names what it is
    about (a word of its name: "order" for order_status) and gave what its identifier
    parameters need (a number); the others get example values."""
    words = set(re.findall(r"[a-z]+", said.lower()))
    for tool in tools or ():
        function = tool.get("function") or {}
        name = function.get("name", "")
        if tool.get("type", "function") != "function" or name in BUILTIN_TOOLS:
            continue
        topic = {w for w in re.split(r"[_\-]+", name.lower()) if len(w) >= 3} - _GENERIC_NAME_WORDS
        if not topic & words:
            continue
        schema = function.get("parameters") or {"type": "object"}
        arguments = example_for_schema(schema)
        if not isinstance(arguments, dict):
            continue
        number = spoken_number(said)
        wanted = [p for p in (schema.get("properties") or {}) if _IDENTIFIER_PARAM.search(p)]
        if wanted and number is None:
            continue  # it would ask for the number first
        for param in wanted:
            kind = (schema["properties"][param] or {}).get("type")
            arguments[param] = int(number) if kind == "integer" and number is not None else number
        return name, orjson.dumps(arguments).decode()
    return None


def _user_tool_result(messages: list[dict[str, Any]]) -> str | None:
    """The result of a user tool, when it is the conversation's last message (the model then
    says it); None otherwise, and for the built-ins' results."""
    if not messages or messages[-1].get("role") != "tool":
        return None
    call_id = messages[-1].get("tool_call_id")
    for message in reversed(messages):
        for call in message.get("tool_calls") or ():
            if call.get("id") == call_id:
                name = (call.get("function") or {}).get("name")
                return None if name in BUILTIN_TOOLS else _text_of(messages[-1].get("content")).strip()
    return None


def example_for_schema(schema: dict[str, Any], *, hint: str = "", name: str = "",
                       defs: dict[str, Any] | None = None) -> Any:
    """A value satisfying ``schema`` (types, enums, consts, required properties, $refs)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        return example_for_schema(target, hint=hint, name=name, defs=defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, ()) if o.get("type") != "null"]
        if options:
            return example_for_schema(options[0], hint=hint, name=name, defs=defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {prop: example_for_schema(sub, hint=hint, name=prop, defs=defs)
                for prop, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_for_schema(schema.get("items") or {"type": "string"}, hint=hint, name=name, defs=defs)
                for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5 if schema.get("maximum", 2) <= 1 else 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(name.lower(), hint, schema)


def _string_for(name: str, hint: str, schema: dict[str, Any]) -> str:
    if schema.get("format") == "date-time" or name.endswith("_at"):
        return "2026-01-01T12:00:00Z"
    if schema.get("format") == "date" or "date" in name:
        return "2026-01-01"
    if schema.get("format") == "email" or "email" in name:
        return "caller@example.com"
    if "phone" in name or name in ("to", "number", "destination") or name.endswith(("_number", "_to")):
        return "+15550100000"
    if "reason" in name:
        return hint or "caller request"
    if "summary" in name:
        return "The caller asked a question and the agent helped."
    if "sentiment" in name:
        return "positive"
    if "name" in name:
        return "Alex Example"
    value = hint or f"example {name}".strip()
    return value[: schema["maxLength"]] if "maxLength" in schema else value


def tokens(text: str) -> list[str]:
    """Word pieces with their leading space, as a BPE model streams them."""
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+", text):
        while len(word) > 7:
            pieces.append(word[:4])
            word = word[4:]
        pieces.append(word)
    return pieces


# -- the HTTP endpoints -----------------------------------------------------------------


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}},
                             status=status)


@dataclass
class LlmStats:
    completions: int = 0
    streamed: int = 0
    speech_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Usage as reported to clients (a completion's ``usage``, or a stream's usage chunk when asked for)."""
    unreported_streams: int = 0
    """Streams that ended without a usage chunk (the client went away first, or did not ask): the
    bench's measure of what a real server served but never reported, never sent to a client."""
    unreported_prompt_tokens: int = 0
    unreported_completion_tokens: int = 0
    """Content chunks sent on those streams (one token each, as this emulator counts them)."""
    last_request: dict[str, Any] = field(default_factory=dict)


class LlmEmulator:
    def __init__(self, *, api_key: str, profile: LatencyProfile, faults: FaultSwitch,
                 synthesizer: Synthesizer) -> None:
        self.api_key = api_key
        self.profile = profile
        self.faults = faults
        self.synthesizer = synthesizer
        self.stats = LlmStats()
        self.delays = Delays(profile)

    def add_routes(self, app: web.Application, prefix: str = "/v1") -> None:
        app.router.add_post(f"{prefix}/chat/completions", self.chat_completions)
        app.router.add_get(f"{prefix}/models", self.models)
        app.router.add_post(f"{prefix}/audio/speech", self.speech)

    def _check(self, request: web.Request, service: str) -> tuple[web.Response | None, str | None]:
        if not bearer_ok(request, self.api_key):
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), None
        fault = self.faults.take(service, request.headers, request.query)
        if fault == "http_500":
            return _error(500, "The server had an error while processing your request.", "server_error"), fault
        return None, fault

    async def models(self, request: web.Request) -> web.Response:
        refused, _ = self._check(request, "llm")
        if refused is not None:
            return refused
        return web.json_response({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 0, "owned_by": "emulator"}]})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        refused, fault = self._check(request, "llm")
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except ConnectionResetError:  # the client went away mid-body: nobody to answer, nothing to log
            return web.Response(status=400)
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "'model' and 'messages' are required.", "invalid_request_error")
        self.stats.completions += 1
        self.stats.last_request = body
        if fault == "slow":
            await asyncio.sleep(self.profile.stall_s)

        reply = script_reply(body["messages"], body.get("tools"))
        content: str | None = reply.text
        calls = reply.tool_calls
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
            content, calls = orjson.dumps(example_for_schema(schema, hint=reply.text)).decode(), ()
        elif response_format.get("type") == "json_object":
            content, calls = orjson.dumps({"reply": reply.text}).decode(), ()
        pieces = tokens(content or "")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "tool_calls" if calls else "stop"
        if limit and len(pieces) > limit:
            pieces, calls, finish = pieces[:limit], (), "length"

        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = body["model"]
        call_ids = [f"call_{uuid.uuid4().hex[:24]}" for _ in calls]
        first_at = started + self.delays(self.profile.llm_first_token_ms)
        interval = self.profile.llm_token_interval_ms / 1000
        usage = {"prompt_tokens": sum(len(tokens(_text_of(m.get("content")))) for m in body["messages"]),
                 "completion_tokens": len(pieces) + sum(len(a) // 4 + 1 for _, a in calls)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]

        if not body.get("stream"):
            if fault in ("error_frame", "disconnect"):
                if fault == "disconnect":
                    drop_connection(request)
                return _error(500, "The server had an error while processing your request.", "server_error")
            await _sleep_until(first_at + interval * len(pieces))
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None, "refusal": None}
            if calls:
                message["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, (name, args) in zip(call_ids, calls, strict=False)]
            self._reported(usage)
            return web.json_response({
                "id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            })

        self.stats.streamed += 1
        return await self._stream(request, body, pieces, calls, call_ids, finish, ident, first_at, usage, fault)

    async def _stream(self, request: web.Request, body: dict[str, Any], pieces: list[str],
                      calls: tuple[tuple[str, str], ...], call_ids: list[str], finish: str, ident: str,
                      first_at: float, usage: dict[str, int], fault: str | None) -> web.StreamResponse:
        model = body["model"]
        interval = self.profile.llm_token_interval_ms / 1000
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        created = int(time.time())
        sent_pieces = 0
        reported = False

        async def send(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        try:
            # (inside: a client that went away while the request was prepared is no error here)
            await response.prepare(request)
            at = first_at
            await _sleep_until(at)
            await send({"role": "assistant", "content": "", "refusal": None})
            for sent, piece in enumerate(pieces, start=1):
                await _sleep_until(at)
                await send({"content": piece})
                sent_pieces = sent
                at += interval
                if sent == 3 and fault in ("error_frame", "disconnect"):
                    if fault == "disconnect":
                        drop_connection(request)
                        return response
                    error = {"error": {"message": "The server had an error while processing your request.",
                                       "type": "server_error", "param": None, "code": None}}
                    await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
                    await response.write_eof()
                    return response
            for index, (cid, (name, args)) in enumerate(zip(call_ids, calls, strict=False)):
                await _sleep_until(at)
                await send({"tool_calls": [{"index": index, "id": cid, "type": "function",
                                            "function": {"name": name, "arguments": ""}}]})
                for start in range(0, len(args), 8):
                    at += interval
                    await _sleep_until(at)
                    await send({"tool_calls": [{"index": index, "function": {"arguments": args[start:start + 8]}}]})
            await send({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [], "usage": usage}
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                self._reported(usage)
                reported = True
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        except ConnectionError:
            pass  # the client hung up
        finally:
            if not reported:
                self.stats.unreported_streams += 1
                self.stats.unreported_prompt_tokens += usage["prompt_tokens"]
                self.stats.unreported_completion_tokens += sent_pieces
        return response

    def _reported(self, usage: dict[str, int]) -> None:
        self.stats.prompt_tokens += usage["prompt_tokens"]
        self.stats.completion_tokens += usage["completion_tokens"]

    async def speech(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        refused, fault = self._check(request, "speech")
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except ConnectionResetError:  # the client went away mid-body: nobody to answer, nothing to log
            return web.Response(status=400)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not body.get("input") or not body.get("voice") or not body.get("model"):
            return _error(400, "'model', 'input' and 'voice' are required.", "invalid_request_error")
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            return _error(400, f"the emulator returns pcm or wav, not {fmt}", "invalid_request_error")
        self.stats.speech_requests += 1
        if fault == "slow":
            await asyncio.sleep(self.profile.stall_s)
        if fault == "error_frame":
            return _error(500, "The server had an error while processing your request.", "server_error")
        pcm, _ = await self.synthesizer.synthesize(str(body["input"]), SPEECH_RATE)
        return await self._speech_stream(request, pcm, fmt, started, fault)

    async def _speech_stream(self, request: web.Request, pcm: bytes, fmt: str, started: float,
                             fault: str | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm" if fmt == "pcm" else "audio/wav"})
        await response.prepare(request)
        if fmt == "wav":
            await response.write(_wav_header(len(pcm), SPEECH_RATE))
        chunk = int(SPEECH_RATE * self.profile.tts_chunk_audio_ms / 1000) * 2
        at = started + self.delays(self.profile.tts_first_audio_ms)
        try:
            for offset in range(0, len(pcm), chunk):
                await _sleep_until(at)
                await response.write(pcm[offset:offset + chunk])
                if fault == "disconnect":
                    drop_connection(request)
                    return response
                at += self.profile.tts_chunk_interval_ms / 1000
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up
        return response


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _wav_header(data_bytes: int, rate: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))
