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
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from contact_import.store.db import dumps_json

__all__ = ["json_rows", "json_texts", "values_in"]


def _param(values: Sequence[Any]) -> Any:
    return cast(bindparam(None, dumps_json(list(values)), type_=Text), JSON)


def json_texts(values: Sequence[Any], name: str) -> TableValuedAlias:
    """The values as a derived table of one text column ``name``."""
    return func.json_array_elements_text(_param(values)).table_valued(name).render_derived()


def values_in(values: Sequence[Any], type_: TypeEngine[Any]) -> Select[Any]:
    """``SELECT CAST(value AS type_)`` over the values: the right side of an ``IN``."""
    texts = json_texts(values, "value")
    return select(cast(texts.c.value, type_))


def json_rows(
    rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, TypeEngine[Any]]]
) -> Select[Any]:
    """The rows (each a sequence of the columns' values, in order) as a SELECT of ``columns``."""
    elements = func.json_array_elements(_param(rows)).table_valued(column("row", JSON))
    elements = elements.render_derived()
    return select(
        *(
            cast(elements.c.row[i].astext, type_).label(name)
            for i, (name, type_) in enumerate(columns)
        )
    )
