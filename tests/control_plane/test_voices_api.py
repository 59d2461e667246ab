"""Voices at the API: the design's aliases start calls; an unknown voice is a 400 at
POST /api/calls/start and at campaign creation, naming the accepted forms and echoing
nothing, before any row is written or number dialled (it used to fail on the first reply)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import make_settings
from .fakes import harness

HOSTILE = "Telnyx.KokoroTTS.<img src=x>"


async def _start(h: Any, headers: dict[str, str], voice: str) -> Any:
    return await h.client.post("/api/calls/start", headers=headers, json={
        "to": "+14155550123", "from": "+14155550100", "agent_config": {"personality": "friendly", "voice": voice}})


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unknown_voices_are_a_400_naming_the_forms_and_aliases_start(h):
    _, headers = await h.org()
    for voice in ("astra", "Telnyx.KokoroTTS.af", HOSTILE, "AWS.Polly.Joanna-Neural"):
        response = await _start(h, headers, voice)
        assert response.status == 400, voice
        error = (await response.json())["error"]
        assert error["code"] == "invalid_voice"
        assert "natural_hd" in error["message"] and "Telnyx.NaturalHD.<voice>" in error["message"]
        assert error["details"][0]["loc"] == ["agent_config", "voice"]
        assert "<img" not in await response.text()
    assert h.telnyx.named("dial") == []
    for voice in ("natural", "natural_hd", "Telnyx.NaturalHD.luna"):
        response = await _start(h, headers, voice)
        assert response.status == 201, (voice, await response.text())
    assert len(h.telnyx.named("dial")) == 3


async def test_the_accepted_voices_follow_the_tts_in_use(tmp_path):
    settings = make_settings(tmp_path, providers={"tts": "openai", "tts_extra_voices": ["af_heart"]})
    async with harness(settings) as h:
        _, headers = await h.org()
        assert (await _start(h, headers, "coral")).status == 201
        assert (await _start(h, headers, "af_heart")).status == 201
        assert (await _start(h, headers, "natural_hd")).status == 201  # spoken with OpenAI's default
        refused = await _start(h, headers, "Coral")
        assert refused.status == 400
        assert "alloy" in (await refused.json())["error"]["message"]


async def test_campaign_creation_checks_the_agent_voice_and_the_voicemail_voice(tmp_path):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        _, headers = await h.org()

        async def create(agent_voice: str, voicemail: dict[str, Any] | None = None) -> Any:
            body = {"name": "c", "caller_numbers": ["+14155550100"],
                    "agent_config": {"personality": "friendly", "voice": agent_voice}}
            if voicemail is not None:
                body["voicemail"] = voicemail
            return await h.client.post("/api/campaigns", json=body, headers=headers)

        refused = await create(HOSTILE)
        assert refused.status == 400 and (await refused.json())["error"]["code"] == "invalid_voice"
        assert "<img" not in await refused.text()
        bad_voicemail = await create("natural_hd", {"action": "message", "message": "Hi", "voice": "<b>Joanna</b>"})
        assert bad_voicemail.status == 400
        assert "male or female" in await bad_voicemail.text() and "<b>" not in await bad_voicemail.text()
        ok = await create("natural_hd", {"action": "message", "message": "Hi", "voice": "AWS.Polly.Joanna-Neural"})
        assert ok.status == 201, await ok.text()
        assert (await ok.json())["agent_config"]["voice"] == "natural_hd"
