"""Telnyx real-time STT WebSocket emulator (docs/telnyx-protocol.md §4.1).

Speaks the wire protocol: Bearer auth at the handshake (401), the documented parameter
error frames 40001-40007, binary audio in, ``Finalize`` / ``CloseStream`` / ``KeepAlive``
control frames, ``{"transcript", "is_final", "speech_final", "confidence"}`` results out.

It behaves like a streaming recogniser that knows no future: it segments the audio it has
received by energy and sends finals on its own endpointing, after a window of received
trailing silence (audio well below the segment's speech level counts as silence: an
endpointer follows the talker, not the noise behind them). All segmentation runs on audio
time, so a transcript never covers audio not yet received.

Each connection behaves like the engine its ``transcription_engine`` names, per
:mod:`engine.providers.stt_engines` (Telnyx's own support table), and never better:

* Deepgram (the default): interim results per ``stt_interim_every_ms`` of the segment's audio
  (pauses included) when ``interim_results=true``; the final ``stt_final_ms`` after a ``Finalize`` (``speech_final``
  false, as Deepgram does for a forced finalisation) or after its own endpointing on
  ``stt_endpoint_silence_ms`` of silence (``speech_final`` true). The profile keeps that
  window at 500 ms (Deepgram's documented default is 100 ms, settable with ``endpointing``).
* Telnyx (Whisper), Google and the others: ``Finalize`` and ``KeepAlive`` are ignored
  (counted), ``interim_results`` is ignored, no ``speech_final`` field is sent, and the
  final comes on the engine's own segmentation only: after the table's silence window, and
  its usual lag after the end of speech. ``CloseStream`` is honoured only where documented;
  punctuation is dropped where the table does not promise it.

Punctuation: lines come back as registered (the corpus's are punctuated), or, with the
emulator's ``punctuation="none"`` or a connection's ``emulator_punctuation=none`` query
parameter, lower-cased with no punctuation, as an engine or model that does not punctuate
returns them (Telnyx's docs: punctuation varies by engine and model).

Recognition matches audio, not words. :class:`UtteranceRecogniser` holds known utterances
``{text: PCM16 8 kHz}`` and indexes every 20 ms frame (aligned from the utterance start)
by a hash of its μ-law quantisation, so audio that crossed a PCMU leg still matches
exactly; near-silent frames are not indexed (they repeat and say nothing). The engine
forwards whole 20 ms frames, so an utterance's frames arrive at a constant offset from
its indexed positions: a segment votes per (utterance, offset), neighbouring offsets merge
(frames dropped without concealment shift it by one), and the best-voted utterance claims
its frames before the next is considered. That tolerates lost or concealed frames and
leading/trailing silence, and reads several utterances (or one twice) in one segment in
order. A partial hearing yields the words said in the audio it covers: exactly those
before a pause it stops in (the line's pauses are matched to its word boundaries, see
:mod:`.alignment`), and between pauses a share by the words' length; voiced audio no
utterance claims becomes "(unrecognised speech, 1.4 s)" with its duration, so any caller
audio gets an answer. At rates other than 8 kHz the index is built from the utterances
resampled with ``ratecv`` (matches the engine upsampling 8 kHz audio the same way).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from aiohttp import WSMsgType, web

from engine import _audioop as audioop
from engine.providers.stt_engines import SttEngine, stt_engine

from .alignment import word_breaks, word_weights
from .common import accept, bearer_ok, drop_connection, serve_duplex
from .profiles import Delays, FaultSwitch, LatencyProfile

PATH = "/v2/speech-to-text/transcription"

INDEX_MIN_RMS = 64
"""Frames quieter than this are not indexed or matched."""
SPEECH_MIN_RMS = 300
"""Segmentation: a frame is speech above this (about -40 dBFS) ..."""
SPEECH_OVER_FLOOR = 3.0
"""... and this many times above the noise floor (minimum rms over the last ~1 s) ..."""
SPEECH_THRESHOLD_CAP = 1500
"""... but never needs more than this: a floor that high is speech without pauses, not noise."""
FLOOR_BLOCK_FRAMES = 25
PREROLL_FRAMES = 5
MIN_HITS = 3
"""Matching frames needed to accept an utterance (an exact 160-byte match is no accident)."""
OFFSET_SLACK = 2
MAX_KEY_REPEATS = 8
"""A frame hash seen more often than this in the registry is a stationary sound: ignored."""
PLACEHOLDER_MIN_FRAMES = 5
ENDPOINT_BELOW_LEVEL = 0.35
"""Own endpointing: audio this far (-9 dB) below the segment's speech level is not the caller
talking (a recogniser's endpointer follows the talker, not the cafe behind them) ..."""
LEVEL_DECAY = 0.995
"""... whose level is a peak that decays about 2 dB a second."""
RUN_GAP_FRAMES = 25

_RAW_FORMATS = {"linear16", "linear32", "mulaw", "alaw"}
_ALL_FORMATS = {"mp3", "wav", "webm", "ogg", "flac", "ogg_opus", "webm_opus", "opus", "amr_nb",
                "amr_wb", "g729", "speex"} | _RAW_FORMATS
_TELNYX_FORMATS = {"mp3", "wav", "linear16", "linear32"}
_ENGINES = {"deepgram", "telnyx", "google", "azure", "xai", "assemblyai", "speechmatics", "soniox"}
_PUNCTUATION = str.maketrans("", "", ".,?!;:")
_DECODED = {"linear16", "mulaw", "alaw"}
PUNCTUATION_MODES = ("as-registered", "none")
PUNCTUATION_QUERY = "emulator_punctuation"
_MARKS = re.compile(r"[^\w\s'-]+|(?<!\w)['-]+|['-]+(?!\w)")
_TAG = re.compile(r"(\([^)]*\))")


def strip_punctuation(text: str) -> str:
    """The words as an engine that does not punctuate gives them: lower case, no marks
    (apostrophes and hyphens inside words stay). Non-speech tags stay as they are."""
    parts = _TAG.split(text)
    out = [part if i % 2 else _MARKS.sub(" ", part).lower() for i, part in enumerate(parts)]
    return " ".join("".join(out).split())


def frame_bytes(rate: int) -> int:
    return rate // 50 * 2


def frame_key(frame: bytes) -> int:
    # μ-law quantisation is idempotent: PCM, and PCM that went through PCMU, hash alike.
    return hash(audioop.lin2ulaw(frame, 2))


# -- recogniser -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Known:
    text: str
    words: tuple[str, ...]
    positions: tuple[int, ...]
    """Indexed frame positions, ascending: words are spread over these, not over pauses."""
    breaks: tuple[tuple[int, int, int], ...] = ()
    """(lo, hi, words) at the line's pauses (:mod:`.alignment`), in indexed frames: a hearing
    of the line's first ``lo`` to ``hi`` indexed frames has said exactly ``words`` words."""
    cum: tuple[int, ...] = ()
    """The words' cumulative weights (by length): how they spread between pauses."""

    @property
    def indexed(self) -> int:
        return len(self.positions)

    def words_between(self, lo: int, hi: int) -> tuple[str, float]:
        """The words spoken from frame position ``lo`` to ``hi`` and the share of the line heard.
        Counting indexed frames rather than time, a line split at a pause into two segments
        gives each its own words, without repeats or gaps."""
        n, total = len(self.words), max(1, self.indexed)
        start = bisect.bisect_left(self.positions, lo)
        end = bisect.bisect_right(self.positions, hi)
        first = min(self._words_in(start), n - 1)
        last = self._words_in(end)
        return " ".join(self.words[first:max(last, first + 1)]), (end - start) / total

    def _words_in(self, frames: int) -> int:
        """How many words the line's first ``frames`` indexed frames say: exactly the words
        before a pause they stop in (as a recogniser that heard them would), and between
        pauses in proportion to the words' length, rounding absorbing a few lost frames."""
        total = max(1, self.indexed)
        lo_f, lo_w = 0, 0
        for pause_lo, pause_hi, words in (*self.breaks, (total, total, len(self.words))):
            if frames <= pause_lo:
                return self._spread(lo_w, words, (frames - lo_f) / max(1, pause_lo - lo_f))
            if frames <= pause_hi:
                return words
            lo_f, lo_w = pause_hi, words
        return len(self.words)

    def _spread(self, w0: int, w1: int, share: float) -> int:
        """How many words have been said ``share`` of the way from word ``w0`` to word ``w1``."""
        cum = self.cum
        if len(cum) != len(self.words) + 1:
            return w0 + round((w1 - w0) * share)
        target = cum[w0] + share * (cum[w1] - cum[w0])
        k = bisect.bisect_left(cum, target, w0, w1)  # cum[k - 1] < target <= cum[k]
        if k > w0 and target - cum[k - 1] < cum[k] - target:
            k -= 1
        return k


class _Index:
    __slots__ = ("keys", "known")

    def __init__(self) -> None:
        self.keys: dict[int, list[tuple[int, int]]] = {}
        self.known: list[_Known] = []


@dataclass(frozen=True, slots=True)
class Heard:
    start_frame: int
    text: str
    confidence: float
    known: bool


class UtteranceRecogniser:
    """Known utterances, indexed by frame hash per sample rate (built on first use)."""

    def __init__(self, utterances: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None = None) -> None:
        self._source: list[tuple[str, bytes]] = []
        self._indexes: dict[int, _Index] = {}
        pairs = utterances.items() if isinstance(utterances, Mapping) else (utterances or ())
        for text, pcm in pairs:
            self.add(text, pcm)

    def __len__(self) -> int:
        return len(self._source)

    def add(self, text: str, pcm8k: bytes) -> None:
        """Register an utterance: its text and PCM16 at 8 kHz as the caller sends it."""
        self._source.append((text, pcm8k))
        for rate, index in self._indexes.items():
            _index_one(index, rate, len(self._source) - 1, text, pcm8k)

    def index(self, rate: int) -> _Index:
        index = self._indexes.get(rate)
        if index is None:
            index = self._indexes[rate] = _Index()
            for uid, (text, pcm) in enumerate(self._source):
                _index_one(index, rate, uid, text, pcm)
        return index

    def recognise(self, rate: int, keys: Sequence[int | None], voiced: Sequence[bool]) -> list[Heard]:
        """What a segment says: its frames' keys (``None`` when not indexable) and speech flags."""
        index = self.index(rate)
        known = index.known
        votes: dict[tuple[int, int], dict[int, int]] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            entries = index.keys.get(key)
            if not entries or len(entries) > MAX_KEY_REPEATS:
                continue
            for uid, pos in entries:
                votes.setdefault((uid, i - pos), {})[i] = pos

        # One candidate per utterance instance: neighbouring offsets are the same instance.
        candidates: list[tuple[int, dict[int, int]]] = []
        last: tuple[int, int] | None = None
        for uid, offset in sorted(votes):
            hits = votes[(uid, offset)]
            if last is not None and last[0] == uid and offset - last[1] <= OFFSET_SLACK:
                for i, pos in hits.items():
                    candidates[-1][1].setdefault(i, pos)
            else:
                candidates.append((uid, dict(hits)))
            last = (uid, offset)

        claimed: set[int] = set()
        accepted: list[tuple[int, dict[int, int]]] = []
        # Noise leaves many stray votes; a candidate below MIN_HITS can never be accepted (claims
        # only take hits away), so it leaves the running: each round then scans only contenders.
        candidates = [c for c in candidates if len(c[1]) >= MIN_HITS]
        while candidates:
            best, best_score = -1, (0, 0.0)
            contenders: list[tuple[int, dict[int, int]]] = []
            for uid, hits in candidates:
                count = len(hits) if not claimed else sum(1 for i in hits if i not in claimed)
                if count < MIN_HITS:
                    continue
                score = (count, count / max(1, known[uid].indexed))
                if score > best_score:
                    best, best_score = len(contenders), score
                contenders.append((uid, hits))
            if best < 0:
                break
            uid, hits = contenders.pop(best)
            candidates = contenders
            live = {i: pos for i, pos in hits.items() if i not in claimed}
            claimed.update(live)
            accepted.append((uid, live))

        heard: list[Heard] = []
        covered: list[tuple[int, int]] = []
        for uid, live in accepted:
            k = known[uid]
            text, share = k.words_between(min(live.values()), max(live.values()))
            confidence = min(0.99, len(live) / max(1.0, k.indexed * share))
            heard.append(Heard(min(live), text, round(confidence, 3), True))
            # A few lost frames at the edges stay below PLACEHOLDER_MIN_FRAMES on their own.
            covered.append((min(live), max(live)))

        run: list[int] = []

        def flush() -> None:
            if len(run) >= PLACEHOLDER_MIN_FRAMES:
                seconds = (run[-1] - run[0] + 1) * 0.02
                heard.append(Heard(run[0], f"(unrecognised speech, {seconds:.1f} s)", 0.5, False))
            run.clear()

        in_line = bytearray(len(voiced))
        for a, b in covered:
            in_line[a:b + 1] = b"\x01" * (b + 1 - a)
        for i, is_voiced in enumerate(voiced):
            if not is_voiced:
                continue
            if in_line[i]:
                flush()
                continue
            if run and i - run[-1] > RUN_GAP_FRAMES:
                flush()
            run.append(i)
        flush()
        heard.sort(key=lambda h: h.start_frame)
        return heard


def _index_one(index: _Index, rate: int, uid: int, text: str, pcm: bytes) -> None:
    if rate != 8000:
        pcm = audioop.ratecv(pcm, 2, 1, 8000, rate, None)[0]
    size = frame_bytes(rate)
    positions = []
    levels = []
    for pos in range(len(pcm) // size):
        frame = pcm[pos * size:(pos + 1) * size]
        level = audioop.rms(frame, 2)
        levels.append(level)
        if level >= INDEX_MIN_RMS:
            index.keys.setdefault(frame_key(frame), []).append((uid, pos))
            positions.append(pos)
    words = tuple(text.split())
    # The pauses in indexed frames: a hearing that stops anywhere in one ends on the same word.
    breaks = tuple((bisect.bisect_left(positions, a), bisect.bisect_right(positions, b), n)
                   for a, b, n in word_breaks(words, levels))
    cum = [0]
    for weight in word_weights(words):
        cum.append(cum[-1] + weight)
    index.known.append(_Known(text, words, tuple(positions), breaks, tuple(cum)))


# -- one stream: segmentation on audio time ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    is_final: bool
    speech_final: bool
    confidence: float


class StreamRecogniser:
    """One connection's audio in, interim and final results out; no wall clock involved."""

    def __init__(self, recogniser: UtteranceRecogniser, rate: int, *, interim_every_ms: float = 1000,
                 endpoint_silence_ms: float = 500, interim_results: bool = True) -> None:
        self.recogniser = recogniser
        self.rate = rate
        self.interim_results = interim_results
        self._size = frame_bytes(rate)
        self._interim_frames = max(1, round(interim_every_ms / 20))
        self._endpoint_frames = max(1, round(endpoint_silence_ms / 20))
        self._pending = bytearray()
        self._keys: list[int | None] = []
        self._voiced: list[bool] = []
        self._preroll: collections.deque[int | None] = collections.deque(maxlen=PREROLL_FRAMES)
        self._in_segment = False
        self._emitted = 0  # words of the open segment already given in a final (client Finalize)
        self._silence_run = 0
        self._level = 0.0  # the segment's speech level: a slowly decaying peak of frame rms
        self._segment_frames = 0
        self._next_interim = 0
        self._block_min = self._prev_block_min = 1 << 30
        self._block_n = 0

    @property
    def in_segment(self) -> bool:
        """Whether speech is open (from its first voiced frame to its final)."""
        return self._in_segment

    def push(self, pcm: bytes) -> list[Result]:
        """Audio in (any length; frames are cut from the stream start); results it completes."""
        pending = self._pending
        pending += pcm
        size = self._size
        results: list[Result] = []
        interim_due = False
        n = len(pending) // size
        for k in range(n):
            frame = bytes(pending[k * size:(k + 1) * size])
            rms = audioop.rms(frame, 2)
            is_voiced = rms >= self._threshold(rms)
            key = frame_key(frame) if rms >= INDEX_MIN_RMS else None
            if not self._in_segment:
                if not is_voiced:
                    self._preroll.append(key)
                    continue
                self._keys = list(self._preroll)
                self._voiced = [False] * len(self._keys)
                self._preroll.clear()
                self._in_segment = True
                self._emitted = 0
                self._silence_run = self._segment_frames = 0
                self._level = 0.0
                self._next_interim = self._interim_frames
            self._keys.append(key)
            self._voiced.append(is_voiced)
            # Deepgram's interims come per span of audio, not of speech: its own example's
            # results cover 0-1.1 s, 0-2.1 s, 0-3.1 s of the stream (see profiles.py).
            self._segment_frames += 1
            if self._segment_frames >= self._next_interim:
                self._next_interim += self._interim_frames
                interim_due = True
            self._level = max(float(rms), self._level * LEVEL_DECAY)
            if is_voiced and rms >= self._level * ENDPOINT_BELOW_LEVEL:
                self._silence_run = 0
            else:
                self._silence_run += 1
                if self._silence_run >= self._endpoint_frames:
                    final = self._final(speech_final=True)
                    if final.text or not self._emitted:  # (nothing new since the client's Finalize: quiet)
                        results.append(final)
                    interim_due = False
        del pending[: n * size]
        if interim_due and self.interim_results and self._in_segment:
            text, confidence = self._read()
            if text:
                results.append(Result(text, False, False, confidence))
        return results

    def finalize(self) -> Result:
        """The client's Finalize: the words of the open segment not yet given in a final (empty
        if none). The segment itself stays open, as a real recogniser keeps its context: a
        client finalizing at every short pause gets each word once, none cut in two or lost
        for being in a sliver of audio too short to recognise alone."""
        if not self._in_segment:
            return Result("", True, False, 0.0)
        text, confidence = self._read()
        self._emitted += len(text.split())
        return Result(text, True, False, confidence)

    def _final(self, *, speech_final: bool) -> Result:
        text, confidence = self._read()
        self._in_segment = False
        self._keys, self._voiced = [], []
        return Result(text, True, speech_final, confidence)

    def _read(self) -> tuple[str, float]:
        """The segment's words after those already finalized, and the confidence."""
        heard = [h for h in self.recogniser.recognise(self.rate, self._keys, self._voiced) if h.text]
        if not heard:  # (known background noise says nothing)
            return "", 0.0
        words = " ".join(h.text for h in heard).split()[self._emitted:]
        return " ".join(words), min(h.confidence for h in heard)

    def _threshold(self, rms: int) -> float:
        # Minimum statistics over the current and the previous 0.5 s block: the floor follows
        # steady noise within a second, while speech (never quiet for 0.5 s) does not raise it.
        if self._block_n >= FLOOR_BLOCK_FRAMES:
            self._prev_block_min, self._block_min, self._block_n = self._block_min, 1 << 30, 0
        self._block_min = min(self._block_min, rms)
        self._block_n += 1
        floor = min(self._block_min, self._prev_block_min)
        return max(SPEECH_MIN_RMS, min(SPEECH_OVER_FLOOR * floor, SPEECH_THRESHOLD_CAP))


# -- the WebSocket endpoint -------------------------------------------------------------


def _error(code: str, title: str, detail: str, parameter: str) -> dict:
    return {"code": code, "title": title, "detail": detail, "source": {"parameter": parameter}}


def validate_params(query: Mapping[str, str]) -> tuple[dict | None, int, str]:
    """(error, rate, format) for the connection's query, per the documented error codes."""
    engine = query.get("transcription_engine", "Deepgram")
    if engine.lower() not in _ENGINES:
        return _error("40007", "Invalid transcription engine", f"unknown engine {engine!r}",
                      "transcription_engine"), 0, ""
    fmt = query.get("input_format", "")
    if fmt not in _ALL_FORMATS:
        return _error("40001", "Invalid input_format", f"unsupported input_format {fmt!r}",
                      "input_format"), 0, ""
    if engine.lower() == "telnyx" and fmt not in _TELNYX_FORMATS:
        return _error("40002", "Format not supported by engine", f"{fmt} is not supported by {engine}",
                      "input_format"), 0, ""
    if query.get("model", "").endswith("flux") and fmt != "linear16":
        return _error("40006", "Format not supported by Flux", "Flux accepts linear16 only",
                      "input_format"), 0, ""
    if fmt not in _DECODED:
        return _error("40002", "Format not supported by engine",
                      f"the emulator decodes {', '.join(sorted(_DECODED))} only", "input_format"), 0, ""
    raw = query.get("sample_rate")
    if raw is None:
        return _error("40003", "Missing sample_rate", f"sample_rate is required for {fmt}", "sample_rate"), 0, ""
    try:
        rate = int(raw)
    except ValueError:
        return _error("40004", "Invalid sample_rate", "sample_rate must be an integer", "sample_rate"), 0, ""
    if (fmt in ("mulaw", "alaw") and rate != 8000) or not 8000 <= rate <= 48000 or rate % 50:
        return _error("40005", "Invalid sample_rate", f"{rate} Hz is not supported for {fmt}",
                      "sample_rate"), 0, ""
    return None, rate, fmt


@dataclass
class SttStats:
    connections: int = 0
    audio_frames: int = 0
    audio_bytes: int = 0
    audio_seconds: float = 0.0
    """Audio received, in seconds at each connection's format and rate (what a provider bills)."""
    min_audio_frame_bytes: int | None = None
    finalizes: int = 0
    finalizes_ignored: int = 0
    """Finalize frames sent to an engine that does not support them (all but Deepgram)."""
    keepalives: int = 0
    close_streams: int = 0
    origin_rejected: int = 0
    transcripts_sent: int = 0


ErrorShape = Literal["docs", "sdk"]


class SttEmulator:
    """The STT endpoint: one handler per WebSocket, results written in order by one task."""

    def __init__(self, *, api_key: str, profile: LatencyProfile, faults: FaultSwitch,
                 recogniser: UtteranceRecogniser, punctuation: str = "as-registered",
                 error_shape: ErrorShape = "docs") -> None:
        if punctuation not in PUNCTUATION_MODES:
            raise ValueError(f"unknown punctuation mode {punctuation!r}; known: {', '.join(PUNCTUATION_MODES)}")
        self.error_shape: ErrorShape = error_shape
        """Error frames as the docs show them (``errors[]`` with codes) or as the SDK's model
        has them (``{"type": "error", "error": str}``); Telnyx has not said which it sends."""
        self.api_key = api_key
        self.punctuation = punctuation
        self.profile = profile
        self.faults = faults
        self.recogniser = recogniser
        self.stats = SttStats()
        self.delays = Delays(profile)

    def error_frame(self, error: dict) -> str:
        if self.error_shape == "sdk":  # no code in this shape: the title and detail say it all
            return orjson.dumps({"type": "error", "error": f"{error['title']}: {error['detail']}"}).decode()
        return orjson.dumps({"errors": [error]}).decode()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not bearer_ok(request, self.api_key):
            return web.json_response({"errors": [{"code": "10009", "title": "Authentication failed"}]}, status=401)
        if "Origin" in request.headers:
            # The Telnyx edge rejects browser-style handshakes [3P]; catch clients that send one.
            self.stats.origin_rejected += 1
            return web.json_response({"errors": [{"code": "10015", "title": "Origin not allowed"}]}, status=403)
        fault = self.faults.take("stt", request.headers, request.query)
        if fault == "http_500":
            return web.json_response({"errors": [{"code": "50000", "title": "Internal error"}]}, status=500)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        if not await accept(ws, request):
            return web.Response()  # (never sent: the client is gone)
        self.stats.connections += 1
        error, rate, fmt = validate_params(request.query)
        if error is not None:
            await ws.send_str(self.error_frame(error))
            await ws.close(code=1008)
            return ws
        engine = stt_engine(request.query.get("transcription_engine", "Deepgram"))
        # Deepgram's own endpointing is the profile's (the bench's calibration); the others' is
        # the table's, with no profile to make them faster than documented.
        window_ms = self.profile.stt_endpoint_silence_ms if engine.finalize else engine.silence_window_ms
        stream = StreamRecogniser(
            self.recogniser, rate, interim_every_ms=self.profile.stt_interim_every_ms,
            endpoint_silence_ms=window_ms,
            interim_results=engine.interim_results and request.query.get("interim_results", "false").lower() == "true",
        )
        punctuate = request.query.get(PUNCTUATION_QUERY, self.punctuation) != "none"
        await _SttConnection(self, request, ws, stream, fmt, fault, engine, punctuate).run()
        return ws


class _SttConnection:
    def __init__(self, emulator: SttEmulator, request: web.Request, ws: web.WebSocketResponse,
                 stream: StreamRecogniser, fmt: str, fault: str | None, engine: SttEngine,
                 punctuate: bool = True) -> None:
        self.emulator = emulator
        self.punctuate = punctuate
        self.request = request
        self.ws = ws
        self.stream = stream
        self.fmt = fmt
        self.fault = fault
        self.engine = engine
        self.bytes_per_s = stream.rate * (1 if fmt in ("mulaw", "alaw") else 2)
        profile = emulator.profile
        # An own-endpointing final: Deepgram's after the profile's delay; the others' after
        # their processing time, the usual lag beyond the silence window.
        self.endpoint_final_ms = (profile.stt_final_ms if engine.finalize
                                  else max(0, engine.final_lag_ms - engine.silence_window_ms))
        self.loop = asyncio.get_running_loop()
        # (not before, message): one writer keeps results in order whatever their delays.
        self.outbox: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def run(self) -> None:
        await serve_duplex(self.ws, self._read, self._write)

    async def _read(self) -> None:
        stats = self.emulator.stats
        delays = self.emulator.delays
        profile = self.emulator.profile
        async for msg in self.ws:
            now = self.loop.time()
            if msg.type is WSMsgType.BINARY:
                data = msg.data
                stats.audio_frames += 1
                stats.audio_bytes += len(data)
                stats.audio_seconds += len(data) / self.bytes_per_s
                if stats.min_audio_frame_bytes is None or len(data) < stats.min_audio_frame_bytes:
                    stats.min_audio_frame_bytes = len(data)
                if self.fault == "error_frame":
                    err = {"code": "50001", "title": "Transcription failed", "detail": "emulated failure"}
                    await self.ws.send_str(self.emulator.error_frame(err))
                    await self.ws.close(code=1011)
                    return
                if self.fault == "disconnect":
                    drop_connection(self.request)
                    return
                if self.fmt == "mulaw":
                    data = audioop.ulaw2lin(data, 2)
                elif self.fmt == "alaw":
                    data = audioop.alaw2lin(data, 2)
                for result in self.stream.push(data):
                    if result.is_final and not result.text and not self.engine.finalize:
                        continue  # an empty final is Deepgram's habit; assume no other engine's
                    delay = delays(self.endpoint_final_ms) if result.is_final else 0.0
                    self._queue(now + delay, result)
            elif msg.type is WSMsgType.TEXT:
                try:
                    control = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    continue  # unknown text frames are ignored, as documented
                kind = control.get("type") if isinstance(control, dict) else None
                if kind == "Finalize":
                    stats.finalizes += 1
                    if not self.engine.finalize:
                        stats.finalizes_ignored += 1  # "Deepgram only": nothing comes back
                        continue
                    self._queue(now + delays(profile.stt_final_ms), self.stream.finalize())
                elif kind == "KeepAlive":
                    stats.keepalives += 1  # (no idle timeout is emulated, so nothing to reset)
                elif kind == "CloseStream":
                    stats.close_streams += 1
                    if not self.engine.close_stream:
                        continue  # undocumented for this engine: the client's close ends it
                    # Deliver what is pending (bounded), then close, like Deepgram does.
                    try:
                        await asyncio.wait_for(self.outbox.join(), 2.0)
                    except TimeoutError:
                        pass
                    return

    def _queue(self, at: float, result: Result) -> None:
        if self.fault == "slow":
            return  # a stalled recogniser: audio in, nothing out
        engine = self.engine
        if not self.punctuate:
            text = strip_punctuation(result.text)
        else:
            text = result.text if engine.punctuation else result.text.translate(_PUNCTUATION)
        message: dict[str, object] = {"type": "transcript", "transcript": text, "is_final": result.is_final}
        if engine.speech_final:
            message["speech_final"] = result.speech_final
        message["confidence"] = result.confidence if result.is_final else 0.0  # partials: 0.0 [V]
        self.outbox.put_nowait((at, orjson.dumps(message)))

    async def _write(self) -> None:
        while True:
            at, message = await self.outbox.get()
            try:
                delay = at - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.ws.closed:
                    continue
                await self.ws.send_str(message.decode())
                self.emulator.stats.transcripts_sent += 1
            except ConnectionError:
                pass
            finally:
                self.outbox.task_done()
