"""One call's media, sans-IO: WebSocket messages and a clock in, frames and events out.

:class:`MediaSession` chains the stages of the inbound path (protocol -> jitter
buffer -> codec -> VAD -> endpointer) and the outbound path (encode -> re-frame ->
serialize -> paced playout, :mod:`engine.agent_audio`) with plain function calls. It never touches a socket:
:mod:`engine.edge` feeds it messages with :meth:`MediaSession.receive`, gives it
time with :meth:`MediaSession.tick`, and writes out whatever lands in
:attr:`MediaSession.outbound`. Whatever drives the conversation subclasses
:class:`MediaListener`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import _audioop as audioop
from . import protocol
from .agent_audio import AgentAudio
from .caller_voice import CallerVoice
from .codecs import Codec, UnsupportedCodec, codec_for
from .config import FRAME_MS, EngineConfig
from .endpointing import Endpointer, EndpointEvent
from .jitter import JitterBuffer
from .playout import Interruption, Playout
from .prosody import CONTOUR_WINDOW_S
from .timeline import TurnTimeline, TurnTimelines
from .vad import Talker, Vad, make_vad, talker_of

log = logging.getLogger(__name__)

_FRAME_S = FRAME_MS / 1000.0
_QUIET_RUN_RATIO = 10
"""A stretch of "speech" in a pause whose loudest frame is this many times (20 dB) under the
caller's loudest so far in the turn is quiet: a breath or hiss, not words and not noise that
rivals the caller (babble at 10-20 dB SNR)."""


def _noop() -> None:
    pass


class MediaListener:
    """What a session tells the layer above it. Every method is a no-op by default.

    Callbacks run synchronously inside :meth:`MediaSession.receive` or
    :meth:`MediaSession.tick`: keep them cheap, and hand slow work to a task.
    """

    def on_start(self, session: MediaSession, start: protocol.Start) -> None: ...
    def on_caller_audio(self, pcm: bytes) -> None:
        """Every 20 ms of caller audio, PCM16 at the codec's rate, in order, gaps concealed."""
    def on_endpoint(self, event: EndpointEvent, now: float) -> None: ...
    def on_barge_in(self, interruption: Interruption, now: float) -> None: ...
    def confirm_barge_in(self) -> bool:
        """The VAD confirms a barge-in: drop the reply now (True), or keep holding it until the
        layer above, which knows whether any words were heard, calls :meth:`MediaSession.barge_in`
        or :meth:`MediaSession.resume_after_hold` (False)."""
        return True
    def on_dtmf(self, digit: str, now: float) -> None: ...
    def on_playout_done(self, utterance_id: int, now: float) -> None:
        """The utterance played to the end: the carrier echoed its mark, or the playout clock
        says it must have (the echo overdue by ``mark_echo_margin_ms``). Once per utterance."""
    def on_turn_measured(self, timeline: TurnTimeline) -> None:
        """The first agent frame of a reply went out: the turn's latency is known."""
    def on_carrier_error(self, error: protocol.Error) -> None: ...
    def on_stop(self, now: float) -> None: ...


class SessionStats:
    """Plain counters bumped on the hot path; a metrics collector reads them at scrape time."""

    __slots__ = (
        "frames_in", "malformed", "unknown_events", "dtmf", "barge_ins", "barge_in_holds",
        "rejected_barge_ins", "carrier_errors", "stalled_frames", "odd_size_frames",
        "mark_echoes_overdue", "mark_echoes_late", "reply_start_holds",
    )
    # mark_echoes_overdue: utterances taken as played because their mark echo was overdue;
    # mark_echoes_late: echoes that came after that (so overdue - late never came at all).

    def __init__(self) -> None:
        self.frames_in = 0
        self.malformed = 0
        self.unknown_events = 0
        self.dtmf = 0
        self.barge_ins = 0
        self.barge_in_holds = 0
        self.rejected_barge_ins = 0
        self.carrier_errors = 0
        self.stalled_frames = 0
        self.odd_size_frames = 0
        self.mark_echoes_overdue = 0
        self.mark_echoes_late = 0
        self.reply_start_holds = 0


class MalformedLog:
    """Dropped malformed frames, logged at most once per interval with how many went unlogged
    meanwhile: a carrier sending garbage 50 times a second must not flood the log."""

    __slots__ = ("interval_s", "_logged_at", "_suppressed")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._logged_at = float("-inf")
        self._suppressed = 0

    def dropped(self, stream_id: str | None, reason: str, now: float) -> None:
        if now - self._logged_at >= self.interval_s:
            log.warning(
                "dropped malformed media-stream frame on stream %s: %s (%d more suppressed since last report)",
                stream_id, reason, self._suppressed,
            )
            self._logged_at = now
            self._suppressed = 0
        else:
            self._suppressed += 1


class MediaSession:
    """The call's media: the inbound path here, frame by frame; the outbound path in
    :class:`~engine.agent_audio.AgentAudio`; the turns' latency in
    :class:`~engine.timeline.TurnTimelines`. Barge-in, where the two paths meet, is here."""

    __slots__ = (
        "config", "listener", "outbound", "stats", "stream_id", "call_control_id", "start",
        "codec", "started", "stopped", "jitter", "playout", "agent_audio", "endpointer", "timelines",
        "pause_run_quiet", "caller_voice", "_run_peak", "_turn_peak", "_vad", "_now", "_last_media_at",
        "_last_voiced_at", "_last_pcm", "_tail", "_tail_pos", "_silence_pcm", "_pcm_accum", "_frame_out",
        "_reply_starting", "_malformed_log", "observer", "waker",
        "barge_in_deferred", "ending", "__weakref__",
    )

    def __init__(
        self,
        config: EngineConfig | None = None,
        listener: MediaListener | None = None,
        observer: Callable[[TurnTimeline], None] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.listener = listener or MediaListener()
        self.observer = observer
        """Called with each measured turn (the metrics layer); independent of the listener."""
        self.waker: Callable[[], None] = _noop
        """Called whenever output was queued, so the IO edge can stop sleeping and send it."""
        self.ending = False
        """The listener asked for the stream to be closed (:meth:`end`); the edge closes the socket."""
        self.barge_in_deferred = False
        """The VAD confirmed a barge-in the listener has not: the reply is held meanwhile."""
        self.outbound: list[str] = []
        """Frames for the carrier, in order. The edge sends and clears them."""
        self.stats = SessionStats()
        self.stream_id: str | None = None
        self.call_control_id: str | None = None
        self.start: protocol.Start | None = None
        self.codec: Codec | None = None
        self.started = False
        self.stopped = False
        self.jitter = JitterBuffer(self.config.jitter)
        self.playout = Playout(self.config.playout)
        self.agent_audio = AgentAudio(self.playout, self.outbound)
        self.endpointer = Endpointer(self.config.endpointing)
        self.timelines = TurnTimelines()
        self.pause_run_quiet = False
        """At a tentative end: the "speech" since the previous one (the pause's, not the turn's
        first) was quiet, ``_QUIET_RUN_RATIO`` under the caller's words in this turn."""
        self.caller_voice = CallerVoice()
        """When the caller's voice, not their line's background, was last heard."""
        self._run_peak = 0  # the loudest voiced frame (rms) since the last tentative end
        self._turn_peak = 0  # ... and in the caller's turn before that
        self._vad: Vad | None = None
        self._now = 0.0
        self._last_media_at: float | None = None
        self._last_voiced_at: float | None = None
        self._last_pcm: bytes | None = None
        self._tail = bytearray()  # the caller's last CONTOUR_WINDOW_S, a ring: no per-frame allocation
        self._tail_pos = 0
        self._silence_pcm = b""
        self._pcm_accum = bytearray()
        self._frame_out = self._on_jitter_frame  # bound once: the jitter buffer calls it per frame
        self._reply_starting = False
        """An utterance began and its first frame is not out yet (the agent audio's state,
        mirrored here for the per-frame check in :meth:`_process_pcm`)."""
        self._malformed_log = MalformedLog(self.config.malformed_log_interval_s)

    @property
    def current_turn(self) -> TurnTimeline | None:
        """The caller's turn being timed (the latest)."""
        return self.timelines.current

    # -- inbound ------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> None:
        """Feed one WebSocket message from the carrier."""
        self._now = now
        frame = protocol.parse(data)
        if type(frame) is protocol.Media:
            self._on_media(frame, now)
        elif type(frame) is protocol.Malformed:
            self._malformed(frame.reason, now)
        elif type(frame) is protocol.Start:
            self._on_start(frame, now)
        elif type(frame) is protocol.Mark:
            self._on_mark(frame.name, now)
        elif type(frame) is protocol.Dtmf:
            self.stats.dtmf += 1
            self.listener.on_dtmf(frame.digit, now)
        elif type(frame) is protocol.Stop:
            self._on_stop(now)
        elif type(frame) is protocol.Error:
            self.stats.carrier_errors += 1
            log.warning("carrier error on stream %s: %s %s %s", self.stream_id, frame.code, frame.title, frame.detail)
            self.listener.on_carrier_error(frame)
        elif type(frame) is protocol.UnknownEvent:
            self.stats.unknown_events += 1
        # Connected carries nothing the session needs; the edge checks auth on upgrade.

    def _on_start(self, start: protocol.Start, now: float) -> None:
        if self.started:
            self._malformed("second start frame", now)
            return
        try:
            codec = codec_for(start.encoding, start.sample_rate)
        except UnsupportedCodec as exc:
            self._malformed(str(exc), now)
            return
        self.start = start
        self.stream_id = start.stream_id
        self.call_control_id = start.call_control_id
        self.codec = codec
        self.started = True
        self._vad = make_vad(self.config.vad, codec.sample_rate)
        self._silence_pcm = bytes(codec.pcm_frame_bytes)
        frames = -(-int(CONTOUR_WINDOW_S * 1000) // FRAME_MS)
        self._tail = bytearray(frames * codec.pcm_frame_bytes)
        self.agent_audio.open(codec)
        self._last_media_at = now
        self.listener.on_start(self, start)

    def _on_media(self, media: protocol.Media, now: float) -> None:
        if not self.started or self.stopped:
            self._malformed("media outside start..stop", now)
            return
        if media.track[:7] != "inbound":
            return  # both_tracks streams echo our own audio back; only the caller matters
        size = len(media.payload)
        if size % self.codec.bytes_per_sample:  # type: ignore[union-attr]
            self._malformed("media payload is not a whole number of samples", now)
            return
        self.stats.frames_in += 1
        self._last_media_at = now
        self.jitter.push(media.seq, media.payload, now, self._frame_out)

    def _on_jitter_frame(self, payload: bytes | None) -> None:
        codec = self.codec
        if payload is None:
            # Concealment: the lost frame's neighbour at half level once, then silence.
            last = self._last_pcm
            self._last_pcm = None
            self._process_pcm(audioop.mul(last, 2, 0.5) if last is not None else self._silence_pcm)
            return
        pcm = codec.decode(payload)  # type: ignore[union-attr]
        if len(pcm) == codec.pcm_frame_bytes:  # type: ignore[union-attr]
            self._last_pcm = pcm
            self._process_pcm(pcm)
            return
        # Telnyx does not promise 20 ms packets: re-cut other sizes into 20 ms frames.
        self.stats.odd_size_frames += 1
        accum = self._pcm_accum
        accum += pcm
        step = codec.pcm_frame_bytes  # type: ignore[union-attr]
        while len(accum) >= step:
            frame = bytes(accum[:step])
            del accum[:step]
            self._last_pcm = frame
            self._process_pcm(frame)

    def _process_pcm(self, pcm: bytes) -> None:
        now = self._now
        playout = self.playout
        held = playout.held
        audible = playout.is_audible(now)
        # Who has the turn tells the VAD which frames are the caller's background.
        talker = talker_of(agent_audible=audible, reply_held=held, caller_in_speech=self.endpointer.in_speech)
        voiced = self._vad.is_speech(pcm, talker)  # type: ignore[union-attr]
        # A held reply still holds the floor: the caller's run is judged as a barge-in.
        endpointer = self.endpointer
        event = endpointer.process(voiced, held or audible)
        level = audioop.rms(pcm, 2)
        # (The agent audible, the caller listens: every frame is their background, as for the VAD.)
        self.caller_voice.frame(level, voiced and talker is not Talker.AGENT, now)
        if voiced:
            if endpointer.last_voiced_frame == endpointer.frame_index - 1:
                # The speech's end as the endpointer counts it: blips in the trailing noise that it
                # left out of the speech do not move the turn's speech_end (its latency origin).
                self._last_voiced_at = now
            if level > self._run_peak:
                self._run_peak = level
        tail, pos = self._tail, self._tail_pos
        end = pos + len(pcm)
        if end <= len(tail):  # (always: frames are pcm_frame_bytes and the ring a whole number of them)
            tail[pos:end] = pcm
            self._tail_pos = end % len(tail)
        self.listener.on_caller_audio(pcm)
        if event is not None:
            self._on_endpoint(event, now)
        elif self._reply_starting and endpointer.caller_stirring:
            self._hold_start_for_caller()

    def _on_endpoint(self, event: EndpointEvent, now: float) -> None:
        if event is EndpointEvent.SPEECH_START or event is EndpointEvent.BARGE_IN:
            if event is EndpointEvent.BARGE_IN:
                if self.listener.confirm_barge_in():
                    self._barge_in(now)
                else:
                    self.barge_in_deferred = True
                    self.playout.hold()  # (already held since BARGE_IN_PENDING, unless held differently)
            # The utterance began with its first voiced frame, a few frames before the decision.
            lag = (self.endpointer.frame_index - 1 - self.endpointer.speech_start_frame) * _FRAME_S
            self.timelines.speech_started(now - max(lag, 0.0))
            self._turn_peak = 0
        elif event is EndpointEvent.TENTATIVE_END:
            run, peak = self._run_peak, self._turn_peak
            self.pause_run_quiet = run * _QUIET_RUN_RATIO < peak
            self._turn_peak, self._run_peak = max(run, peak), 0
            self.timelines.tentative_end(now)
        elif event is EndpointEvent.TURN_END:
            self._run_peak = 0
            self.timelines.turn_ended(self._last_voiced_at or now, now)
        elif event is EndpointEvent.BARGE_IN_PENDING:
            # Stop talking over the caller at once; BARGE_IN or BARGE_IN_REJECTED decides.
            self.stats.barge_in_holds += 1
            self.playout.hold()
        elif event is EndpointEvent.BARGE_IN_REJECTED:
            self.stats.rejected_barge_ins += 1
            if self.playout.held:
                self.playout.release()
                self.waker()
        self.listener.on_endpoint(event, now)

    def caller_tail(self) -> bytes:
        """The caller's last half second (:data:`~engine.prosody.CONTOUR_WINDOW_S`), oldest first,
        PCM16 at the codec's rate: what the final pitch contour is read from at a pause."""
        pos = self._tail_pos
        return bytes(self._tail[pos:]) + bytes(self._tail[:pos])

    def end_turn_sooner(self) -> None:
        """The listener judged the pause's words surely finished: the endpointer ends the turn
        after ``confident_end_of_turn_ms`` of silence (TURN_END as usual), unless the caller
        resumes first."""
        self.endpointer.end_sooner()

    def barge_in(self, now: float) -> None:
        """Confirm a deferred barge-in (the listener heard words): drop the held reply."""
        if self.barge_in_deferred:
            self._barge_in(now)

    def resume_after_hold(self) -> None:
        """The listener judged the caller's sound over the reply (a barge-in still pending, or one
        the VAD confirmed and it deferred) to be no speech, noise: the held reply goes on."""
        if self.barge_in_deferred or self.playout.held:
            self.barge_in_deferred = False
            self.stats.rejected_barge_ins += 1
            if self.playout.held:
                self.playout.release()
                self.waker()

    def _barge_in(self, now: float) -> None:
        self.barge_in_deferred = False
        self.stats.barge_ins += 1
        interruption = self.interrupt(now)
        self.timelines.interrupted(now)
        self.listener.on_barge_in(interruption, now)

    def _on_mark(self, name: str, now: float) -> None:
        playout = self.playout
        utterance_id = playout.on_mark(name, now)
        if utterance_id is None:
            if playout.late_echo(name):
                self.stats.mark_echoes_late += 1  # the playout clock called it played already
            return
        self._playout_done(utterance_id, now)

    def _playout_done(self, utterance_id: int, now: float) -> None:
        self.timelines.audio_ended(now)
        self.listener.on_playout_done(utterance_id, now)

    def end(self) -> None:
        """Ask the IO edge to close this stream (e.g. it belongs to no call we may serve)."""
        self.ending = True
        self.waker()

    def close(self, now: float) -> None:
        """The socket is gone: end the call's media (idempotent)."""
        self._on_stop(now)

    def _on_stop(self, now: float) -> None:
        if not self.stopped:
            self.stopped = True
            self.listener.on_stop(now)

    def _malformed(self, reason: str, now: float) -> None:
        self.stats.malformed += 1
        self._malformed_log.dropped(self.stream_id, reason, now)

    # -- outbound -----------------------------------------------------------------------

    def speak(self, utterance_id: int, pcm: bytes) -> None:
        """Queue agent audio (PCM16 at the codec's rate, any length) for paced playout."""
        audio = self.agent_audio
        if not audio.ready:
            raise RuntimeError("cannot speak before the media stream has started")
        if utterance_id != audio.utterance:
            audio.begin(utterance_id)
            self._reply_starting = True
            if self.endpointer.caller_stirring:
                self._hold_start_for_caller()
        audio.push(utterance_id, pcm)
        self.waker()

    def _hold_start_for_caller(self) -> None:
        """A reply is about to start just as the caller began a voiced run (they go on after a
        pause as long as the end of turn, or it is a click): hold its first frame and judge the
        run as a barge-in over it. Speech then takes the floor before a word of the reply is
        heard; a click is rejected and the reply goes out. Without this, the run would only
        hold the reply once it reached ``min_speech_ms``, with up to that plus the lead of the
        reply already sent over the caller."""
        if self.playout.held:
            return
        self.endpointer.judge_run_as_barge_in()
        self.playout.hold()
        self.stats.reply_start_holds += 1

    def finish_utterance(self, utterance_id: int) -> None:
        """No more audio for this utterance: pad the tail and ask the carrier to confirm it played."""
        if self.agent_audio.finish(utterance_id):
            self.waker()

    def interrupt(self, now: float) -> Interruption:
        """Stop agent audio now (e.g. the pipeline decided to), as a barge-in would."""
        interruption = self.agent_audio.interrupt(now)
        self._reply_starting = False
        self.waker()
        return interruption

    # -- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Let time pass: release overdue inbound frames, count a stalled stream as silence,
        and send the agent frames that are due."""
        self._now = now
        if self.started and not self.stopped:
            self.jitter.poll(now, self._frame_out)
            self._feed_stall_silence(now)
        if self.agent_audio.pull(now):
            self._reply_starting = False
            self._first_frame_sent(now)
        playout = self.playout
        if not self.stopped:
            # A lost mark echo must not hold up what waits on the reply's end.
            while (utterance_id := playout.take_overdue(now)) is not None:
                self.stats.mark_echoes_overdue += 1
                self._playout_done(utterance_id, now)

    def _feed_stall_silence(self, now: float) -> None:
        last = self._last_media_at
        if last is None or now - last < self.config.stall_ms / 1000.0:
            return
        # No media at all (carrier paused or silence-suppressed): the caller is silent, and
        # end-of-turn must still fire. Count the missing time as silent frames.
        frames = int((now - last) / _FRAME_S)
        self._last_media_at = last + frames * _FRAME_S
        self.stats.stalled_frames += frames
        silence = self._silence_pcm
        for _ in range(frames):
            self._process_pcm(silence)

    def _first_frame_sent(self, now: float) -> None:
        turn = self.timelines.first_frame_sent(now)
        if turn is None:
            return  # a greeting, or a reply to nothing measured
        if self.observer is not None:
            self.observer(turn)
        self.listener.on_turn_measured(turn)

    def next_wakeup(self, now: float) -> float | None:
        """When :meth:`tick` next has work: a frame to send, a jitter deadline, a stall check,
        a mark echo falling overdue."""
        wake = self.playout.next_wakeup(now)
        marks = self.playout.mark_deadline
        if marks is not None and not self.stopped and (wake is None or marks < wake):
            wake = marks
        if self.started and not self.stopped:
            deadline = self.jitter.next_deadline()
            if deadline is not None and (wake is None or deadline < wake):
                wake = deadline
            if self._last_media_at is not None:
                stall = self._last_media_at + self.config.stall_ms / 1000.0
                if wake is None or stall < wake:
                    wake = stall
        return wake
