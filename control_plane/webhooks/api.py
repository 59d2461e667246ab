"""REST handlers for the organisation's webhook endpoints, deliveries and replays.

Every handler reads and writes only the key's organisation: another organisation's endpoint or
delivery is a 404, and a replay selects only the caller's own messages.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from yarl import URL

from ..api.handlers import _org
from ..context import control_plane as _cp
from ..errors import ApiError, json_response, parse_query, read_json
from ..store.outbox import ReplayTooLarge, SqlOutboxStore
from ..store.records import utcnow
from .models import (
    AttemptOut,
    CreateEndpointRequest,
    DeliveryDetail,
    DeliveryList,
    DeliveryOut,
    EndpointDeleted,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
    ListDeliveriesQuery,
    ReplayRequest,
    ReplayResult,
    UpdateEndpointRequest,
)
from .signing import new_secret


async def _store(request: web.Request) -> SqlOutboxStore:
    cp = _cp(request)
    await cp.repository()  # attaches the outbox to the store
    store = cp.outbound_webhooks.store
    if store is None:
        raise ApiError(503, "not_configured", "webhooks need one of the SQL stores")
    return store  # type: ignore[no-any-return]


def _checked_url(request: web.Request, text: str) -> str:
    """An http(s) URL whose host, if an IP literal, the egress policy lets us reach. Host names are
    checked again at every connection (their addresses may change)."""
    try:
        url = URL(text.strip())
    except ValueError:
        raise ApiError(400, "invalid_url", "url is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ApiError(400, "invalid_url", "url must be an absolute http:// or https:// URL")
    refused = _cp(request).outbound_webhooks.policy().literal_refusal(url)
    if refused is not None:
        raise ApiError(400, "invalid_url", f"url may not point at a {refused} address")
    return str(url)


def _endpoint_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["endpoint_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such webhook endpoint") from None


async def create_endpoint(request: web.Request) -> web.Response:
    body = await read_json(request, CreateEndpointRequest)
    url = _checked_url(request, body.url)
    store = await _store(request)
    most = _cp(request).settings.outbound_webhooks.max_endpoints_per_org
    if len(await store.list_endpoints(_org(request).id)) >= most:
        raise ApiError(409, "too_many_endpoints", f"an organisation may have at most {most} webhook endpoints "
                                                  "(outbound_webhooks.max_endpoints_per_org); delete one first")
    endpoint = await store.create_endpoint(_org(request).id, url=url, event_types=list(dict.fromkeys(body.event_types)),
                                           secret=new_secret(), description=body.description, enabled=body.enabled)
    return json_response(EndpointWithSecret(**EndpointOut.of(endpoint).model_dump(), secret=endpoint.secret),
                         status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    store = await _store(request)
    return json_response(EndpointList(data=[EndpointOut.of(e) for e in await store.list_endpoints(_org(request).id)]))


async def get_endpoint(request: web.Request) -> web.Response:
    store = await _store(request)
    endpoint = await store.get_endpoint(_org(request).id, _endpoint_id(request))
    if endpoint is None:
        raise ApiError(404, "not_found", "no such webhook endpoint")
    return json_response(EndpointOut.of(endpoint))


async def update_endpoint(request: web.Request) -> web.Response:
    body = await read_json(request, UpdateEndpointRequest)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "url" in changes:
        changes["url"] = _checked_url(request, changes["url"])
    if "event_types" in changes:
        changes["event_types"] = list(dict.fromkeys(changes["event_types"]))
    store = await _store(request)
    org_id, endpoint_id = _org(request).id, _endpoint_id(request)
    endpoint = (await store.update_endpoint(org_id, endpoint_id, changes) if changes
                else await store.get_endpoint(org_id, endpoint_id))
    if endpoint is None:
        raise ApiError(404, "not_found", "no such webhook endpoint")
    return json_response(EndpointOut.of(endpoint))


async def delete_endpoint(request: web.Request) -> web.Response:
    store = await _store(request)
    endpoint_id = _endpoint_id(request)
    if not await store.delete_endpoint(_org(request).id, endpoint_id):
        raise ApiError(404, "not_found", "no such webhook endpoint")
    return json_response(EndpointDeleted(id=endpoint_id))


async def rotate_secret(request: web.Request) -> web.Response:
    store = await _store(request)
    grace = _cp(request).settings.outbound_webhooks.secret_grace_s
    endpoint = await store.rotate_secret(_org(request).id, _endpoint_id(request), new_secret(), grace_s=grace)
    if endpoint is None:
        raise ApiError(404, "not_found", "no such webhook endpoint")
    return json_response(EndpointWithSecret(**EndpointOut.of(endpoint).model_dump(), secret=endpoint.secret))


async def list_deliveries(request: web.Request) -> web.Response:
    query = parse_query(request, ListDeliveriesQuery)
    store = await _store(request)
    rows = await store.list_deliveries(
        _org(request).id, endpoint_id=query.endpoint_id, state=query.state, since=query.since, until=query.until,
        order_key=None if query.call_id is None else str(query.call_id), limit=query.limit + 1,
        before_id=query.before_id)
    page = rows[:query.limit]
    return json_response(DeliveryList(data=[DeliveryOut.of(d) for d in page],
                                      next_before_id=page[-1].id if len(rows) > query.limit else None))


async def get_delivery(request: web.Request) -> web.Response:
    try:
        delivery_id = int(request.match_info["delivery_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such delivery") from None
    store = await _store(request)
    found = await store.get_delivery(_org(request).id, delivery_id) if 0 < delivery_id < 2**63 else None
    if found is None:
        raise ApiError(404, "not_found", "no such delivery")
    delivery, attempts = found
    return json_response(DeliveryDetail(**DeliveryOut.of(delivery).model_dump(),
                                        attempt_log=[AttemptOut.of(a) for a in attempts]))


async def replay(request: web.Request) -> web.Response:
    body = await read_json(request, ReplayRequest)
    store = await _store(request)
    org_id = _org(request).id
    if body.endpoint_id is not None and await store.get_endpoint(org_id, body.endpoint_id) is None:
        raise ApiError(404, "not_found", "no such webhook endpoint")
    config = _cp(request).settings.outbound_webhooks
    if body.since is not None and body.until is not None \
            and (body.until - body.since).total_seconds() > config.replay_max_span_s:
        raise ApiError(400, "replay_too_large", f"a replay may cover at most {config.replay_max_span_s:g} s "
                                                "(outbound_webhooks.replay_max_span_s); split the range")
    try:
        replayed = await store.replay(org_id, now=utcnow(), max_age_s=config.max_age_s,
                                      message_id=body.message_id, since=body.since, until=body.until,
                                      endpoint_id=body.endpoint_id, max_rows=config.replay_max_events)
    except ReplayTooLarge as exc:
        raise ApiError(400, "replay_too_large", f"the range holds {exc}; a replay queues at most {exc.limit} "
                                                "(outbound_webhooks.replay_max_events): split the range, "
                                                "nothing was queued") from None
    if not replayed.found:
        raise ApiError(404, "not_found", "no such event")
    _cp(request).outbound_webhooks.wake()
    return json_response(ReplayResult(queued=replayed.queued), status=202)
