"""Tool definitions offered to the model, and running user HTTP tools."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from .config import AgentProfile, HttpTool

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
    return tools


async def run_http_tool(tool: HttpTool, arguments: str, session: aiohttp.ClientSession) -> str:
    """POST the model's arguments; the result (or a readable error) goes back to the model."""
    try:
        payload = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return f"error: the arguments for {tool.name} were not valid JSON"
    try:
        async with session.post(
            str(tool.url), json=payload, headers=tool.headers, timeout=aiohttp.ClientTimeout(total=tool.timeout_s)
        ) as response:
            body = await response.text()
            if response.status >= 400:
                return f"error: {tool.name} failed with HTTP {response.status}"
            return body[:4000]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"error: {tool.name} is unavailable ({type(exc).__name__})"
