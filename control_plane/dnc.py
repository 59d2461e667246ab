"""The do-not-call list as a service: reading an imported CSV and adding its numbers.

The list itself is :class:`~control_plane.store.DncRepository` (keyed hashes only); every dial
checks it (:meth:`control_plane.calls.CallService.ensure_dialable`, and the campaign dialer at
claim time). Here is what turns an operator's file into entries.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from uuid import UUID

from .errors import ApiError
from .phone import InvalidPhoneNumber, normalize_e164
from .store import Repository

PHONE_HEADERS = frozenset({"phone", "number", "phone_number", "e164", "msisdn", "telephone"})
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class DncFile:
    """An import read: one entry per distinct number (its first reason), and the rows refused."""

    rows: int
    entries: dict[str, str | None] = field(default_factory=dict)
    invalid_rows: tuple[int, ...] = ()


def read_dnc_csv(raw: bytes, *, max_rows: int) -> DncFile:
    """One number per row: the first column, or a ``phone``/``number``/... column under a header
    (with an optional ``reason`` column). A file that is not UTF-8 CSV, or has more than
    ``max_rows`` non-empty rows, is refused whole (400 / 413): nothing of it is added."""
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_csv", "the CSV is not UTF-8") from None
    except csv.Error as exc:
        raise ApiError(400, "invalid_csv", f"the CSV does not parse: {exc}") from None
    phone_col, reason_col, start = 0, 1, 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        named = [i for i, cell in enumerate(header) if cell in PHONE_HEADERS]
        if named:
            phone_col, start = named[0], 1
            reason_col = header.index("reason") if "reason" in header else -1
    entries: dict[str, str | None] = {}
    invalid: list[int] = []
    data_rows = 0
    for line, row in enumerate(rows[start:], start=start + 1):
        if not any(cell.strip() for cell in row):
            continue
        data_rows += 1
        if data_rows > max_rows:
            raise ApiError(413, "too_many_rows", f"at most {max_rows} rows per import; split the file")
        try:
            phone = normalize_e164(row[phone_col])
        except (IndexError, InvalidPhoneNumber):
            invalid.append(line)
            continue
        reason = row[reason_col].replace("\x00", "").strip()[:MAX_REASON_CHARS] if 0 <= reason_col < len(row) else ""
        entries.setdefault(phone, reason or None)
    return DncFile(rows=data_rows, entries=entries, invalid_rows=tuple(invalid))


async def import_dnc(repo: Repository, org_id: UUID, dnc_file: DncFile) -> int:
    """Add the file's numbers to the organisation's list; how many were not listed before."""
    if not dnc_file.entries:
        return 0
    return await repo.add_dnc_many(org_id, list(dnc_file.entries.items()), source="import")
