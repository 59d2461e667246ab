"""``callagent kb``: an organisation's knowledge bases from the command line.

    callagent kb create ORG NAME            callagent kb add ORG KB FILE... [--name N] [--type T]
    callagent kb list ORG                   callagent kb docs ORG KB
    callagent kb delete ORG KB              callagent kb remove ORG KB NAME
    callagent kb search ORG KB QUERY...

KB is a knowledge base's id or name. ``add`` shows page progress while a PDF is read. The
parser is in :mod:`callagent.cli` (with every command's), which loads this module when it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from uuid import UUID

from control_plane.knowledge.service import KnowledgeError, KnowledgeService
from control_plane.store import Conflict, StoreError, open_repository

from .runtime import run
from .settings_check import load_settings


class KbError(Exception):
    """A mistake the operator can fix (printed as one line)."""


class _PageProgress:
    """``reading guide.pdf: page 120/300`` on one line of stderr, at most every 0.1 s."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._shown = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._shown >= 0.1:
            self._shown = now
            end = "\n" if done == total else ""
            print(f"\rreading {self.name}: page {done}/{total}", end=end, file=sys.stderr, flush=True)


def command(args: argparse.Namespace) -> int:
    try:
        org_id = UUID(args.org)
    except ValueError:
        raise KbError("organisation id must be a UUID (as `callagent org list` prints it)") from None
    if args.action == "add" and args.name and len(args.files) > 1:
        raise KbError("--name names one file; give one file with it")
    return run(_run(args, org_id))


async def _run(args: argparse.Namespace, org_id: UUID) -> int:
    settings = load_settings()
    service = KnowledgeService(settings.knowledge)
    try:
        repo = await open_repository(settings)
    except StoreError as exc:
        raise KbError(str(exc)) from None
    try:
        if await repo.get_organisation(org_id) is None:
            raise KbError(f"no organisation {org_id}")
        store = service.store(repo)
        if args.action == "create":
            kb = await service.create_base(repo, org_id, args.name, args.description)
            print(f"knowledge base {kb.id} ({kb.name})")
        elif args.action == "list":
            for kb in await store.list_bases(org_id):
                print(f"{kb.id}  {kb.name}  {kb.documents} documents, {kb.chunks} passages")
        elif args.action == "delete":
            kb = await service.base(repo, org_id, args.kb)
            await store.delete_base(org_id, kb.id)
            print(f"deleted {kb.name}")
        elif args.action == "add":
            kb = await service.base(repo, org_id, args.kb)
            for path in args.files:
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise KbError(f"cannot read {path}: {exc.strerror or exc}") from None
                started = time.monotonic()
                doc = await service.ingest(repo, org_id, str(kb.id), args.name or path.name, data,
                                           content_type=args.type, progress=_PageProgress(path.name))
                print(f"{doc.name}: {doc.content_type}, {doc.chars} characters, {doc.chunks} passages"
                      f"{', embedded' if doc.embedded else ''} ({time.monotonic() - started:.1f} s)")
        elif args.action == "docs":
            kb = await service.base(repo, org_id, args.kb)
            for doc in await store.list_documents(org_id, kb.id):
                print(f"{doc.name}  {doc.content_type}  {doc.chunks} passages  {doc.created_at:%Y-%m-%d %H:%M}")
        elif args.action == "remove":
            kb = await service.base(repo, org_id, args.kb)
            if not await store.delete_document(org_id, kb.id, args.name):
                raise KbError(f"{kb.name} has no document {args.name!r}")
            print(f"removed {args.name}")
        elif args.action == "search":
            kb = await service.base(repo, org_id, args.kb)
            hits = await service.search(repo, [kb.id], " ".join(args.query), limit=args.limit)
            if not hits:
                print("nothing relevant found")
            for i, hit in enumerate(hits, 1):
                print(f"[{i}] {hit.source} (score {hit.score:.3g})\n    {hit.text}")
    except (KnowledgeError, LookupError, Conflict) as exc:
        raise KbError(str(exc)) from None
    finally:
        await repo.close()
        await service.close()
    return 0
