"""Keyset paging: ORDER BY a list of columns and "rows after this one".

A list sorted by (k1, ..., kn) -- the last a unique column -- pages
stably: the next page is the rows whose sort values come strictly after
the marker row's, whatever was inserted or deleted meanwhile. NULL sorts
before every value on every backend (PostgreSQL would put it last).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def _nullable(column: Any) -> bool:
    return bool(getattr(column, "nullable", None) if not hasattr(
        column, "property") else column.property.columns[0].nullable)


def order_by(order: list[tuple[Any, str]]) -> list:
    """ORDER BY expressions for (column, "asc"|"desc") pairs; a NOT NULL
    column sorts by itself (so an index on it can serve the order)."""
    exprs = []
    for column, direction in order:
        if _nullable(column):
            present = sa.case((column.is_(None), 0), else_=1)
            exprs.append(present.asc() if direction == "asc"
                         else present.desc())
        exprs.append(column.asc() if direction == "asc" else column.desc())
    return exprs


def _past(column, direction: str, value: Any) -> sa.ColumnElement[bool]:
    """Rows strictly after ``value`` in this column's order (NULL first
    when ascending)."""
    if direction == "asc":
        return column.is_not(None) if value is None else column > value
    if value is None:
        return sa.false()
    return sa.or_(column < value, column.is_(None))


def _equal(column, value: Any) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def after(order: list[tuple[Any, str]], marker: Any) -> Any:
    """WHERE clause: rows strictly after ``marker`` (a row) in ``order``."""
    ors = []
    for index, (column, direction) in enumerate(order):
        ands = [_equal(c, getattr(marker, c.key)) for c, _ in order[:index]]
        ands.append(_past(column, direction, getattr(marker, column.key)))
        ors.append(sa.and_(*ands))
    return sa.or_(*ors)
