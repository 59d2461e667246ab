"""``python -m bench.telnyx_emulator``: run the emulator until interrupted.

Prints the base URL, API key and webhook public key to configure the app with
(``TELNYX_API_KEY``, ``TELNYX_PUBLIC_KEY``, and the client's ``base_url``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .app import start_emulator
from .calls import EventFields, NumberBehaviour


async def run(host: str, port: int, api_key: str, webhook_url: str | None, ring_s: float, time_scale: float,
              event_fields: EventFields = "sdk") -> None:
    emulator = await start_emulator(host=host, port=port, api_key=api_key, webhook_url=webhook_url,
                                    time_scale=time_scale, default_behaviour=NumberBehaviour(ring_s=ring_s),
                                    event_fields=event_fields)
    print(f"telnyx emulator: base_url={emulator.base_url}")
    print(f"  api key: {api_key} (emulator only)")
    print(f"  webhook public key: {emulator.public_key_b64}")
    print(f"  webhooks to: {webhook_url or '(per-dial webhook_url only)'}")
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telnyx_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--ring-s", type=float, default=1.0, help="default ring time before a number answers")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplier for every emulated delay")
    parser.add_argument("--event-fields", choices=("sdk", "docs"), default="sdk",
                        help="webhook payload fields: the SDK's models only, or also those Telnyx's docs show")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.host, args.port, args.api_key, args.webhook_url, args.ring_s, args.time_scale,
                        args.event_fields))


if __name__ == "__main__":
    main()
