"""Providers as plugins (issue 18, item 3): found through ``callagent.providers`` entry
points, chosen by name with their own settings block; the built-ins declared the same way;
an unknown name is a one-line settings error; an LLM key needs no Telnyx key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from callagent.settings_check import SettingsError
from callagent.wiring import build_providers
from control_plane.settings import Settings
from engine.providers import registry
from engine.providers.base import SpeechToText
from engine.providers.deepgram_stt import DeepgramSpeechToText
from engine.providers.openai_chat import OpenAIChatModel
from engine.providers.telnyx_stt import TelnyxSpeechToText
from engine.providers.telnyx_tts import TelnyxTextToSpeech


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greeting: str
    rate: int = 8000


class EchoStt(SpeechToText):
    def __init__(self, options: EchoOptions) -> None:
        self.options = options
        self.closed = False

    async def open(self, *, sample_rate, on_transcript, on_error):
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed = True


def echo_stt(context: registry.ProviderContext) -> EchoStt:
    """A plugin's factory, as a package would publish it."""
    return EchoStt(context.options_as(EchoOptions))


@pytest.fixture
def echo_plugin(tmp_path, monkeypatch):
    """A package declaring stt.echo, installed the way pip does it: a dist-info on sys.path."""
    dist = tmp_path / "callagent_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: callagent-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[callagent.providers]\nstt.echo = {__name__}:echo_stt\nstt.telnyx = {__name__}:echo_stt\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def settings(**providers) -> Settings:
    return Settings(_env_file=None, telnyx_api_key=None, providers={"mode": "local", **providers})


def test_the_built_ins_are_declared_as_entry_points():
    assert registry.installed("stt") == ["deepgram", "telnyx", "whisper"]
    assert registry.installed("tts") == ["espeak", "openai", "piper", "telnyx"]
    assert registry.installed("llm") == ["openai"]


async def test_an_unknown_provider_is_one_settings_line_listing_the_installed_ones():
    with pytest.raises(SettingsError) as caught:
        await build_providers(settings(stt="deepgrm"))
    assert caught.value.lines == [
        "CALLAGENT_PROVIDERS__STT: no stt provider 'deepgrm' is installed; installed: deepgram, telnyx, whisper"]
    with pytest.raises(SettingsError) as caught:
        await build_providers(settings(tts="acme", llm="acme"))
    assert len(caught.value.lines) == 2 and caught.value.lines[1].endswith("installed: openai")


async def test_a_plugin_is_chosen_by_name_with_its_own_settings_block(echo_plugin):
    assert "echo" in registry.installed("stt")
    providers = await build_providers(settings(stt="echo", options={"echo": {"greeting": "hi"}}))
    stt = providers.stt
    await providers.aclose()
    assert isinstance(stt, EchoStt) and stt.options == EchoOptions(greeting="hi")
    assert stt.closed  # closed with the rest at shutdown
    # A plugin cannot take over a built-in's name.
    assert registry.discover()["stt.telnyx"].value == "engine.providers.builtin:telnyx_stt"


async def test_a_plugins_bad_options_are_settings_lines_naming_the_variable(echo_plugin):
    with pytest.raises(SettingsError) as caught:
        await build_providers(settings(stt="echo", options={"echo": {"rate": "fast", "colour": 1}}))
    assert sorted(caught.value.lines) == [
        "CALLAGENT_PROVIDERS__OPTIONS__ECHO__COLOUR: Extra inputs are not permitted",
        "CALLAGENT_PROVIDERS__OPTIONS__ECHO__GREETING: Field required",
        "CALLAGENT_PROVIDERS__OPTIONS__ECHO__RATE: Input should be a valid integer, unable to parse string as an "
        "integer",
    ]


async def test_local_mode_hands_the_emulators_to_the_built_ins():
    providers = await build_providers(settings(stt="deepgram"))
    stt, tts, llm, local = providers.stt, providers.tts, providers.llm, providers.local
    await providers.aclose()
    assert isinstance(stt, DeepgramSpeechToText) and stt.options.url == local.deepgram_url
    assert isinstance(tts, TelnyxTextToSpeech) and tts.config.url == local.tts_url
    assert isinstance(llm, OpenAIChatModel) and llm.config.base_url == local.llm_base_url


async def test_an_llm_key_needs_no_telnyx_key():
    async def build(**values):
        providers = await build_providers(Settings(_env_file=None, **values))
        try:
            return providers.stt, providers.llm
        finally:
            await providers.aclose()

    # No Telnyx account: emulated Telnyx, and the real model with its own key.
    stt, llm = await build(telnyx_api_key=None, providers={
        "llm_api_key": "sk-test", "llm_base_url": "https://api.openai.com/v1", "llm_model": "gpt-4o-mini"})
    assert isinstance(stt, TelnyxSpeechToText) and stt.config.url.startswith("ws://127.0.0.1")
    assert llm.config.base_url == "https://api.openai.com/v1" and llm.config.model == "gpt-4o-mini"
    assert llm.config.api_key.get_secret_value() == "sk-test"
    # Remote with a Telnyx key: Telnyx's inference API takes that key; another API needs its own.
    _, llm = await build(telnyx_api_key="KEY_T", providers={"mode": "remote"})
    assert llm.config.api_key.get_secret_value() == "KEY_T"
    with pytest.raises(SettingsError) as caught:
        await build(telnyx_api_key="KEY_T", providers={"mode": "remote",
                                                      "llm_base_url": "https://api.openai.com/v1"})
    assert caught.value.lines == ["CALLAGENT_PROVIDERS__LLM=openai needs CALLAGENT_PROVIDERS__LLM_API_KEY"]
    # Remote without any Telnyx key: Deepgram STT and OpenAI TTS and LLM, each with its own key.
    stt, llm = await build(telnyx_api_key=None, providers={
        "mode": "remote", "stt": "deepgram", "tts": "openai", "openai_api_key": "sk-o", "llm_api_key": "sk-l",
        "llm_base_url": "https://api.openai.com/v1", "options": {"deepgram": {"api_key": "dg-key"}}})
    assert isinstance(stt, DeepgramSpeechToText) and stt.options.url == "wss://api.deepgram.com/v1/listen"
    with pytest.raises(SettingsError) as caught:
        await build(telnyx_api_key=None, providers={"mode": "remote", "llm_api_key": "sk-l"})
    assert caught.value.lines == ["CALLAGENT_PROVIDERS__STT=telnyx needs TELNYX_API_KEY"]


async def test_an_uninstalled_function_tool_in_the_default_agent_is_a_settings_line():
    with pytest.raises(SettingsError) as caught:
        await build_providers(Settings(_env_file=None, telnyx_api_key=None,
                                       agent={"function_tools": ["order_status"]}))
    (line,) = caught.value.lines
    assert line.startswith("CALLAGENT_AGENT__FUNCTION_TOOLS: unknown function tools in function_tools; installed:")


def test_a_providers_options_never_print():
    settings = Settings(_env_file=None, providers={"options": {"deepgram": {"api_key": "dg-secret-value"}}})
    assert "dg-secret-value" not in repr(settings) and "dg-secret-value" not in str(settings.providers)
