"""Erasing a person's number everywhere the control plane keeps it (GDPR), as one service call.

The store erases its rows in one transaction (:class:`~control_plane.store.ErasureRepository`);
the live call sessions in Redis (or in the process) that belong to the erased calls go with
them. What the receipt says is retained is :data:`RETAINED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from .sessions import SessionStore
from .store import ErasureResult, Repository

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
