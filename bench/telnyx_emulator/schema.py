"""What Telnyx accepts and sends, as its official SDK defines it (telnyx-python 4.189.0).

``REQUESTS``: per Call Control request (``dial`` and the action URL segments), the body keys
the SDK's params ``TypedDict`` knows, the required ones and the allowed values of enum keys.
``EVENT_FIELDS``: per webhook type, the ``payload`` fields of the SDK's event model.
``DOCS_ONLY_FIELDS``: fields Telnyx's own docs show in example payloads but the SDK lacks;
the emulator sends them only when asked (``event_fields="docs"``), so the app is tested
with and without them. ``tests/telnyx/test_sdk_contract.py`` fails when these tables and
the installed SDK disagree; the tables are copied here because the emulator must not need
the SDK at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DOCS_ONLY_FIELDS", "EVENT_FIELDS", "REQUESTS", "RequestShape"]


@dataclass(frozen=True, slots=True)
class RequestShape:
    keys: frozenset[str]
    required: frozenset[str] = frozenset()
    enums: dict[str, frozenset[Any]] | None = None


_COMMON = frozenset({"client_state", "command_id"})

REQUESTS: dict[str, RequestShape] = {
    'dial': RequestShape(_COMMON | frozenset({
        'answering_machine_detection', 'answering_machine_detection_config', 'assistant', 'audio_url',
        'billing_group_id', 'bridge_intent', 'bridge_on_answer', 'conference_config', 'connection_id',
        'conversation_relay_config', 'custom_headers', 'deepfake_detection', 'dialogflow_config', 'diversion',
        'enable_dialogflow', 'from', 'from_display_name', 'link_to', 'media_encryption', 'media_name',
        'park_after_unbridge', 'preferred_codecs', 'prevent_double_bridge', 'privacy', 'record',
        'record_channels', 'record_custom_file_name', 'record_format', 'record_max_length',
        'record_timeout_secs', 'record_track', 'record_trim', 'retry_on_timeout', 'route_to_mobile',
        'send_digits_on_answer', 'send_silence_when_idle', 'sip_auth_password', 'sip_auth_username',
        'sip_headers', 'sip_region', 'sip_transport_protocol', 'sound_modifications', 'stream_auth_token',
        'stream_bidirectional_codec', 'stream_bidirectional_mode', 'stream_bidirectional_sampling_rate',
        'stream_bidirectional_target_legs', 'stream_codec', 'stream_establish_before_call_originate',
        'stream_track', 'stream_url', 'supervise_call_control_id', 'supervisor_role', 'time_limit_secs',
        'timeout_secs', 'to', 'transcription', 'transcription_config', 'webhook_retries_policies',
        'webhook_url', 'webhook_url_method', 'webhook_urls', 'webhook_urls_method',
    }), required=frozenset({'connection_id', 'from', 'to'}), enums={
        'answering_machine_detection': frozenset({
            'detect', 'detect_beep', 'detect_words', 'disabled', 'greeting_end', 'premium',
            'premium_ios_call_screening_detection',
        }),
        'media_encryption': frozenset({'DTLS', 'SRTP', 'disabled'}),
        'privacy': frozenset({'id', 'none'}),
        'record': frozenset({'record-from-answer'}),
        'record_channels': frozenset({'dual', 'single'}),
        'record_format': frozenset({'mp3', 'wav'}),
        'record_track': frozenset({'both', 'inbound', 'outbound'}),
        'record_trim': frozenset({'trim-silence'}),
        'sip_region': frozenset({'Australia', 'Canada', 'Europe', 'Middle East', 'US'}),
        'sip_transport_protocol': frozenset({'TCP', 'TLS', 'UDP'}),
        'stream_bidirectional_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU'}),
        'stream_bidirectional_mode': frozenset({'mp3', 'rtp'}),
        'stream_bidirectional_sampling_rate': frozenset({16000, 22050, 24000, 48000, 8000}),
        'stream_bidirectional_target_legs': frozenset({'both', 'opposite', 'self'}),
        'stream_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU', 'default'}),
        'stream_track': frozenset({'both_tracks', 'inbound_track', 'outbound_track'}),
        'supervisor_role': frozenset({'barge', 'monitor', 'whisper'}),
        'webhook_url_method': frozenset({'GET', 'POST'}),
        'webhook_urls_method': frozenset({'GET', 'POST'}),
    }),
    'answer': RequestShape(_COMMON | frozenset({
        'assistant', 'billing_group_id', 'conversation_relay_config', 'custom_headers', 'deepfake_detection',
        'preferred_codecs', 'record', 'record_channels', 'record_custom_file_name', 'record_format',
        'record_max_length', 'record_timeout_secs', 'record_track', 'record_trim', 'send_silence_when_idle',
        'sip_headers', 'sound_modifications', 'stream_bidirectional_codec', 'stream_bidirectional_mode',
        'stream_bidirectional_target_legs', 'stream_codec', 'stream_track', 'stream_url', 'transcription',
        'transcription_config', 'webhook_retries_policies', 'webhook_url', 'webhook_url_method',
        'webhook_urls', 'webhook_urls_method',
    }), enums={
        'preferred_codecs': frozenset({'G722,PCMU,PCMA,G729,OPUS,VP8,H264'}),
        'record': frozenset({'record-from-answer'}),
        'record_channels': frozenset({'dual', 'single'}),
        'record_format': frozenset({'mp3', 'wav'}),
        'record_track': frozenset({'both', 'inbound', 'outbound'}),
        'record_trim': frozenset({'trim-silence'}),
        'stream_bidirectional_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU'}),
        'stream_bidirectional_mode': frozenset({'mp3', 'rtp'}),
        'stream_bidirectional_target_legs': frozenset({'both', 'opposite', 'self'}),
        'stream_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU', 'default'}),
        'stream_track': frozenset({'both_tracks', 'inbound_track', 'outbound_track'}),
        'webhook_url_method': frozenset({'GET', 'POST'}),
        'webhook_urls_method': frozenset({'GET', 'POST'}),
    }),
    'hangup': RequestShape(_COMMON | frozenset({
        'custom_headers', 'reason',
    })),
    'reject': RequestShape(_COMMON | frozenset({
        'cause',
    }), required=frozenset({'cause'}), enums={
        'cause': frozenset({'CALL_REJECTED', 'NOT_FOUND', 'TEMPORARILY_UNAVAILABLE', 'USER_BUSY'}),
    }),
    'streaming_start': RequestShape(_COMMON | frozenset({
        'custom_parameters', 'dialogflow_config', 'enable_dialogflow', 'stream_auth_token',
        'stream_bidirectional_codec', 'stream_bidirectional_mode', 'stream_bidirectional_sampling_rate',
        'stream_bidirectional_target_legs', 'stream_codec', 'stream_track', 'stream_url',
    }), enums={
        'stream_bidirectional_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU'}),
        'stream_bidirectional_mode': frozenset({'mp3', 'rtp'}),
        'stream_bidirectional_sampling_rate': frozenset({16000, 22050, 24000, 48000, 8000}),
        'stream_bidirectional_target_legs': frozenset({'both', 'opposite', 'self'}),
        'stream_codec': frozenset({'AMR-WB', 'G722', 'L16', 'OPUS', 'PCMA', 'PCMU', 'default'}),
        'stream_track': frozenset({'both_tracks', 'inbound_track', 'outbound_track'}),
    }),
    'streaming_stop': RequestShape(_COMMON | frozenset({
        'stream_id',
    })),
    'speak': RequestShape(_COMMON | frozenset({
        'language', 'loop', 'payload', 'payload_type', 'service_level', 'stop', 'target_legs', 'voice',
        'voice_settings',
    }), required=frozenset({'payload', 'voice'}), enums={
        'language': frozenset({
            'arb', 'cmn-CN', 'cy-GB', 'da-DK', 'de-DE', 'en-AU', 'en-GB', 'en-GB-WLS', 'en-IN', 'en-US',
            'es-ES', 'es-MX', 'es-US', 'fr-CA', 'fr-FR', 'hi-IN', 'is-IS', 'it-IT', 'ja-JP', 'ko-KR', 'nb-NO',
            'nl-NL', 'pl-PL', 'pt-BR', 'pt-PT', 'ro-RO', 'ru-RU', 'sv-SE', 'tr-TR',
        }),
        'payload_type': frozenset({'ssml', 'text'}),
        'service_level': frozenset({'basic', 'premium'}),
        'target_legs': frozenset({'both', 'opposite', 'self'}),
    }),
    'gather': RequestShape(_COMMON | frozenset({
        'gather_id', 'initial_timeout_millis', 'inter_digit_timeout_millis', 'maximum_digits',
        'minimum_digits', 'terminating_digit', 'timeout_millis', 'valid_digits',
    })),
    'gather_stop': RequestShape(_COMMON),
    'send_dtmf': RequestShape(_COMMON | frozenset({
        'digits', 'duration_millis',
    }), required=frozenset({'digits'})),
    'transfer': RequestShape(_COMMON | frozenset({
        'answering_machine_detection', 'answering_machine_detection_config', 'audio_url', 'custom_headers',
        'diversion', 'early_media', 'from', 'from_display_name', 'media_encryption', 'media_name', 'mute_dtmf',
        'park_after_unbridge', 'preferred_codecs', 'privacy', 'record', 'record_channels',
        'record_custom_file_name', 'record_format', 'record_max_length', 'record_timeout_secs', 'record_track',
        'record_trim', 'route_to_mobile', 'send_digits_on_answer', 'sip_auth_password', 'sip_auth_username',
        'sip_headers', 'sip_region', 'sip_transport_protocol', 'sound_modifications',
        'target_leg_client_state', 'time_limit_secs', 'timeout_secs', 'to', 'webhook_retries_policies',
        'webhook_url', 'webhook_url_method', 'webhook_urls', 'webhook_urls_method',
    }), required=frozenset({'to'}), enums={
        'answering_machine_detection': frozenset({
            'detect', 'detect_beep', 'detect_words', 'disabled', 'greeting_end', 'premium',
            'premium_ios_call_screening_detection',
        }),
        'media_encryption': frozenset({'DTLS', 'SRTP', 'disabled'}),
        'mute_dtmf': frozenset({'both', 'none', 'opposite', 'self'}),
        'privacy': frozenset({'id', 'none'}),
        'record': frozenset({'record-from-answer'}),
        'record_channels': frozenset({'dual', 'single'}),
        'record_format': frozenset({'mp3', 'wav'}),
        'record_track': frozenset({'both', 'inbound', 'outbound'}),
        'record_trim': frozenset({'trim-silence'}),
        'sip_region': frozenset({'Australia', 'Canada', 'Europe', 'Middle East', 'US'}),
        'sip_transport_protocol': frozenset({'TCP', 'TLS', 'UDP'}),
        'webhook_url_method': frozenset({'GET', 'POST'}),
        'webhook_urls_method': frozenset({'GET', 'POST'}),
    }),
    'record_start': RequestShape(_COMMON | frozenset({
        'channels', 'custom_file_name', 'format', 'max_length', 'play_beep', 'recording_track', 'timeout_secs',
        'transcription', 'transcription_engine', 'transcription_language', 'transcription_max_speaker_count',
        'transcription_min_speaker_count', 'transcription_profanity_filter',
        'transcription_speaker_diarization', 'trim',
    }), required=frozenset({'channels', 'format'}), enums={
        'channels': frozenset({'dual', 'single'}),
        'format': frozenset({'mp3', 'wav'}),
        'recording_track': frozenset({'both', 'inbound', 'outbound'}),
        'transcription_engine': frozenset({'A', 'B', 'deepgram/nova-3'}),
        'transcription_language': frozenset({
            'af', 'af-ZA', 'am', 'am-ET', 'ar', 'ar-AE', 'ar-BH', 'ar-DZ', 'ar-EG', 'ar-IL', 'ar-IQ', 'ar-JO',
            'ar-KW', 'ar-LB', 'ar-MA', 'ar-MR', 'ar-OM', 'ar-PS', 'ar-QA', 'ar-SA', 'ar-TN', 'ar-YE', 'as',
            'auto_detect', 'az', 'az-AZ', 'ba', 'be', 'bg', 'bg-BG', 'bn', 'bn-BD', 'bn-IN', 'bo', 'br', 'bs',
            'bs-BA', 'ca', 'ca-ES', 'cs', 'cs-CZ', 'cy', 'da', 'da-DK', 'de', 'de-AT', 'de-CH', 'de-DE', 'el',
            'el-GR', 'en', 'en-AU', 'en-CA', 'en-GB', 'en-GH', 'en-HK', 'en-IE', 'en-IN', 'en-KE', 'en-NG',
            'en-NZ', 'en-PH', 'en-PK', 'en-SG', 'en-TZ', 'en-US', 'en-ZA', 'es', 'es-419', 'es-AR', 'es-BO',
            'es-CL', 'es-CO', 'es-CR', 'es-DO', 'es-EC', 'es-ES', 'es-GT', 'es-HN', 'es-MX', 'es-NI', 'es-PA',
            'es-PE', 'es-PR', 'es-PY', 'es-SV', 'es-US', 'es-UY', 'es-VE', 'et', 'et-EE', 'eu', 'eu-ES', 'fa',
            'fa-IR', 'fi', 'fi-FI', 'fil-PH', 'fo', 'fr', 'fr-BE', 'fr-CA', 'fr-CH', 'fr-FR', 'gl', 'gl-ES',
            'gu', 'gu-IN', 'ha', 'haw', 'he', 'hi', 'hi-IN', 'hr', 'hr-HR', 'ht', 'hu', 'hu-HU', 'hy', 'hy-AM',
            'id', 'id-ID', 'is', 'is-IS', 'it', 'it-CH', 'it-IT', 'iw-IL', 'ja', 'ja-JP', 'jv-ID', 'jw', 'ka',
            'ka-GE', 'kk', 'kk-KZ', 'km', 'km-KH', 'kn', 'kn-IN', 'ko', 'ko-KR', 'la', 'lb', 'ln', 'lo',
            'lo-LA', 'lt', 'lt-LT', 'lv', 'lv-LV', 'mg', 'mi', 'mk', 'mk-MK', 'ml', 'ml-IN', 'mn', 'mn-MN',
            'mr', 'mr-IN', 'ms', 'ms-MY', 'mt', 'my', 'my-MM', 'ne', 'ne-NP', 'nl', 'nl-BE', 'nl-NL', 'nn',
            'no', 'no-NO', 'oc', 'pa', 'pa-Guru-IN', 'pl', 'pl-PL', 'ps', 'pt', 'pt-BR', 'pt-PT', 'ro',
            'ro-RO', 'ru', 'ru-RU', 'rw-RW', 'sa', 'sd', 'si', 'si-LK', 'sk', 'sk-SK', 'sl', 'sl-SI', 'sn',
            'so', 'sq', 'sq-AL', 'sr', 'sr-RS', 'ss-latn-za', 'st-ZA', 'su', 'su-ID', 'sv', 'sv-SE', 'sw',
            'sw-KE', 'sw-TZ', 'ta', 'ta-IN', 'ta-LK', 'ta-MY', 'ta-SG', 'te', 'te-IN', 'tg', 'th', 'th-TH',
            'tk', 'tl', 'tn-latn-za', 'tr', 'tr-TR', 'ts-ZA', 'tt', 'uk', 'uk-UA', 'ur', 'ur-IN', 'ur-PK',
            'uz', 'uz-UZ', 've-ZA', 'vi', 'vi-VN', 'xh-ZA', 'yi', 'yo', 'yue-Hant-HK', 'zh', 'zh-TW', 'zu-ZA',
        }),
        'trim': frozenset({'trim-silence'}),
    }),
    'record_stop': RequestShape(_COMMON | frozenset({
        'recording_id',
    })),
    'record_pause': RequestShape(_COMMON | frozenset({
        'recording_id',
    })),
    'record_resume': RequestShape(_COMMON | frozenset({
        'recording_id',
    })),
    'playback_start': RequestShape(_COMMON | frozenset({
        'audio_type', 'audio_url', 'cache_audio', 'loop', 'media_name', 'overlay', 'playback_content', 'stop',
        'target_legs',
    }), enums={
        'audio_type': frozenset({'mp3', 'wav'}),
    }),
    'playback_stop': RequestShape(_COMMON | frozenset({
        'overlay', 'stop',
    })),
    'client_state_update': RequestShape(frozenset({
        'client_state',
    }), required=frozenset({'client_state'})),
}

_IDS = frozenset({"call_control_id", "call_leg_id", "call_session_id", "client_state", "connection_id"})

EVENT_FIELDS: dict[str, frozenset[str]] = {
    'call.initiated': _IDS | frozenset({
        'call_screening_result', 'caller_id_name', 'connection_codecs', 'custom_headers', 'direction', 'from',
        'offered_codecs', 'shaken_stir_attestation', 'shaken_stir_validated', 'sip_headers', 'start_time',
        'state', 'tags', 'to',
    }),
    'call.answered': _IDS | frozenset({
        'custom_headers', 'from', 'sip_headers', 'start_time', 'state', 'tags', 'to',
    }),
    'call.hangup': _IDS | frozenset({
        'call_quality_stats', 'custom_headers', 'from', 'hangup_cause', 'hangup_source', 'sip_hangup_cause',
        'sip_headers', 'start_time', 'state', 'tags', 'to',
    }),
    'call.bridged': _IDS | frozenset({'from', 'to'}),
    'call.dtmf.received': _IDS | frozenset({'digit', 'from', 'to'}),
    'call.gather.ended': _IDS | frozenset({'digits', 'from', 'status', 'to'}),
    'call.speak.started': _IDS,
    'call.speak.ended': _IDS | frozenset({'status'}),
    'call.playback.started': _IDS | frozenset({'media_name', 'media_url', 'overlay'}),
    'call.playback.ended': _IDS | frozenset({'media_name', 'media_url', 'overlay', 'status', 'status_detail'}),
    'call.recording.saved': frozenset({
        'call_leg_id', 'call_session_id', 'channels', 'client_state', 'connection_id', 'public_recording_urls',
        'recording_ended_at', 'recording_started_at', 'recording_urls',
    }),
    'call.machine.detection.ended': _IDS | frozenset({'from', 'result', 'to'}),
    'call.machine.greeting.ended': _IDS | frozenset({'from', 'result', 'to'}),
    'call.machine.premium.detection.ended': _IDS | frozenset({'from', 'result', 'to'}),
    'call.machine.premium.greeting.ended': _IDS | frozenset({'from', 'result', 'to'}),
    'streaming.started': _IDS | frozenset({'stream_url'}),
    'streaming.stopped': _IDS | frozenset({'stream_url'}),
    'streaming.failed': _IDS | frozenset({'failure_reason', 'stream_id', 'stream_params', 'stream_type'}),
}

# Docs-only fields, each with where Telnyx shows it (docs/telnyx-protocol.md §2.3):
# the storing-call-recordings page's sample payload, and the gather page ("gather_id is sent
# back in the call.gather.ended webhook").
DOCS_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "call.recording.saved": frozenset({"call_control_id", "recording_id", "format", "start_time", "end_time"}),
    "call.gather.ended": frozenset({"gather_id"}),
}
