"""Contact uploads: per-row validation, a CSV parser fed chunk by chunk, batched inserts, a report.

CSV: a header row naming a phone column (``phone``, ``number``, ``phone_number``, ``e164``,
``msisdn``, ``telephone``), optionally ``name`` and ``timezone``; every other column becomes a
variable for the agent's prompt (``agent_config.variables``). Without a recognised header the
first column is the phone and the second the name. The body is read incrementally and
written in batches (``campaigns.import_batch_size`` rows a transaction): a 100k-row file is
never held in memory. Records are cut at newlines outside quotes, so quoted fields may hold
commas, quotes and newlines (RFC 4180).

Rejected rows are reported with their row number and reason (the first
``campaigns.max_rejected_listed``; counts for all). A number already in the campaign is
rejected as a duplicate (its keyed hash is unique per campaign: numbers are sealed at rest).
A number on the organisation's do-not-call list is accepted as ``dnc_skipped``, never dialled.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ..phone import InvalidPhoneNumber, normalize_e164
from .models import ContactImportReport, RejectedRow
from .store import CampaignStore, PreparedContact
from .timezones import UnknownTimeZone, zone

PHONE_HEADERS = frozenset({"phone", "number", "phone_number", "e164", "msisdn", "telephone", "tel", "mobile"})
NAME_HEADERS = frozenset({"name", "full_name", "contact_name"})
TZ_HEADERS = frozenset({"timezone", "time_zone", "tz"})
MAX_COLUMNS = 50
MAX_VALUE = 1000
MAX_NAME = 200
MAX_KEY = 64
MAX_RECORD_CHARS = 64 * 1024


class RowError(ValueError):
    pass


def _text(value: Any, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(f"{what} must be text")
    text = str(value).strip()
    if "\x00" in text or "\ufffd" in text:
        raise RowError(f"{what} has invalid characters")
    if len(text) > limit:
        raise RowError(f"{what} is longer than {limit} characters")
    return text or None


def prepare(phone: Any, name: Any, timezone: Any, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A validated contact: its E.164 number and what is sealed with it (name, timezone, variables)."""
    if phone is None or (isinstance(phone, str) and not phone.strip()):
        raise RowError("missing phone number")
    if not isinstance(phone, str):
        raise RowError("phone number must be text")
    try:
        e164 = normalize_e164(phone.strip())
    except InvalidPhoneNumber:
        raise RowError("invalid phone number (expected E.164, e.g. +14155550123)") from None
    data: dict[str, Any] = {}
    name_text = _text(name, "name", MAX_NAME)
    if name_text:
        data["name"] = name_text
    tz = _text(timezone, "timezone", 64)
    if tz:
        try:
            zone(tz)
        except UnknownTimeZone:
            raise RowError("unknown time zone") from None
        data["timezone"] = tz
    if len(variables) > MAX_COLUMNS:
        raise RowError(f"more than {MAX_COLUMNS} variables")
    kept: dict[str, str] = {}
    for key, value in variables.items():
        key_text = _text(key, "column name", MAX_KEY)
        value_text = _text(value, "a variable's value", MAX_VALUE)  # not the column's name: it is the client's
        if key_text and value_text:
            kept[key_text] = value_text
    if kept:
        data["variables"] = kept
    return e164, data


@dataclass
class Importer:
    """Validates rows, batches them into the store, and keeps the report's figures."""

    store: CampaignStore
    org_id: UUID
    campaign_id: UUID
    batch_size: int
    max_listed: int
    max_rows: int
    received: int = 0
    accepted: int = 0
    dnc_skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    listed: list[RejectedRow] = field(default_factory=list)
    _batch: dict[str, PreparedContact] = field(default_factory=dict)

    class TooManyRows(Exception):
        pass

    def reject(self, row: int, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.listed) < self.max_listed:
            self.listed.append(RejectedRow(row=row, reason=reason))

    async def add(self, row: int, phone: Any, name: Any, timezone: Any, variables: dict[str, Any]) -> None:
        self.received += 1
        if self.received > self.max_rows:
            raise Importer.TooManyRows()
        try:
            e164, data = prepare(phone, name, timezone, variables)
        except RowError as exc:
            self.reject(row, str(exc))
            return
        digest = self.store.repo.hash_phone(e164)
        if digest in self._batch:
            self.reject(row, "duplicate")
            return
        self._batch[digest] = PreparedContact(e164, digest, data, row)
        if len(self._batch) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        batch, self._batch = list(self._batch.values()), {}
        if not batch:
            return
        inserted, dnc = await self.store.import_batch(self.org_id, self.campaign_id, batch)
        for contact in batch:
            if contact.phone_hash not in inserted:
                self.reject(contact.row, "duplicate")
        self.accepted += len(inserted)
        self.dnc_skipped += len(dnc)

    async def report(self) -> ContactImportReport:
        await self.flush()
        rejected = sum(self.reasons.values())
        self.listed.sort(key=lambda r: r.row)
        return ContactImportReport(
            received=self.received, accepted=self.accepted, rejected=rejected,
            duplicates=self.reasons.get("duplicate", 0), dnc_skipped=self.dnc_skipped,
            rejected_by_reason=dict(self.reasons), rejected_rows=self.listed,
            rejected_rows_truncated=rejected > len(self.listed),
            total_contacts=await self.store.count_contacts(self.campaign_id),
        )


async def csv_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, list[str] | None]]:
    """``(row number, cells)`` per CSV record from a byte stream; ``cells`` None for a malformed record.

    Decoded incrementally (UTF-8, BOM dropped; undecodable bytes become U+FFFD and the row is
    rejected). A record ends at a newline outside quotes. One longer than 64k characters is
    malformed, and parsing resumes after the line it ends on. Blank records are skipped but
    counted, so row numbers match the file's rows (the header is row 1).
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    state = _Records()
    buffer = ""
    async for chunk in chunks:
        if not chunk:
            continue
        buffer += decoder.decode(chunk)
        *lines, buffer = buffer.split("\n")
        for line in lines:
            for record in state.feed(line + "\n"):
                yield record
        if len(buffer) > MAX_RECORD_CHARS:
            # One line longer than any record may be: reject it without holding it.
            for record in state.overlong():
                yield record
            buffer = ""
    buffer += decoder.decode(b"", final=True)
    for record in state.feed(buffer, final=True) if buffer else ():
        yield record
    for record in state.finish():
        yield record


class _Records:
    """Joins lines into CSV records (quote parity) and parses each one."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.quotes = 0
        self.row = 0
        self.skip_line = False

    def _reset(self) -> None:
        self.parts, self.size, self.quotes = [], 0, 0

    def overlong(self) -> list[tuple[int, list[str] | None]]:
        out: list[tuple[int, list[str] | None]] = []
        if not self.skip_line:
            self.row += 1
            out.append((self.row, None))
        self._reset()
        self.skip_line = True
        return out

    def feed(self, line: str, final: bool = False) -> list[tuple[int, list[str] | None]]:
        if self.skip_line:
            self.skip_line = False  # the rest of the overlong line ends here
            return []
        self.parts.append(line)
        self.size += len(line)
        self.quotes += line.count('"')
        if self.size > MAX_RECORD_CHARS:
            self._reset()
            self.row += 1
            return [(self.row, None)]
        if self.quotes % 2 and not final:
            return []
        text, odd = "".join(self.parts), self.quotes % 2
        self._reset()
        self.row += 1
        if odd:
            return [(self.row, None)]  # an unclosed quote at the end of the file
        if not text.strip():
            return []
        return [(self.row, _parse(text))]

    def finish(self) -> list[tuple[int, list[str] | None]]:
        if not self.parts:
            return []
        self._reset()
        self.row += 1
        return [(self.row, None)]  # an unclosed quote at the end of the file


def _parse(text: str) -> list[str] | None:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


async def import_csv(importer: Importer, chunks: AsyncIterator[bytes]) -> None:
    layout: tuple[int, int, int, dict[int, str]] | None = None
    async for row, cells in csv_records(chunks):
        if layout is None:
            names = [c.strip().lower() for c in cells] if cells else []
            phones = [i for i, c in enumerate(names) if c in PHONE_HEADERS]
            if phones and cells is not None:
                phone_col = phones[0]
                name_col = next((i for i, c in enumerate(names) if c in NAME_HEADERS), -1)
                tz_col = next((i for i, c in enumerate(names) if c in TZ_HEADERS), -1)
                keys = {i: cells[i].strip() for i in range(len(cells))
                        if i not in (phone_col, name_col, tz_col) and cells[i].strip()}
                layout = (phone_col, name_col, tz_col, keys)
                continue
            layout = (0, 1, -1, {})  # no header: phone, name, then column_3...
        if cells is None:
            importer.received += 1
            importer.reject(row, "malformed CSV record")
            continue
        if len(cells) > MAX_COLUMNS + 3:
            importer.received += 1
            importer.reject(row, f"more than {MAX_COLUMNS + 3} columns")
            continue
        phone_col, name_col, tz_col, keys = layout
        variables: dict[str, str] = {}
        for i, value in enumerate(cells):
            if i not in (phone_col, name_col, tz_col) and value.strip():
                variables[keys.get(i, f"column_{i + 1}")] = value

        def cell(i: int, cells: list[str] = cells) -> str | None:
            return cells[i] if 0 <= i < len(cells) else None

        await importer.add(row, cell(phone_col), cell(name_col), cell(tz_col), variables)


async def import_json(importer: Importer, contacts: list[Any]) -> None:
    for index, item in enumerate(contacts, start=1):
        if not isinstance(item, dict):
            importer.received += 1
            importer.reject(index, "not an object")
            continue
        unknown = set(item) - {"phone", "name", "timezone", "variables"}
        variables = item.get("variables")
        if variables is None:
            variables = {}
        if unknown or not isinstance(variables, dict):
            importer.received += 1
            importer.reject(index, "unknown fields" if unknown else "variables must be an object")
            continue
        await importer.add(index, item.get("phone"), item.get("name"), item.get("timezone"), variables)
