"""Retrieval inside the turn: whole calls through the real agent, the emulators and a knowledge
base in a real (SQLite) store; and the per-call retrieval's own rules without a call."""

from __future__ import annotations

import asyncio

import pytest

from control_plane.app import MEDIA_KEY
from control_plane.crypto import generate_key
from control_plane.knowledge.service import KnowledgeService
from control_plane.settings import Settings
from control_plane.store import open_repository
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.knowledge import (
    KNOWLEDGE_INSTRUCTION,
    NO_KNOWLEDGE_INSTRUCTION,
    SEARCH_TOOL_NAME,
    Passage,
    TurnKnowledge,
)
from engine.conversation.ports import CallSetup

from .test_agent_calls import Actions, Harness, Recorder

DELIVERY_DOC = b"""# Delivery slots

Deliveries to your home come in two slots: the morning slot from 8am to noon, and the afternoon
slot from noon to 6pm. A driver who finds nobody home after three o'clock leaves a card and
tries again the next working day.
"""
UNRELATED_DOC = b"# Descaling\n\nDescale the kettle with equal parts white vinegar and water once a month.\n"


class RecordingChat:
    """The real LLM client, with the messages of each request kept for the test to read."""

    def __init__(self, inner):
        self.inner = inner
        self.requests: list[tuple[list[dict], list[dict] | None]] = []

    def stream(self, messages, tools=None):
        self.requests.append(([dict(m) for m in messages], tools))
        return self.inner.stream(messages, tools=tools)

    async def complete_json(self, messages, schema):
        return await self.inner.complete_json(messages, schema)

    async def complete_json_with_usage(self, messages, schema):
        return await self.inner.complete_json_with_usage(messages, schema)


async def _knowledge_call(tmp_path, document: bytes):
    settings = Settings(_env_file=None, data_dir=tmp_path, encryption_key=generate_key(),
                        lookup_hash_key=generate_key(), database_url=None, redis_url=None)
    repo = await open_repository(settings)
    service = KnowledgeService(settings.knowledge)
    try:
        org = await repo.create_organisation("shop")
        kb = await service.create_base(repo, org.id, "support")
        await service.ingest(repo, org.id, "support", "delivery.md", document)
        async with Harness() as h:
            chat = RecordingChat(h.llm)
            profile = resolve(AgentConfig(provider_deadline_s=1.0, knowledge_bases=("support",)))

            async def setup(start):
                return CallSetup(profile=profile, actions=Actions(), reporter=Recorder(),
                                 knowledge=service.retriever(repo, [kb.id]))

            def factory(request):
                agent = CallAgent(h.profile, stt=h.stt, llm=chat, tts=h.tts, phrases=h.phrases, setup=setup)
                h.agents.append(agent)
                return agent

            h.app[MEDIA_KEY].listener_factory = factory
            result = await h.call("plain-04-delivery")
            agent = h.agents[0]
            return result, agent, chat
    finally:
        await repo.close()


def _turn_requests(chat):
    """The requests that answered the caller (not the summary at hang-up)."""
    return [(messages, tools) for messages, tools in chat.requests if messages[-1]["role"] == "user"]


@pytest.mark.asyncio(loop_factories=["virtual"])  # a whole call, every party on this loop
async def test_passages_reach_the_llm_request_with_their_sources_and_retrieval_is_a_stage(tmp_path):
    result, agent, chat = (await _knowledge_call(tmp_path, DELIVERY_DOC))
    assert result.completed and result.error is None and len(result.turns) >= 2
    requests = _turn_requests(chat)
    assert requests
    delivery = [m for m, _ in requests if "delivery" in m[-1]["content"].lower()]
    assert delivery, [m[-1]["content"] for m, _ in requests]
    context = delivery[-1][-2]  # just before the caller's words
    assert context["role"] == "system" and context["content"].startswith(KNOWLEDGE_INSTRUCTION)
    assert "(source: delivery.md)" in context["content"] and "three o'clock" in context["content"]
    assert "don't know" in context["content"]
    assert all(any(t["function"]["name"] == SEARCH_TOOL_NAME for t in tools) for _, tools in requests)
    # Passages are context for one request, never history.
    assert not any("source: delivery.md" in str(m.get("content")) for m in agent.conversation.messages)
    # Retrieval is its own stage, started on the tentative end (before the turn ended).
    timelines = [t.timeline for t in agent.reporter.turns if t.timeline.get("retrieval_start") is not None]
    assert timelines
    for timeline in timelines:
        assert "retrieval" in timeline["stages_ms"]
        assert timeline["retrieval_start"] <= timeline["turn_end"]


@pytest.mark.asyncio(loop_factories=["virtual"])  # a whole call, every party on this loop
async def test_with_nothing_relevant_the_request_says_to_answer_i_dont_know(tmp_path):
    _, _, chat = (await _knowledge_call(tmp_path, UNRELATED_DOC))
    requests = _turn_requests(chat)
    assert requests
    for messages, _ in requests:
        assert messages[-2] == {"role": "system", "content": NO_KNOWLEDGE_INSTRUCTION}
        assert "vinegar" not in str(messages)


class Retriever:
    def __init__(self, found=(), fail=False, delay=0.0):
        self.found = list(found)
        self.fail = fail
        self.delay = delay
        self.queries: list[str] = []

    async def search(self, query, *, limit):
        self.queries.append(query)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("store down")
        return self.found[:limit]


async def test_the_reply_reuses_the_tentative_ends_search_for_the_same_words():
    retriever = Retriever([Passage("faq.md", "We open at nine.")])
    knowledge = TurnKnowledge(retriever)
    knowledge.prefetch("When do you open?", None)
    messages = await knowledge.augment([{"role": "user", "content": "when do you open"}], "when do you open",
                                       None)
    assert retriever.queries == ["When do you open?"]  # one search, started before the reply
    assert "(source: faq.md) We open at nine." in messages[0]["content"]
    await knowledge.augment([{"role": "user", "content": "x"}], "when do you close", None)
    assert retriever.queries[-1] == "when do you close"


async def test_a_failed_or_late_search_costs_the_passages_not_the_turn():
    for retriever in (Retriever(fail=True), Retriever([Passage("a", "b")], delay=5.0)):
        knowledge = TurnKnowledge(retriever, deadline_s=0.05)
        messages = await knowledge.augment([{"role": "user", "content": "hours"}], "hours", None)
        assert messages[0] == {"role": "system", "content": NO_KNOWLEDGE_INSTRUCTION}
        knowledge.close()


@pytest.mark.parametrize("arguments, expected", [
    ('{"query": "opening hours"}', "[1] (source: faq.md) We open at nine."),
    ('{"query": ""}', "error: search_knowledge needs a query"),
    ("not json", "error: search_knowledge needs a query"),
    ('["a"]', "error: search_knowledge needs a query"),
])
async def test_the_search_knowledge_tool(arguments, expected):
    knowledge = TurnKnowledge(Retriever([Passage("faq.md", "We open at nine.")]))
    assert (await knowledge.run_tool(arguments)) == expected


async def test_the_search_knowledge_tool_with_nothing_found_says_so():
    assert "don't know" in (await TurnKnowledge(Retriever()).run_tool('{"query": "parking"}'))
