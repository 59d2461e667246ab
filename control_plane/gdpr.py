"""Erasure (GDPR) as service calls: a person's number everywhere the control plane keeps it, or a
whole organisation.

The store erases its rows in one transaction (:class:`~control_plane.store.ErasureRepository`);
the live call sessions in Redis (or in the process) that belong to the erased calls go with
them. What a contact erasure's receipt says is retained is :data:`RETAINED`. An organisation's
erasure keeps nothing: its calls, numbers, keys, campaigns, webhooks, do-not-call list, usage and
knowledge bases (documents, passages, index entries, embeddings) all go, and its API keys with
them, so its dashboard sessions end on their next request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from .knowledge.store import KnowledgeStore
from .sessions import SessionStore
from .store import ErasureResult, Repository
from .store.erasure import OrganisationBusy

__all__ = ["RETAINED", "ContactErasure", "OrganisationBusy", "OrganisationErasure", "erase_contact",
           "erase_organisation"]

log = logging.getLogger(__name__)

RETAINED = {
    "call_records": "status, timings, hangup cause, cost and latency figures, with the number replaced "
                    "by its keyed hash",
    "do_not_call": "a do-not-call entry, if any, stays (it is a keyed hash) so the number is not called again",
}


@dataclass(frozen=True, slots=True)
class ContactErasure:
    phone_hash: str
    result: ErasureResult
    sessions: int  # call sessions deleted


async def erase_contact(repo: Repository, sessions: SessionStore, org_id: UUID, phone: str) -> ContactErasure:
    result = await repo.erase_phone(org_id, phone)
    deleted = 0
    for control_id in result.call_control_ids:
        deleted += bool(await sessions.delete(control_id))
    return ContactErasure(phone_hash=repo.hash_phone(phone), result=result, sessions=deleted)


@dataclass(frozen=True, slots=True)
class OrganisationErasure:
    org_id: UUID
    counts: dict[str, int]  # rows removed, by table (knowledge_* for the knowledge bases)
    sessions: int  # call sessions deleted
    recording_ids: tuple[str, ...]  # Telnyx keeps the recordings: delete them there too


async def erase_organisation(repo: Repository, knowledge: KnowledgeStore, sessions: SessionStore | None,
                             org_id: UUID, *, force: bool = False) -> OrganisationErasure | None:
    """Delete the organisation and everything it owns (``None``: no such organisation). Raises
    :class:`OrganisationBusy` while it has calls up or a campaign running, unless ``force``."""
    result = await repo.erase_organisation(org_id, (knowledge.erase_in,), force=force)
    if result is None:
        return None
    deleted = 0
    if sessions is not None:
        for control_id in result.call_control_ids:
            deleted += bool(await sessions.delete(control_id))
    log.info("organisation %s erased: %s", org_id,
             ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items()) if v))
    return OrganisationErasure(org_id=org_id, counts=result.counts, sessions=deleted,
                               recording_ids=result.recording_ids)
