"""The session's outbound path on its own: utterances in, carrier frames and marks out."""

import orjson
import pytest

from engine import protocol
from engine.agent_audio import AgentAudio
from engine.codecs import codec_for
from engine.playout import Playout


def opened() -> AgentAudio:
    audio = AgentAudio(Playout(), [])
    audio.open(codec_for("PCMU"))
    return audio


def events(frames: list[str]) -> list[str]:
    return [orjson.loads(f)["event"] for f in frames]


def test_nothing_can_play_before_the_stream_started():
    audio = AgentAudio(Playout(), [])
    assert not audio.ready
    assert not audio.finish(1)  # (no codec: nothing to pad, no mark)
    audio.open(codec_for("PCMU"))
    assert audio.ready


def test_pull_says_once_when_an_utterance_s_first_frame_went_out():
    audio = opened()
    audio.begin(1)
    audio.push(1, bytes(320 * 3))  # three 20 ms frames of PCM16 at 8 kHz
    assert audio.finish(1)
    assert audio.pull(0.0) is True
    assert audio.pull(0.04) is False
    for t in (0.1, 0.2, 0.3):
        audio.pull(t)
    assert events(audio.frames) == ["media", "media", "media", "mark"]
    audio.begin(2)  # the next utterance is measured afresh
    audio.push(2, bytes(320))
    assert audio.pull(0.4) is True


def test_a_partial_frame_is_padded_at_the_end_and_another_utterance_s_end_is_ignored():
    audio = opened()
    audio.begin(1)
    audio.push(1, bytes(100))  # under one frame: nothing queued yet
    assert audio.playout.queued_frames == 0
    assert not audio.finish(2)
    assert audio.finish(1)
    assert audio.playout.queued_frames == 1


def test_interrupt_clears_the_carrier_and_forgets_the_utterance():
    audio = opened()
    audio.begin(1)
    audio.push(1, bytes(320 * 10))
    audio.pull(0.0)
    audio.interrupt(0.02)
    assert audio.frames[-1] == protocol.CLEAR and audio.utterance is None
    assert not audio.finish(1)  # cut off: no mark for it


@pytest.mark.parametrize("encoding", ["PCMU", "PCMA", "L16"])
def test_each_codec_gives_whole_carrier_frames(encoding):
    codec = codec_for(encoding)
    audio = AgentAudio(Playout(), [])
    audio.open(codec)
    audio.begin(1)
    audio.push(1, bytes(codec.pcm_frame_bytes * 2 + 10))
    audio.finish(1)
    for t in (0.0, 0.1, 0.2):
        audio.pull(t)
    media = [orjson.loads(f) for f in audio.frames if orjson.loads(f)["event"] == "media"]
    assert len(media) == 3
