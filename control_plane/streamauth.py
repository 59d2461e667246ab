"""Media streams bound to their calls: a per-call credential, and the gate that checks it.

Every stream this server asks Telnyx for (dial, answer, ``streaming_start``) carries its own
credential: ``<call id>.<nonce>.<mac>``, the MAC an HMAC of the call id and a fresh nonce
under the lookup hash key (shared by every instance; nothing is stored). It travels in the
``stream_url`` query (``?token=...``, which works for all three commands) and, where the
Telnyx SDK has the parameter (dial, ``streaming_start``; not answer), as ``stream_auth_token``,
which Telnyx sends back in the ``x-telnyx-streaming-auth-token`` upgrade header. Either is
accepted. The token is a secret: it is never logged, and the URL it sits in neither.

:class:`StreamGate` runs on the WebSocket upgrade and decides what a stream is:

* ``call``: a valid per-call credential; the stream may only ever run *that* call's agent
  (the pipeline then checks the call is live and the ``call_control_id`` matches);
* ``operator``: the global ``CALLAGENT_STREAM_AUTH_TOKEN`` in the header, without a per-call
  credential (Telnyx, configured by the operator): found by ``call_control_id`` or
  ``client_state``, with the same liveness checks;
* ``anonymous``: nothing valid presented. Runs the default agent with no call records, and
  only in local mode or when ``streams.accept_unknown`` is on; otherwise refused (401).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode
from uuid import UUID

from aiohttp import web

from .crypto import LookupHasher

if TYPE_CHECKING:
    from .services import ControlPlane

AUTH_HEADER = "x-telnyx-streaming-auth-token"
TOKEN_PARAM = "token"
MAX_TOKEN_CHARS = 200  # ours are ~110; Telnyx allows 4000, nothing longer is worth hashing

StreamKind = Literal["call", "operator", "anonymous"]


@dataclass(frozen=True, slots=True)
class StreamCredential:
    """What the upgrade request proved. ``call_id`` is set only for ``kind == "call"``."""

    kind: StreamKind
    call_id: UUID | None = None
    resume: bool = False
    """The recovery sweep asked for this stream: the call's conversation goes on."""


ANONYMOUS = StreamCredential("anonymous")
OPERATOR = StreamCredential("operator")
STREAM_CREDENTIAL_KEY = web.RequestKey("callagent.stream_credential", StreamCredential)
"""Where the gate leaves the :class:`StreamCredential` on the request, for the listener factory."""


def issue_token(hasher: LookupHasher, call_id: UUID, *, resume: bool = False) -> str:
    """A fresh credential for one stream of ``call_id`` (a new nonce each time). The nonce's first
    letter says whether the stream re-attaches the call (covered by the MAC like the rest)."""
    nonce = ("r" if resume else "n") + secrets.token_urlsafe(9)
    return f"{call_id}.{nonce}.{hasher.stream_credential(str(call_id), nonce)}"


def _resumes(token: str) -> bool:
    return token.split(".")[1].startswith("r")


def verify_token(hasher: LookupHasher, token: str) -> UUID | None:
    """The call a credential is for, or None when it is not one of ours (constant-time MAC check)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    raw_id, nonce, mac = parts
    try:
        call_id = UUID(raw_id)
    except ValueError:
        return None
    if str(call_id) != raw_id or not nonce:
        return None
    expected = hasher.stream_credential(raw_id, nonce)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    return call_id


def with_token(stream_url: str, token: str) -> str:
    """``stream_url`` carrying ``token`` in its query."""
    return f"{stream_url}{'&' if '?' in stream_url else '?'}{urlencode({TOKEN_PARAM: token})}"


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """What a dial, answer or ``streaming_start`` sends: the URL (credential inside) and the
    header token (the global token when one is configured, so it keeps working, else ours)."""

    url: str
    auth_token: str


def stream_target(cp: ControlPlane, call_id: UUID, *, resume: bool = False) -> StreamTarget:
    token = issue_token(cp.keys.hasher, call_id, resume=resume)
    return StreamTarget(url=with_token(cp.stream_url(), token), auth_token=cp.stream_auth_token or token)


def unknown_streams_allowed(cp: ControlPlane) -> bool:
    """Streams with no credential run the default agent: in local mode (emulators, no real calls
    to take over), or when the operator says so."""
    return cp.settings.streams.accept_unknown or cp.settings.local_mode


class StreamGate:
    """Checks a media WebSocket's upgrade request (see the module docstring)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        token = cp.stream_auth_token
        self._global = token.encode() if token else None

    def credential(self, request: web.Request) -> StreamCredential | None:
        """What the request proves; None: refuse it."""
        header = request.headers.get(AUTH_HEADER, "")
        offered = [t for t in (request.query.get(TOKEN_PARAM, ""), header) if t]
        hasher = self.cp.keys.hasher
        for token in offered:
            call_id = verify_token(hasher, token)
            if call_id is not None:
                return StreamCredential("call", call_id, resume=_resumes(token))
        if self._global is not None:
            # With a global token configured nothing gets in without it (as before).
            return OPERATOR if header and hmac.compare_digest(header.encode(), self._global) else None
        if offered:
            return None  # a credential that does not verify is an attack or a stale URL, not "none"
        return ANONYMOUS if unknown_streams_allowed(self.cp) else None

    def admit(self, request: web.Request) -> bool:
        """The edge's check: False refuses the upgrade (401); True leaves the credential on the request."""
        credential = self.credential(request)
        if credential is None:
            return False
        request[STREAM_CREDENTIAL_KEY] = credential
        return True


def credential_of(request: web.Request) -> StreamCredential:
    """The credential :meth:`StreamGate.admit` left on the request (anonymous when there was no gate)."""
    found = request.get(STREAM_CREDENTIAL_KEY)
    return found if isinstance(found, StreamCredential) else ANONYMOUS
