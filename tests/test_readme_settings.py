"""README.md's settings table, checked against the settings tree so it cannot drift.

Each row's variables are resolved the way pydantic-settings reads them (``CALLAGENT_`` prefix,
``__`` between nested fields, a top-level field's ``validation_alias`` choices instead of its
prefixed name), and each literal default in the row is parsed as that field parses an environment
value and compared with the default the settings tree really has. A default that is not a literal
("per engine", "Telnyx inference") needs an entry, with its reason, in ``NON_LITERAL_DEFAULTS``.
Every other ``CALLAGENT_*`` name the README mentions must resolve too (a renamed setting).
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from control_plane.settings import ENV_PREFIX, NESTED_DELIMITER, Settings
from engine.config import EndpointingConfig

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_HEADER = "| variable | default | meaning |"

# Variable -> why its default cell is prose rather than a value the test can compare.
NON_LITERAL_DEFAULTS = {
    "CALLAGENT_DATA_DIR": "computed at start from XDG_DATA_HOME (a default_factory), so no fixed value",
    "CALLAGENT_PROVIDERS__LLM_BASE_URL": "names the service (Telnyx inference) rather than spelling its URL",
    "CALLAGENT_PROVIDERS__LLM_API_KEY": "unset in the settings; the Telnyx key stands in when the LLM is Telnyx's",
    "CALLAGENT_PROVIDERS__STT_MODEL": "unset in the settings: the STT engine picks its own model (nova-3)",
    "CALLAGENT_PROVIDERS__STT_FINAL_WAIT_MS": "unset in the settings: the wait is derived per STT engine",
    "CALLAGENT_PROVIDERS__OPTIONS__<NAME>__<FIELD>": "a pattern for every provider's own block, not one field",
}
# Settings the test suite reads (tests/conftest.py), not the server.
NOT_SETTINGS = ("CALLAGENT_TEST_",)

_LITERAL = re.compile(r"^`([^`]*)`(?:\s+\(.*\))?$")  # `value`, optionally qualified: `false` (`true` in local mode)


@dataclass(frozen=True)
class Resolved:
    field: FieldInfo | None  # None: a key inside a free-form dict (a provider's options block)
    value: Any  # the default as the settings tree holds it


@dataclass(frozen=True)
class Row:
    names: tuple[str, ...]
    defaults: tuple[str, ...]
    meaning: str


def _table() -> list[Row]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER) + 2  # past the header and its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        variable, default, meaning = (cell.strip() for cell in line.strip().strip("|").split(" | ", 2))
        names = _absolute(re.findall(r"`([^`]+)`", variable))
        rows.append(Row(names, tuple(part.strip() for part in default.split(" / ")), meaning))
    assert len(rows) > 20, "the settings table was not found where expected"
    return rows


def _absolute(names: list[str]) -> tuple[str, ...]:
    """``CALLAGENT_SERVER__HOST`` / ``__PORT``: a name starting with ``__`` replaces the last part of the one before."""
    out: list[str] = []
    for name in names:
        if name.startswith(NESTED_DELIMITER):
            assert out, f"{name} has no full name before it"
            name = out[-1].rsplit(NESTED_DELIMITER, 1)[0] + name
        out.append(name)
    return tuple(out)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        models = [m for m in map(_model_of, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _is_dict(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


def resolve(env_name: str) -> Resolved:
    """The field (and its default) pydantic-settings fills from ``env_name``; LookupError when none."""
    defaults = Settings.model_construct()  # defaults only: neither the environment nor a .env is read
    for field_name, top in Settings.model_fields.items():
        alias = top.validation_alias
        if isinstance(alias, AliasChoices) and env_name.upper() in (str(c).upper() for c in alias.choices):
            return Resolved(top, getattr(defaults, field_name))
    if not env_name.upper().startswith(ENV_PREFIX):
        raise LookupError(f"{env_name}: neither {ENV_PREFIX}-prefixed nor an alias of a settings field")
    path = env_name[len(ENV_PREFIX):].lower().split(NESTED_DELIMITER)
    model: type[BaseModel] = Settings
    value: Any = defaults
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None or (depth == 0 and field.validation_alias is not None):
            raise LookupError(f"{env_name}: {model.__name__} has no field {part!r} (renamed or removed?)")
        value = getattr(value, part)
        rest = path[depth + 1:]
        if not rest:
            return Resolved(field, value)
        if _is_dict(field.annotation):
            return Resolved(None, None)  # a key of a free-form block: any name goes, its owner validates it
        inner = _model_of(field.annotation)
        if inner is None:
            raise LookupError(f"{env_name}: {model.__name__}.{part} is a value, not a block with {rest[0]!r}")
        model = inner
    raise AssertionError("unreachable")


def _parse(text: str, field: FieldInfo) -> Any:
    """``text`` as the field parses it from the environment: plain first, JSON for structured fields."""
    adapter: TypeAdapter[Any] = TypeAdapter(Any if field.annotation is None else field.annotation)
    try:
        return adapter.validate_python(text)
    except ValidationError as plain:
        try:
            decoded = json.loads(text)
        except ValueError:
            raise plain from None
        return adapter.validate_python(decoded)


def _default_checks() -> list[tuple[str, str]]:
    checks: list[tuple[str, str]] = []
    for row in _table():
        defaults = row.defaults if len(row.defaults) == len(row.names) else row.defaults * len(row.names)
        assert len(row.defaults) in (1, len(row.names)), (
            f"{row.names}: {len(row.defaults)} defaults (split on ' / ') for {len(row.names)} variables")
        checks.extend(zip(row.names, defaults, strict=True))
    return checks


def _mismatch(name: str, default: str) -> str | None:
    """Why the README's ``default`` for ``name`` is not the settings' default; None when it is."""
    resolved = resolve(name)
    if resolved.field is None:
        return f"{name} is a key inside a free-form block: it has no default of its own"
    if default == "unset":
        return None if resolved.value is None else f"README says {name} is unset; the settings say {resolved.value!r}"
    literal = _LITERAL.match(default)
    if literal is None:
        return f"{name}'s default {default!r} is neither `value` nor unset"
    try:
        parsed = _parse(literal.group(1), resolved.field)
    except (ValidationError, ValueError) as error:
        return f"README's default for {name}, {literal.group(1)!r}, is not a value of the field: {error}"
    if parsed != resolved.value:
        return f"README says {name} defaults to {literal.group(1)!r}; the settings say {resolved.value!r}"
    return None


@pytest.mark.parametrize(("name", "default"), _default_checks(), ids=lambda value: str(value)[:60])
def test_each_readme_default_is_the_settings_default(name: str, default: str) -> None:
    mismatch = _mismatch(name, default)
    if name in NON_LITERAL_DEFAULTS:
        assert mismatch is not None, f"{name}'s default {default!r} matches now: drop it from NON_LITERAL_DEFAULTS"
    else:
        assert mismatch is None, mismatch + " (fix the README, or list a non-literal default in NON_LITERAL_DEFAULTS)"


def test_every_non_literal_allowance_is_a_row() -> None:
    names = {name for row in _table() for name in row.names}
    assert set(NON_LITERAL_DEFAULTS) <= names, f"stale allowances: {set(NON_LITERAL_DEFAULTS) - names}"


def _mentioned_names() -> list[str]:
    """Every name the README gives a setting by: full names anywhere (prose, code blocks), and the
    ``__X`` ones of the table's meaning column, which name a field of their row's top-level block
    (``__ENABLED=false`` in the ``CALLAGENT_DASHBOARD__SESSION_TTL_S`` row)."""
    text = README.read_text(encoding="utf-8")
    names = set(re.findall(r"\bCALLAGENT_[A-Z0-9_<>*]+", text))
    for row in _table():
        block = row.names[0].split(NESTED_DELIMITER, 1)[0]
        names.update(block + relative for relative in re.findall(r"`(__[A-Z0-9_]+)", row.meaning))
    out = []
    for name in sorted(names):
        name = name.rstrip("*").removesuffix(NESTED_DELIMITER)  # CALLAGENT_AGENT__*: the block itself
        if name != ENV_PREFIX and not name.startswith(NOT_SETTINGS):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _mentioned_names())
def test_every_setting_the_readme_names_exists(name: str) -> None:
    resolve(name)  # LookupError names the missing field


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("CALLAGENT_ENGINE__ENDPOINTING__MIN_BARGE_IN", "EndpointingConfig has no field 'min_barge_in'"),
        ("CALLAGENT_SERVER__PORT__X", "ServerSettings.port is a value"),
        ("CALLAGENT_TELNYX_API_BASE_URL", "Settings has no field 'telnyx_api_base_url'"),
        ("CALLAGENT_DATABASE", "Settings has no field 'database'"),
        ("TELNYX_SECRET", "neither CALLAGENT_-prefixed nor an alias"),
    ],
)
def test_resolve_refuses_names_no_field_has(name: str, error: str) -> None:
    with pytest.raises(LookupError, match=re.escape(error)):
        resolve(name)


def test_resolve_follows_aliases_and_nesting() -> None:
    assert resolve("TELNYX_API_KEY").field is Settings.model_fields["telnyx_api_key"]
    assert resolve("CALLAGENT_DATABASE_URL").field is Settings.model_fields["database_url"]
    assert resolve("callagent_engine__endpointing__min_barge_in_ms").field is (
        EndpointingConfig.model_fields["min_barge_in_ms"])
    assert resolve("CALLAGENT_PROVIDERS__OPTIONS__DEEPGRAM__API_KEY") == Resolved(None, None)
