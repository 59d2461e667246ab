"""The example tool package (examples/order_status) in a whole call: registered through its
``callagent.tools`` entry point, called by the model on the caller's order number, its
answer from the order service spoken to the caller (issue 18, item 2).

The package is registered the way ``pip install`` does it, without touching the shared
environment: a temporary ``.dist-info`` (METADATA + the ``entry_points.txt`` made from the
example's own pyproject.toml) and the package's directory go on ``sys.path``, which is where
``importlib.metadata`` looks. So the test needs no manual step and tests the declaration
the package really ships.
"""

from __future__ import annotations

import sys
import tomllib
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from bench.callee import ScriptedCallee
from bench.corpus.model import CORPUS_DIR, load_corpus
from bench.emulators.server import load_corpus_utterances, start_emulators
from control_plane.app import create_app
from control_plane.settings import Settings
from engine.conversation import function_tools
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, AgentConfigError, resolve
from engine.conversation.context import ToolContext
from engine.conversation.egress import ToolEgressConfig
from engine.conversation.phrases import PhraseCache
from engine.conversation.tools import ToolClient
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from tests.fixtures.waiting import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "order_status"


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    """The example package as pip would install it: its dist-info and its code on sys.path."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    function_tools.refresh()
    yield
    function_tools.refresh()
    for name in [m for m in sys.modules if m == "order_status" or m.startswith("order_status.")]:
        del sys.modules[name]


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


class Recorder:
    def __init__(self):
        self.turns, self.reports = [], []

    async def turn(self, call_control_id, record):
        self.turns.append(record)

    async def finished(self, report):
        self.reports.append(report)


def test_the_entry_point_gives_a_tool_with_a_schema_from_its_hints_and_docstring(installed_example):
    tool = function_tools.installed_tools()["order_status"]
    assert tool.definition()["function"]["parameters"] == {
        "type": "object", "required": ["order_number"],
        "properties": {"order_number": {"type": "string",
                                        "description": "The order number the caller gave, digits only."}}}
    assert tool.description.startswith("Look up where a customer's order is")
    assert tool.context_parameter == "context" and tool.timeout_s == 3
    resolve(AgentConfig(function_tools=("order_status",)))  # enabled by name
    with pytest.raises(AgentConfigError, match="installed: order_status"):
        resolve(AgentConfig(function_tools=("order_stats",)))


async def test_an_order_status_tool_from_an_installed_package_is_spoken_in_a_call(installed_example, monkeypatch):
    from order_status.service import LOOKUPS
    from order_status.service import create_app as order_service

    script = next(s for s in load_corpus() if s.name == "plain-01-order-status")

    service = order_service()
    service_runner, service_url = await _serve(service)
    monkeypatch.setenv("ORDER_SERVICE_URL", service_url)
    emulators = await start_emulators("fast", known_utterances=load_corpus_utterances(CORPUS_DIR))
    http = aiohttp.ClientSession()
    key = emulators.api_key
    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=key, url=emulators.stt_url), session=http)
    tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=key, url=emulators.tts_url), session=http)
    llm = OpenAIChatModel(OpenAIChatConfig(api_key=key, base_url=emulators.llm_base_url, model="e"))
    tools = ToolClient(ToolEgressConfig(allow_private_addresses=True))
    profile = resolve(AgentConfig(function_tools=("order_status",), provider_deadline_s=2.0))
    agents = []

    def factory(request):
        agent = CallAgent(profile, stt=stt, llm=llm, tts=tts, reporter=Recorder(), phrases=PhraseCache(tts),
                          tool_client=tools)
        agents.append(agent)
        return agent

    engine = create_app(Settings(), listener_factory=factory)
    engine_runner, engine_url = await _serve(engine)
    stream_id = str(uuid.uuid4())
    try:
        async with aiohttp.ClientSession() as client, client.ws_connect(engine_url + "/media-stream") as ws:
            await ws.send_str(orjson.dumps({
                "event": "start", "stream_id": stream_id,
                "start": {"call_control_id": f"v3:{stream_id}",
                          "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
            }).decode())
            await ScriptedCallee(script, stream_id=stream_id).run(ws)
        await eventually(lambda: agents and agents[0].reporter.reports, what="the agent's report")
        agent, lookups = agents[0], list(service[LOOKUPS])
    finally:
        await engine_runner.cleanup()
        await tools.aclose()
        await llm.aclose()
        await http.close()
        await emulators.close()
        await service_runner.cleanup()

    # The order service was asked once, for the number the caller spoke, with the call's id.
    assert lookups == [("472918", "")]  # a bare stream has no control-plane call id
    said = [t.agent_text for t in agent.reporter.turns]
    answer = next(t for t in said if "472918" in t)
    assert "shipped on Monday with UPS and arrives Thursday" in answer, said
    tool_messages = [m for m in agent.conversation.messages if m.get("role") == "tool"]
    assert tool_messages and "UPS" in tool_messages[0]["content"]


async def test_tool_errors_and_timeouts_reach_the_model_as_results(installed_example, monkeypatch):
    from order_status.service import create_app as order_service

    tool = function_tools.installed_tools()["order_status"]

    runner, url = await _serve(order_service())
    monkeypatch.setenv("ORDER_SERVICE_URL", url)
    try:
        unknown = await tool.run('{"order_number": "999"}', ToolContext(call_id="c-9"))
        bad = await tool.run('{"order": "1"}')
        packing = await tool.run('{"order_number": "100 200"}')
    finally:
        await runner.cleanup()
    monkeypatch.setenv("ORDER_SERVICE_URL", "http://127.0.0.1:9")  # nothing listens
    down = await tool.run('{"order_number": "472918"}')

    assert unknown == "error: there is no order 999; check the number with the caller"
    assert bad.startswith("error: invalid arguments for order_status: order_number")
    assert packing == "Order 100200 is being packed and has not shipped yet."
    assert down == "error: order_status failed (ClientConnectorError)"
