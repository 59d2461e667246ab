"""The outbound half of a media session: the agent's audio on its way to the carrier.

PCM16 of any length, per utterance -> encoded with the call's codec -> re-cut into carrier
frames -> serialized -> queued on the paced :class:`~engine.playout.Playout`, which lets them
(and each utterance's closing mark) into ``frames`` as the clock allows. Kept here too: which
utterance is playing, and whether its first frame is out yet (what a turn's latency ends on).
"""

from __future__ import annotations

from . import protocol
from .codecs import Codec
from .playout import Interruption, Playout, Reframer


class AgentAudio:
    __slots__ = ("playout", "frames", "utterance", "_codec", "_reframer", "_first_sent", "_sent_before",
                 "_send_frame", "_send_mark")

    def __init__(self, playout: Playout, frames: list[str]) -> None:
        self.playout = playout
        self.frames = frames
        """Serialized frames and marks for the carrier, in order (the session's ``outbound``)."""
        self.utterance: int | None = None
        self._codec: Codec | None = None
        self._reframer: Reframer | None = None
        self._first_sent = True
        self._sent_before = 0  # the playout's frames_sent when the utterance began
        self._send_frame = frames.append  # bound once: the playout calls them per frame
        self._send_mark = self._queue_mark

    def open(self, codec: Codec) -> None:
        """The stream started: the carrier's codec and frame size are known."""
        self._codec = codec
        self._reframer = Reframer(codec.frame_bytes, codec.silence_byte)

    @property
    def ready(self) -> bool:
        return self._reframer is not None

    def begin(self, utterance_id: int) -> None:
        """A new utterance: its first frame is not out yet."""
        self.utterance = utterance_id
        self._first_sent = False
        self._sent_before = self.playout.frames_sent

    def push(self, utterance_id: int, pcm: bytes) -> None:
        push = self.playout.push
        for frame in self._reframer.feed(self._codec.encode(pcm)):  # type: ignore[union-attr]
            push(utterance_id, protocol.serialize_media(frame))

    def finish(self, utterance_id: int) -> bool:
        """Pad the utterance's tail to a whole frame and close it with a mark; False if it is
        not the one playing (cut off meanwhile) or nothing can play yet."""
        if self._reframer is None or utterance_id != self.utterance:
            return False
        tail = self._reframer.flush()
        if tail is not None:
            self.playout.push(utterance_id, protocol.serialize_media(tail))
        self.playout.finish(utterance_id)
        return True

    def interrupt(self, now: float) -> Interruption:
        """Stop now: drop what is queued and tell the carrier to clear what it buffered."""
        interruption = self.playout.interrupt(now)
        self.frames.append(protocol.CLEAR)
        self.utterance = None
        if self._reframer is not None:
            self._reframer.reset()
        return interruption

    def pull(self, now: float) -> bool:
        """Let out the frames and marks that are due; True when they include the current
        utterance's first frame."""
        playout = self.playout
        playout.pull(now, self._send_frame, self._send_mark)
        if not self._first_sent and playout.frames_sent > self._sent_before:
            self._first_sent = True
            return True
        return False

    def _queue_mark(self, name: str) -> None:
        self.frames.append(protocol.serialize_mark(name))
