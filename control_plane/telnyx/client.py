"""The Telnyx Call Control v2 client: dial and call actions over aiohttp.

Every command carries a ``command_id`` (a UUID4 unless the caller gives one). Telnyx
ignores a repeated ``command_id`` for the same call (for dials: the same id) within
60 s, which makes resending safe, so the client follows Telnyx's retry guidance: on a
5xx, a connection error, or no response within ``attempt_timeout_s`` (500 ms) it sends
the identical request again, up to ``max_attempts``. The last attempt may use what is
left of ``timeout_s``: giving up on it early cannot help, and waiting tells us whether
the command ran. 4xx responses are never retried; 429 raises :class:`TelnyxRateLimited`
so the caller's pacer decides when to come back.

``client_state``: the typed methods take the raw value (``str`` or ``bytes``) and
base64-encode it, as Telnyx requires; webhooks echo the encoded form
(:attr:`~control_plane.telnyx.webhooks.WebhookEvent.client_state` decodes it).
:meth:`TelnyxClient.action` and ``**extra`` are wire-level and sent verbatim.

The API key lives only in the ``Authorization`` header: never in messages, reprs or logs.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict
from yarl import URL

__all__ = [
    "DEFAULT_BASE_URL",
    "DialResult",
    "HangupResult",
    "SPEAK_LANGUAGES",
    "TelnyxApiError",
    "TelnyxClient",
    "TelnyxConnectionError",
    "TelnyxError",
    "TelnyxRateLimited",
    "call_is_over",
    "encode_client_state",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
ALREADY_ENDED = "90018"
INVALID_CALL_CONTROL_ID = "90015"
# Actions whose SDK parameters have no command_id. Setting the same client_state twice is
# harmless, so nothing is lost without de-duplication.
_WITHOUT_COMMAND_ID = frozenset({"client_state_update"})
# speak's `language`, as the SDK's ActionSpeakParams allows it (a bare "en" may be refused).
SPEAK_LANGUAGES = frozenset({
    "arb", "cmn-CN", "cy-GB", "da-DK", "de-DE", "en-AU", "en-GB", "en-GB-WLS", "en-IN", "en-US", "es-ES", "es-MX",
    "es-US", "fr-CA", "fr-FR", "hi-IN", "is-IS", "it-IT", "ja-JP", "ko-KR", "nb-NO", "nl-NL", "pl-PL", "pt-BR",
    "pt-PT", "ro-RO", "ru-RU", "sv-SE", "tr-TR",
})
# RFC 3986 segment characters: ids such as "v3:abc-_" go through unescaped, "/" does not.
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


class TelnyxError(Exception):
    """Base class for Call Control failures."""


class TelnyxConnectionError(TelnyxError):
    """No usable response from Telnyx after every attempt (timeouts, refused, reset)."""


class TelnyxApiError(TelnyxError):
    """Telnyx answered with an error. ``code`` is ``errors[0].code`` (a digit string)."""

    after_unanswered: bool = False
    """An earlier attempt of the same request got no answer (timeout, reset, 5xx): it may have run.
    This answer then speaks only for the last attempt (for a 429: that one was not executed)."""

    def __init__(self, status: int, errors: list[dict[str, Any]], *, method: str = "", path: str = "") -> None:
        self.status = status
        self.errors = errors
        first = errors[0] if errors else {}
        self.code: str | None = str(first["code"]) if first.get("code") is not None else None
        self.title: str | None = first.get("title")
        self.detail: str | None = first.get("detail")
        text = f"Telnyx {method} {path} -> HTTP {status}"
        if self.code:
            text += f" [{self.code}]"
        if self.title:
            text += f" {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        super().__init__(text)


def call_is_over(exc: TelnyxApiError) -> bool:
    """Whether Telnyx's error on a call's status or action says the call is over.

    ``90018`` (Call has already ended) says so. ``90015`` (Invalid Call Control ID) on an id
    Telnyx gave us says it no longer knows the call: it keeps a call's status for 10 minutes
    after the end (Retrieve a call status), so the call ended before that. Any other 404 (code
    ``10005``, "the requested resource or URL could not be found", or none: a proxy's page) means
    the request did not reach a call at all - a wrong ``telnyx_api_base`` or route, our own
    misconfiguration - and says nothing about the call; nor do other 422s (the request's fault)."""
    return exc.code in (ALREADY_ENDED, INVALID_CALL_CONTROL_ID) and exc.status in (404, 422)


class TelnyxRateLimited(TelnyxApiError):
    """HTTP 429. ``retry_after_s`` comes from ``x-ratelimit-reset`` or ``Retry-After``."""

    def __init__(self, status: int, errors: list[dict[str, Any]], retry_after_s: float | None, **where: str) -> None:
        super().__init__(status, errors, **where)
        self.retry_after_s = retry_after_s


class DialResult(BaseModel):
    """The ``data`` of a dial response (extra fields kept), plus the ``command_id`` used."""

    model_config = ConfigDict(frozen=True, extra="allow")

    call_control_id: str
    call_leg_id: str
    call_session_id: str
    is_alive: bool = False
    command_id: str


@dataclass(frozen=True, slots=True)
class HangupResult:
    command_id: str
    already_ended: bool = False
    """True when Telnyx said the call had already ended (422, code 90018)."""


def encode_client_state(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode()


def _compact(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name in ("x-ratelimit-reset", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        if not math.isfinite(seconds):
            continue
        if seconds > 1e9:  # some gateways send an epoch instant instead of a delay
            seconds -= time.time()
        return max(0.0, seconds)
    return None


def _errors_of(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        return [e for e in document["errors"] if isinstance(e, dict)]
    return []


class TelnyxClient:
    """Call Control over one aiohttp session (created on first use unless given)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        attempt_timeout_s: float = 0.5,
        max_attempts: int = 3,
    ) -> None:
        if not api_key:
            raise ValueError("a Telnyx API key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self.max_attempts = max_attempts
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"TelnyxClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> TelnyxClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- transport -----------------------------------------------------------------------

    def _url(self, *segments: str) -> URL:
        path = "/".join(quote(s, safe=_SEGMENT_SAFE) for s in segments)
        return URL(f"{self.base_url}/{path}", encoded=True)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key in text else text

    async def _request(self, method: str, segments: tuple[str, ...], body: dict[str, Any] | None = None) -> Any:
        """Send with retries; return the decoded ``data`` of a 2xx response."""
        url = self._url(*segments)
        path = "/" + "/".join(segments)
        payload = orjson.dumps(body) if body is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        session = self._get_session()
        failure: TelnyxError = TelnyxConnectionError(f"Telnyx {method} {path}: timeout_s left no time to send")
        unanswered = False  # an earlier attempt may have reached Telnyx and run
        for attempt in range(1, self.max_attempts + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            final = attempt == self.max_attempts
            budget = remaining if final else min(self.attempt_timeout_s, remaining)
            where = f"Telnyx {method} {path} (attempt {attempt} of {self.max_attempts})"
            try:
                async with asyncio.timeout(budget):
                    async with session.request(method, url, data=payload, headers=self._headers) as response:
                        status = response.status
                        raw = await response.read()
                        headers = response.headers
            except TimeoutError:
                failure = TelnyxConnectionError(f"{where}: no response within {budget * 1000:.0f} ms")
                log.info("%s", failure)
                unanswered = True
                continue
            except aiohttp.ClientError as exc:
                failure = TelnyxConnectionError(self._scrub(f"{where}: {type(exc).__name__}: {exc}"))
                log.info("%s", failure)
                # Refused before connecting: nothing was sent. Any later failure: it may have been.
                unanswered = unanswered or not isinstance(exc, aiohttp.ClientConnectorError)
                continue
            try:
                document = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                document = None
            if 200 <= status < 300:
                if not isinstance(document, dict):
                    raise TelnyxApiError(status, [{"title": "response is not a JSON object"}], method=method, path=path)
                return document.get("data", document)
            errors = [{k: self._scrub(v) if isinstance(v, str) else v for k, v in e.items()}
                      for e in _errors_of(document)]
            if status >= 500:
                failure = TelnyxApiError(status, errors, method=method, path=path)
                log.info("%s (attempt %d of %d)", failure, attempt, self.max_attempts)
                unanswered = True
                continue
            error = (TelnyxRateLimited(status, errors, _retry_after(headers), method=method, path=path)
                     if status == 429 else TelnyxApiError(status, errors, method=method, path=path))
            error.after_unanswered = unanswered
            raise error
        raise failure

    # -- commands --------------------------------------------------------------------------

    async def dial(
        self,
        *,
        connection_id: str,
        to: str,
        from_: str,
        stream_url: str | None = None,
        stream_track: str = "inbound_track",
        stream_bidirectional_mode: str = "rtp",
        stream_bidirectional_codec: str = "PCMU",
        stream_auth_token: str | None = None,
        client_state: str | bytes | None = None,
        webhook_url: str | None = None,
        answering_machine_detection: str | None = None,
        timeout_secs: int | None = None,
        command_id: str | None = None,
        **extra: Any,
    ) -> DialResult:
        """``POST /calls``. Stream fields are sent only with a ``stream_url``; bidirectional
        RTP is on by default, since without it Telnyx drops the agent's audio."""
        command_id = command_id or str(uuid.uuid4())
        body: dict[str, Any] = {"connection_id": connection_id, "to": to, "from": from_, "command_id": command_id}
        if stream_url is not None:
            body.update(_compact(
                stream_url=stream_url, stream_track=stream_track,
                stream_bidirectional_mode=stream_bidirectional_mode,
                stream_bidirectional_codec=stream_bidirectional_codec,
                stream_auth_token=stream_auth_token,
            ))
        body.update(_compact(
            client_state=encode_client_state(client_state) if client_state is not None else None,
            webhook_url=webhook_url, answering_machine_detection=answering_machine_detection,
            timeout_secs=timeout_secs,
        ))
        body.update(extra)
        data = await self._request("POST", ("calls",), body)
        return DialResult.model_validate({**data, "command_id": command_id})

    async def get_call(self, call_control_id: str) -> dict[str, Any]:
        """``GET /calls/{id}``: ``is_alive``, ``call_duration``, ... (kept ~10 min after the end)."""
        return await self._request("GET", ("calls", call_control_id))

    async def action(self, call_control_id: str, action: str, *, command_id: str | None = None,
                     **body: Any) -> dict[str, Any]:
        """``POST /calls/{id}/actions/{action}`` with ``body`` verbatim, plus a ``command_id``
        where the action takes one; returns ``data``."""
        payload = dict(body)
        if action not in _WITHOUT_COMMAND_ID:
            payload["command_id"] = command_id or str(uuid.uuid4())
        return await self._request("POST", ("calls", call_control_id, "actions", action), payload)

    async def _command(self, call_control_id: str, action: str, command_id: str | None,
                       client_state: str | bytes | None, fields: dict[str, Any]) -> dict[str, Any]:
        body = _compact(**fields)
        if client_state is not None:
            body["client_state"] = encode_client_state(client_state)
        return await self.action(call_control_id, action, command_id=command_id, **body)

    async def answer(self, call_control_id: str, *, stream_url: str | None = None,
                     stream_track: str = "inbound_track", stream_bidirectional_mode: str = "rtp",
                     stream_bidirectional_codec: str = "PCMU",
                     webhook_url: str | None = None, client_state: str | bytes | None = None,
                     command_id: str | None = None, **extra: Any) -> dict[str, Any]:
        # No stream_auth_token: the SDK's answer parameters have none (dial and streaming_start
        # do). A stream credential for an answered call goes in stream_url.
        fields: dict[str, Any] = {"webhook_url": webhook_url}
        if stream_url is not None:
            fields.update(stream_url=stream_url, stream_track=stream_track,
                          stream_bidirectional_mode=stream_bidirectional_mode,
                          stream_bidirectional_codec=stream_bidirectional_codec)
        return await self._command(call_control_id, "answer", command_id, client_state, {**fields, **extra})

    async def hangup(self, call_control_id: str, *, client_state: str | bytes | None = None,
                     command_id: str | None = None, **extra: Any) -> HangupResult:
        """Hang up; a call that has already ended is not an error (``already_ended=True``)."""
        command_id = command_id or str(uuid.uuid4())
        try:
            await self._command(call_control_id, "hangup", command_id, client_state, extra)
        except TelnyxApiError as exc:
            if exc.status == 422 and any(str(e.get("code")) == ALREADY_ENDED for e in exc.errors):
                return HangupResult(command_id=command_id, already_ended=True)
            raise
        return HangupResult(command_id=command_id)

    async def reject(self, call_control_id: str, *, cause: str = "CALL_REJECTED",
                     command_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "reject", command_id, None, {"cause": cause, **extra})

    async def streaming_start(self, call_control_id: str, stream_url: str, *,
                              stream_track: str = "inbound_track", stream_bidirectional_mode: str = "rtp",
                              stream_bidirectional_codec: str = "PCMU", stream_auth_token: str | None = None,
                              custom_parameters: Mapping[str, str] | None = None,
                              client_state: str | bytes | None = None, command_id: str | None = None,
                              **extra: Any) -> dict[str, Any]:
        params = [{"name": k, "value": v} for k, v in custom_parameters.items()] if custom_parameters else None
        return await self._command(call_control_id, "streaming_start", command_id, client_state, {
            "stream_url": stream_url, "stream_track": stream_track,
            "stream_bidirectional_mode": stream_bidirectional_mode,
            "stream_bidirectional_codec": stream_bidirectional_codec,
            "stream_auth_token": stream_auth_token, "custom_parameters": params, **extra})

    async def streaming_stop(self, call_control_id: str, *, stream_id: str | None = None,
                             client_state: str | bytes | None = None, command_id: str | None = None,
                             **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "streaming_stop", command_id, client_state,
                                   {"stream_id": stream_id, **extra})

    async def speak(self, call_control_id: str, payload: str, *, voice: str = "Telnyx.NaturalHD.astra",
                    payload_type: str | None = None, language: str | None = None,
                    client_state: str | bytes | None = None, command_id: str | None = None,
                    **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "speak", command_id, client_state, {
            "payload": payload, "voice": voice, "payload_type": payload_type, "language": language, **extra})

    async def gather(self, call_control_id: str, *, minimum_digits: int | None = None,
                     maximum_digits: int | None = None, timeout_millis: int | None = None,
                     inter_digit_timeout_millis: int | None = None, terminating_digit: str | None = None,
                     valid_digits: str | None = None, gather_id: str | None = None,
                     client_state: str | bytes | None = None, command_id: str | None = None,
                     **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "gather", command_id, client_state, {
            "minimum_digits": minimum_digits, "maximum_digits": maximum_digits,
            "timeout_millis": timeout_millis, "inter_digit_timeout_millis": inter_digit_timeout_millis,
            "terminating_digit": terminating_digit, "valid_digits": valid_digits, "gather_id": gather_id,
            **extra})

    async def gather_stop(self, call_control_id: str, *, command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "gather_stop", command_id, None, {})

    async def send_dtmf(self, call_control_id: str, digits: str, *, duration_millis: int | None = None,
                        command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "send_dtmf", command_id, None,
                                   {"digits": digits, "duration_millis": duration_millis})

    async def transfer(self, call_control_id: str, to: str, *, from_: str | None = None,
                       timeout_secs: int | None = None, client_state: str | bytes | None = None,
                       command_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "transfer", command_id, client_state,
                                   {"to": to, "from": from_, "timeout_secs": timeout_secs, **extra})

    async def record_start(self, call_control_id: str, *, format: str = "mp3", channels: str = "single",
                           client_state: str | bytes | None = None, command_id: str | None = None,
                           **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "record_start", command_id, client_state,
                                   {"format": format, "channels": channels, **extra})

    async def record_stop(self, call_control_id: str, *, recording_id: str | None = None,
                          command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "record_stop", command_id, None, {"recording_id": recording_id})

    async def record_pause(self, call_control_id: str, *, recording_id: str | None = None,
                           command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "record_pause", command_id, None,
                                   {"recording_id": recording_id})

    async def record_resume(self, call_control_id: str, *, recording_id: str | None = None,
                            command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "record_resume", command_id, None,
                                   {"recording_id": recording_id})

    async def playback_start(self, call_control_id: str, *, audio_url: str | None = None,
                             media_name: str | None = None, loop: int | str | None = None,
                             overlay: bool | None = None, client_state: str | bytes | None = None,
                             command_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return await self._command(call_control_id, "playback_start", command_id, client_state, {
            "audio_url": audio_url, "media_name": media_name, "loop": loop, "overlay": overlay, **extra})

    async def playback_stop(self, call_control_id: str, *, command_id: str | None = None) -> dict[str, Any]:
        return await self._command(call_control_id, "playback_stop", command_id, None, {})

    async def client_state_update(self, call_control_id: str, client_state: str | bytes) -> dict[str, Any]:
        """No ``command_id``: Telnyx's parameters for this action have none."""
        return await self._command(call_control_id, "client_state_update", None, client_state, {})
