"""Test doubles and harness for the control-plane API: a recording Telnyx client, an app client."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from control_plane.app import CONTROL_PLANE_KEY, create_app
from control_plane.auth import issue_api_key
from control_plane.services import ControlPlane
from control_plane.settings import Settings
from control_plane.telnyx.client import DialResult, HangupResult, TelnyxApiError
from control_plane.telnyx.webhooks import generate_keypair, sign

WEBHOOK_PRIVATE_KEY, WEBHOOK_PUBLIC_KEY = generate_keypair()
PUBLIC_URL = "https://agent.example.com"


@dataclass
class FakeTelnyx:
    """Records every command; ``fail_dial`` / ``fail_action`` make the next ones raise."""

    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_dial: Exception | None = None
    fail_action: Exception | None = None
    calls: dict[str, Any] = field(default_factory=dict)
    """What ``get_call`` says per call_control_id: a dict (the data), or an exception to raise.
    Calls not listed are alive."""

    def named(self, name: str) -> list[dict[str, Any]]:
        return [body for cmd, body in self.commands if cmd == name]

    async def dial(self, **kwargs: Any) -> DialResult:
        self.commands.append(("dial", kwargs))
        if self.fail_dial is not None:
            raise self.fail_dial
        return DialResult(call_control_id=f"v3:{uuid.uuid4().hex}", call_leg_id=str(uuid.uuid4()),
                          call_session_id=str(uuid.uuid4()), is_alive=False, command_id=kwargs["command_id"])

    async def _action(self, name: str, call_control_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.commands.append((name, {"call_control_id": call_control_id, **kwargs}))
        if self.fail_action is not None:
            raise self.fail_action
        return {"result": "ok"}

    async def answer(self, call_control_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._action("answer", call_control_id, kwargs)

    async def hangup(self, call_control_id: str, **kwargs: Any) -> HangupResult:
        await self._action("hangup", call_control_id, kwargs)
        return HangupResult(command_id=kwargs.get("command_id") or "x")

    async def reject(self, call_control_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._action("reject", call_control_id, kwargs)

    async def get_call(self, call_control_id: str) -> dict[str, Any]:
        self.commands.append(("get_call", {"call_control_id": call_control_id}))
        found = self.calls.get(call_control_id, {"call_control_id": call_control_id, "is_alive": True})
        if isinstance(found, Exception):
            raise found
        return found

    async def streaming_start(self, call_control_id: str, stream_url: str, **kwargs: Any) -> dict[str, Any]:
        # (stream_url positional or not, as the client takes it: machines.py passes it positionally)
        return await self._action("streaming_start", call_control_id, {"stream_url": stream_url, **kwargs})

    async def record_start(self, call_control_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._action("record_start", call_control_id, kwargs)

    async def record_pause(self, call_control_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._action("record_pause", call_control_id, kwargs)

    async def record_resume(self, call_control_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._action("record_resume", call_control_id, kwargs)

    async def close(self) -> None:
        pass


def telnyx_error(status: int, code: str, title: str) -> TelnyxApiError:
    return TelnyxApiError(status, [{"code": code, "title": title, "detail": title}], method="POST", path="/calls")


@dataclass
class Harness:
    client: TestClient
    cp: ControlPlane
    telnyx: FakeTelnyx

    async def org(self, name: str = "Org") -> tuple[Any, dict[str, str]]:
        """A new organisation and auth headers for it."""
        repo = await self.cp.repository()
        org = await repo.create_organisation(name)
        _, secret = await issue_api_key(repo, org.id, "test")
        return org, {"Authorization": f"Bearer {secret}"}

    async def start_call(self, headers: dict[str, str], to: str = "+14155550123", **extra: Any) -> Any:
        body = {"to": to, "from": "+14155550100",
                "agent_config": {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"},
                **extra}
        return await self.client.post("/api/calls/start", json=body, headers=headers)

    async def webhook(self, event_type: str, payload: dict[str, Any], *, event_id: str | None = None,
                      occurred_at: str | None = None, timestamp: int | None = None,
                      key: Any = None) -> Any:
        body, headers = signed_webhook(event_type, payload, event_id=event_id, occurred_at=occurred_at,
                                       timestamp=timestamp, key=key)
        return await self.client.post("/webhook/telnyx", data=body, headers=headers)

    async def settle(self) -> None:
        await self.cp.worker.drain()


def signed_webhook(event_type: str, payload: dict[str, Any], *, event_id: str | None = None,
                   occurred_at: str | None = None, timestamp: int | None = None, key: Any = None,
                   attempt: int = 1) -> tuple[bytes, dict[str, str]]:
    envelope = {
        "data": {"record_type": "event", "event_type": event_type, "id": event_id or str(uuid.uuid4()),
                 "occurred_at": occurred_at or "2026-01-01T12:00:00.000000Z", "payload": payload},
        "meta": {"attempt": attempt, "delivered_to": PUBLIC_URL + "/webhook/telnyx"},
    }
    body = orjson.dumps(envelope)
    headers = sign(body, key or WEBHOOK_PRIVATE_KEY, timestamp if timestamp is not None else int(time.time()))
    headers["Content-Type"] = "application/json"
    return body, headers


def unused_bits_flipped(signature: str) -> str:
    """The same 64 signature bytes spelled differently: they end in one byte over two base64
    characters, whose last 4 bits carry nothing (a lenient decoder ignores them)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = signature.rstrip("=")
    return data[:-1] + alphabet[alphabet.index(data[-1]) ^ 1] + signature[len(data):]


def encoded_state(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@asynccontextmanager
async def harness(settings: Settings, telnyx: FakeTelnyx | None = None) -> AsyncIterator[Harness]:
    app = create_app(settings)
    cp = app[CONTROL_PLANE_KEY]
    fake = telnyx or FakeTelnyx()
    cp.telnyx = fake
    async with TestClient(TestServer(app)) as client:
        yield Harness(client, cp, fake)
