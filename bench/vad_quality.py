"""VAD quality report: frame accuracy, end-of-turn delay, false barge-ins, CPU.

``callagent bench vad`` runs :func:`run`. It builds labelled 8 kHz audio from
espeak-ng and sox (``apt-get install espeak-ng sox``), cached under the system
temp dir, and feeds it to every VAD kind that is installed, under five line
conditions (about 20 s on 2 cores, 30 s with a cold cache):

``clean``         linear PCM, digital silence between turns
``ulaw``          the same through a μ-law round trip, like the phone line
``white20-ulaw``  white noise at 20 dB SNR (against active speech power), then μ-law
``white10-ulaw``  white noise at 10 dB SNR, then μ-law
``fluct10-ulaw``  white noise whose level swings by up to ±10 dB at 0.7 and 2.3 Hz
                  (traffic, wind, a fan: noise no stationary floor can follow), 10 dB
                  SNR against its mean power, then μ-law

Two timelines per condition:

* *turns*: 60 espeak utterances (five voices, 150-190 wpm, each trimmed to its
  first and last sample above -40 dB of its peak, which is its speech label,
  and set to a random level of -26 to -16 dBFS) separated by 0.4-2 s of
  silence. Gives the frame-level agreement with the labels and the end-of-turn
  delay with the default :class:`EndpointingConfig`.
* *agent talking*: 90 short events under 250 ms (2-6 ms clicks, 150 ms
  coughs, "uh-huh"/"mm"/"mhm"/"yeah" backchannels sped up below 240 ms)
  separated by 0.5-1.5 s, fed to the endpointer with ``agent_audible=True``.
  Every BARGE_IN here is a false barge-in.

The metric functions (:func:`frame_labels`, :func:`frame_agreement`,
:func:`turn_end_metrics`, :func:`barge_ins`, :func:`cpu_us_per_frame`) take
plain sequences so they can be checked on synthetic signals.
"""

from __future__ import annotations

import array
import hashlib
import itertools
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from engine import _audioop as audioop
from engine.config import FRAME_MS, EndpointingConfig, VadConfig
from engine.endpointing import Endpointer, EndpointEvent
from engine.vad import Vad, VadUnavailable, make_vad, talker_of

__all__ = [
    "barge_ins",
    "cpu_us_per_frame",
    "frame_agreement",
    "frame_labels",
    "run",
    "turn_end_metrics",
]

RATE = 8000
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = 2 * FRAME_SAMPLES
KINDS = ("energy", "webrtc", "hybrid", "silero")
CONDITIONS = ("clean", "ulaw", "white20-ulaw", "white10-ulaw", "fluct10-ulaw")

SENTENCES = (
    "Hi, I'm calling about my order from last Tuesday.",
    "It still hasn't arrived and the tracking page says nothing.",
    "The order number is four seven two nine one eight.",
    "Yes, that's the one with the blue jacket.",
    "Could you check whether it left the warehouse?",
    "I'd like to change the delivery address if that's possible.",
    "My new address is twelve Station Road, apartment three.",
    "No, the postcode is the same as before.",
    "Can I get a refund instead of a replacement?",
    "Actually, wait, let me think about that for a second.",
    "How long would the refund take to show up on my card?",
    "That's fine, please go ahead with the refund.",
    "I also wanted to ask about my account password.",
    "I tried resetting it twice but the email never came.",
    "My email is john dot smith at example dot com.",
    "Sure, my date of birth is the third of March, nineteen eighty five.",
    "Is there a cheaper plan for people who travel a lot?",
    "What happens if I cancel before the end of the month?",
    "Okay. And is there a fee for that?",
    "Great, thanks, that answers everything.",
    "Sorry, could you repeat the last part?",
    "I'm not sure, I think it was around two in the afternoon.",
    "Please send the confirmation by text message.",
    "Thank you so much for your help today, goodbye.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-029")
BACKCHANNELS = ("uh-huh", "mm", "mhm", "yeah")
N_TURNS = 60
N_SHORT_EVENTS = 90
SHORT_EVENT_MAX_MS = 240
TRIM_DB = -40.0


# --------------------------------------------------------------------------- metrics


def frame_labels(segments: Sequence[tuple[int, int]], n_frames: int, frame_samples: int = FRAME_SAMPLES) -> list[bool]:
    """Speech label per frame: at least half of its samples lie in a ``[start, end)`` sample segment."""
    covered = [0] * n_frames
    for start, end in segments:
        first, last = start // frame_samples, min(n_frames - 1, (end - 1) // frame_samples)
        for f in range(first, last + 1):
            lo, hi = max(start, f * frame_samples), min(end, (f + 1) * frame_samples)
            covered[f] += max(0, hi - lo)
    return [2 * c >= frame_samples for c in covered]


def frame_agreement(decisions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    """Accuracy over all frames, recall on speech frames, false alarms on non-speech frames (fractions)."""
    if len(decisions) != len(labels):
        raise ValueError("decisions and labels differ in length")
    hits = sum(1 for d, lab in zip(decisions, labels, strict=False) if d and lab)
    false = sum(1 for d, lab in zip(decisions, labels, strict=False) if d and not lab)
    speech = sum(labels)
    silence = len(labels) - speech
    return {
        "accuracy": (hits + silence - false) / len(labels) if labels else math.nan,
        "recall": hits / speech if speech else math.nan,
        "false_alarm": false / silence if silence else math.nan,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    # Nearest rank: a value that occurred, not an interpolation between two.
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def turn_end_metrics(
    decisions: Sequence[bool],
    turns_ms: Sequence[tuple[float, float]],
    config: EndpointingConfig | None = None,
    frame_ms: int = FRAME_MS,
) -> dict[str, float | int | list[float]]:
    """End-of-turn detection against true turns ``(start_ms, end_ms)``, in time order.

    The decisions go through an :class:`Endpointer` with the agent silent. Each
    TURN_END is stamped with the end of its frame, ``(frame + 1) * frame_ms``.
    A turn owns the TURN_ENDs from its start up to the next turn's start:

    * ``delay``: the first TURN_END at or after the true end, minus the true end;
    * ``missed``: turns that own no TURN_END (never heard, or merged into the next);
    * ``split``: turns with a TURN_END before their true end (the caller cut off);
    * ``false``: TURN_ENDs left over (noise heard as a turn in the silence).
    """
    ep = Endpointer(config or EndpointingConfig(), frame_ms)
    ends = [(f + 1) * frame_ms for f, d in enumerate(decisions) if ep.process(d, False) == EndpointEvent.TURN_END]
    delays: list[float] = []
    missed = split = matched = 0
    for i, (start, end) in enumerate(turns_ms):
        next_start = turns_ms[i + 1][0] if i + 1 < len(turns_ms) else math.inf
        owned = [t for t in ends if start <= t < next_start]
        after = [t for t in owned if t >= end]
        if not owned:
            missed += 1
        if len(owned) > len(after):
            split += 1
        if after:
            delays.append(after[0] - end)
        matched += min(1, len(after)) + (len(owned) - len(after))
    return {
        "p50_ms": _percentile(delays, 50),
        "p95_ms": _percentile(delays, 95),
        "missed": missed,
        "split": split,
        "false": len(ends) - matched,
        "delays_ms": delays,
    }


def barge_ins(
    decisions: Sequence[bool], config: EndpointingConfig | None = None, frame_ms: int = FRAME_MS
) -> list[tuple[int, int]]:
    """``(speech_start_frame, event_frame)`` of every BARGE_IN with the agent audible throughout."""
    ep = Endpointer(config or EndpointingConfig(), frame_ms)
    found = []
    for f, d in enumerate(decisions):
        if ep.process(d, True) == EndpointEvent.BARGE_IN:
            found.append((ep.speech_start_frame, f))
    return found


def agent_replies(labels: Sequence[bool], after_ms: int = 400, before_ms: int = 200) -> list[bool]:
    """Where the agent talks in a conversation laid out as caller turns: in each gap between
    two turns, from ``after_ms`` past the caller's last speech frame to ``before_ms`` before
    their next (the caller's line then carries only its background)."""
    n = len(labels)
    talking = [False] * n
    speech = [i for i, lab in enumerate(labels) if lab]
    after, before = after_ms // FRAME_MS, before_ms // FRAME_MS
    for last, nxt in itertools.pairwise(speech):
        for i in range(last + after, nxt - before):
            talking[i] = True
    return talking


def decide_in_conversation(
    vad: Vad, frames: Sequence[bytes], agent: Sequence[bool], config: EndpointingConfig | None = None
) -> list[bool]:
    """Decisions as the session asks for them: with who holds the turn, from the agent's
    playout (``agent``: its audio is playing) and an endpointer fed the same decisions. The
    agent's audio is held from BARGE_IN_PENDING until the run is rejected."""
    ep = Endpointer(config or EndpointingConfig())
    held = False
    out = []
    for frame, audible in zip(frames, agent, strict=False):
        talker = talker_of(agent_audible=audible, reply_held=held, caller_in_speech=ep.in_speech)
        d = vad.is_speech(frame, talker)
        event = ep.process(d, audible or held)
        if event is EndpointEvent.BARGE_IN_PENDING:
            held = True
        elif event is EndpointEvent.BARGE_IN_REJECTED or event is EndpointEvent.BARGE_IN:
            held = False
        out.append(d)
    return out


def cpu_us_per_frame(factory: Callable[[], Vad], frames: Sequence[bytes], repeats: int = 7) -> float:
    """Median over ``repeats`` passes of the CPU time per frame, in µs, each pass on a fresh VAD."""
    samples = []
    for _ in range(repeats):
        vad = factory()
        is_speech = vad.is_speech
        t0 = time.process_time_ns()
        for frame in frames:
            is_speech(frame)
        samples.append((time.process_time_ns() - t0) / 1000 / len(frames))
    return statistics.median(samples)


# --------------------------------------------------------------------------- audio


def _require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the VAD quality bench needs {' and '.join(missing)} to make its test audio: "
            "apt-get install espeak-ng sox"
        )


def _run_tool(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def _cache_dir(path: str | None) -> str:
    path = path or os.path.join(tempfile.gettempdir(), "callagent-vad-quality")
    os.makedirs(path, exist_ok=True)
    return path


def _to_pcm(values: Iterable[float]) -> bytes:
    """Samples -> PCM16 little-endian, clipped."""
    samples = array.array("h", (max(-32768, min(32767, round(v))) for v in values))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()


def _trim(pcm: bytes) -> bytes:
    """Cut to the first and last sample above ``TRIM_DB`` of the peak: the speech label."""
    samples = array.array("h", pcm)
    if sys.byteorder != "little":
        samples.byteswap()
    limit = max(map(abs, samples), default=0) * 10 ** (TRIM_DB / 20)
    loud = [i for i, s in enumerate(samples) if abs(s) > limit]
    if not loud:
        return b""
    return pcm[2 * loud[0] : 2 * (loud[-1] + 1)]


def _espeak(text: str, voice: str, speed: int, cache: str) -> bytes:
    """espeak-ng -> 8 kHz PCM16 through a telephone band, trimmed; cached by content."""
    key = hashlib.sha1(f"v1|{voice}|{speed}|{text}".encode()).hexdigest()[:16]
    path = os.path.join(cache, f"{key}.raw")
    if os.path.exists(path):
        with open(path, "rb") as fh:
            return fh.read()
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "tts.wav")
        raw = os.path.join(tmp, "tts.raw")
        _run_tool(["espeak-ng", "-v", voice, "-s", str(speed), "-w", wav, text])
        _run_tool(
            ["sox", "-D", wav, "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1", "-L", raw,
             "gain", "-3", "highpass", "300", "lowpass", "3400"]
        )
        with open(raw, "rb") as fh:
            pcm = _trim(fh.read())
    if not pcm:
        raise RuntimeError(f"espeak-ng -v {voice} produced silence for {text!r}")
    with open(path + ".tmp", "wb") as fh:
        fh.write(pcm)
    os.replace(path + ".tmp", path)
    return pcm


def _set_level(pcm: bytes, dbfs: float) -> bytes:
    rms = audioop.rms(pcm, 2)
    return audioop.mul(pcm, 2, 32768 * 10 ** (dbfs / 20) / rms) if rms else pcm


def _click(rng: random.Random) -> bytes:
    """2-6 ms of decaying broadband impulse: a tap on the handset, a connector."""
    n = rng.randint(2, 6) * RATE // 1000
    peak = rng.uniform(6000, 20000)
    return _to_pcm(peak * rng.uniform(-1.0, 1.0) * math.exp(-4 * k / n) for k in range(n))


def _cough(rng: random.Random, level_dbfs: float) -> bytes:
    """150 ms of low-passed noise with a fast attack and an exponential decay."""
    n = 150 * RATE // 1000
    attack = 10 * RATE // 1000
    y = 0.0
    samples = []
    for k in range(n):
        y = 0.55 * y + rng.gauss(0, 1)
        env = k / attack if k < attack else math.exp(-(k - attack) / (45 * RATE / 1000))
        samples.append(y * env)
    rms = math.sqrt(sum(s * s for s in samples) / n)
    gain = 32768 * 10 ** (level_dbfs / 20) / rms
    return _to_pcm(s * gain for s in samples)


def _backchannel(text: str, voice: str, cache: str) -> bytes:
    """espeak backchannel, sped up until it is under ``SHORT_EVENT_MAX_MS``."""
    for speed in range(300, 800, 60):
        pcm = _espeak(text, voice, speed, cache)
        if len(pcm) // 2 * 1000 // RATE < SHORT_EVENT_MAX_MS:
            return pcm
    raise RuntimeError(f"espeak-ng cannot say {text!r} in under {SHORT_EVENT_MAX_MS} ms")


def _gauss_noise(n: int, rng: random.Random, sigma: float = 4096.0) -> bytes:
    return _to_pcm(rng.gauss(0.0, sigma) for _ in range(n))


@dataclass(frozen=True, slots=True)
class _Timeline:
    pcm: bytes
    segments: list[tuple[int, int]]  # sample ranges of the events
    kinds: list[str]  # what each segment is
    speech_power: float  # mean square over the segments


def _lay_out(
    events: Sequence[tuple[str, bytes]], gaps: tuple[float, float], rng: random.Random
) -> _Timeline:
    parts = [bytes(2 * RATE)]  # 1 s lead-in: every detector gets a moment to settle
    pos = RATE
    segments, kinds = [], []
    energy = 0.0
    for kind, pcm in events:
        n = len(pcm) // 2
        segments.append((pos, pos + n))
        kinds.append(kind)
        energy += audioop.rms(pcm, 2) ** 2 * n
        parts.append(pcm)
        gap = int(rng.uniform(*gaps) * RATE)
        parts.append(bytes(2 * gap))
        pos += n + gap
    parts.append(bytes(2 * RATE))
    pcm = b"".join(parts)
    pcm = pcm[: len(pcm) - len(pcm) % FRAME_BYTES]
    speech = sum(e - s for s, e in segments)
    return _Timeline(pcm, segments, kinds, energy / speech if speech else 0.0)


def _make_timelines(seed: int, cache: str) -> tuple[_Timeline, _Timeline]:
    rng = random.Random(seed)
    turns = []
    for i in range(N_TURNS):
        text = SENTENCES[i % len(SENTENCES)]
        pcm = _espeak(text, rng.choice(VOICES), rng.randrange(150, 191, 10), cache)
        turns.append(("turn", _set_level(pcm, rng.uniform(-26.0, -16.0))))
    short = []
    for i in range(N_SHORT_EVENTS):
        which = ("click", "cough", "backchannel")[i % 3]
        level = rng.uniform(-26.0, -16.0)
        if which == "click":
            short.append((which, _click(rng)))
        elif which == "cough":
            short.append((which, _cough(rng, level)))
        else:
            pcm = _backchannel(rng.choice(BACKCHANNELS), rng.choice(VOICES), cache)
            short.append((which, _set_level(pcm, level)))
    rng.shuffle(short)
    return _lay_out(turns, (0.4, 2.0), rng), _lay_out(short, (0.5, 1.5), rng)


def _fluctuate(noise: bytes) -> bytes:
    """Swing the noise level frame by frame: 6 dB at 0.7 Hz plus 4 dB at 2.3 Hz."""
    out = []
    for i in range(0, len(noise), FRAME_BYTES):
        t = i / 2 / RATE
        db = 6 * math.sin(2 * math.pi * 0.7 * t) + 4 * math.sin(2 * math.pi * 2.3 * t + 1)
        out.append(audioop.mul(noise[i : i + FRAME_BYTES], 2, 10 ** (db / 20)))
    return b"".join(out)


def _condition(pcm: bytes, name: str, speech_power: float, noise: bytes) -> bytes:
    """Apply a line condition; noise is scaled against the turns' active speech power."""
    if name.startswith(("white", "fluct")):
        if name.startswith("fluct"):
            noise = _fluctuate(noise)
        snr_db = float(name[5:7])
        target = math.sqrt(speech_power / 10 ** (snr_db / 10))
        pcm = audioop.add(pcm, audioop.mul(noise[: len(pcm)], 2, target / audioop.rms(noise, 2)), 2)
    if name.endswith("ulaw"):
        pcm = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    return pcm


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


# --------------------------------------------------------------------------- report


def _available(kinds: Sequence[str], base: VadConfig) -> tuple[list[str], dict[str, str]]:
    usable, skipped = [], {}
    for kind in kinds:
        try:
            make_vad(base.model_copy(update={"kind": kind}), RATE)
        except VadUnavailable as exc:
            skipped[kind] = str(exc)
        else:
            usable.append(kind)
    return usable, skipped


def _owner(segments: Sequence[tuple[int, int]], kinds: Sequence[str], sample: int) -> str:
    """What a barge-in started on: the event around ``sample`` (with 100 ms of slack), else noise."""
    for (start, end), kind in zip(segments, kinds, strict=False):
        if start - FRAME_SAMPLES <= sample < end + RATE // 10:
            return kind
    return "noise"


def _measure(
    config: VadConfig,
    endpointing: EndpointingConfig,
    turn_frames: list[bytes],
    short_frames: list[bytes],
    labels: list[bool],
    turns_ms: list[tuple[float, float]],
    short: _Timeline,
    short_labels: list[bool],
    short_minutes: float,
) -> dict:
    decisions = decide_in_conversation(make_vad(config, RATE), turn_frames, agent_replies(labels), endpointing)
    short_decisions = decide_in_conversation(
        make_vad(config, RATE), short_frames, [True] * len(short_frames), endpointing
    )
    eot = turn_end_metrics(decisions, turns_ms, endpointing)
    barges = barge_ins(short_decisions, endpointing)
    by_event: dict[str, int] = {}
    for start, _ in barges:
        owner = _owner(short.segments, short.kinds, start * FRAME_SAMPLES)
        by_event[owner] = by_event.get(owner, 0) + 1
    # The gaps between short events hold only the line's noise.
    gaps = [d for d, lab in zip(short_decisions, short_labels, strict=False) if not lab]
    return {
        **frame_agreement(decisions, labels),
        "eot_p50_ms": eot["p50_ms"],
        "eot_p95_ms": eot["p95_ms"],
        "eot_missed": eot["missed"],
        "eot_split": eot["split"],
        "eot_false": eot["false"],
        "false_barge_ins": len(barges),
        "false_barge_ins_per_min": len(barges) / short_minutes,
        "false_barge_ins_by_event": by_event,
        "gap_false_alarm": sum(gaps) / len(gaps) if gaps else math.nan,
        "cpu_us_per_frame": cpu_us_per_frame(lambda: make_vad(config, RATE), turn_frames[:1500]),
    }


def _row(kind: str, cond: str, r: dict) -> str:
    def ms(v: float) -> str:
        return "   -" if math.isnan(v) else f"{v:4.0f}"

    return (
        f"{kind:<7} {cond:<13} {100 * r['accuracy']:5.1f} {100 * r['recall']:6.1f} {100 * r['false_alarm']:5.1f}"
        f"  {ms(r['eot_p50_ms'])} {ms(r['eot_p95_ms'])} {r['eot_missed']:4d} {r['eot_split']:5d} {r['eot_false']:5d}"
        f"  {r['false_barge_ins_per_min']:9.1f} {100 * r['gap_false_alarm']:6.1f}"
        f"  {r['cpu_us_per_frame']:8.1f}"
    )


def _json_safe(value: object) -> object:
    """NaN (no data) becomes null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(
    *,
    json_path: str | None = None,
    kinds: list[str] | None = None,
    seed: int = 1,
    cache_dir: str | None = None,
    vad_config: VadConfig | None = None,
    endpointing: EndpointingConfig | None = None,
) -> dict:
    """Build the labelled audio, measure each VAD kind, print a table, return the figures.

    ``kinds`` defaults to every kind that is installed (silero only with the
    ``[silero]`` extra); naming one that is not installed raises
    :class:`VadUnavailable`. ``vad_config`` and ``endpointing`` default to the
    shipped defaults; each kind is measured with ``vad_config`` and its kind
    replaced.
    """
    _require_tools()
    base = vad_config or VadConfig()
    endpointing = endpointing or EndpointingConfig()
    if kinds is None:
        kinds, skipped = _available(KINDS, base)
    else:
        skipped = {}
        for kind in kinds:  # fail before the slow part, with the install hint
            make_vad(base.model_copy(update={"kind": kind}), RATE)
    t_start = time.perf_counter()
    turns, short = _make_timelines(seed, _cache_dir(cache_dir))
    noise_rng = random.Random(seed + 1)
    noise_turns = _gauss_noise(len(turns.pcm) // 2, noise_rng)
    noise_short = _gauss_noise(len(short.pcm) // 2, noise_rng)

    n_turn_frames = len(turns.pcm) // FRAME_BYTES
    labels = frame_labels(turns.segments, n_turn_frames)
    turns_ms = [(s * 1000 / RATE, e * 1000 / RATE) for s, e in turns.segments]
    short_labels = frame_labels(short.segments, len(short.pcm) // FRAME_BYTES)
    short_minutes = len(short.pcm) / 2 / RATE / 60

    results: dict[str, dict[str, dict]] = {kind: {} for kind in kinds}
    for cond in CONDITIONS:
        turn_frames = _frames(_condition(turns.pcm, cond, turns.speech_power, noise_turns))
        short_frames = _frames(_condition(short.pcm, cond, turns.speech_power, noise_short))
        for kind in kinds:
            results[kind][cond] = _measure(
                base.model_copy(update={"kind": kind}),
                endpointing,
                turn_frames,
                short_frames,
                labels,
                turns_ms,
                short,
                short_labels,
                short_minutes,
            )
    elapsed = time.perf_counter() - t_start

    speech_frames = sum(labels)
    print(
        f"VAD quality, seed {seed}: {len(turns.segments)} turns in {n_turn_frames * FRAME_MS / 1000:.0f} s "
        f"({100 * speech_frames / n_turn_frames:.0f} % speech frames); {len(short.segments)} short events "
        f"(clicks, coughs, backchannels) in {short_minutes:.1f} min with the agent audible; {elapsed:.0f} s"
    )
    print(f"VadConfig: {base.model_dump(exclude={'kind'})}")
    print(f"EndpointingConfig: {endpointing.model_dump()}")
    print(
        "kind    condition      acc%  recall%  FA%   EoT p50  p95 miss split false"
        "  barge/min gapFA%  µs/frame"
    )
    for kind in kinds:
        for cond in CONDITIONS:
            print(_row(kind, cond, results[kind][cond]))
    for kind, why in skipped.items():
        print(f"{kind}: skipped ({why})")
    print(
        "acc/recall/FA: frame agreement with the labels. EoT: TURN_END minus true end of speech (ms), "
        "over turns it ended; miss: turns with no TURN_END before the next one starts; split: TURN_END before "
        "the caller finished; false: turns heard in silence. barge/min: BARGE_IN on short events and noise "
        "with the agent audible; gapFA%: VAD false alarms between those events. "
        "µs/frame: CPU, median of 7 passes over 30 s."
    )
    report = {
        "seed": seed,
        "frame_ms": FRAME_MS,
        "sample_rate": RATE,
        "turns": len(turns.segments),
        "turn_audio_s": n_turn_frames * FRAME_MS / 1000,
        "speech_frames": speech_frames,
        "short_events": len(short.segments),
        "short_audio_min": short_minutes,
        "conditions": list(CONDITIONS),
        "vad_config": base.model_dump(exclude={"kind"}),
        "endpointing": endpointing.model_dump(),
        "results": results,
        "skipped": skipped,
        "elapsed_s": elapsed,
    }
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(_json_safe(report), fh, indent=2, allow_nan=False)
    return report


if __name__ == "__main__":
    run()
