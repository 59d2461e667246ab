"""Python function tools: plain functions the model can call, installed as plugins.

A tool is a function decorated with :func:`function_tool`; its JSON schema is built by
pydantic from the type hints, its description and the parameters' from the docstring
(Google style ``Args:``). Packages publish tools under the ``callagent.tools`` entry point
group (the entry point's name is the tool's name)::

    [project.entry-points."callagent.tools"]
    order_status = "order_status.tools:order_status"

and an agent enables them by name (``AgentConfig.function_tools``). A parameter annotated
:class:`ToolContext` receives the call's context (call id, organisation, numbers, variables)
and is not shown to the model.

Each run is bounded by the tool's ``timeout_s``. Async functions run on the event loop;
sync ones in a worker thread (a thread cannot be cancelled: past its timeout the call goes
on without it and the model hears that the tool timed out). Every failure becomes a result
the model can talk about, never an exception into the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, get_type_hints

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from .context import ToolContext

log = logging.getLogger(__name__)

GROUP = "callagent.tools"
DEFAULT_TIMEOUT_S = 5.0
MAX_RESULT_CHARS = 4000
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolError(Exception):
    """Raised by a tool to tell the model what went wrong (the message is the model's to read)."""


@dataclass(frozen=True)
class FunctionTool:
    """A function with the schema the model sees; call :meth:`run` with the model's JSON."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    arguments: type[BaseModel]
    timeout_s: float = DEFAULT_TIMEOUT_S
    context_parameter: str | None = None
    _is_async: bool = field(default=False, repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # still the plain function for its own tests
        return self.fn(*args, **kwargs)

    def definition(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    async def run(self, arguments: str, context: ToolContext | None = None) -> str:
        try:
            parsed = self.arguments.model_validate_json(arguments or "{}")
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
            return f"error: invalid arguments for {self.name}: {where}: {first.get('msg', 'invalid')}"
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context if context is not None else ToolContext()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._is_async:
                    value = await self.fn(**kwargs)
                else:
                    value = await asyncio.to_thread(self.fn, **kwargs)
        except TimeoutError:
            return f"error: {self.name} timed out after {self.timeout_s:g} s"
        except ToolError as exc:
            return f"error: {exc}"[:MAX_RESULT_CHARS]
        except Exception as exc:  # the tool's bug: logged for its author, named for the model
            log.warning("function tool %s failed", self.name, exc_info=True)
            return f"error: {self.name} failed ({type(exc).__name__})"
        return _as_text(value)[:MAX_RESULT_CHARS]


def function_tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
                  description: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Make ``fn`` a :class:`FunctionTool`: ``@function_tool`` or ``@function_tool(timeout_s=2)``."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return build_tool(f, name=name, description=description, timeout_s=timeout_s)

    return wrap(fn) if fn is not None else wrap


def build_tool(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> FunctionTool:
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must be 1-64 letters, digits, _ or -")
    if not 0 < timeout_s <= 30:
        raise ValueError("timeout_s must be in (0, 30]")
    summary, documented = _parse_docstring(inspect.getdoc(fn) or "")
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    context_parameter = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{tool_name}: *args and **kwargs cannot be described to the model")
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_parameter = param.name
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, FieldInfo(default=default, description=documented.get(param.name)))
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return FunctionTool(
        name=tool_name, description=description or summary or tool_name, parameters=_schema(model), fn=fn,
        arguments=model, timeout_s=timeout_s, context_parameter=context_parameter,
        _is_async=inspect.iscoroutinefunction(fn),
    )


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without pydantic's titles (tokens the LLM reads on every turn)."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    schema: dict[str, Any] = strip(model.model_json_schema())
    schema.pop("additionalProperties", None)
    return schema


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_PARAM = re.compile(r"^\s+(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google-style docstring."""
    lines = doc.splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section = None
    current = None
    for line in lines:
        heading = _SECTION.match(line.strip()) if not line.startswith(" ") else None
        if heading:
            section = heading.group(1)
            current = None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            match = _PARAM.match(line)
            if match:
                current = match.group(1)
                params[current] = match.group(3).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    text = "\n".join(summary).strip()
    return " ".join(text.split()), params


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


# -- discovery --------------------------------------------------------------------------


class ToolLoadError(Exception):
    """An installed tool's entry point cannot be loaded or is not a tool."""


def _load(entry: EntryPoint) -> FunctionTool:
    try:
        obj = entry.load()
    except Exception as exc:
        raise ToolLoadError(f"tool {entry.name!r} ({entry.value}) cannot be loaded: {exc}") from None
    if isinstance(obj, FunctionTool):
        tool = obj
    elif callable(obj):
        tool = build_tool(obj, name=entry.name)
    else:
        raise ToolLoadError(f"tool {entry.name!r} ({entry.value}) is not a function")
    if tool.name != entry.name:  # the entry point's name is the one agents enable
        tool = dataclasses.replace(tool, name=entry.name)
    return tool


@functools.cache
def installed_tools() -> Mapping[str, FunctionTool]:
    """The tools of every installed ``callagent.tools`` entry point, by name (loaded once;
    :func:`refresh` re-reads after packages are installed in a running process). A tool that
    does not load is left out, with a warning: one broken plugin must not stop every call."""
    tools: dict[str, FunctionTool] = {}
    for entry in entry_points(group=GROUP):
        if entry.name in tools:
            continue  # the first on sys.path wins, as for imports
        try:
            tools[entry.name] = _load(entry)
        except (ToolLoadError, TypeError, ValueError) as exc:
            log.warning("%s", exc)
    return tools


def refresh() -> None:
    installed_tools.cache_clear()
