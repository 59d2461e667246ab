"""Reading Telnyx's official SDK (``telnyx`` >= 4, a test extra) as a reference: the keys,
required keys and enum values of its request ``TypedDict``s, and the fields of its event
models. Nothing here was written alongside the client or the emulator, which is the point."""

from __future__ import annotations

import importlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
import typing_extensions as te

telnyx = pytest.importorskip("telnyx", minversion="4")

# Call Control: our action name (the URL segment) -> the SDK's params TypedDict.
REQUEST_MODELS: dict[str, str] = {
    "dial": "call_dial_params.CallDialParams",
    "answer": "calls.action_answer_params.ActionAnswerParams",
    "hangup": "calls.action_hangup_params.ActionHangupParams",
    "reject": "calls.action_reject_params.ActionRejectParams",
    "streaming_start": "calls.action_start_streaming_params.ActionStartStreamingParams",
    "streaming_stop": "calls.action_stop_streaming_params.ActionStopStreamingParams",
    "speak": "calls.action_speak_params.ActionSpeakParams",
    "gather": "calls.action_gather_params.ActionGatherParams",
    "gather_stop": "calls.action_stop_gather_params.ActionStopGatherParams",
    "send_dtmf": "calls.action_send_dtmf_params.ActionSendDtmfParams",
    "transfer": "calls.action_transfer_params.ActionTransferParams",
    "record_start": "calls.action_start_recording_params.ActionStartRecordingParams",
    "record_stop": "calls.action_stop_recording_params.ActionStopRecordingParams",
    "record_pause": "calls.action_pause_recording_params.ActionPauseRecordingParams",
    "record_resume": "calls.action_resume_recording_params.ActionResumeRecordingParams",
    "playback_start": "calls.action_start_playback_params.ActionStartPlaybackParams",
    "playback_stop": "calls.action_stop_playback_params.ActionStopPlaybackParams",
    "client_state_update": "calls.action_update_client_state_params.ActionUpdateClientStateParams",
}

# Webhook event type -> the SDK's event model (its ``payload`` field is checked).
EVENT_MODELS: dict[str, str] = {
    "call.initiated": "call_initiated.CallInitiated",
    "call.answered": "call_answered.CallAnswered",
    "call.hangup": "call_hangup.CallHangup",
    "call.bridged": "call_bridged.CallBridged",
    "call.dtmf.received": "call_dtmf_received.CallDtmfReceived",
    "call.gather.ended": "call_gather_ended.CallGatherEnded",
    "call.speak.started": "call_speak_started.CallSpeakStarted",
    "call.speak.ended": "call_speak_ended.CallSpeakEnded",
    "call.playback.started": "call_playback_started.CallPlaybackStarted",
    "call.playback.ended": "call_playback_ended.CallPlaybackEnded",
    "call.recording.saved": "call_recording_saved.CallRecordingSaved",
    "call.machine.detection.ended": "call_machine_detection_ended.CallMachineDetectionEnded",
    "call.machine.greeting.ended": "call_machine_greeting_ended.CallMachineGreetingEnded",
    "call.machine.premium.detection.ended": "call_machine_premium_detection_ended.CallMachinePremiumDetectionEnded",
    "call.machine.premium.greeting.ended": "call_machine_premium_greeting_ended.CallMachinePremiumGreetingEnded",
    "streaming.started": "call_streaming_started.CallStreamingStarted",
    "streaming.stopped": "call_streaming_stopped.CallStreamingStopped",
    "streaming.failed": "call_streaming_failed.CallStreamingFailed",
}


@dataclass(frozen=True)
class Shape:
    """Keys (wire names), the required ones, and the allowed values of enum-typed keys."""

    keys: frozenset[str]
    required: frozenset[str]
    enums: dict[str, frozenset[Any]]

    def mismatches(self, body: dict[str, Any], where: str) -> list[str]:
        found = [f"{where}: unknown key {key!r}" for key in body if key not in self.keys]
        found += [f"{where}: missing required {key!r}" for key in self.required if key not in body]
        for key, allowed in self.enums.items():
            if key in body and body[key] is not None and body[key] not in allowed:
                found.append(f"{where}: {key}={body[key]!r} not in {sorted(allowed, key=str)}")
        return found


def _load(dotted: str) -> Any:
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(f"telnyx.types.{module}"), name)


def _unwrap(tp: Any) -> tuple[Any, str | None, bool]:
    """(inner type, wire alias, required) through Annotated / Required / NotRequired."""
    alias, required = None, False
    while True:
        origin = get_origin(tp)
        if origin in (typing.Annotated, te.Annotated):
            for meta in tp.__metadata__:
                alias = getattr(meta, "alias", None) or alias
            tp = get_args(tp)[0]
        elif origin in (typing.Required, te.Required):
            required, tp = True, get_args(tp)[0]
        elif origin in (typing.NotRequired, te.NotRequired):
            tp = get_args(tp)[0]
        else:
            return tp, alias, required


def _literals(tp: Any) -> frozenset[Any] | None:
    """The allowed values when ``tp`` is only Literals (and None), else None."""
    tp = _unwrap(tp)[0]
    origin = get_origin(tp)
    if origin in (Literal, te.Literal):
        return frozenset(get_args(tp))
    if origin is Union or origin is types.UnionType:
        values: set[Any] = set()
        for arg in get_args(tp):
            if arg is type(None):
                continue
            inner = _literals(arg)
            if inner is None:
                return None
            values |= inner
        return frozenset(values)
    return None


def request_shape(action: str) -> Shape:
    return request_shape_of(REQUEST_MODELS[action])


def request_shape_of(dotted: str) -> Shape:
    """The shape of any SDK ``TypedDict``, named ``module.Class`` under ``telnyx.types``."""
    hints = get_type_hints(_load(dotted), include_extras=True)
    keys, required, enums = set(), set(), {}
    for name, tp in hints.items():
        _, alias, is_required = _unwrap(tp)
        wire = alias or name
        keys.add(wire)
        if is_required:
            required.add(wire)
        values = _literals(tp)
        if values is not None:
            enums[wire] = values
    return Shape(frozenset(keys), frozenset(required), enums)


def _model_shape(model: Any) -> Shape:
    keys, enums = set(), {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        keys.add(wire)
        values = _literals(info.annotation)
        if values is not None:
            enums[wire] = values
    return Shape(frozenset(keys), frozenset(), enums)


def _optional_model(tp: Any) -> Any:
    """``X`` from ``Optional[X]`` (the SDK's event fields are all optional)."""
    return next(a for a in get_args(tp) if a is not type(None)) if get_origin(tp) is Union else tp


def _payload_model(event_type: str) -> Any:
    return _optional_model(_load(EVENT_MODELS[event_type]).model_fields["payload"].annotation)


def event_shape(event_type: str) -> tuple[Shape, Shape]:
    """(envelope ``data`` shape, ``payload`` shape) of one event type."""
    return _model_shape(_load(EVENT_MODELS[event_type])), _model_shape(_payload_model(event_type))


def nested_model(event_type: str, field: str) -> Any:
    """The SDK model of one payload field (e.g. ``recording_urls``)."""
    return _optional_model(_payload_model(event_type).model_fields[field].annotation)
