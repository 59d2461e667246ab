"""``callagent demo``: a local call through the real media engine, no configuration.

Starts the server in-process on a free port, connects a simulated Telnyx media
stream to it, and has a synthetic caller speak, wait for the agent, then cut the
agent off. Prints each step with the latency measured at the carrier edge and the
engine's own per-stage accounting.

Until the conversation pipeline (STT -> LLM -> TTS) lands, the agent side is a
scripted replier: it answers each finished caller turn with a fixed stretch of
synthetic speech. Everything between the socket and that reply — protocol, jitter
buffer, VAD, endpointing, barge-in, paced playout, latency accounting — is the
production engine.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from control_plane.app import METRICS_KEY, create_app
from control_plane.settings import Settings
from engine.endpointing import EndpointEvent
from engine.session import MediaListener, MediaSession

from .carrier import CallerStream, Utterance
from .signals import voiced

REPLY_SECONDS = 1.5


class ScriptedReplyAgent(MediaListener):
    """Answers every finished caller turn with synthetic speech (stand-in for the pipeline)."""

    def __init__(self, reply: bytes) -> None:
        self.session: MediaSession | None = None
        self.replies = 0
        self.reply = reply

    def on_start(self, session: MediaSession, start) -> None:
        self.session = session

    def on_endpoint(self, event: EndpointEvent, now: float) -> None:
        if event is EndpointEvent.TURN_END and self.session is not None:
            self.replies += 1
            self.session.speak(self.replies, self.reply)
            self.session.finish_utterance(self.replies)


def _script() -> list[Utterance]:
    return [
        Utterance(voiced(1.2, seed=11), delay=0.4, label="Hi, I'd like to check my order"),
        Utterance(voiced(0.9, seed=12), delay=0.4, label="It's number four two seven"),
        Utterance(voiced(0.7, seed=13), delay=0.5, barge_in=True, label="Sorry, wait, one more thing"),
    ]


async def run_demo(calls: int = 1) -> int:
    settings = Settings()
    # Synthesised before the clock starts: generating audio is not what the demo measures.
    reply = voiced(REPLY_SECONDS, f0=180.0, seed=1)
    script = _script()
    app = create_app(settings, listener_factory=lambda request: ScriptedReplyAgent(reply))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}{settings.server.media_path}"
    print(f"engine listening on {url}")
    print("note: the STT -> LLM -> TTS pipeline is not built yet; the agent replies with "
          f"{REPLY_SECONDS:.1f} s of synthetic speech to every turn.\n")
    t0 = time.monotonic()

    def show(call_no: int):
        def emit(text: str) -> None:
            if calls == 1 or call_no == 0:
                print(f"[{time.monotonic() - t0:6.2f}s] call {call_no}: {text}")
        return emit

    try:
        async with aiohttp.ClientSession() as client:
            streams = [CallerStream(url, script, on_event=show(i)) for i in range(calls)]
            results = await asyncio.gather(*(s.run(client) for s in streams))
        metrics = app[METRICS_KEY]
        for _ in range(50):
            if not metrics.sessions.live:
                break
            await asyncio.sleep(0.02)
        latencies = [t.latency_ms for r in results for t in r.turns if t.latency_ms is not None and t.clear_received is None]
        reactions = [t.barge_in_reaction_ms for r in results for t in r.turns if t.barge_in_reaction_ms is not None]
        totals = metrics.sessions.totals()
        print("\nsummary")
        print(f"  calls completed          {len(results)}")
        if latencies:
            print(f"  turn latency (carrier)   median {statistics.median(latencies):.0f} ms over {len(latencies)} turns"
                  f" (includes the {settings.engine.endpointing.end_of_turn_ms} ms end-of-turn silence)")
        if reactions:
            print(f"  barge-in reaction        median {statistics.median(reactions):.0f} ms over {len(reactions)}"
                  f" (includes the {settings.engine.endpointing.min_barge_in_ms} ms minimum caller speech)")
        print(f"  frames in/out            {totals['frames_in']} / {totals['frames_out']}")
        print(f"  barge-ins / rejected     {totals['barge_ins']} / {totals['rejected_barge_ins']}")
        print(f"  late outbound frames     {totals['late_outbound_frames']}")
        ok = all(len(r.turns) == 3 for r in results) and len(reactions) == calls and len(latencies) == 2 * calls
        print("\nresult: " + ("OK" if ok else "FAILED: some turn was not answered or not interrupted"))
        return 0 if ok else 1
    finally:
        await runner.cleanup()
