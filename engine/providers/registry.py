"""STT, TTS and LLM providers as plugins: found through entry points, chosen by name.

A package adds a provider by declaring a factory under the ``callagent.providers`` entry
point group, named ``<kind>.<name>`` (kind: ``stt``, ``tts`` or ``llm``)::

    [project.entry-points."callagent.providers"]
    "stt.acme" = "acme_callagent:create_stt"

and a deployment picks it with ``CALLAGENT_PROVIDERS__STT=acme``; its own settings block is
``providers.options.acme`` (``CALLAGENT_PROVIDERS__OPTIONS__ACME__API_KEY=...``). The factory
is called with a :class:`ProviderContext` and returns a :class:`~.base.SpeechToText`,
:class:`~.base.TextToSpeech` or :class:`~.base.ChatModel`; it validates its options with
:meth:`ProviderContext.options_as` (a pydantic model), so a mistake is a one-line settings
error. The built-ins (Telnyx, OpenAI-compatible, Deepgram, Whisper, piper, espeak-ng) are
declared the same way in the project's pyproject.toml (:mod:`.builtin`).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError

from .config import ProvidersConfig

log = logging.getLogger(__name__)

GROUP = "callagent.providers"
Kind = Literal["stt", "tts", "llm"]
KINDS: tuple[Kind, ...] = ("stt", "tts", "llm")
M = TypeVar("M", bound=BaseModel)

_PROJECT = "callagent"
_SOURCE_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class ProviderSettingsError(Exception):
    """The settings name a provider that is not installed, or give it options it refuses;
    ``lines`` says what, one line each, naming the environment variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class ProviderContext:
    """What a provider factory gets: the settings, a shared HTTP session, and in local mode the
    emulator endpoints that stand in for the real services."""

    kind: Kind
    name: str
    providers: ProvidersConfig
    http: aiohttp.ClientSession
    telnyx_api_key: SecretStr | None = None
    local_endpoints: Mapping[str, str] = field(default_factory=dict)
    """Local mode: ``{"stt.telnyx": url, "stt.deepgram": url, "tts.telnyx": url, "llm.openai": url}``."""
    local_api_key: SecretStr | None = None
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    """Called in reverse order at shutdown; a factory adds what it opened."""

    @property
    def local(self) -> bool:
        return bool(self.local_endpoints)

    @property
    def options(self) -> Mapping[str, Any]:
        return self.providers.options.get(self.name, {})

    def options_as(self, model: type[M]) -> M:
        """This provider's settings block, validated; each mistake a line naming its variable."""
        try:
            return model.model_validate(dict(self.options))
        except ValidationError as exc:
            raise ProviderSettingsError([
                f"{option_variable(self.name, e.get('loc', ()))}: {e.get('msg', 'invalid value')}"
                for e in exc.errors(include_url=False, include_input=False)
            ]) from None

    def require(self, value: SecretStr | None, variable: str) -> SecretStr:
        if value is None:
            raise ProviderSettingsError([f"CALLAGENT_PROVIDERS__{self.kind.upper()}={self.name} needs {variable}"])
        return value


def option_variable(name: str, loc: tuple[Any, ...] = ()) -> str:
    parts = ["CALLAGENT_PROVIDERS__OPTIONS", name.upper(), *(str(p).upper() for p in loc)]
    return "__".join(parts)


Factory = Callable[[ProviderContext], Any]


def _source_entry_points() -> list[EntryPoint]:
    """The project's own declarations, read from its pyproject.toml when running from a source
    checkout: an editable install's metadata is written by ``pip install -e`` and goes stale
    when the declarations change, which would hide a built-in."""
    try:
        project = tomllib.loads(_SOURCE_PYPROJECT.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []
    if project.get("name") != _PROJECT:
        return []
    declared = project.get("entry-points", {}).get(GROUP, {})
    return [EntryPoint(name=name, value=value, group=GROUP) for name, value in declared.items()]


def discover() -> dict[str, EntryPoint]:
    """Every installed provider, by ``kind.name``: the project's own first, then plugins'."""
    found: dict[str, EntryPoint] = {}
    own = _source_entry_points()
    if not own:
        try:
            own = [ep for ep in distribution(_PROJECT).entry_points if ep.group == GROUP]
        except PackageNotFoundError:
            own = []
    for entry in own:
        found.setdefault(entry.name, entry)
    for entry in entry_points(group=GROUP):
        if entry.name in found:
            if found[entry.name].value != entry.value:
                log.warning("provider %s from %s ignored: the name is taken by %s",
                            entry.name, entry.value, found[entry.name].value)
            continue
        found[entry.name] = entry
    return found


def installed(kind: Kind) -> list[str]:
    prefix = kind + "."
    return sorted(name[len(prefix):] for name in discover() if name.startswith(prefix))


def factory_for(kind: Kind, name: str) -> Factory:
    """The factory of provider ``name`` of ``kind``; :class:`ProviderSettingsError` (one line,
    listing the installed ones) when there is none, or it does not load."""
    entry = discover().get(f"{kind}.{name}")
    if entry is None:
        raise ProviderSettingsError([
            f"CALLAGENT_PROVIDERS__{kind.upper()}: no {kind} provider {name!r} is installed; "
            f"installed: {', '.join(installed(kind)) or 'none'}"])
    try:
        loaded = entry.load()
    except Exception as exc:
        raise ProviderSettingsError([
            f"CALLAGENT_PROVIDERS__{kind.upper()}: provider {name!r} ({entry.value}) does not load: "
            f"{type(exc).__name__}: {exc}"]) from None
    if not callable(loaded):
        raise ProviderSettingsError([f"CALLAGENT_PROVIDERS__{kind.upper()}: {entry.value} is not a factory"])
    return loaded  # type: ignore[no-any-return]


def check_names(config: ProvidersConfig) -> None:
    """Every chosen provider is installed (all mistakes at once)."""
    lines: list[str] = []
    for kind in KINDS:
        name = getattr(config, kind)
        if f"{kind}.{name}" not in discover():
            lines.append(f"CALLAGENT_PROVIDERS__{kind.upper()}: no {kind} provider {name!r} is installed; "
                         f"installed: {', '.join(installed(kind)) or 'none'}")
    if lines:
        raise ProviderSettingsError(lines)


def create(kind: Kind, context: ProviderContext) -> Any:
    provider = factory_for(kind, context.name)(context)
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        context.closers.append(aclose)
    return provider
