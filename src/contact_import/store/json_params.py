"""Many values in one statement as ONE JSON parameter (Postgres).

A page's statements take hundreds or thousands of values (provider ids, match keys, contact
ids, versions). Sent as array parameters, psycopg dumps them element by element in Python
(about 10 ms for 1,000 rows of three columns, every page); as one JSON text, orjson encodes
them in C and Postgres parses them in C (about 1 ms). ``bench/import_throughput.py`` shows
the statements' times.

``values_in``: a one-column SELECT for ``column IN (...)``; ``json_rows``: a table of rows for
``INSERT … SELECT`` and joins. Values must be JSON-encodable by orjson (str, int, UUID).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Text, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.types import TypeEngine

from contact_import.store.db import dumps_json

__all__ = ["json_param", "json_rows", "json_value", "values_in"]


def json_value(values: Sequence[Any]) -> str:
    """What to bind a ``json_param`` to: the values as one JSON text."""
    return dumps_json(list(values))


def json_param(name: str) -> Any:
    """A named JSON parameter (bound at execution to a ``json_value``): a statement built once
    and executed many times need not be built again for each page. Read as ``jsonb``: parsed
    once, its rows' fields are then taken without parsing again (with ``json``, each ``->>``
    re-reads its row's text: a 1,000-row page insert took 25 ms against 17 ms)."""
    return cast(bindparam(name, type_=Text), JSONB)


def values_in(values: Sequence[Any], type_: TypeEngine[Any]) -> Select[Any]:
    """``SELECT CAST(value AS type_)`` over the values: the right side of an ``IN``."""
    param = cast(bindparam(None, json_value(values), type_=Text), JSON)
    texts = func.json_array_elements_text(param).table_valued("value").render_derived()
    return select(cast(texts.c.value, type_))


def json_rows(param: Any, columns: Sequence[tuple[str, TypeEngine[Any]]]) -> Select[Any]:
    """The rows of a JSON parameter (``json_param``: a list of lists, each the columns' values
    in order) as a SELECT of ``columns``; a ``JSONB`` column takes its value as it is."""
    elements = func.jsonb_array_elements(param).table_valued(column("row", JSONB))
    row = elements.render_derived().c.row
    return select(
        *(
            (row[i] if isinstance(t, JSONB) else cast(row[i].astext, t)).label(name)
            for i, (name, t) in enumerate(columns)
        )
    )
