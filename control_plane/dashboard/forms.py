"""Form fields -> the API's request bodies, and refusals that name the fields at fault.

The dashboard's forms build the same bodies the REST API takes and validate them with the
same models, so every limit is the API's. What goes back to the page names the field and
the rule (shown next to the field), never the submitted value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

AGENT_TEXT_FIELDS = ("personality", "system_prompt", "first_message", "voice", "language")
"""The agent config a form can set: the fields an operator picks per line or campaign."""


ON_OFF_DEFAULT = {"": None, "on": True, "off": False}
"""A select of a yes/no setting with a default: unset (the default), on, off."""


class FormRefused(Exception):
    """The form was not acceptable. ``fields`` maps a form field's name to what is wrong with it."""

    def __init__(self, message: str, status: int = 400, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.fields = dict(fields or {})


class FormData:
    """A submitted form: every value of each name (checkboxes repeat a name), stripped."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value.replace("\x00", "").strip())

    @classmethod
    def of(cls, form: Any) -> FormData:
        """From aiohttp's ``request.post()`` (files are not expected here and are dropped)."""
        return cls([(str(k), v) for k, v in form.items() if isinstance(v, str)])

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        return [v for v in self._values.get(name, []) if v]

    def has(self, name: str) -> bool:
        return name in self._values


def label(name: str) -> str:
    return name.replace("_", " ")


def agent_config(form: FormData) -> dict[str, Any]:
    """Overrides of the server's default agent: only the fields filled in, and the knowledge
    bases ticked (their ids; the view checks they are the organisation's)."""
    config: dict[str, Any] = {name: form.get(name) for name in AGENT_TEXT_FIELDS if form.get(name)}
    bases = list(dict.fromkeys(form.all("knowledge_bases")))
    if bases:
        config["knowledge_bases"] = bases
    return config


def agent_error_field(message: str) -> dict[str, str]:
    """The agent field a ``check_agent`` refusal is about, when its message names one
    ("unknown personality; known: ..."), for showing it beside that field."""
    text = message.lower()
    return next(({name: message} for name in AGENT_TEXT_FIELDS if label(name) in text), {})


def refusal(exc: ValidationError, fields: Mapping[tuple[str, ...], str], status: int = 400) -> FormRefused:
    """A model's validation errors as a refusal naming form fields. ``fields`` maps a leading
    part of an error's location (``("window", "start")``) to the form field it came from."""
    named: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        field = next((f for prefix, f in sorted(fields.items(), key=lambda kv: -len(kv[0]))
                      if loc[:len(prefix)] == prefix), None)
        if field is None and loc:
            field = loc[0]
        if field is None:  # a rule across fields (e.g. the window's start and end must differ)
            field = "form"
        named.setdefault(field, _message(error))
    listed = ", ".join(label(f) for f in named)
    return FormRefused(f"check these fields: {listed}", status, named)


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's message without the input: ``Value error, start and end must differ``
    becomes ``start and end must differ``."""
    text = str(error.get("msg", "not valid"))
    return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def kept(submitted: FormData | None, refused: FormRefused | None, names: Mapping[str, str]) -> dict[str, str]:
    """Template values for the submitted fields that were not refused, so a mistake in one
    field does not lose what was typed in the others. ``names``: form field -> template name."""
    if submitted is None:
        return {}
    bad = refused.fields if refused else {}
    return {target: submitted.get(name) for name, target in names.items() if name not in bad}
