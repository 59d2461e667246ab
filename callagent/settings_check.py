"""Loading the settings for a command: one line per mistake, never a traceback.

pydantic reports a bad value as a multi-line ``ValidationError`` naming the model path
(``server.port``); an operator set an environment variable (``CALLAGENT_SERVER__PORT``).
:func:`load_settings` turns each error into one line that names the variable and says what
is accepted, without echoing the value (it may be a secret). pydantic-settings ignores
variables it does not know, so a typo (``CALLAGENT_SERVR__PORT``) would silently do nothing:
:func:`unknown_variables` finds them for a warning at start-up.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError as SourceError

from control_plane.settings import ENV_PREFIX, NESTED_DELIMITER, Settings

# Variables of the prefix that are not settings fields, yet belong to the project.
_KNOWN_EXTRAS = frozenset({"CALLAGENT_TEST_DATABASE_URL", "CALLAGENT_TEST_REDIS_URL", "CALLAGENT_NO_SKIPS"})


_FIELD_IN_SOURCE_ERROR = re.compile(r'field "([a-z_]+)"')


class SettingsError(Exception):
    """The settings cannot be loaded; ``lines`` says why, one line per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise SettingsError([_describe(error) for error in errors]) from None
    except SourceError as exc:  # a nested field given as JSON that does not parse
        match = _FIELD_IN_SOURCE_ERROR.search(str(exc))
        name = variable_name((match.group(1),)) if match else "a CALLAGENT_* variable"
        raise SettingsError(
            [f"{name}: not valid JSON (nested settings take a JSON object, or use __ per field)"]) from None


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value"))
    return f"{variable_name(loc)}: {message}"


def variable_name(loc: tuple[str, ...]) -> str:
    """The environment variable that sets the field at ``loc``."""
    if not loc:
        return "settings"
    field = Settings.model_fields.get(loc[0])
    if len(loc) == 1 and field is not None and field.validation_alias is not None:
        # Aliased fields (TELNYX_API_KEY, DATABASE_URL): name every spelling that is accepted.
        choices = getattr(field.validation_alias, "choices", [field.validation_alias])
        return " or ".join(str(choice) for choice in choices)
    if loc[0].upper() == loc[0] and loc[0].startswith(ENV_PREFIX):
        return loc[0]  # already a variable name (an alias)
    return ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in loc)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``CALLAGENT_*`` variables that set nothing, each with the nearest known name if one is close."""
    environ = os.environ if environ is None else environ
    known = set(_variable_names(Settings))
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in _KNOWN_EXTRAS or _is_known(upper, known):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return unknown


def _is_known(name: str, known: set[str]) -> bool:
    if name in known:
        return True
    # Below a field that takes free-form mappings (agent variables, say) any key is fine.
    return any(name.startswith(prefix + NESTED_DELIMITER) for prefix in _open_mappings(Settings))


def _variable_names(model: type[BaseModel], prefix: str = ENV_PREFIX) -> Iterator[str]:
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        yield variable
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from _variable_names(nested, variable + NESTED_DELIMITER)
        if prefix == ENV_PREFIX and field.validation_alias is not None:
            for choice in getattr(field.validation_alias, "choices", [field.validation_alias]):
                yield str(choice).upper()


def _open_mappings(model: type[BaseModel], prefix: str = ENV_PREFIX) -> Iterator[str]:
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from _open_mappings(nested, variable + NESTED_DELIMITER)
        elif _is_mapping(field.annotation):
            yield variable


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # Optional[Model]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (dict, Mapping):
        return True
    return any(_is_mapping(arg) for arg in get_args(annotation))
