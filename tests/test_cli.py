"""The command line: migrate, and organisations with their keys, on the embedded store."""

import re
import socket

import pytest

from callagent.cli import main


def test_org_create_list_and_revoke_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CALLAGENT_DATABASE_URL", raising=False)
    assert main(["migrate"]) == 0
    assert "applied migrations" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "current" in capsys.readouterr().out

    assert main(["org", "create", "Acme"]) == 0
    out = capsys.readouterr().out
    org = re.search(r"organisation (\S+)", out).group(1)
    secret = re.search(r"API key \(shown once, store it now\): (\S+)", out).group(1)
    assert len(secret) > 20

    assert main(["org", "keys", org]) == 0
    listing = capsys.readouterr().out
    assert "active" in listing and secret not in listing  # the secret is never shown again
    key_id = listing.split()[0]

    assert main(["org", "revoke", org, key_id]) == 0
    assert main(["org", "keys", org]) == 0
    assert "revoked" in capsys.readouterr().out


def test_blank_secrets_in_the_environment_mean_not_configured(monkeypatch):
    from control_plane.settings import Settings

    monkeypatch.setenv("TELNYX_API_KEY", "")
    monkeypatch.setenv("DATABASE_URL", "  ")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert settings.telnyx_api_key is None and settings.database_url is None
    assert settings.redis_url is not None and settings.redis_url.get_secret_value().startswith("redis://")


def test_freezing_the_startup_heap_keeps_it_out_of_collections_and_frees_its_garbage():
    import gc
    import weakref

    from callagent.runtime import freeze_startup_heap

    class Node:
        pass

    survivor = [Node() for _ in range(1000)]
    cycle = Node()
    cycle.self = cycle  # garbage only a collection frees
    gone = weakref.ref(cycle)
    del cycle
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gone() is None  # collected before freezing, not kept for ever
        assert gc.get_freeze_count() >= before + len(survivor)  # live objects: out of full collections
        assert not any(gc.is_tracked(x) and any(x is o for o in gc.get_objects(2)) for x in survivor[:3])
    finally:
        gc.unfreeze()


# -- settings mistakes are one line, never a traceback ---------------------------------------


@pytest.mark.parametrize("variable, value, expected", [
    ("CALLAGENT_SERVER__PORT", "99999", "CALLAGENT_SERVER__PORT: Input should be less than or equal to 65535"),
    ("CALLAGENT_SERVER__PORT", "eighty", "CALLAGENT_SERVER__PORT: Input should be a valid integer"),
    ("CALLAGENT_ENGINE__VAD__KIND", "fancy",
     "CALLAGENT_ENGINE__VAD__KIND: Input should be 'energy', 'webrtc', 'hybrid' or 'silero'"),
    ("CALLAGENT_AGENT", "{not json", "CALLAGENT_AGENT: not valid JSON"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys, variable, value, expected):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    for command in (["serve"], ["migrate"], ["org", "list"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"callagent: {expected}")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert value not in err or value.isdigit()  # the value itself is not echoed (it may be a secret)


def test_a_bad_secret_is_not_echoed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLAGENT_SESSION_TTL_S", "hunter2-secretish")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "CALLAGENT_SESSION_TTL_S" in err and "hunter2" not in err


def test_unknown_callagent_variables_are_found_with_a_suggestion():
    from callagent.settings_check import unknown_variables

    found = unknown_variables({
        "CALLAGENT_SERVR__PORT": "1", "CALLAGENT_SERVER__PORT": "1", "CALLAGENT_ENGINE__VAD__KIND": "webrtc",
        "TELNYX_API_KEY": "x", "CALLAGENT_DATABASE_URL": "x", "CALLAGENT_TEST_DATABASE_URL": "x",
        "CALLAGENT_NONSENSE": "1", "PATH": "/bin",
    })
    assert found == ["CALLAGENT_NONSENSE", "CALLAGENT_SERVR__PORT (did you mean CALLAGENT_SERVER__PORT?)"]


def test_the_data_dir_is_absolute_and_the_same_from_any_directory(tmp_path, monkeypatch):
    from control_plane.settings import Settings

    monkeypatch.delenv("CALLAGENT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path / "xdg" / "callagent"
    monkeypatch.setenv("CALLAGENT_DATA_DIR", "relative/place")
    assert Settings().data_dir == tmp_path / "relative" / "place"
    assert Settings().data_dir.is_absolute()


def test_org_list_and_a_malformed_id(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["org", "create", "First"]) == 0
    assert main(["org", "create", "Second"]) == 0
    capsys.readouterr()
    assert main(["org", "list"]) == 0
    names = [line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert names == ["First", "Second"]
    assert main(["org", "keys", "not-a-uuid"]) == 2
    err = capsys.readouterr().err
    assert err == "callagent org: organisation id must be a UUID (as `callagent org list` prints it)\n"


def test_version_and_help_list_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("callagent ")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "call", "demo", "migrate", "org", "number", "bench"):
        assert f"    {command}" in out


def test_a_mistyped_variable_is_warned_about_by_every_command(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLAGENT_DATA_DRI", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for command in (["org", "list"], ["migrate"]):
        assert main(command) == 0
        err = capsys.readouterr().err
        assert err == "callagent: unknown setting CALLAGENT_DATA_DRI (did you mean CALLAGENT_DATA_DIR?) is ignored\n"
    # serve says it in its log at start-up (here before failing on a port in use).
    monkeypatch.setenv("TELNYX_API_KEY", "KEY-for-a-remote-server")
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", "")
    with socket.socket() as taken, caplog.at_level("WARNING", logger="callagent"):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    assert any("unknown setting CALLAGENT_DATA_DRI (did you mean CALLAGENT_DATA_DIR?)" in r.getMessage()
               for r in caplog.records)


def test_a_port_in_use_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELNYX_API_KEY", "KEY-for-a-remote-server")  # remote mode: no emulators to start
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", "")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"callagent serve: cannot listen on 127.0.0.1:{port}:" in err
    assert "Traceback" not in err


def test_numbers_and_organisation_settings_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLAGENT_TOOLS__TENANT_ALLOWABLE_NETWORKS", '["10.0.0.0/8"]')
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["org", "create", "Acme"]) == 0
    org = re.search(r"organisation (\S+)", capsys.readouterr().out).group(1)

    assert main(["number", "add", org, "+13125550100", "--personality", "professional"]) == 0
    assert main(["number", "add", org, "+13125550101", "--agent-config", '{"first_message": "Hello!"}']) == 0
    capsys.readouterr()
    for bad, message in ((["+1"], "not an E.164 phone number"), (["+13125550100"], "already registered"),
                         (["+13125550102", "--agent-config", "[1]"], "--agent-config must be a JSON object"),
                         (["+13125550102", "--agent-config", '{"mood": 1}'], "invalid agent config")):
        assert main(["number", "add", org, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("callagent number: ") and message in err and "Traceback" not in err

    assert main(["number", "list", org]) == 0
    assert capsys.readouterr().out.splitlines() == [
        '+13125550100  {"personality":"professional"}', '+13125550101  {"first_message":"Hello!"}']
    assert main(["number", "update", org, "+13125550101", "--personality", "sales",
                 "--agent-config", '{"language": "en-GB"}']) == 0
    assert capsys.readouterr().out == ('+13125550101 answers inbound calls with '
                                       '{"personality":"sales","language":"en-GB"}\n')
    assert main(["number", "update", org, "+13125550199", "--personality", "sales"]) == 2
    assert "no such number" in capsys.readouterr().err
    assert main(["number", "update", org, "+13125550101", "--personality", "pirate"]) == 2
    assert "unknown personality" in capsys.readouterr().err
    assert main(["number", "remove", org, "+13125550100"]) == 0
    assert main(["number", "remove", org, "+13125550100"]) == 2

    capsys.readouterr()
    assert main(["org", "settings", org, "--record-calls", "on"]) == 0
    assert "record_calls: True" in capsys.readouterr().out
    assert main(["org", "settings", org, "--record-calls", "default"]) == 0
    assert "record_calls: default" in capsys.readouterr().out
    assert main(["org", "settings", org, "--tool-allowed-destinations", "crm.internal, 10.1.0.0/16"]) == 0
    assert "tool_allowed_destinations: ['crm.internal', '10.1.0.0/16']" in capsys.readouterr().out
    assert main(["org", "settings", org, "--tool-allowed-destinations", "10.1.0.0/16, 169.254.169.254/32"]) == 2
    assert "#2 is outside the networks" in capsys.readouterr().err
    assert main(["org", "settings", org, "--tool-allowed-destinations", "ok.internal,http://x/"]) == 2
    assert capsys.readouterr().err == ("callagent org: allowed destination #2 is neither a host name nor an IP "
                                       "network\n")
    assert main(["org", "settings", org, "--tool-allowed-destinations", "default"]) == 0
    assert "tool_allowed_destinations: default" in capsys.readouterr().out


@pytest.mark.e2e
@pytest.mark.slow
async def test_serve_drains_on_sigterm_and_keeps_accepting_webhooks(tmp_path, monkeypatch, capsys):
    """A real ``callagent serve`` and a real SIGTERM: the live call's stream stays open and its
    webhooks are accepted, new starts get 503, and the process exits once the call ends.
    Fails before the change: SIGTERM closed the listener at once."""
    import asyncio
    import os
    import signal
    import socket
    import sys
    from pathlib import Path

    import aiohttp

    from tests.control_plane.fakes import WEBHOOK_PUBLIC_KEY, signed_webhook
    from tests.engine.helpers import start_frame

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLAGENT_", "TELNYX_", "DATABASE_URL", "REDIS_URL"))}
    # Remote mode (a Telnyx key, pointing nowhere) with the local provider emulators: local mode
    # would start the carrier emulator, which signs webhooks with a key of its own.
    env.update(CALLAGENT_DATA_DIR=str(tmp_path), TELNYX_PUBLIC_KEY=WEBHOOK_PUBLIC_KEY,
               TELNYX_API_KEY="KEY-unused", CALLAGENT_TELNYX_API_BASE="http://127.0.0.1:9/v2",
               CALLAGENT_PROVIDERS__MODE="local",
               CALLAGENT_SERVER__DRAIN_GRACE_S="120", CALLAGENT_SERVER__PUBLIC_URL="https://agent.example.com",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for name in ("DATABASE_URL", "CALLAGENT_DATABASE_URL", "REDIS_URL", "CALLAGENT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    # The CLI runs its own loop: in a thread, as it would in its own process.
    assert await asyncio.to_thread(main, ["org", "create", "Acme"]) == 0
    secret = re.search(r"store it now\): (\S+)", capsys.readouterr().out).group(1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    async def line_with(stream, text, lines):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"serve exited before logging {text!r}:\n{''.join(lines)}"
            lines.append(line)
            if text in line:
                return

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callagent", "serve", "--port", str(port), env=env, cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    try:
        await asyncio.wait_for(line_with(proc.stderr, "serving on", lines), 60)
        async with aiohttp.ClientSession() as client:
            ws = await client.ws_connect(f"{base}/media-stream")
            await ws.send_bytes(start_frame(call_control_id="v3:live"))
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(line_with(proc.stderr, "draining", lines), 30)

            ready = await client.get(f"{base}/readyz")
            assert ready.status == 503 and (await ready.json())["checks"]["accepting"] == "draining"
            body, headers = signed_webhook("call.answered", {"call_control_id": "v3:live"})
            assert (await client.post(f"{base}/webhook/telnyx", data=body, headers=headers)).status == 200
            start = await client.post(f"{base}/api/calls/start", json={"to": "+14155550123"},
                                      headers={"Authorization": f"Bearer {secret}"})
            assert start.status == 503 and start.headers["Retry-After"]
            assert proc.returncode is None and not ws.closed

            await ws.close()  # the call ends
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        rest = (await proc.stderr.read()).decode()
        assert "drained: 0 call(s) handed over" in "".join(lines) + rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bench_stt_engine_reaches_the_engine_process_and_bad_names_are_refused(monkeypatch, capsys):
    import pytest

    from bench import runner
    from callagent.cli import build_parser, main

    seen = {}

    async def fake_run_bench(options):
        seen["engine"] = options.stt_engine
        return 0

    monkeypatch.setattr(runner, "run_bench", fake_run_bench)
    assert main(["bench", "--calls", "1", "--stt-engine", "telnyx"]) == 0
    assert seen["engine"] == "telnyx"
    assert build_parser().parse_args(["bench"]).stt_engine == "deepgram"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--stt-engine", "whisperx"])
    assert "invalid choice" in capsys.readouterr().err


async def test_call_follows_a_call_through_the_api_and_explains_refusals(monkeypatch, capsys):
    """`callagent call` against a server speaking the REST API: the start body it sends, each turn
    printed once as it is recorded, the summary, and the exit status."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    sent: list[dict] = []
    polls = {"n": 0}
    turn = {"caller_text": "Hi there", "agent_text": "Hello!", "interrupted": False,
            "latency": {"turn_latency_ms": 312.0, "speculative": True, "stages_ms": {"endpointing": 300}},
            "end_reason": "vad", "hold": None, "contour": False, "speculation": "kept", "merged": True}

    async def start(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer ck_good":
            return web.json_response({"error": {"code": "unauthorized", "message": "invalid API key"}}, status=401)
        sent.append(await request.json())
        return web.json_response({"success": True, "call_id": "c1", "call_control_id": "v3:x",
                                  "status": "initiated"}, status=201)

    async def detail(request: web.Request) -> web.Response:
        polls["n"] += 1
        if polls["n"] == 1:
            return web.json_response({"status": "answered", "turns": [turn]})
        return web.json_response({"status": "completed", "turns": [turn], "summary": "They said hello.",
                                  "outcome": {"outcome": "resolved"}})

    async def scenario(argv):
        app = web.Application()
        app.router.add_post("/api/calls/start", start)
        app.router.add_get("/api/calls/{id}", detail)
        server = TestServer(app)
        await server.start_server()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, main, [*argv, "--url", str(server.make_url(""))])
        finally:
            await server.close()

    monkeypatch.setattr("callagent.call.POLL_S", 0.01)
    monkeypatch.delenv("CALLAGENT_API_KEY", raising=False)
    assert await scenario(["call", "+15551234567", "--api-key", "ck_good", "--personality", "sales"]) == 0
    out = capsys.readouterr().out
    assert sent == [{"to": "+15551234567", "from": "+15550100000", "agent_config": {"personality": "sales"}}]
    assert out.count("caller: Hi there") == 1 and "turn latency 312 ms speculative (endpointing 300)" in out
    assert "ended: vad after more speech (merged), speculation kept" in out
    assert "summary: They said hello." in out

    assert await scenario(["call", "+15551234567", "--api-key", "ck_bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callagent call: invalid API key") and "--api-key" in err
    assert main(["call", "+15551234567"]) == 2
    assert "CALLAGENT_API_KEY" in capsys.readouterr().err
