"""The CLI's table sizing and cell text: pure, no terminal needed."""

from __future__ import annotations

import pytest

from contact_import.cli.jobs import compact_age
from contact_import.cli.output import Column, cell, fitted_widths

COLUMNS = (Column("id"), Column("user", shrink=True), Column("progress", justify="right"))
ROWS = [["abcd1234", "u" * 60, "1,234,567/1,234,567"]]


@pytest.mark.parametrize(
    ("value", "text"), [(None, "—"), ("", "—"), ("  ", "—"), (0, "0"), ("x", "x")]
)
def test_an_empty_value_is_a_dash(value: object, text: str) -> None:
    assert cell(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m"), (3_599, "59m"), (3_600, "1h"),
     (86_399, "23h"), (86_400, "1d"), (10 * 86_400 + 5, "10d")],
)  # fmt: skip
def test_compact_age_shows_the_largest_unit(seconds: float, text: str) -> None:
    assert compact_age(seconds) == text


def test_only_shrinkable_columns_give_up_width() -> None:
    widths = fitted_widths(COLUMNS, ROWS, room=80)
    assert sum(widths) + 2 * (len(COLUMNS) - 1) == 80
    assert widths[0] == 8
    assert widths[2] == len(ROWS[0][2])


def test_a_shrinkable_column_keeps_its_header_whole() -> None:
    widths = fitted_widths(COLUMNS, ROWS, room=20)
    assert widths == [8, 6, len(ROWS[0][2])]  # too narrow: the rest is Rich's to cut


def test_a_table_that_fits_keeps_its_natural_widths() -> None:
    rows = [["abcd1234", "bob", "—"]]
    assert fitted_widths(COLUMNS, rows, room=80) == [8, 4, 8]
