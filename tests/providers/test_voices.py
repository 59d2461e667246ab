"""Agent voices as users write them: the design's aliases, full Telnyx ids, each TTS's own
voices, and a refusal that names the accepted forms without repeating the value."""

from __future__ import annotations

import pytest

from engine.providers.config import ProvidersConfig
from engine.providers.espeak_tts import find_espeak
from engine.providers.voices import (
    NATURAL,
    NATURAL_HD,
    UnknownVoice,
    catalogue_for,
    espeak_voices,
    speak_voice,
    telnyx_catalogue,
)

HOSTILE = "<script>alert(1)</script>"


def test_aliases_map_to_documented_telnyx_voices():
    telnyx = telnyx_catalogue()
    assert telnyx.resolve("natural") == NATURAL == "Telnyx.Natural.allison"
    assert telnyx.resolve("natural_hd") == NATURAL_HD == "Telnyx.NaturalHD.astra"
    for full in ("Telnyx.NaturalHD.luna", "Telnyx.NaturalHD.albion", "Telnyx.Natural.brook"):
        assert telnyx.resolve(full) == full


@pytest.mark.parametrize("voice", [
    "Telnyx.KokoroTTS.af",      # answers in MP3 whatever the format asked: fails on the first reply
    "Telnyx.Ultra.x",           # REST only
    "AWS.Polly.Joanna-Neural",  # linear16 over the WebSocket not documented: only when the operator allows
    "astra", "Telnyx.NaturalHD.", "Telnyx.NaturalHD.a b", "telnyx.naturalhd.astra", "natural-hd", "",
    HOSTILE,
])
def test_the_telnyx_tts_refuses_other_voices_naming_the_forms(voice):
    with pytest.raises(UnknownVoice) as refused:
        telnyx_catalogue().resolve(voice)
    message = str(refused.value)
    assert "natural_hd" in message and "Telnyx.NaturalHD.<voice>" in message
    assert message == telnyx_catalogue().describe()  # the same whatever was sent: nothing echoed


def test_the_operator_can_allow_more_voice_families():
    catalogue = catalogue_for(ProvidersConfig(tts_extra_voices=("AWS.Polly.*", "Azure.en-US-AvaNeural")))
    assert catalogue.resolve("AWS.Polly.Joanna-Neural") == "AWS.Polly.Joanna-Neural"
    assert catalogue.resolve("Azure.en-US-AvaNeural") == "Azure.en-US-AvaNeural"
    with pytest.raises(UnknownVoice) as refused:
        catalogue.resolve("Azure.en-GB-SoniaNeural")
    assert "AWS.Polly.<voice>" in str(refused.value)
    with pytest.raises(UnknownVoice):
        catalogue.resolve("AWS.Polly.")


def test_openai_takes_its_own_voices_and_speaks_telnyx_ones_with_its_default():
    openai = catalogue_for(ProvidersConfig(tts="openai"))
    assert openai.resolve("coral") == "coral"
    assert openai.resolve("natural_hd") == "alloy"  # a built-in personality's voice still works
    assert openai.resolve("Telnyx.NaturalHD.luna") == "alloy"
    with pytest.raises(UnknownVoice) as refused:
        openai.resolve("Coral ")
    assert "coral" in str(refused.value) and "natural_hd" in str(refused.value)
    compatible = catalogue_for(ProvidersConfig(tts="openai", tts_extra_voices=("af_heart",)))
    assert compatible.resolve("af_heart") == "af_heart"


def test_piper_takes_its_bundled_voice():
    piper = catalogue_for(ProvidersConfig(tts="piper"))
    assert piper.resolve("en_US-joe-medium") == "en_US-joe-medium"
    assert piper.resolve("natural") == "en_US-joe-medium"
    with pytest.raises(UnknownVoice):
        piper.resolve("en_GB-alan-low")


@pytest.mark.skipif(find_espeak() is None, reason="espeak-ng is not installed")
def test_espeak_takes_its_installed_voices():
    assert {"en-us", "en-gb", "de"} <= espeak_voices()
    espeak = catalogue_for(ProvidersConfig(tts="espeak", espeak_voice="en-us"))
    assert espeak.resolve("en-gb") == "en-gb"
    assert espeak.resolve("natural_hd") == "en-us"
    with pytest.raises(UnknownVoice) as refused:
        espeak.resolve("xx-nowhere")
    assert "espeak-ng" in str(refused.value)
    assert espeak.speak_as("xx-nowhere") == "en-us"  # never reaches the process's argv


def test_espeak_voices_is_empty_without_the_program():
    assert espeak_voices("/nonexistent/espeak-ng") == frozenset()


@pytest.mark.parametrize("voice,spoken", [
    ("natural_hd", NATURAL_HD), ("natural", NATURAL), ("AWS.Polly.Joanna-Neural", "AWS.Polly.Joanna-Neural"),
    ("Azure.en-US-AvaNeural", "Azure.en-US-AvaNeural"), ("Telnyx.KokoroTTS.af", "Telnyx.KokoroTTS.af"),
    ("female", "female"),
])
def test_call_control_speak_takes_every_documented_form(voice, spoken):
    assert speak_voice(voice) == spoken


@pytest.mark.parametrize("voice", ["Joanna", "AWS.", "a.b.c.d", HOSTILE, "female "])
def test_call_control_speak_refuses_other_voices(voice):
    with pytest.raises(UnknownVoice) as refused:
        speak_voice(voice)
    assert "male or female" in str(refused.value) and HOSTILE not in str(refused.value)
    with pytest.raises(UnknownVoice) as other:
        speak_voice("x")
    assert str(refused.value) == str(other.value)  # nothing of the value echoed


def test_serve_refuses_settings_whose_voices_the_tts_does_not_take(tmp_path):
    from callagent.wiring import SettingsError, check_voices
    from control_plane.settings import Settings

    personalities = tmp_path / "personalities.toml"
    personalities.write_text('[personalities.desk]\nsystem_prompt = "You answer."\nvoice = "Telnyx.KokoroTTS.af"\n')
    with pytest.raises(SettingsError, match="personality 'desk': unknown voice"):
        check_voices(Settings(_env_file=None, personalities_file=personalities))
    with pytest.raises(SettingsError, match="CALLAGENT_AGENT__VOICE: unknown voice"):
        check_voices(Settings(_env_file=None, agent={"voice": "astra"}))
    check_voices(Settings(_env_file=None, agent={"voice": "natural"}))
    allowed = Settings(_env_file=None, personalities_file=personalities,
                       providers={"tts_extra_voices": ["Telnyx.KokoroTTS.*"]})
    check_voices(allowed)
