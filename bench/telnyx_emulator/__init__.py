"""A local Telnyx for tests and benches: Call Control REST, signed webhooks, media streams.

    emulator = await start_emulator(webhook_url="http://127.0.0.1:8080/telnyx/webhooks")
    client = TelnyxClient(emulator.api_key, base_url=emulator.base_url)
    ...
    await emulator.close()

See :mod:`.calls` for the call lifecycle, :mod:`.media` for the callee interfaces
(``Callee``, ``PlayQueue``, ``AppAudioReceiver``, ``Pacer``, ``Impairment``) and
:mod:`.webhooks` for delivery and its test switches.
"""

from .app import Faults, RateLimit, RequestRecord, RunningEmulator, start_emulator
from .calls import ApiProblem, CallInfo, DialLogEntry, NumberBehaviour, Switchboard
from .media import (
    AppAudioReceiver,
    Callee,
    CalleeFactory,
    FrameWriter,
    ImpairedWebSocket,
    Impairment,
    MarkEcho,
    MediaFormat,
    MediaStream,
    Pacer,
    PlayQueue,
    SilentCallee,
)
from .webhooks import Delivery, DeliverySwitches, WebhookDispatcher

__all__ = [
    "ApiProblem",
    "AppAudioReceiver",
    "CallInfo",
    "Callee",
    "CalleeFactory",
    "Delivery",
    "DeliverySwitches",
    "DialLogEntry",
    "Faults",
    "FrameWriter",
    "ImpairedWebSocket",
    "Impairment",
    "MarkEcho",
    "MediaFormat",
    "MediaStream",
    "NumberBehaviour",
    "Pacer",
    "PlayQueue",
    "RateLimit",
    "RequestRecord",
    "RunningEmulator",
    "SilentCallee",
    "Switchboard",
    "WebhookDispatcher",
    "start_emulator",
]
