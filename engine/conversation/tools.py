"""Tool definitions offered to the model, and running user tools (HTTP and Python functions).

Every failure of a user tool (timeout, refused address, HTTP error, a function that raised)
becomes a result the model reads and can talk about ("error: order_status timed out after
5 s"), never an exception into the call. The request format and its signature are in
:mod:`.context`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .config import AgentConfig, AgentProfile, HttpTool
from .context import SIGNATURE_HEADER, TIMESTAMP_HEADER, ToolContext, sign
from .egress import BlockedDestination, EgressPolicy, GuardedResolver, ToolEgressConfig
from .function_tools import installed_tools

_BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "end_call": {
        "description": "End the phone call after your goodbye has been spoken.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
        },
    },
    "transfer_call": {
        "description": "Transfer the caller to a human or another number.",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "description": "E.164 number or SIP URI; omit for the default."},
                "reason": {"type": "string"},
            },
        },
    },
    "pause_recording": {
        "description": "Before the caller gives payment card details: stop recording the call.",
        "parameters": {"type": "object", "properties": {}},
    },
    "resume_recording": {
        "description": "After the payment card details are taken: record the call again.",
        "parameters": {"type": "object", "properties": {}},
    },
    "send_dtmf": {
        "description": "Press keys on the phone keypad (e.g. to navigate a phone menu).",
        "parameters": {
            "type": "object",
            "properties": {"digits": {"type": "string", "pattern": "^[0-9A-D*#wW]+$"}},
            "required": ["digits"],
        },
    },
}


def tool_definitions(profile: AgentProfile) -> list[dict[str, Any]]:
    tools = [
        {"type": "function", "function": {"name": name, **_BUILTIN_SCHEMAS[name]}}
        for name in profile.config.tools
    ]
    tools += [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in profile.config.http_tools
    ]
    functions = installed_tools()
    tools += [functions[name].definition() for name in profile.config.function_tools if name in functions]
    return tools


class ToolClient:
    """Runs user HTTP tools: POSTs the model's arguments, and turns every failure into a readable
    result for the model, never an exception.

    Connections go only where an :class:`EgressPolicy` allows (checked at connect time, and on
    every redirect hop); the reply is read up to ``max_response_bytes``. One session per policy:
    the server's own, plus a few organisations' allow-lists; past that a request gets a session of
    its own (no pooling) rather than share a connection pool across policies.
    """

    MAX_SESSIONS = 32

    def __init__(self, config: ToolEgressConfig | None = None, *,
                 resolver: Callable[[], AbstractResolver] = DefaultResolver) -> None:
        self.config = config or ToolEgressConfig()
        self._resolver = resolver
        self.default_policy = self.config.policy()
        self._sessions: dict[EgressPolicy, aiohttp.ClientSession] = {}

    def policy_for(self, allowed_destinations: Iterable[str] = ()) -> EgressPolicy:
        """The server's policy plus an organisation's allow-list (entries were checked when stored)."""
        try:
            return self.default_policy.extended(allowed_destinations)
        except ValueError:
            return self.default_policy

    def _new_session(self, policy: EgressPolicy) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, self._resolver()), limit=0)
        return aiohttp.ClientSession(connector=connector, trust_env=False)  # no proxy from the environment

    @contextlib.asynccontextmanager
    async def _session(self, policy: EgressPolicy) -> AsyncIterator[aiohttp.ClientSession]:
        session = self._sessions.get(policy)
        if session is None and len(self._sessions) < self.MAX_SESSIONS:
            session = self._sessions[policy] = self._new_session(policy)
        if session is not None:
            yield session
            return
        async with self._new_session(policy) as own:
            yield own

    async def call(self, config: AgentConfig, name: str, arguments: str, context: ToolContext | None = None,
                   policy: EgressPolicy | None = None) -> str:
        """Run the agent's user tool ``name`` (HTTP or Python function) with the model's arguments."""
        http = next((t for t in config.http_tools if t.name == name), None)
        if http is not None:
            return await self.run(http, arguments, policy, context)
        function = installed_tools().get(name) if name in config.function_tools else None
        if function is not None:
            return await function.run(arguments, context)
        return f"error: unknown tool {name}"

    async def run(self, tool: HttpTool, arguments: str, policy: EgressPolicy | None = None,
                  context: ToolContext | None = None) -> str:
        """POST the model's arguments with the call's context; the result (or a readable error)
        goes back to the model."""
        try:
            payload = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return f"error: the arguments for {tool.name} were not valid JSON"
        context = context or ToolContext()
        body = orjson.dumps({"tool": tool.name, "arguments": payload, "call": context.as_json()})
        policy = policy or self.default_policy
        try:
            async with asyncio.timeout(tool.timeout_s), self._session(policy) as session:
                return await self._request(session, policy, tool, body, context)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedDestination):
                return f"error: {tool.name} may not reach a {exc.os_error.kind} address"
            return f"error: {tool.name} is unavailable ({type(exc).__name__})"
        except TimeoutError:
            return f"error: {tool.name} timed out after {tool.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return f"error: {tool.name} is unavailable ({type(exc).__name__})"

    async def _request(self, session: aiohttp.ClientSession, policy: EgressPolicy, tool: HttpTool,
                       payload: bytes, context: ToolContext) -> str:
        url = URL(str(tool.url))
        # The signature covers the exact bytes sent; a redirected request is signed afresh.
        method = "POST"
        body: bytes | None = payload
        headers = {**tool.headers, "Content-Type": "application/json", **sign(context.signing_secrets, payload)}
        for hop in range(self.config.max_redirects + 1):
            refused = policy.literal_refusal(url)
            if refused is not None:
                return f"error: {tool.name} may not reach a {refused} address"
            async with session.request(method, url, data=body, headers=headers, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location:
                    if hop == self.config.max_redirects:
                        return f"error: {tool.name} redirected more than {self.config.max_redirects} times"
                    try:
                        target = url.join(URL(location))
                    except ValueError:
                        return f"error: {tool.name} redirected to an invalid URL"
                    if target.scheme not in ("http", "https") or not target.raw_host:
                        return f"error: {tool.name} was redirected to a URL that is not http(s)"
                    if response.status in (301, 302, 303):
                        method, body = "GET", None  # what browsers and aiohttp do with a redirected POST
                        # (no body: no content type, and no signature of a body not sent)
                        headers = {k: v for k, v in headers.items() if k not in _BODY_HEADERS}
                    if target.origin() != url.origin():
                        headers = {}  # the tool's headers and signature go to its own origin only
                    url = target
                    continue
                if response.status >= 400:
                    return f"error: {tool.name} failed with HTTP {response.status}"
                data = await self._read_capped(response)
                if data is None:
                    return f"error: {tool.name} replied with more than {self.config.max_response_bytes} bytes"
                return _text(data, response.charset)[:4000]
        raise AssertionError("unreachable")

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes | None:
        """The body, or None when it is larger than the cap (read no further than one byte past it)."""
        cap = self.config.max_response_bytes
        if response.content_length is not None and response.content_length > cap:
            return None
        data = bytearray()
        while len(data) <= cap:
            chunk = await response.content.read(cap + 1 - len(data))
            if not chunk:
                return bytes(data)
            data += chunk
        return None

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"Content-Type", TIMESTAMP_HEADER, SIGNATURE_HEADER})


def _text(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")
