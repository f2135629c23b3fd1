"""How commands print: tables and key/value lists readable at 80 columns and in pipes, and JSON.

On a terminal a table is a Rich table sized here, not by Rich: every column is as wide as its
widest cell and never narrower than its header; only the columns marked ``shrink`` give up
width (cut with "…") when the terminal is too narrow. In a pipe the same rows are plain text,
columns separated by two spaces and never cut, and titles and notes go to stderr, so stdout
is the header and the rows only (for ``grep``, ``awk``, ``cut``). An empty value is "—",
never a blank cell. ``--json`` output is for scripts: one document on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

from contact_import.cli.common import console, err_console

__all__ = [
    "EMPTY",
    "Column",
    "cell",
    "fitted_widths",
    "print_fields",
    "print_json",
    "print_note",
    "print_table",
]

EMPTY = "—"
_GAP = 2  # spaces between two columns, on a terminal and in a pipe
_MIN_SHRUNK = 6  # a shrinkable column keeps at least this much ("ab12…")


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    shrink: bool = False  # may be cut with "…" to fit the terminal; the others never are


def cell(value: object) -> str:
    """The text of one cell: "—" for None or an empty string."""
    text = "" if value is None else str(value)
    return text if text.strip() else EMPTY


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, title: str) -> None:
    """A table on stdout (see the module docstring); ``title`` says what it lists."""
    texts = [[cell(value) for value in row] for row in rows]
    if console.is_terminal:
        console.print(_rich_table(columns, texts, title, console.width))
        return
    print_note(title)
    widths = _natural_widths(columns, texts)
    typer.echo(_plain_line([c.header for c in columns], columns, widths))
    for row in texts:
        typer.echo(_plain_line(row, columns, widths))


def print_fields(pairs: Sequence[tuple[str, object]], *, title: str) -> None:
    """One record as "name  value" lines: the names aligned, long values wrapped on a terminal."""
    texts = [(name, cell(value)) for name, value in pairs]
    if console.is_terminal:
        table = Table(show_header=False, box=None, title=title, title_justify="left")
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("value", overflow="fold")
        for name, value in texts:
            table.add_row(name, value, end_section=False)
        console.print(table, highlight=False)
        return
    print_note(title)
    width = max((len(name) for name, _ in texts), default=0)
    for name, value in texts:
        typer.echo(f"{name.ljust(width)}{' ' * _GAP}{value}")


def print_note(text: str) -> None:
    """A line for the person reading: on stdout at a terminal, on stderr in a pipe."""
    target: Console = console if console.is_terminal else err_console
    target.print(text, highlight=False, soft_wrap=True, markup=False)


def print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(c.header), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]


def _plain_line(values: Sequence[str], columns: Sequence[Column], widths: Sequence[int]) -> str:
    parts = [
        value.rjust(width) if column.justify == "right" else value.ljust(width)
        for value, column, width in zip(values, columns, widths, strict=True)
    ]
    return (" " * _GAP).join(parts).rstrip()


def fitted_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], room: int) -> list[int]:
    """Natural widths, with the shrinkable columns cut (evenly) until the table fits ``room``."""
    widths = _natural_widths(columns, rows)
    excess = sum(widths) + _GAP * (len(columns) - 1) - room
    shrinkable = [i for i, c in enumerate(columns) if c.shrink]
    while excess > 0 and shrinkable:
        i = max(shrinkable, key=lambda k: widths[k])
        floor = max(len(columns[i].header), _MIN_SHRUNK)
        if widths[i] <= floor:
            shrinkable.remove(i)
            continue
        widths[i] -= 1
        excess -= 1
    return widths


def _rich_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str, room: int
) -> Table:
    widths = fitted_widths(columns, rows, room)
    table = Table(
        title=title,
        title_justify="left",
        box=None,
        pad_edge=False,
        padding=(0, _GAP // 2),
        collapse_padding=False,
        header_style="bold underline",
    )
    for column, width in zip(columns, widths, strict=True):
        table.add_column(
            column.header,
            justify=column.justify,
            width=width,
            min_width=width,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        table.add_row(*row)
    return table
