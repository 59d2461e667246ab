"""Carrier-side helpers for engine tests: Telnyx frames as the carrier would send them."""

from __future__ import annotations

import base64

import orjson

from engine.codecs import PCMU


def start_frame(encoding: str = "PCMU", sample_rate: int = 8000, call_control_id: str = "v3:test") -> bytes:
    return orjson.dumps({
        "event": "start", "sequence_number": "1", "stream_id": "stream-1",
        "start": {"call_control_id": call_control_id, "client_state": None,
                  "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1}},
    })


def media_frame(chunk: int, ulaw: bytes, track: str = "inbound") -> bytes:
    return orjson.dumps({
        "event": "media", "sequence_number": str(chunk + 1), "stream_id": "stream-1",
        "media": {"track": track, "chunk": str(chunk), "timestamp": str(chunk * 20),
                  "payload": base64.b64encode(ulaw).decode()},
    })


def media_frames(pcm: bytes, first_chunk: int = 1) -> list[bytes]:
    ulaw = PCMU.encode(pcm)
    return [media_frame(first_chunk + i, ulaw[i * 160:(i + 1) * 160]) for i in range(len(ulaw) // 160)]
