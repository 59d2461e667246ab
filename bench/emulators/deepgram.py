"""Deepgram live streaming STT emulator (``GET /v1/listen`` over WebSocket).

Only documented behaviour (developers.deepgram.com: "Live Audio" reference, and the pages on
Finalize, KeepAlive, CloseStream, endpointing, interim results, utterance end, speech
started, and "STT Troubleshooting WebSocket, NET, and DATA Errors"):

* Handshake: ``Authorization: Token <key>``, else HTTP 401. Raw audio needs ``encoding`` and
  ``sample_rate`` (HTTP 400 without them). The emulator decodes ``linear16`` and ``mulaw``
  only (Deepgram takes more; anything else is a 400 here, never silently accepted).
* ``Results`` with ``channel.alternatives[0]`` (``transcript``, ``confidence``, ``words``),
  ``is_final``, ``speech_final``, ``from_finalize``, ``start``, ``duration``,
  ``channel_index`` and ``metadata``; interims only with ``interim_results=true``.
* Own endpointing after ``endpointing`` ms of trailing silence (Deepgram's default: 10 ms;
  ``false`` turns it off): that final has ``speech_final: true``.
* ``Finalize``: what was heard so far comes back final, ``from_finalize: true`` and
  ``speech_final: false`` (an empty final when nothing new was said).
* ``SpeechStarted`` (``vad_events=true``) when speech begins; ``UtteranceEnd`` with
  ``last_word_end`` (``utterance_end_ms``, which needs interim results) after that gap
  following the last finalized word.
* ``KeepAlive``: no reply. Neither audio nor a message for 10 s: closed, 1011 ``NET-0001``.
* ``CloseStream``: pending results, then ``Metadata``, then a normal close.
* Mid-stream errors are close frames (code + reason), never JSON messages.

Recognition is the Telnyx STT emulator's (:class:`~.stt.StreamRecogniser` over the same
registered utterances), so the same corpus calls read the same way through either.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass

import orjson
from aiohttp import WSMsgType, web

from engine import _audioop as audioop

from .common import accept, drop_connection, serve_duplex
from .profiles import Delays, FaultSwitch, LatencyProfile
from .stt import PUNCTUATION_QUERY, Result, StreamRecogniser, UtteranceRecogniser, strip_punctuation

PATH = "/v1/listen"
IDLE_TIMEOUT_S = 10.0
DEFAULT_ENDPOINTING_MS = 10
_DECODED = {"linear16", "mulaw"}
_MODEL = {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}


@dataclass
class DeepgramStats:
    connections: int = 0
    refused: int = 0
    audio_bytes: int = 0
    finalizes: int = 0
    keepalives: int = 0
    close_streams: int = 0
    results_sent: int = 0
    speech_started_sent: int = 0
    utterance_ends_sent: int = 0
    idle_closes: int = 0


def _token_ok(request: web.Request, api_key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "token" and token.strip() == api_key


def _bad_request(message: str) -> web.Response:
    # The handshake's refusal is an HTTP status; the body's exact shape is not documented.
    return web.json_response({"err_code": "Bad Request", "err_msg": message}, status=400)


class DeepgramEmulator:
    def __init__(self, *, api_key: str, profile: LatencyProfile, faults: FaultSwitch,
                 recogniser: UtteranceRecogniser, punctuation: str = "as-registered") -> None:
        self.api_key = api_key
        self.profile = profile
        self.faults = faults
        self.recogniser = recogniser
        self.punctuation = punctuation
        self.delays = Delays(profile)
        self.stats = DeepgramStats()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not _token_ok(request, self.api_key):
            self.stats.refused += 1
            return web.json_response({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, status=401)
        query = request.query
        encoding = query.get("encoding")
        if encoding is None:
            return _bad_request("the emulator takes raw audio only: set encoding and sample_rate")
        if encoding not in _DECODED:
            return _bad_request(f"the emulator decodes {', '.join(sorted(_DECODED))} only")
        try:
            rate = int(query["sample_rate"])
        except (KeyError, ValueError):
            return _bad_request("sample_rate is required with encoding (an integer)")
        if not 8000 <= rate <= 48000 or rate % 50:
            return _bad_request(f"unsupported sample_rate {rate}")
        if query.get("channels", "1") != "1":
            return _bad_request("the emulator transcribes one channel")
        endpointing = query.get("endpointing", str(DEFAULT_ENDPOINTING_MS)).lower()
        try:
            window_ms = 1e9 if endpointing == "false" else max(10, int(endpointing))
        except ValueError:
            return _bad_request("endpointing takes milliseconds or false")
        interim = query.get("interim_results", "false").lower() == "true"
        utterance_end_ms = None
        if interim and query.get("utterance_end_ms"):
            try:
                utterance_end_ms = int(query["utterance_end_ms"])
            except ValueError:
                return _bad_request("utterance_end_ms takes milliseconds")
        fault = self.faults.take("stt", request.headers, query)
        if fault == "http_500":
            return web.json_response({"err_code": "INTERNAL", "err_msg": "emulated failure"}, status=500)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        if not await accept(ws, request):
            return web.Response()  # (never sent: the client is gone)
        self.stats.connections += 1
        stream = StreamRecogniser(self.recogniser, rate, interim_every_ms=self.profile.stt_interim_every_ms,
                                  endpoint_silence_ms=window_ms, interim_results=interim)
        punctuate = (query.get("punctuate", "false").lower() == "true"
                     or query.get("smart_format", "false").lower() == "true")
        if query.get(PUNCTUATION_QUERY, self.punctuation) == "none":
            punctuate = False
        connection = _Connection(self, request, ws, stream, rate, mulaw=encoding == "mulaw", fault=fault,
                                 punctuate=punctuate, vad_events=query.get("vad_events", "false").lower() == "true",
                                 utterance_end_ms=utterance_end_ms)
        await connection.run()
        return ws


class _Connection:
    def __init__(self, emulator: DeepgramEmulator, request: web.Request, ws: web.WebSocketResponse,
                 stream: StreamRecogniser, rate: int, *, mulaw: bool, fault: str | None, punctuate: bool,
                 vad_events: bool, utterance_end_ms: int | None) -> None:
        self.emulator = emulator
        self.request = request
        self.ws = ws
        self.stream = stream
        self.rate = rate
        self.mulaw = mulaw
        self.fault = fault
        self.punctuate = punctuate
        self.vad_events = vad_events
        self.utterance_end_ms = utterance_end_ms
        self.request_id = str(uuid.uuid4())
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.samples = 0  # audio received, in samples: the stream's clock
        self.cursor = 0.0  # audio time the last final ended at
        self.last_word_end: float | None = None  # for UtteranceEnd: set by a final with words
        self.sha = hashlib.sha256()

    @property
    def audio_s(self) -> float:
        return self.samples / self.rate

    async def run(self) -> None:
        await serve_duplex(self.ws, self._read, self._write)

    async def _read(self) -> None:
        stats = self.emulator.stats
        while True:
            try:
                msg = await self.ws.receive(timeout=IDLE_TIMEOUT_S)
            except TimeoutError:
                stats.idle_closes += 1
                await self.ws.close(code=1011, message=b"NET-0001: no audio or KeepAlive received in 10 seconds")
                return
            now = self.loop.time()
            if msg.type is WSMsgType.BINARY:
                if self.fault == "error_frame":
                    await self.ws.close(code=1011, message=b"NET-0000: emulated internal failure")
                    return
                if self.fault == "disconnect":
                    drop_connection(self.request)
                    return
                data = msg.data
                stats.audio_bytes += len(data)
                self.sha.update(data)
                pcm = audioop.ulaw2lin(data, 2) if self.mulaw else data
                before = self.audio_s
                was_speaking = self.stream.in_segment
                self.samples += len(pcm) // 2
                results = self.stream.push(pcm)
                if self.vad_events and not was_speaking and self.stream.in_segment:
                    self._queue(now, {"type": "SpeechStarted", "channel": [0], "timestamp": round(before, 3)})
                    stats.speech_started_sent += 1
                for result in results:
                    delay = self.emulator.delays(self.emulator.profile.stt_final_ms) if result.is_final else 0.0
                    self._result(now + delay, result, from_finalize=False)
                self._utterance_end(now)
            elif msg.type is WSMsgType.TEXT:
                try:
                    control = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    continue
                kind = control.get("type") if isinstance(control, dict) else None
                if kind == "Finalize":
                    stats.finalizes += 1
                    delay = self.emulator.delays(self.emulator.profile.stt_final_ms)
                    self._result(now + delay, self.stream.finalize(), from_finalize=True)
                elif kind == "KeepAlive":
                    stats.keepalives += 1
                elif kind == "CloseStream":
                    stats.close_streams += 1
                    try:
                        await asyncio.wait_for(self.outbox.join(), 2.0)
                    except TimeoutError:
                        pass
                    await self._send_now({
                        "type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
                        "sha256": self.sha.hexdigest(),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                        "duration": round(self.audio_s, 3), "channels": 1})
                    await self.ws.close(code=1000)
                    return
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    def _result(self, at: float, result: Result, *, from_finalize: bool) -> None:
        if self.fault == "slow":
            return  # a stalled recogniser: audio in, nothing out
        text = result.text if self.punctuate else strip_punctuation(result.text)
        start, end = self.cursor, self.audio_s
        if result.is_final:
            self.cursor = end
            if text:
                self.last_word_end = end
        message = {
            "type": "Results", "channel_index": [0, 1], "duration": round(end - start, 3), "start": round(start, 3),
            "is_final": result.is_final, "speech_final": result.speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": result.confidence if text else 0.0,
                                          "words": []}]},
            "metadata": {"request_id": self.request_id, "model_info": _MODEL, "model_uuid": _MODEL["name"]},
        }
        self._queue(at, message)
        self.emulator.stats.results_sent += 1

    def _utterance_end(self, now: float) -> None:
        if self.utterance_end_ms is None or self.last_word_end is None or self.stream.in_segment:
            return
        if self.audio_s - self.last_word_end >= self.utterance_end_ms / 1000:
            self._queue(now, {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)})
            self.emulator.stats.utterance_ends_sent += 1
            self.last_word_end = None

    def _queue(self, at: float, message: dict[str, object]) -> None:
        self.outbox.put_nowait((at, orjson.dumps(message)))

    async def _send_now(self, message: dict[str, object]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(orjson.dumps(message).decode())

    async def _write(self) -> None:
        while True:
            at, message = await self.outbox.get()
            try:
                delay = at - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self.ws.closed:
                    await self.ws.send_str(message.decode())
            except ConnectionError:
                pass
            finally:
                self.outbox.task_done()
