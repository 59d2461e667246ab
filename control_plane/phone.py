"""Phone numbers: E.164 validation and the one normal form every lookup hashes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")
E164_PATTERN = r"^\+[1-9][0-9]{4,14}$"


class InvalidPhoneNumber(ValueError):
    pass


def normalize_e164(value: str) -> str:
    """``"+1 (415) 555-0123"`` -> ``"+14155550123"``; anything not E.164 raises.

    Separators people type (spaces, dashes, dots, brackets) are dropped; the leading
    ``+`` and country code are required, so a number always hashes the same way.
    """
    if not isinstance(value, str):
        raise InvalidPhoneNumber("phone number must be a string")
    compact = _SEPARATORS.sub("", value)
    if not _E164.match(compact):
        raise InvalidPhoneNumber("not an E.164 phone number (expected +<country code><number>, 5-15 digits)")
    return compact


def _validate(value: str) -> str:
    try:
        return normalize_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError(str(exc)) from None


E164 = Annotated[
    str,
    Field(max_length=32, examples=["+14155550123"], description="E.164 phone number."),
    AfterValidator(_validate),
]
"""A pydantic field type: accepts common separators, stores the compact E.164 form."""
