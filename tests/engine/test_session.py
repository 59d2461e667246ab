"""The whole sans-IO media path in virtual time: Telnyx messages in, events and frames out."""

import logging

import orjson
import pytest

from bench.signals import silence, voiced
from engine.codecs import PCMU
from engine.config import EndpointingConfig, EngineConfig
from engine.endpointing import EndpointEvent
from engine.session import MediaListener, MediaSession
from tests.engine.helpers import media_frames, start_frame

FRAME = 0.02


class Recorder(MediaListener):
    def __init__(self):
        self.events = []
        self.audio_frames = 0
        self.barge_ins = []
        self.dtmf = []
        self.done = []
        self.measured = []
        self.stopped = False

    def on_endpoint(self, event, now):
        self.events.append((event, round(now, 3)))

    def on_caller_audio(self, pcm):
        self.audio_frames += 1

    def on_barge_in(self, interruption, now):
        self.barge_ins.append(interruption)

    def on_dtmf(self, digit, now):
        self.dtmf.append(digit)

    def on_playout_done(self, utterance_id, now):
        self.done.append(utterance_id)

    def on_turn_measured(self, timeline):
        self.measured.append(timeline)

    def on_stop(self, now):
        self.stopped = True


class Call:
    """Drives a session like the carrier and the edge would, on a virtual clock."""

    def __init__(self, **session_kwargs):
        self.listener = Recorder()
        self.session = MediaSession(listener=self.listener, **session_kwargs)
        self.now = 0.0
        self.chunk = 1
        self.sent = []  # (time, frame dict) the engine sent
        self.session.receive(start_frame(), self.now)

    def play(self, pcm):
        for msg in media_frames(pcm, self.chunk):
            self.now = round(self.now + FRAME, 6)
            self.session.receive(msg, self.now)
            self.chunk += 1
            self.flush()

    def flush(self):
        self.session.tick(self.now)
        for frame in self.session.outbound:
            self.sent.append((self.now, orjson.loads(frame)))
        self.session.outbound.clear()

    def events(self):
        return [e for e, _ in self.listener.events]

    def sent_media(self):
        return [(t, f) for t, f in self.sent if f["event"] == "media"]


def test_a_caller_turn_is_detected_and_timed():
    call = Call()
    call.play(silence(0.5) + voiced(1.0) + silence(0.6))
    assert call.events() == [EndpointEvent.SPEECH_START, EndpointEvent.TENTATIVE_END, EndpointEvent.TURN_END]
    turn = call.session.current_turn
    # speech begins at 0.5 s; its start stamp is the first voiced frame's arrival, not the decision
    assert 0.5 <= turn.speech_start <= 0.6
    assert 1.45 <= turn.speech_end <= 1.56
    end_time = dict((e, t) for e, t in call.listener.events)[EndpointEvent.TURN_END]
    assert turn.turn_end == end_time
    assert turn.turn_end - turn.speech_end == pytest.approx(0.3, abs=0.041)
    assert call.listener.audio_frames == len(media_frames(silence(0.5) + voiced(1.0) + silence(0.6)))


def test_a_click_after_the_caller_stops_does_not_move_the_speech_end():
    # 100 ms after the speech, a 20 ms click: voiced to the VAD, but too short to resume the
    # speech, so the end of turn and the latency's origin both stay at the real end.
    call = Call()
    call.play(silence(0.5) + voiced(1.0) + silence(0.1) + voiced(0.02, seed=3) + silence(0.6))
    turn = call.session.current_turn
    assert 1.45 <= turn.speech_end <= 1.56
    assert turn.turn_end - turn.speech_end == pytest.approx(0.3, abs=0.041)


def test_the_listener_can_have_the_turn_end_after_the_confident_silence():
    call = Call(config=EngineConfig(endpointing=EndpointingConfig(confident_end_of_turn_ms=200)))
    call.play(silence(0.5) + voiced(1.0) + silence(0.1))
    call.session.end_turn_sooner()
    call.play(silence(0.5))
    turn = call.session.current_turn
    assert call.events() == [EndpointEvent.SPEECH_START, EndpointEvent.TENTATIVE_END, EndpointEvent.TURN_END]
    assert turn.turn_end - turn.speech_end == pytest.approx(0.2, abs=0.041)


def test_agent_reply_is_paced_marked_and_measured():
    seen = []
    call = Call(observer=seen.append)
    call.play(voiced(0.6) + silence(0.4))
    assert EndpointEvent.TURN_END in call.events()
    call.session.speak(1, voiced(0.5, seed=2))
    call.session.finish_utterance(1)
    call.play(silence(0.6))  # the reply has played, and its mark is out
    media = call.sent_media()
    assert len(media) == 25  # 0.5 s of 20 ms frames
    for i, (sent_at, _) in enumerate(media):
        # never more than the 80 ms lead ahead of the frame's real-time slot
        assert sent_at >= media[0][0] + i * FRAME - 0.08 - 1e-9
    marks = [f for _, f in call.sent if f["event"] == "mark"]
    assert len(marks) == 1 and call.sent[-1][1]["event"] in ("mark", "media")
    turn = call.session.current_turn
    assert seen == [turn] == call.listener.measured
    assert turn.first_frame_sent == media[0][0]
    assert turn.turn_latency_ms == pytest.approx((turn.first_frame_sent - turn.speech_end) * 1000)
    # the carrier confirms playback with the mark
    call.session.receive(orjson.dumps({"event": "mark", "mark": marks[0]["mark"]}), call.now)
    assert call.listener.done == [1] and turn.agent_audio_end == call.now
    call.play(silence(1.0))  # the echo came in time: the playout clock's fallback never fires
    assert call.listener.done == [1] and call.session.stats.mark_echoes_overdue == 0


def test_barge_in_stops_agent_audio_and_reports_heard_position():
    call = Call()
    call.play(voiced(0.6) + silence(0.4))
    call.session.speak(7, voiced(3.0, seed=3))
    call.session.finish_utterance(7)
    call.play(silence(0.5))
    started = call.sent_media()[0][0]
    call.play(voiced(0.5, seed=4))
    assert EndpointEvent.BARGE_IN in call.events()
    (interruption,) = call.listener.barge_ins
    assert interruption.utterance_id == 7
    clear_at = next(t for t, f in call.sent if f["event"] == "clear")
    last_media_at = max(t for t, f in call.sent if f["event"] == "media")
    # The agent stopped sending as soon as the caller had spoken min_speech (60 ms), long
    # before the barge-in was confirmed at min_barge_in (200 ms): it did not talk over them.
    assert call.session.stats.barge_in_holds == 1
    assert clear_at - last_media_at >= 0.1
    # Everything sent had played out by the clear: heard is exact to the frame.
    assert interruption.heard_ms == interruption.sent_ms == len(call.sent_media()) * 20
    assert interruption.heard_ms == pytest.approx((last_media_at - started) * 1000 + 20 + 80, abs=20)
    before = len(call.sent_media())
    call.play(silence(1.0))
    assert len(call.sent_media()) == before  # nothing of the old reply after clear
    assert not any(f["event"] == "mark" for _, f in call.sent)
    assert call.session.stats.barge_ins == 1


def test_a_short_backchannel_does_not_interrupt_the_agent():
    call = Call()
    call.play(voiced(0.6) + silence(0.4))
    call.session.speak(1, voiced(3.0, seed=5))
    call.session.finish_utterance(1)
    call.play(silence(0.4) + voiced(0.12, seed=6) + silence(0.6))
    assert EndpointEvent.BARGE_IN not in call.events()
    assert call.session.stats.barge_ins == 0 and call.session.stats.rejected_barge_ins == 1
    assert not any(f["event"] == "clear" for _, f in call.sent)
    # The agent paused while the caller made the sound, then went on where it stopped.
    assert call.session.stats.barge_in_holds == 1 and not call.session.playout.held
    call.play(silence(3.0))
    assert len(call.sent_media()) == 150  # the whole 3 s reply, nothing dropped
    assert call.session.playout.late_frames == 0  # the pause was deliberate, not lateness


def test_a_reply_due_as_the_caller_goes_on_is_held_before_its_first_frame():
    # "...and call back. [340 ms] Bye now.": the reply is ready just as the caller resumes, their
    # voiced run not yet min_speech long. Not a frame of it may go out over them.
    call = Call()
    call.play(voiced(0.6) + silence(0.4) + voiced(0.02, seed=8))
    assert call.session.endpointer.caller_stirring
    call.session.speak(3, voiced(2.0, seed=3))
    call.session.finish_utterance(3)
    call.play(voiced(0.5, seed=8))
    assert call.session.stats.reply_start_holds == 1
    assert EndpointEvent.BARGE_IN in call.events() and EndpointEvent.SPEECH_START not in call.events()[1:]
    assert call.sent_media() == []  # the caller heard nothing of it
    (interruption,) = call.listener.barge_ins
    assert interruption.utterance_id == 3 and interruption.heard_ms == 0


def test_a_click_as_a_reply_starts_only_delays_it():
    call = Call()
    call.play(voiced(0.6) + silence(0.4) + voiced(0.02, seed=8))
    call.session.speak(4, voiced(1.0, seed=3))
    call.session.finish_utterance(4)
    call.play(silence(0.2))
    assert call.session.stats.reply_start_holds == 1 and call.session.stats.rejected_barge_ins == 1
    assert not call.session.playout.held and call.listener.barge_ins == []
    call.play(silence(1.5))
    assert len(call.sent_media()) == 50  # the whole reply, a few frames late
    first_sent = call.sent_media()[0][0]
    assert 1.04 < first_sent <= 1.16


def test_a_reply_starts_at_once_when_the_caller_is_silent():
    call = Call()
    call.play(voiced(0.6) + silence(0.4))
    assert not call.session.endpointer.caller_stirring
    call.session.speak(5, voiced(1.0, seed=3))
    call.session.finish_utterance(5)
    call.play(silence(0.04))
    assert call.session.stats.reply_start_holds == 0 and call.sent_media()


def _reply_without_echo(call):
    """A caller turn, then a 0.5 s reply whose mark goes out; returns when its audio ends."""
    call.play(voiced(0.6) + silence(0.4))
    call.session.speak(1, voiced(0.5, seed=2))
    call.session.finish_utterance(1)
    call.play(silence(0.6))
    assert any(f["event"] == "mark" for _, f in call.sent)
    media = call.sent_media()
    return media[0][0] + len(media) * FRAME  # sent on time, so played back to back


def test_a_reply_whose_mark_is_never_echoed_ends_by_the_playout_clock_once():
    call = Call()
    played = _reply_without_echo(call)
    margin = call.session.config.playout.mark_echo_margin_ms / 1000
    assert call.session.playout.mark_deadline == pytest.approx(played + margin)
    assert call.listener.done == []
    # The edge sleeps until next_wakeup and ticks: the deadline alone wakes it.
    session = call.session
    while not call.listener.done:
        wake = session.next_wakeup(call.now)
        assert wake is not None and wake > call.now
        call.now = wake
        call.flush()
    assert call.now == pytest.approx(played + margin)
    assert call.listener.done == [1] and session.stats.mark_echoes_overdue == 1
    assert call.session.current_turn.agent_audio_end == call.now
    call.play(silence(2.0))
    assert call.listener.done == [1]  # once
    # The echo comes after all: it confirms, it does not end the reply a second time.
    mark = next(f for _, f in call.sent if f["event"] == "mark")
    session.receive(orjson.dumps({"event": "mark", "mark": mark["mark"]}), call.now)
    session.receive(orjson.dumps({"event": "mark", "mark": mark["mark"]}), call.now)
    assert call.listener.done == [1]
    assert session.stats.mark_echoes_late == 1 and session.stats.mark_echoes_overdue == 1


def test_a_barge_in_cancels_the_playout_clocks_fallback():
    # A quick barge-in, so that it lands between the mark going out and the audio's end.
    config = EngineConfig(endpointing=EndpointingConfig(min_barge_in_ms=60))
    call = Call(config=config)
    call.play(voiced(0.6) + silence(0.4))
    call.session.speak(7, voiced(0.5, seed=3))
    call.session.finish_utterance(7)
    call.play(silence(0.44))  # every frame and the mark are out; the audio still plays
    assert any(f["event"] == "mark" for _, f in call.sent)
    assert call.session.playout.mark_deadline is not None
    call.play(voiced(0.5, seed=4))
    (interruption,) = call.listener.barge_ins
    assert interruption.utterance_id == 7 and interruption.heard_ms < 500
    assert call.session.playout.mark_deadline is None
    call.play(silence(2.0))
    assert call.listener.done == [] and call.session.stats.mark_echoes_overdue == 0


def test_interrupting_the_reply_cancels_the_playout_clocks_fallback():
    call = Call()
    _reply_without_echo(call)
    call.session.interrupt(call.now)  # the pipeline stops the reply: clear
    call.play(silence(2.0))
    assert call.listener.done == [] and call.session.stats.mark_echoes_overdue == 0


class Undecided(Recorder):
    """A listener that waits for words before it lets a barge-in drop the reply."""

    def confirm_barge_in(self):
        return False


def _reply_then_caller_sound(call, seconds):
    call.play(voiced(0.6) + silence(0.4))
    call.session.speak(3, voiced(3.0, seed=3))
    call.session.finish_utterance(3)
    call.play(silence(0.4) + voiced(seconds, seed=4))


def test_a_deferred_barge_in_holds_the_reply_until_the_listener_confirms_it():
    call = Call()
    call.listener = call.session.listener = Undecided()
    _reply_then_caller_sound(call, 0.5)
    assert EndpointEvent.BARGE_IN in call.events()
    assert call.session.barge_in_deferred and call.session.playout.held
    assert not call.listener.barge_ins and not any(f["event"] == "clear" for _, f in call.sent)
    sent = len(call.sent_media())
    call.play(silence(0.2))
    assert len(call.sent_media()) == sent  # held: not talking over the caller meanwhile
    call.session.barge_in(call.now)  # words came: it is a barge-in after all
    call.flush()
    assert [i.utterance_id for i in call.listener.barge_ins] == [3]
    assert any(f["event"] == "clear" for _, f in call.sent) and not call.session.barge_in_deferred


def test_a_deferred_barge_in_judged_noise_lets_the_reply_go_on():
    call = Call()
    call.listener = call.session.listener = Undecided()
    _reply_then_caller_sound(call, 0.5)
    call.session.resume_after_hold()
    assert not call.session.barge_in_deferred and not call.session.playout.held
    assert call.session.stats.barge_ins == 0 and call.session.stats.rejected_barge_ins == 1
    call.play(silence(3.5))
    assert len(call.sent_media()) == 150  # the whole 3 s reply, nothing dropped
    assert not any(f["event"] == "clear" for _, f in call.sent)
    call.session.barge_in(call.now)  # a late confirmation of nothing changes nothing
    assert not call.listener.barge_ins


def test_a_stalled_stream_still_ends_the_turn():
    call = Call()
    call.play(voiced(0.8))
    assert EndpointEvent.TURN_END not in call.events()
    wake = call.session.next_wakeup(call.now)
    assert wake is not None and wake <= call.now + 0.2 + 1e-9
    call.now += 0.5
    call.flush()
    assert EndpointEvent.TURN_END in call.events()
    assert call.session.stats.stalled_frames >= 15


def test_malformed_frames_are_counted_logged_sparingly_and_never_end_the_call(caplog):
    call = Call()
    with caplog.at_level(logging.WARNING, logger="engine.session"):
        for i in range(100):
            call.session.receive(b'{"event":"media","media":{"payload":"@@"}}', call.now + i * 0.001)
    assert call.session.stats.malformed == 100
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
    call.play(voiced(0.6) + silence(0.4))
    assert EndpointEvent.TURN_END in call.events()


def test_outbound_track_media_is_not_taken_for_the_caller():
    from tests.engine.helpers import media_frame

    call = Call()
    for i in range(20):
        call.session.receive(media_frame(i + 1, b"\x00" * 160, track="outbound"), i * FRAME)
    assert call.session.stats.frames_in == 0 and call.listener.audio_frames == 0


def test_unsupported_codec_is_counted_and_media_dropped():
    listener = Recorder()
    session = MediaSession(listener=listener)
    session.receive(start_frame(encoding="OPUS", sample_rate=16000), 0.0)
    assert session.stats.malformed == 1 and not session.started
    for msg in media_frames(voiced(0.2)):
        session.receive(msg, 0.1)
    assert session.stats.malformed == 11 and listener.audio_frames == 0


def test_dtmf_and_stop_reach_the_listener():
    call = Call()
    call.session.receive(b'{"event":"dtmf","dtmf":{"digit":"7"}}', 0.1)
    call.session.receive(b'{"event":"stop","stop":{"call_control_id":"v3:test"}}', 0.2)
    assert call.listener.dtmf == ["7"] and call.listener.stopped
    assert call.session.stats.dtmf == 1


def test_lost_frames_are_concealed_in_order():
    from engine.config import EngineConfig, JitterConfig

    call = Call(config=EngineConfig(jitter=JitterConfig(min_depth_ms=40)))
    msgs = media_frames(voiced(0.4))  # chunks 1..20, each due at chunk * 20 ms
    arrivals = [(chunk * FRAME, msg) for chunk, msg in enumerate(msgs, start=1)]
    del arrivals[5]  # chunk 6 is lost
    t9, m9 = arrivals[7]
    arrivals[7] = (t9 + FRAME + 0.005, m9)  # chunk 9 arrives just after chunk 10
    for at, msg in sorted(arrivals, key=lambda a: a[0]):
        call.now = at
        call.session.receive(msg, at)
        call.flush()
    call.now += 1.0
    call.flush()
    stats = call.session.jitter.stats
    assert (stats.concealed, stats.reordered, stats.late) == (1, 1, 0)
    assert call.listener.audio_frames >= 20  # 19 real + 1 concealed, then stall silence


def test_speaking_before_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before the media stream"):
        MediaSession().speak(1, b"\x00" * 320)


def test_overdue_and_late_mark_echoes_reach_metrics_at_scrape_time():
    from prometheus_client import generate_latest

    from engine.metrics import EngineMetrics

    metrics = EngineMetrics()
    call = Call()
    metrics.sessions.add(call.session)
    played = _reply_without_echo(call)
    call.play(silence(0.4))
    assert played + 0.25 < call.now and call.listener.done == [1]
    body = generate_latest(metrics.registry).decode()
    assert "callagent_mark_echoes_overdue_total 1.0" in body
    assert "callagent_mark_echoes_late_total 0.0" in body
    mark = next(f for _, f in call.sent if f["event"] == "mark")
    call.session.receive(orjson.dumps({"event": "mark", "mark": mark["mark"]}), call.now)
    metrics.sessions.remove(call.session)  # the call ended: its counts stay in the totals
    body = generate_latest(metrics.registry).decode()
    assert "callagent_mark_echoes_overdue_total 1.0" in body
    assert "callagent_mark_echoes_late_total 1.0" in body


class PauseLevels(Recorder):
    """Records, at each tentative end, whether the session found the run before it quiet."""

    def __init__(self):
        super().__init__()
        self.quiet = []

    def on_start(self, session, start):
        self.session = session

    def on_endpoint(self, event, now):
        super().on_endpoint(event, now)
        if event is EndpointEvent.TENTATIVE_END:
            self.quiet.append(self.session.pause_run_quiet)


def test_a_breath_in_a_pause_is_marked_quiet_and_noise_as_loud_as_the_words_is_not():
    # The VAD hears "speech" in both: a breath 30 dB under the words (on a line as quiet as a
    # synthesiser's) and a sound 6 dB under them. Only the first is far under the caller.
    call = Call()
    call.listener = call.session.listener = PauseLevels()
    call.listener.session = call.session
    call.play(silence(0.5) + voiced(1.0) + silence(0.1) + voiced(0.2, level=0.25 * 0.03, seed=2)
              + silence(0.1) + voiced(0.2, level=0.25 * 0.5, seed=3) + silence(0.1) + voiced(0.5, seed=4)
              + silence(0.6))
    assert call.events().count(EndpointEvent.SPEECH_RESUMED) == 3
    # the words' own first pause, the breath, the loud sound, the words again
    assert call.listener.quiet == [False, True, False, False]


class PauseTails(Recorder):
    """Records, at each tentative end, the caller audio the session holds for the contour."""

    def __init__(self):
        super().__init__()
        self.tails = []

    def on_endpoint(self, event, now):
        super().on_endpoint(event, now)
        if event is EndpointEvent.TENTATIVE_END:
            self.tails.append(self.session.caller_tail())


def test_the_caller_tail_is_the_last_half_second_in_order_in_one_buffer_kept_for_the_call():
    call = Call()
    call.listener = call.session.listener = PauseTails()
    call.listener.session = call.session
    ring = call.session._tail
    words = voiced(1.3)
    call.play(silence(0.3) + words + silence(0.4))
    assert call.session._tail is ring and len(ring) == 25 * 320  # allocated once, at the start
    tail = call.listener.tails[-1]
    assert len(tail) == 8000  # 0.5 s at 8 kHz: 0.48 s of the words, then the tentative end's frame
    decoded = PCMU.decode(PCMU.encode(words))  # what the session heard, through μ-law
    assert tail[:-320] == decoded[-(len(tail) - 320):]
    assert tail[-320:] == bytes(320)
