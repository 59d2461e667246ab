"""Whole calls through the real agent: the engine's media endpoint, the real provider
clients, and the STT/LLM/TTS emulators, all over sockets; the callee plays corpus calls.

The conversation tests run with each streaming STT: Telnyx's (the default engine, Deepgram
behind Telnyx) and Deepgram's own API directly (issue 18 item 3), each against its emulator."""

import asyncio
import uuid

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from bench.callee import ScriptedCallee
from bench.corpus.model import CORPUS_DIR, load_corpus
from bench.emulators.server import load_corpus_utterances, start_emulators
from bench.telnyx_emulator import MarkEcho
from control_plane.app import METRICS_KEY, create_app
from control_plane.settings import Settings
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.history import INTERRUPTED_NOTE
from engine.conversation.phrases import PhraseCache
from engine.providers.deepgram_stt import DeepgramOptions, DeepgramSpeechToText
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from tests.fixtures.waiting import eventually

# Whole calls over sockets through every emulator, every party on one virtual-time loop: each call runs as
# fast as the machine goes, on its script's own timing however loaded the machine is.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_factories=["virtual"])]


SCRIPTS = {s.name: s for s in load_corpus()}


class Recorder:
    def __init__(self):
        self.turns = []
        self.reports = []

    async def turn(self, call_control_id, record):
        self.turns.append(record)

    async def finished(self, report):
        self.reports.append(report)


class Actions:
    def __init__(self):
        self.hangups = []

    async def hangup(self, reason):
        self.hangups.append(reason)

    async def transfer(self, to):
        raise AssertionError("no transfer expected")

    async def send_dtmf(self, digits):
        raise AssertionError("no DTMF expected")


class Harness:
    """The engine app with one CallAgent per stream, wired to emulators like `serve` is."""

    def __init__(self, stt_punctuation="as-registered", stt="telnyx"):
        self.stt_punctuation = stt_punctuation
        self.stt_kind = stt

    async def __aenter__(self):
        self.emulators = await start_emulators("fast", known_utterances=load_corpus_utterances(CORPUS_DIR),
                                               stt_punctuation=self.stt_punctuation)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        key = self.emulators.api_key
        if self.stt_kind == "deepgram":
            self.stt = DeepgramSpeechToText(DeepgramOptions(api_key=SecretStr(key), url=self.emulators.deepgram_url),
                                            session=self.http)
        else:
            self.stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=key, url=self.emulators.stt_url), session=self.http)
        self.tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=key, url=self.emulators.tts_url), session=self.http)
        self.llm = OpenAIChatModel(OpenAIChatConfig(api_key=key, base_url=self.emulators.llm_base_url, model="e"))
        self.phrases = PhraseCache(self.tts)
        self.agents = []
        self.profile = resolve(AgentConfig(provider_deadline_s=1.0))

        def factory(request):
            agent = CallAgent(self.profile, stt=self.stt, llm=self.llm, tts=self.tts, actions=Actions(),
                              reporter=Recorder(), phrases=self.phrases,
                              on_provider_error=request.app[METRICS_KEY].provider_error)
            self.agents.append(agent)
            return agent

        self.app = create_app(Settings(), listener_factory=factory)
        self.metrics = self.app[METRICS_KEY]
        self.metrics.set_providers(stt="telnyx-stt", llm="openai-chat", tts="telnyx-tts")
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/media-stream"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()
        await self.phrases.aclose()  # (its syntheses use self.http)
        await self.llm.aclose()
        await self.http.close()
        await self.emulators.close()

    async def call(self, script_name, mark_echo=MarkEcho()):
        stream_id = str(uuid.uuid4())
        async with aiohttp.ClientSession() as client, client.ws_connect(self.url) as ws:
            await ws.send_str(orjson.dumps({
                "event": "start", "stream_id": stream_id,
                "start": {"call_control_id": f"v3:{stream_id}",
                          "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
            }).decode())
            result = await ScriptedCallee(SCRIPTS[script_name], stream_id=stream_id, mark_echo=mark_echo).run(ws)
        # The agent reports after the stream closes.
        await eventually(lambda: all(a.reporter.reports for a in self.agents), what="every agent's report")
        return result


STTS = pytest.mark.parametrize("stt", ["telnyx", "deepgram"])


@STTS
async def test_a_multi_turn_call_is_transcribed_answered_and_summarised(stt):
    async with Harness(stt=stt) as h:
        result = await h.call("plain-04-delivery")
        agent = h.agents[0]
        ttfb = {kind: h.metrics.registry.get_sample_value(
            "callagent_provider_ttfb_seconds_count", {"kind": kind, "provider": name})
            for kind, name in (("stt", "telnyx-stt"), ("llm", "openai-chat"), ("tts", "telnyx-tts"))}
    script = SCRIPTS["plain-04-delivery"]
    said = [s.text for s in script.utterances()]
    assert result.completed and result.agent_frames > 0
    assert not any(t.premature or t.missed for t in result.turns)
    turns = agent.reporter.turns
    assert len(turns) == len(said)
    heard = " ".join(t.caller_text for t in turns).split()
    assert heard == " ".join(said).split()[: len(heard)]
    assert all(t.agent_text and t.timeline.get("turn_latency_ms") for t in turns)
    # Each provider's time to first byte, once per measured turn; the TTS's only where it was asked
    # for the reply's opening (a kept one plays at once: engine/conversation/openers.py).
    asked = [t for t in turns if t.timeline.get("tts_request") is not None]
    assert ttfb["llm"] == len(turns) and ttfb["tts"] == len(asked) and 0 < ttfb["stt"] <= len(turns), ttfb
    assert all(t.timeline.get("tts_first_audio") for t in turns)
    # The emulated model opens every reply with "Sure." (its dropped speculations count too): by the
    # second turn it is kept, and that reply's opening played without the TTS.
    assert h.phrases.openers.hits >= 1 and len(asked) < len(turns)
    (report,) = agent.reporter.reports
    assert report.summary and report.outcome and report.outcome.get("outcome")
    assert [m["role"] for m in report.transcript][:2] == ["user", "assistant"]
    # Each turn's record carries the agent's running usage (stored with it: a crash loses one turn's).
    requests = [t.usage["llm_requests"] for t in turns]
    assert requests == sorted(requests) and requests[0] >= 1 and turns[-1].usage["stt_seconds"] > 0
    assert report.usage["llm_requests"] >= requests[-1]
    assert report.usage["stt_seconds"] >= turns[-1].usage["stt_seconds"]


async def test_the_last_turn_is_recorded_though_the_call_ends_right_after_it(monkeypatch):
    async def store_write(self, call_control_id, record):
        await asyncio.sleep(1.5)  # a slow database write, still in flight when the caller hangs up
        self.turns.append(record)

    monkeypatch.setattr(Recorder, "turn", store_write)

    async with Harness() as h:
        await h.call("plain-04-delivery")
        agent = h.agents[0]
    said = [s.text for s in SCRIPTS["plain-04-delivery"].utterances()]
    assert [t.caller_text for t in agent.reporter.turns] == said
    assert agent.reporter.reports  # and the call's own report came after them


@STTS
async def test_a_carrier_that_never_echoes_marks_still_hears_goodbye_and_is_hung_up_on(stt):
    # "Okay, great. Thanks for checking, bye." -> "Thanks for calling. Goodbye!" with end_call.
    # The hang-up waits for the goodbye to have played; with no echo, the playout clock says so.
    async with Harness(stt=stt) as h:
        result = await h.call("plain-01-order-status", mark_echo=MarkEcho("never"))
        agent = h.agents[0]
    assert result.completed and result.marks_echoed == 0
    assert agent.actions.hangups == ["agent ended the call"]
    replies = [m for m in agent.conversation.messages if m["role"] == "assistant"]
    assert agent.session.stats.mark_echoes_overdue == len(replies) >= 3  # each ended by the clock
    assert replies[-1]["content"] == "Thanks for calling. Goodbye!"
    assert not any(m["interrupted"] for m in replies)  # every reply recorded as played whole
    turns = agent.reporter.turns
    assert len(turns) == 3 and not any(t.interrupted for t in turns)
    assert turns[-1].agent_text == "Thanks for calling. Goodbye!"


@STTS
async def test_street_noise_over_the_reply_does_not_cost_the_caller_their_answer(stt):
    # After "Thanks, bye." the street noise goes on under the agent's goodbye; the VAD takes it
    # for the caller talking, which holds the reply. With no words from the recogniser the
    # hold is noise and the reply goes on, instead of being held until the caller gives up.
    async with Harness(stt=stt) as h:
        result = await h.call("noise-street-20db")
    assert [t.missed for t in result.turns] == [False, False, False]
    assert not any(t.premature for t in result.turns)


@STTS
async def test_barge_in_keeps_only_the_heard_words_marked_interrupted(stt):
    async with Harness(stt=stt) as h:
        result = await h.call("barge-late-02-driving")
        agent = h.agents[0]
    barge = [t for t in result.turns if t.expect == "barge_in"]
    assert barge and all(t.clear_at is not None for t in barge)
    interrupted = [t for t in agent.reporter.turns if t.interrupted]
    assert interrupted and all(t.agent_text for t in interrupted)  # a late barge-in: words were heard
    history = agent.conversation.messages
    cut = [m for m in history if m.get("interrupted")]
    assert cut and all(m["content"].endswith(INTERRUPTED_NOTE) for m in cut)
    # heard words are a prefix of what the agent meant to say, never more
    for turn in interrupted:
        assert len(turn.agent_text.split()) < 40


@STTS
async def test_an_early_barge_in_before_any_word_merges_into_the_callers_turn(stt):
    async with Harness(stt=stt) as h:
        await h.call("barge-early-02-parcel")
        agent = h.agents[0]
    first = agent.reporter.turns[0]
    # the caller cut the reply off within its first word: one caller turn, nothing "heard"
    assert "Hang on" in first.caller_text and first.caller_text.startswith("Hello")
    assert not any(m.get("interrupted") and m["content"] == INTERRUPTED_NOTE for m in agent.conversation.messages)


async def test_a_failing_llm_is_retried_with_a_filler_and_the_call_goes_on():
    async with Harness() as h:
        h.emulators.faults.arm("http_500", "llm", count=1)
        result = await h.call("plain-04-delivery")
        agent = h.agents[0]
        errors = h.metrics.registry.get_sample_value("callagent_provider_errors_total", {"provider": "openai-chat"})
    assert errors == 1
    assert any("llm" in e or "openai" in e or "HTTP 500" in e for e in agent.errors)
    assert agent.reporter.turns and all(t.agent_text for t in agent.reporter.turns)
    assert not agent.actions.hangups
    assert result.completed


async def test_an_llm_that_keeps_failing_gets_an_apology_and_a_clean_hangup():
    async with Harness() as h:
        h.emulators.faults.arm("http_500", "llm", count=100)
        await h.phrases.warm(h.profile.voice, 8000, (h.profile.config.apology_text,))
        result = await h.call("plain-04-delivery")
        agent = h.agents[0]
    assert agent.actions.hangups and "provider failure" in agent.actions.hangups[0], (agent.errors, agent.end_reason)
    assert agent.end_reason.startswith("provider failure")
    assert result.agent_frames > 0  # the apology was played
    (report,) = agent.reporter.reports
    assert report.end_reason.startswith("provider failure")


@STTS
@pytest.mark.parametrize("punctuation", ["as-registered", "none"])
async def test_callers_who_pause_mid_sentence_are_not_answered_over_with_or_without_punctuation(punctuation, stt):
    # The pause scripts ("The order number is... four seven two, nine one eight."), through a
    # recogniser that punctuates and one that does not. Without punctuation this failed before
    # the end-of-turn judgement read the words: 7 premature replies in 12 calls of the bench.
    names = sorted(n for n, s in SCRIPTS.items() if s.category == "pauses")

    async with Harness(stt_punctuation=punctuation, stt=stt) as h:
        results = await asyncio.gather(*(h.call(n) for n in names))

    assert len(results) == 3 and all(r.completed for r in results)
    turns = [(name, t.step_id, t.premature, t.missed) for name, r in zip(names, results, strict=False) for t in r.turns]
    assert len(turns) == 10
    assert [t for t in turns if t[2] or t[3]] == []


@pytest.mark.parametrize("shape", ["docs", "sdk"])
async def test_a_refused_stt_request_is_not_reopened(shape):
    """An STT error frame for a bad request (here an unknown engine) is final in either shape
    (issue 15 item 4): the agent apologises and ends rather than reconnecting."""
    async with Harness() as h:
        h.emulators.stt.error_shape = shape
        h.stt.config = h.stt.config.model_copy(update={"extra_params": {"transcription_engine": "Nope"}})
        await h.phrases.warm(h.profile.voice, 8000, (h.profile.config.apology_text,))
        await h.call("silent-01")
        agent = h.agents[0]
        connections = h.emulators.stt.stats.connections
        errors = h.metrics.registry.get_sample_value("callagent_provider_errors_total", {"provider": "telnyx-stt"})
    assert errors == 1
    assert agent.end_reason == "speech recognition failed", (agent.errors, agent.end_reason)
    assert connections == 1 and len([e for e in agent.errors if e.startswith("stt")]) == 1


@STTS
async def test_concurrent_calls_never_cross_talk(stt):
    names = ["plain-04-delivery", "dtmf-02-zip", "plain-02-appointment", "barge-late-02-driving"] * 5

    async with Harness(stt=stt) as h:
        results = await asyncio.gather(*(h.call(n) for n in names))
        agents = list(h.agents)
    assert all(r.completed for r in results)
    by_script = {}
    for agent in agents:
        callers = " ".join(t.caller_text for t in agent.reporter.turns)
        by_script.setdefault(agent.call_control_id, callers)
    texts = {n: " ".join(s.text for s in SCRIPTS[n].utterances()) for n in set(names)}
    for agent in agents:
        heard = " ".join(t.caller_text for t in agent.reporter.turns
                         if not t.caller_text.startswith("The caller pressed"))
        owners = [n for n, text in texts.items() if heard and heard.split()[0] in text.split()[:3]]
        assert owners, heard
        words = set(heard.replace("“", "").split())
        for other, text in texts.items():
            if other not in owners:
                assert not words >= set(text.split()), (heard, other)


async def test_a_refused_deepgram_key_ends_the_call_with_an_apology():
    """A 401 at Deepgram's handshake (a wrong key) is a clean end: the agent apologises and
    hangs up (the agent tries an open twice, whatever the provider), saying why in its errors."""
    async with Harness(stt="deepgram") as h:
        h.stt.options = h.stt.options.model_copy(update={"api_key": SecretStr("wrong")})
        await h.phrases.warm(h.profile.voice, 8000, (h.profile.config.apology_text,))
        await h.call("silent-01")
        agent = h.agents[0]
        refused = h.emulators.deepgram.stats.refused
    assert agent.end_reason == "speech recognition unavailable", (agent.errors, agent.end_reason)
    assert refused == 2 and all("HTTP 401" in e for e in agent.errors) and len(agent.errors) == 2

