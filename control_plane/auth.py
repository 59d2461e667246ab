"""Bearer API keys: ``Authorization: Bearer ck_...`` on every ``/api/`` request.

The key's first characters find its row; the SHA-256 of the whole key must match in
constant time; revoked keys fail like unknown ones. The organisation is put on the
request (``request[ORG]``) and every handler scopes its queries by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from aiohttp import web

from .crypto import API_KEY_PREFIX, api_key_lookup_prefix, api_key_matches, hash_api_key, new_api_key
from .errors import ApiError, Handler, Middleware
from .store import ApiKey, Conflict, Organisation, Repository, utcnow

if TYPE_CHECKING:
    from .services import ControlPlane

ORG = web.RequestKey("callagent.org", Organisation)
API_KEY = web.RequestKey("callagent.api_key", ApiKey)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callagent"'}


async def issue_api_key(repo: Repository, org_id: UUID, name: str) -> tuple[ApiKey, str]:
    """A new key for the organisation: the record (hash only) and the secret, shown once."""
    for _ in range(5):
        secret = new_api_key()
        record = ApiKey(id=uuid4(), org_id=org_id, name=name, prefix=api_key_lookup_prefix(secret),
                        key_hash=hash_api_key(secret), created_at=utcnow())
        try:
            return await repo.insert_api_key(record), secret
        except Conflict:
            continue  # prefix collision (54 random bits): draw again
    raise RuntimeError("could not generate a unique API key prefix")


async def authenticate(repo: Repository, header: str | None) -> tuple[Organisation, ApiKey]:
    if not header:
        raise ApiError(401, "unauthorized", "missing Authorization: Bearer <api key>", headers=_CHALLENGE)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        raise ApiError(401, "unauthorized", "malformed Authorization header (expected Bearer <api key>)",
                       headers=_CHALLENGE)
    record = await repo.find_api_key(api_key_lookup_prefix(token))
    if record is None or record.revoked_at is not None or not api_key_matches(token, record.key_hash):
        raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)
    org = await repo.get_organisation(record.org_id)
    if org is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)
    return org, record


def make_auth_middleware(cp: ControlPlane, prefix: str = "/api/") -> Middleware:
    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            repo = await cp.repository()
            request[ORG], request[API_KEY] = await authenticate(repo, request.headers.get("Authorization"))
        return await handler(request)

    return auth_middleware
