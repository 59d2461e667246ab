"""Reading a do-not-call import (control_plane.dnc), without a server."""

from __future__ import annotations

import pytest

from control_plane.dnc import read_dnc_csv
from control_plane.errors import ApiError


def test_a_headed_file_reads_the_named_columns_and_reports_bad_rows_by_line() -> None:
    raw = b"name,Phone,reason\nann,+1 415 555 0123,asked\nbob,not a number,\n\ncat,+14155550123,again\n"
    read = read_dnc_csv(raw, max_rows=10)
    assert read.rows == 3  # the blank line is not a row
    assert read.entries == {"+14155550123": "asked"}  # one entry per number, its first reason
    assert read.invalid_rows == (3,)


def test_a_bare_file_reads_the_first_column_and_the_second_as_reason() -> None:
    read = read_dnc_csv(b"\xef\xbb\xbf+442071838750,moved\x00 away\n+14155550124\n", max_rows=10)
    assert read.entries == {"+442071838750": "moved away", "+14155550124": None}


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"\xff\xfe+1415", 400, "invalid_csv"),
    (b"+14155550123\n+14155550124\n+14155550125\n", 413, "too_many_rows"),
])
def test_a_file_that_cannot_be_taken_whole_is_refused_whole(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        read_dnc_csv(raw, max_rows=2)
    assert (refused.value.status, refused.value.code) == (status, code)
