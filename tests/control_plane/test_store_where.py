"""store.db.Where: the WHERE clause builder of the list queries (calls, webhook deliveries), whose
``$n`` numbering must mean the same on PostgreSQL and on SQLite (``?n`` there)."""

from __future__ import annotations

from control_plane.store import open_repository
from control_plane.store.db import Where


def test_values_are_numbered_in_order_and_never_enter_the_sql():
    where = Where("org_id = {}", "o")
    where.when(None, "status = {}")  # not filtered
    where.when("x'); DROP TABLE calls; --", "status = {}")
    where.add("(created_at, id) < ({}, {})", "t", "i")
    assert str(where) == "org_id = $1 AND status = $2 AND (created_at, id) < ($3, $4)"
    assert where.arg(10) == "$5"
    assert where.args == ["o", "x'); DROP TABLE calls; --", "t", "i", 10]


async def test_more_than_nine_parameters_bind_to_the_right_places_on_both_backends(settings):
    # $10 must not read as $1 followed by a 0 (SQLite's ?10), and each value must land where its
    # placeholder is, whatever filters were left out before it.
    repo = await open_repository(settings)
    try:
        where = Where("1 = 1")
        for i in range(1, 12):
            where.when(None if i == 4 else i, f"{{}} = {i}")  # $n compared with the literal it should carry
        where.add("{} = 'last'", "last")
        row = await repo.db.fetchrow(f"SELECT count(*) AS n WHERE {where}", *where.args)
        assert row is not None and row["n"] == 1
        assert len(where.args) == 11 and "$11" in str(where)
    finally:
        await repo.close()
