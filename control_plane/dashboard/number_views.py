"""The inbound numbers pages: the list, adding a number with the agent that answers it, and
changing one number's agent. Each goes through the same functions as the REST API
(``register_number``, ``reconfigure_number``) and re-renders the form with each refusal beside
its field (never the submitted value), or returns to the list with a fixed notice."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..agents import AgentOverrides
from ..errors import ApiError
from ..numbers import NumberTaken, reconfigure_number, register_number
from ..phone import InvalidPhoneNumber, normalize_e164
from .forms import (
    AGENT_TEXT_FIELDS,
    ON_OFF_DEFAULT,
    FormData,
    FormRefused,
    agent_config,
    agent_error_field,
    kept,
    refusal,
)
from .knowledge_views import base_choices, check_bases, picked
from .pages import dashboard_of, form_field, page, viewer_of


def _back(notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/dashboard/numbers?notice={notice}")


# -- inbound numbers -------------------------------------------------------------------------------


async def _numbers_page(request: web.Request, *, refused: FormRefused | None = None,
                        submitted: FormData | None = None, status: int = 200) -> web.Response:
    repo = await dashboard_of(request).cp.repository()
    numbers = await repo.list_phone_numbers(viewer_of(request).org.id)
    names = {name: name for name in (*AGENT_TEXT_FIELDS, "number", "record")}
    bases = await base_choices(request)
    ticked = submitted.all("knowledge_bases") if submitted is not None else []
    return page(request, "numbers.html", {
        "numbers": numbers, "error": str(refused) if refused else None,
        "field_errors": refused.fields if refused else {}, "values": kept(submitted, refused, names),
        "bases": bases, "picked_bases": ticked, "base_names": {str(kb.id): kb.name for kb in bases},
    }, status=status)


async def numbers(request: web.Request) -> web.Response:
    return await _numbers_page(request)


def number_agent_config(form: FormData) -> dict[str, Any]:
    """The number's agent config from the form, checked by the API's model (422 names a field)."""
    config: dict[str, Any] = agent_config(form)
    record = form.get("record")
    if record not in ON_OFF_DEFAULT:
        raise FormRefused("check these fields: record", fields={"record": "choose one of the options"})
    if ON_OFF_DEFAULT[record] is not None:
        config["record"] = ON_OFF_DEFAULT[record]
    try:
        AgentOverrides.model_validate(config, strict=False)  # a form sends lists, not tuples
    except ValidationError as exc:
        raise refusal(exc, {}, status=422) from None
    return config


async def add_number(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    form = FormData.of(await request.post())
    repo = await dash.cp.repository()
    try:
        config = number_agent_config(form)
        await check_bases(request, config)
        await register_number(repo, dash.cp.settings, viewer.org.id, form.get("number"), config)
    except FormRefused as exc:
        return await _numbers_page(request, refused=exc, submitted=form, status=exc.status)
    except InvalidPhoneNumber as exc:
        return await _numbers_page(request, refused=FormRefused(f"Number: {exc}.", fields={"number": str(exc)}),
                                   submitted=form, status=400)
    except NumberTaken:
        return await _numbers_page(request, refused=FormRefused("That number is already registered.",
                                                                fields={"number": "already registered"}),
                                   submitted=form, status=409)
    except ApiError as exc:  # an agent that cannot run (unknown personality, voice): the API's 422
        return await _numbers_page(request, refused=FormRefused(exc.message, fields=agent_error_field(exc.message)),
                                   submitted=form, status=exc.status)
    raise _back("number_added")


# -- one number's agent ------------------------------------------------------------------------------

FORM_AGENT_KEYS = frozenset((*AGENT_TEXT_FIELDS, "record", "knowledge_bases"))
"""The agent config keys the number form sets; others (tools, set over REST) are kept as they are."""


def _path_number(request: web.Request) -> str:
    try:
        return normalize_e164(request.match_info["phone"])
    except InvalidPhoneNumber:
        raise ApiError(404, "not_found", "this organisation has no such number") from None


async def _own_number(request: web.Request, number: str) -> Any:
    repo = await dashboard_of(request).cp.repository()
    found = next((n for n in await repo.list_phone_numbers(viewer_of(request).org.id) if n.number == number), None)
    if found is None:
        raise ApiError(404, "not_found", "this organisation has no such number")
    return found


def _form_values(config: dict[str, Any]) -> dict[str, str]:
    values = {name: str(config[name]) for name in AGENT_TEXT_FIELDS if config.get(name) is not None}
    if config.get("record") is not None:
        values["record"] = "on" if config["record"] else "off"
    return values


async def _number_page(request: web.Request, number: Any, *, refused: FormRefused | None = None,
                       submitted: FormData | None = None, status: int = 200) -> web.Response:
    values = _form_values(number.agent_config)
    if submitted is not None:
        for name in FORM_AGENT_KEYS:
            values.pop(name, None)
        values.update(kept(submitted, refused, {name: name for name in FORM_AGENT_KEYS}))
    others = sorted(set(number.agent_config) - FORM_AGENT_KEYS)
    bases = await base_choices(request)
    ticked = submitted.all("knowledge_bases") if submitted is not None else picked(number.agent_config, bases)
    return page(request, "number.html", {
        "number": number, "values": values, "others": others, "error": str(refused) if refused else None,
        "field_errors": refused.fields if refused else {}, "bases": bases, "picked_bases": ticked,
    }, status=status)


async def number_detail(request: web.Request) -> web.Response:
    return await _number_page(request, await _own_number(request, _path_number(request)))


async def update_number(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    number = await _own_number(request, _path_number(request))
    form = FormData.of(await request.post())
    repo = await dash.cp.repository()
    try:
        kept_config = {k: v for k, v in number.agent_config.items() if k not in FORM_AGENT_KEYS}
        config = {**kept_config, **number_agent_config(form)}
        await check_bases(request, config)
        updated = await reconfigure_number(repo, dash.cp.settings, viewer.org.id, number.number, config)
    except FormRefused as exc:
        return await _number_page(request, number, refused=exc, submitted=form, status=exc.status)
    except ApiError as exc:  # an agent that cannot run: the API's 422 (or 400 for a tool URL)
        return await _number_page(request, number, refused=FormRefused(exc.message, fields=agent_error_field(
            exc.message)), submitted=form, status=exc.status)
    if updated is None:  # removed meanwhile
        raise ApiError(404, "not_found", "this organisation has no such number")
    raise _back("number_updated")


async def remove_number(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        number = normalize_e164(form_field(form, "number") or "")
    except InvalidPhoneNumber as exc:
        return await _numbers_page(request, refused=FormRefused(f"Number: {exc}."), status=400)
    repo = await dashboard_of(request).cp.repository()
    if not await repo.remove_phone_number(viewer_of(request).org.id, number):
        raise ApiError(404, "not_found", "this organisation has no such number")
    raise _back("number_removed")
