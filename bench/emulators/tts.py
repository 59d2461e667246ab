"""Telnyx TTS WebSocket emulator (docs/telnyx-protocol.md §4.2), and the speech both TTS emulators use.

Protocol: Bearer auth and parameter checks at the handshake (401/400), the handshake
frame ``{"text":" "}`` first, then ``{"text": ...}`` (``"flush": true`` to synthesize what
is buffered), ``{"force": true}`` (drop pending work: barge-in) and ``{"text":""}`` (end of
input). Text is buffered until a sentence boundary (``.``, ``?``, ``!``); each sentence's
audio starts ``tts_first_audio_ms`` after the sentence is complete and arrives as base64
PCM frames of ``tts_chunk_audio_ms`` every ``tts_chunk_interval_ms`` (faster than real time).
The first frame of a sentence carries its text (alignment). After the end of input: the
final frame ``{"audio":null,"text":"","isFinal":true}``, then close.

Formats: the docs' ``linear16`` (with ``sample_rate``), ``mulaw``, ``alaw``, ``wav`` and ``mp3``
and the SDK's ``pcm``; without ``sample_rate`` PCM comes at 24 kHz (the SDK's documented PCM
output). ``Telnyx.KokoroTTS.*`` voices answer in MP3 whatever ``audio_format`` says, as the
real service does [3P]. To test a client against a service that ignores what was asked,
``TtsEmulator.answer_format`` (or the ``emulator_answer_format`` query parameter) forces the
format and ``answer_rate`` the rate. MP3 is a fixed tone (``tone-24k.mp3``, one file per
sentence): the emulator encodes no MP3, and a client must decode it, not understand it.

Speech is real when espeak-ng is installed (a subprocess per new sentence, ~10 ms), a
harmonic tone of plausible length (~65 ms per character) otherwise; both are cached by
(text, rate) because the bench repeats its lines.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import math
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from aiohttp import WSMsgType, web

from engine import _audioop as audioop
from engine.providers.childproc import spawn

from .common import accept, bearer_ok, drop_connection
from .profiles import Delays, FaultSwitch, LatencyProfile

PATH = "/v2/text-to-speech/speech"
ESPEAK_RATE = 22050
_SENTENCE = re.compile(r".*?[.?!]+(?=\s|$)", re.S)
_MARKDOWN = re.compile(r"[*_#`~>]+")
TONE_MP3 = (Path(__file__).parent / "tone-24k.mp3").read_bytes()  # 0.6 s, 24 kHz mono, 32 kb/s


# -- audio ------------------------------------------------------------------------------


def decode_wav(data: bytes) -> tuple[bytes, int]:
    """PCM16 mono and its rate from a WAV (PCM16, μ-law or A-law). Tolerates the bogus
    sizes a streaming writer (espeak-ng --stdout) puts in the header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", body)
        elif chunk == b"data":
            if fmt is None:
                raise ValueError("WAV data before fmt")
            tag, channels, rate, _, _, bits = fmt
            if tag == 1 and bits == 16:
                pcm = body[: len(body) // 2 * 2]
            elif tag == 7:
                pcm = audioop.ulaw2lin(body, 2)
            elif tag == 6:
                pcm = audioop.alaw2lin(body, 2)
            else:
                raise ValueError(f"unsupported WAV format tag {tag} / {bits} bits")
            if channels != 1:
                raise ValueError(f"{channels}-channel WAV; mono expected")
            return pcm, rate
        pos += 8 + size + (size & 1)
    raise ValueError("WAV without data")


def tone(text: str, rate: int) -> bytes:
    """A voice-like stand-in when espeak-ng is missing: harmonics on a gliding pitch,
    syllable-rate amplitude modulation, ~65 ms per character."""
    n = int(max(0.3, 0.065 * len(text)) * rate)
    out = []
    phase = 0.0
    for i in range(n):
        t = i / rate
        phase += 2 * math.pi * (150.0 + 20.0 * math.sin(2 * math.pi * 0.5 * t)) / rate
        s = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase)
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * t)
        fade = min(1.0, i / (0.02 * rate), (n - i) / (0.02 * rate))
        out.append(int(6000 * s * envelope * fade))
    return struct.pack(f"<{n}h", *out)


class Synthesizer:
    """Text to PCM16 at a given rate, espeak-ng if available; cached, concurrent-safe."""

    def __init__(self, *, espeak: bool | None = None, voice: str = "en-us", words_per_minute: int = 175,
                 cache_size: int = 512) -> None:
        self.espeak = shutil.which("espeak-ng") if espeak is None or espeak else None
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._cache: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[tuple[str, int], asyncio.Future[bytes]] = {}

    async def synthesize(self, text: str, rate: int) -> tuple[bytes, bool]:
        """(pcm, served from cache)."""
        text = " ".join(_MARKDOWN.sub(" ", text).split())
        key = (text, rate)
        pcm = self._cache.get(key)
        if pcm is not None:
            self._cache.move_to_end(key)
            return pcm, True
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            pcm = await self._render(text, rate)
            future.set_result(pcm)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]
        self._cache[key] = pcm
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return pcm, False

    async def _render(self, text: str, rate: int) -> bytes:
        if not text:
            return b""
        if self.espeak:
            # Started without forking the load process (see engine.providers.childproc): a fork
            # would stall every callee and emulator on this loop for milliseconds.
            proc = await spawn((self.espeak, "-v", self.voice, "-s", str(self.words_per_minute), "--stdout"),
                               stdin=text.encode())
            try:
                wav = await proc.stdout.read()
                await proc.wait()
            finally:
                if proc.returncode is None:  # cancelled (the emulator closing): do not leave it running
                    proc.kill()
                    await proc.wait()
            if proc.returncode == 0:
                pcm, source_rate = decode_wav(wav)
                if source_rate != rate:
                    pcm = audioop.ratecv(pcm, 2, 1, source_rate, rate, None)[0]
                return pcm
        return tone(text, rate)


def split_sentences(buffer: str) -> tuple[list[str], str]:
    """Complete sentences in ``buffer`` and what is left over."""
    sentences, end = [], 0
    for match in _SENTENCE.finditer(buffer):
        if match.group().strip():
            sentences.append(match.group().strip())
        end = match.end()
    return sentences, buffer[end:]


# -- the WebSocket endpoint -------------------------------------------------------------


@dataclass
class TtsStats:
    connections: int = 0
    sentences: int = 0
    characters: int = 0
    """Text received after the handshake (what a provider bills by, whether or not it is spoken)."""
    audio_frames: int = 0
    forces: int = 0
    handshake_errors: int = 0


_END = object()
_FORMATS = {"linear16", "pcm", "wav", "mulaw", "alaw", "mp3"}
AnswerFormat = Literal["asked", "pcm", "wav", "mp3"]


def wav_header(rate: int) -> bytes:
    """A PCM16 mono WAV header with the streaming sizes (0xFFFFFFFF) a live writer uses."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


class TtsEmulator:
    def __init__(self, *, api_key: str, profile: LatencyProfile, faults: FaultSwitch,
                 synthesizer: Synthesizer) -> None:
        self.api_key = api_key
        self.profile = profile
        self.faults = faults
        self.synthesizer = synthesizer
        self.stats = TtsStats()
        self.delays = Delays(profile)
        self.answer_format: AnswerFormat = "asked"
        """Answer in this format whatever was asked (a service that ignores audio_format)."""
        self.answer_rate: int | None = None
        """Send PCM/WAV at this rate whatever was asked (a service that ignores sample_rate)."""
        self.honour_flush = True
        """``"flush": true`` is on Telnyx's TTS messages page but not in the SDK's client event:
        off, the emulator ignores it, as a service following the SDK would."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not bearer_ok(request, self.api_key):
            return web.json_response({"errors": [{"code": "10009", "title": "Authentication failed"}]}, status=401)
        query = request.query
        voice = query.get("voice", "")
        fmt = query.get("audio_format", "mp3")
        problem = None
        if not voice:
            problem = "voice is required"
        elif fmt not in _FORMATS and ".KokoroTTS." not in voice:
            problem = f"the emulator produces {', '.join(sorted(_FORMATS))} only, not {fmt[:32]!r}"
        answer = query.get("emulator_answer_format", self.answer_format)
        if answer not in ("asked", "pcm", "wav", "mp3"):
            problem = "emulator_answer_format must be asked, pcm, wav or mp3"
        try:
            rate = int(query.get("sample_rate", "24000"))
            timeout = float(query.get("inactivity_timeout", "20"))
        except ValueError:
            rate, timeout, problem = 0, 0.0, "sample_rate and inactivity_timeout must be numbers"
        if not problem and not 8000 <= rate <= 96000:
            problem = f"sample_rate {rate} out of range 8000..96000"
        if problem:
            self.stats.handshake_errors += 1
            return web.json_response({"errors": [{"code": "10015", "title": "Bad request", "detail": problem}]},
                                     status=400)
        fault = self.faults.take("tts", request.headers, query)
        if fault == "http_500":
            return web.json_response({"errors": [{"code": "50000", "title": "Internal error"}]}, status=500)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        if not await accept(ws, request):
            return web.Response()  # (never sent: the client is gone)
        self.stats.connections += 1
        if ".KokoroTTS." in voice:
            fmt = "mp3"
        elif answer != "asked":
            fmt = answer
        rate = self.answer_rate or rate
        await _TtsConnection(self, request, ws, voice, fmt, rate, fault, timeout).run()
        return ws


class _TtsConnection:
    def __init__(self, emulator: TtsEmulator, request: web.Request, ws: web.WebSocketResponse, voice: str,
                 fmt: str, rate: int, fault: str | None, inactivity_timeout: float) -> None:
        self.emulator = emulator
        self.request = request
        self.ws = ws
        self.voice = voice
        self.fmt = fmt
        self.rate = rate
        self.fault = fault
        self.inactivity_timeout = inactivity_timeout
        self.loop = asyncio.get_running_loop()
        self.buffer = ""
        self.sentences: asyncio.Queue[tuple[str, float] | object] = asyncio.Queue()
        self.first_text_at: float | None = None
        self.first_audio_sent = False

    async def run(self) -> None:
        speaker = self.loop.create_task(self._speak())
        self.speaker = speaker
        try:
            await self._read()
        finally:
            speaker = self.speaker
            speaker.cancel()
            try:
                await speaker
            except asyncio.CancelledError:
                pass
            if not self.ws.closed:
                await self.ws.close()

    async def _read(self) -> None:
        handshake = True
        while True:
            try:
                msg = await self.ws.receive(timeout=self.inactivity_timeout)
            except TimeoutError:
                return
            if msg.type is not WSMsgType.TEXT:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            try:
                frame = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                frame = None
            if not isinstance(frame, dict):
                await self._fail("frames must be JSON objects")
                return
            if handshake:
                if frame.get("text") != " ":
                    await self._fail('the first message must be the handshake {"text":" "}')
                    return
                handshake = False
                continue
            if frame.get("force"):
                # Barge-in: drop what is buffered, queued and being spoken; keep the socket.
                self.emulator.stats.forces += 1
                self.buffer = ""
                while not self.sentences.empty():
                    self.sentences.get_nowait()
                self.speaker.cancel()
                try:
                    await self.speaker
                except asyncio.CancelledError:
                    pass
                self.speaker = self.loop.create_task(self._speak())
                continue
            text = frame.get("text")
            if not isinstance(text, str):
                continue
            now = self.loop.time()
            if text == "":
                self._queue_sentences(self.buffer.strip(), now)
                self.buffer = ""
                self.sentences.put_nowait(_END)
                continue  # the speaker sends the final frame and closes; keep reading until then
            if self.first_text_at is None:
                self.first_text_at = now
            self.emulator.stats.characters += len(text)
            self.buffer += text
            if frame.get("flush") and self.emulator.honour_flush:
                self._queue_sentences(self.buffer.strip(), now)
                self.buffer = ""
            else:
                sentences, self.buffer = split_sentences(self.buffer)
                for sentence in sentences:
                    self._queue_sentences(sentence, now)

    def _queue_sentences(self, text: str, now: float) -> None:
        if text:
            self.emulator.stats.sentences += 1
            self.sentences.put_nowait((text, now))

    async def _fail(self, message: str) -> None:
        await self.ws.send_str(orjson.dumps({"error": message}).decode())
        await self.ws.close(code=1011)

    async def _speak(self) -> None:
        try:
            await self._speak_sentences()
        except ConnectionError:
            pass  # the client went away; the reader sees the close

    async def _speak_sentences(self) -> None:
        emulator = self.emulator
        profile = emulator.profile
        interval = profile.tts_chunk_interval_ms / 1000
        chunk_bytes = max(2, int(self.rate * profile.tts_chunk_audio_ms / 1000) * 2)
        while True:
            item = await self.sentences.get()
            if item is _END:
                await self.ws.send_str('{"audio":null,"text":"","isFinal":true}')
                await self.ws.close()
                return
            text, arrived = item  # type: ignore[misc]
            ready_at = arrived + emulator.delays(profile.tts_first_audio_ms)
            if self.fmt == "mp3":
                pcm, cached = TONE_MP3, False
            else:
                pcm, cached = await emulator.synthesizer.synthesize(text, self.rate)
                if self.fmt == "mulaw":
                    pcm = audioop.lin2ulaw(pcm, 2)
                elif self.fmt == "alaw":
                    pcm = audioop.lin2alaw(pcm, 2)
                elif self.fmt == "wav":  # one WAV file per sentence, as a streaming writer makes them
                    pcm = wav_header(self.rate) + pcm
            if self.fault == "slow":
                await asyncio.sleep(profile.stall_s)
            at = max(ready_at, self.loop.time())
            for offset in range(0, max(len(pcm), 1), chunk_bytes):
                delay = at - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                frame: dict[str, object] = {
                    "audio": base64.b64encode(pcm[offset:offset + chunk_bytes]).decode(),
                    "text": text if offset == 0 else None, "isFinal": False, "cached": cached,
                }
                if not self.first_audio_sent and self.first_text_at is not None:
                    frame["timeToFirstAudioFrameMs"] = round((self.loop.time() - self.first_text_at) * 1000)
                await self.ws.send_str(orjson.dumps(frame).decode())
                emulator.stats.audio_frames += 1
                if not self.first_audio_sent:
                    self.first_audio_sent = True
                    if self.fault == "error_frame":
                        await self._fail("emulated synthesis failure")
                        return
                    if self.fault == "disconnect":
                        drop_connection(self.request)
                        return
                at += interval
