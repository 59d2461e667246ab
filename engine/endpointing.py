"""Turn-taking from per-frame VAD decisions: speech start, end of turn, barge-in.

:class:`Endpointer` is a per-call state machine fed one VAD decision per 20 ms
frame, together with whether agent audio is audible to the caller at that
moment. It counts frames, not wall time, so its output depends only on the
sequence it is fed: the same audio always ends the turn at the same frame.

Frame semantics, with the frame counts rounded up from the millisecond
settings (``S`` = min_speech, ``B`` = min_barge_in, ``T`` = tentative_end,
``E`` = end_of_turn):

* Frames are numbered from 0; an event returned by :meth:`Endpointer.process`
  belongs to the frame just processed, ``frame_index - 1``.
* A *run* is a burst of voiced frames in which gaps of a single unvoiced frame
  are tolerated (up to ``_BARGE_GAP_FRAMES`` while the agent is audible, since a
  barge-in is judged over a longer stretch). The gap frames belong to the run
  but do not count as voiced; a longer gap ends it. A run's start is its first
  voiced frame.
* Idle, agent not audible: SPEECH_START on the frame that brings the run to
  ``S`` voiced frames. ``speech_start_frame`` is the run's first voiced frame.
* Idle, agent audible: the run needs ``B`` voiced frames, and then gives
  BARGE_IN instead (which puts the machine in speech, like SPEECH_START). A
  run that began while the agent was audible and ends first gives
  BARGE_IN_REJECTED on the frame that ends it: the ``_BARGE_GAP_FRAMES + 1``-th
  consecutive unvoiced frame (80 ms of silence). Audibility is read every
  frame, so a pending run is judged by ``S`` from the frame the agent falls
  silent (possibly starting speech on that very frame), and by ``B`` while it
  is audible.
* In speech, the trailing silence is counted from ``last_voiced_frame``, the last
  voiced frame of confirmed speech: TENTATIVE_END on frame
  ``last_voiced_frame + T`` and TURN_END on frame ``last_voiced_frame + E``
  (when ``T == E`` only TURN_END is sent). A voiced frame after a single-frame
  gap continues the speech at once if the frame before the gap was voiced after
  another one (VADs drop single frames mid-word); a lone voiced frame does not
  vouch for the next, so noise that flickers voiced, unvoiced, voiced... after
  the caller stops (traffic, 10 dB SNR) does not hold the turn open. Otherwise
  new voiced frames form a run that must reach ``S`` voiced frames before it
  counts: until then the
  silence count runs on, so a click or a breath in a pause does not push the
  end of turn back. When the run counts, ``last_voiced_frame`` moves to that
  frame, and if TENTATIVE_END was sent the frame gives SPEECH_RESUMED.
* A run still pending when TURN_END fires carries over: if it reaches its
  threshold it starts the next utterance, whose ``speech_start_frame`` may then
  precede that TURN_END by a few frames.
* While in speech, agent audibility is ignored: the caller holds the floor until
  TURN_END, and the pipeline is not expected to talk over them.

* While idle and audible, the frame that brings a run to ``S`` voiced frames (when
  ``B > S``) gives BARGE_IN_PENDING; that run then ends in BARGE_IN, in
  BARGE_IN_REJECTED, or (if the agent falls silent) in SPEECH_START.

At most one event is returned per frame, and the events always follow the
grammar ``(SPEECH_START | BARGE_IN) (TENTATIVE_END SPEECH_RESUMED)*
[TENTATIVE_END] TURN_END``, with BARGE_IN_PENDING and BARGE_IN_REJECTED only
while idle.
"""

from __future__ import annotations

import enum
import math

from .config import FRAME_MS, EndpointingConfig

__all__ = ["EndpointEvent", "Endpointer"]

_GAP_FRAMES = 1
"""Unvoiced frames tolerated inside a run: VADs drop single frames mid-word."""
_BARGE_GAP_FRAMES = 3
"""Unvoiced frames tolerated inside a run while the agent is audible; one more
(80 ms of silence) ends the run and rejects it as a barge-in."""


class EndpointEvent(enum.IntEnum):
    SPEECH_START = 1
    """The caller started speaking: ``min_speech_ms`` of voiced frames, agent not audible."""
    TENTATIVE_END = 2
    """``tentative_end_ms`` of trailing silence: the pipeline may start the LLM speculatively."""
    SPEECH_RESUMED = 3
    """The caller spoke again after TENTATIVE_END and before TURN_END: cancel the speculation."""
    TURN_END = 4
    """``end_of_turn_ms`` of trailing silence: the caller's turn is over."""
    BARGE_IN = 5
    """The caller spoke for ``min_barge_in_ms`` while agent audio was audible; also a speech start."""
    BARGE_IN_REJECTED = 6
    """A voiced burst while the agent was audible ended before ``min_barge_in_ms`` (cough, "uh-huh", click)."""
    BARGE_IN_PENDING = 7
    """The caller has spoken ``min_speech_ms`` over audible agent audio: maybe a barge-in, maybe a
    backchannel. The session stops sending agent audio at once (so the caller is not talked
    over while the engine makes up its mind); BARGE_IN or BARGE_IN_REJECTED follows."""


def _frames(ms: int, frame_ms: int) -> int:
    return max(1, math.ceil(ms / frame_ms))


class Endpointer:
    """Per-call turn-taking state machine; see the module docstring for frame semantics.

    Read-only state, for the pipeline's timestamps:

    * ``frame_index``: frames processed so far (the next frame's number);
    * ``speech_start_frame``: first voiced frame of the current or last utterance, -1 before any;
    * ``last_voiced_frame``: last voiced frame of confirmed speech (blips in a pause do not
      count), the frame the end-of-turn silence is measured from; -1 before any speech;
    * ``in_speech``: between SPEECH_START/BARGE_IN and TURN_END.
    """

    __slots__ = (
        "_speech_frames",
        "_barge_frames",
        "_tentative_frames",
        "_end_frames",
        "_confident_frames",
        "_end_now",
        "_tentative_sent",
        "_run_start",
        "_run_last",
        "_run_voiced",
        "_run_audible",
        "_prev_voiced",
        "_last_solid",
        "frame_index",
        "speech_start_frame",
        "last_voiced_frame",
        "in_speech",
    )

    def __init__(self, config: EndpointingConfig, frame_ms: int = FRAME_MS) -> None:
        self._speech_frames = _frames(config.min_speech_ms, frame_ms)
        self._barge_frames = _frames(config.min_barge_in_ms, frame_ms)
        self._tentative_frames = _frames(config.tentative_end_ms, frame_ms)
        self._end_frames = _frames(config.end_of_turn_ms, frame_ms)
        confident = _frames(config.confident_end_of_turn_ms, frame_ms)
        self._confident_frames = confident if self._tentative_frames < confident else self._end_frames
        self.reset()

    def reset(self) -> None:
        """Back to the state of a new call: idle, no frames seen."""
        self.frame_index = 0
        self.speech_start_frame = -1
        self.last_voiced_frame = -1
        self.in_speech = False
        self._tentative_sent = False
        self._end_now = self._end_frames  # this pause's end of turn (end_sooner shortens it)
        self._prev_voiced = False  # the decision for the frame before this one
        self._last_solid = False  # last_voiced_frame followed another voiced frame
        self._clear_run()

    def _clear_run(self) -> None:
        self._run_start = -1  # -1: no run pending
        self._run_last = -1
        self._run_voiced = 0
        self._run_audible = False

    def process(self, voiced: bool, agent_audible: bool) -> EndpointEvent | None:
        """Take the VAD decision for the next frame; return the event it causes, if any."""
        f = self.frame_index
        self.frame_index = f + 1
        prev_voiced, self._prev_voiced = self._prev_voiced, voiced
        if self.in_speech:
            return self._in_speech(f, voiced, prev_voiced)
        return self._idle(f, voiced, agent_audible, prev_voiced)

    @property
    def caller_stirring(self) -> bool:
        """Idle, and a voiced run has begun that is neither speech yet nor judged as a barge-in:
        the caller may be starting to talk (or it is a click)."""
        return not self.in_speech and self._run_start >= 0 and not self._run_audible

    def judge_run_as_barge_in(self) -> None:
        """Agent audio is about to start over the stirring run: judge the run as a barge-in
        (``min_barge_in_ms``; BARGE_IN_REJECTED when it ends first), as if it had begun while
        the agent was audible, instead of as a speech start."""
        if self.caller_stirring:
            self._run_audible = True

    def end_sooner(self) -> bool:
        """The listener judged this pause's words surely finished: end the turn after
        ``confident_end_of_turn_ms`` of silence instead of ``end_of_turn_ms`` (at once if the
        silence is that long already), unless speech resumes first. Counted in frames like the
        rest, so a frame that resumed the speech is never outrun. Whether it took effect (in a
        pause, and the setting shorter than the end of turn)."""
        if not (self.in_speech and self._tentative_sent) or self._confident_frames >= self._end_frames:
            return False
        self._end_now = self._confident_frames
        return True

    def _add_to_run(self, f: int, audible: bool) -> None:
        if self._run_start < 0:
            self._run_start = f
            self._run_audible = audible
        self._run_last = f
        self._run_voiced += 1

    def _idle(self, f: int, voiced: bool, audible: bool, prev_voiced: bool) -> EndpointEvent | None:
        if voiced:
            self._add_to_run(f, audible)
        elif self._run_start < 0:
            return None
        if f - self._run_last > (_BARGE_GAP_FRAMES if audible else _GAP_FRAMES):
            rejected = self._run_audible
            self._clear_run()
            return EndpointEvent.BARGE_IN_REJECTED if rejected else None
        if self._run_voiced < (self._barge_frames if audible else self._speech_frames):
            if audible and self._run_voiced == self._speech_frames and voiced:
                return EndpointEvent.BARGE_IN_PENDING
            return None
        self.in_speech = True
        self._tentative_sent = False
        self.speech_start_frame = self._run_start
        self.last_voiced_frame = self._run_last
        self._last_solid = prev_voiced
        self._clear_run()
        return EndpointEvent.BARGE_IN if audible else EndpointEvent.SPEECH_START

    def _in_speech(self, f: int, voiced: bool, prev_voiced: bool) -> EndpointEvent | None:
        if voiced:
            # Across a tolerated gap after solid speech, the speech simply goes on;
            # otherwise the frame joins a run that has to earn its place.
            gap = f - self.last_voiced_frame
            continues = self._run_start < 0 and (gap == 1 or (gap <= _GAP_FRAMES + 1 and self._last_solid))
            if not continues:
                self._add_to_run(f, False)
            if continues or self._run_voiced >= self._speech_frames:
                self.last_voiced_frame = f
                self._last_solid = prev_voiced
                self._clear_run()
                self._end_now = self._end_frames
                if self._tentative_sent:
                    self._tentative_sent = False
                    return EndpointEvent.SPEECH_RESUMED
                return None
        elif self._run_start >= 0 and f - self._run_last > _GAP_FRAMES:
            self._clear_run()  # a blip: its frames stay part of the silence
        silence = f - self.last_voiced_frame
        if silence >= self._end_now:
            self.in_speech = False
            self._tentative_sent = False
            self._end_now = self._end_frames
            return EndpointEvent.TURN_END
        if silence == self._tentative_frames:  # once per last voiced frame
            self._tentative_sent = True
            return EndpointEvent.TENTATIVE_END
        return None
