"""Reads made for every callback, built into SQL once instead of on every call.

Why: building a Tortoise query -- its joins, then pypika turning it into SQL text --
costs more CPU than running it. Measured on SQLite (BENCHMARKS.md, "Prepared reads"):
the call with its lead and its connection took 1.6-1.8 ms of CPU through the ORM and
0.5 ms with its SQL built once; a worker reads it for every attempt and every
notification. A :class:`PreparedRead` builds the query the first time it is used
with a database dialect and a *shape* (the length of each list argument), keeps the
SQL and its parameters, and from then on only puts the new values in their places.
The rows become models exactly as the ORM makes them (the same executor, joins
included), in the transaction the caller is in, if any.

Only plain reads are prepared: filters, ``select_related``, ``values_list`` (not flat),
ordering and limits. A query with prefetches or annotations is refused when it is
first prepared.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import QuerySet, ValuesListQuery

ModelT = TypeVar("ModelT", bound=Model)

#: list arguments up to this long keep their SQL (a group of up to 500 deliveries reads its calls at
#: once: the usual few lengths are kept, a rare long list is built each time)
MAX_KEPT_LENGTH = 64

#: values no caller passes, one per argument of a query being prepared; found again among its parameters
_markers = itertools.count(7_300_000_000_001)


def _marker(field: fields.Field[Any]) -> Any:
    if isinstance(field, fields.UUIDField):
        return uuid.uuid4()
    if isinstance(field, fields.IntField):
        return next(_markers)
    if isinstance(field, fields.CharField | fields.TextField):
        return f"\x00{next(_markers) % 0xFFFFFF:06x}"  # short: it must pass the field's length check
    raise TypeError(f"a prepared read cannot take a value for a {type(field).__name__}")


class _Shape:
    """One query as SQL for one dialect and one set of list lengths: the text and where each value goes."""

    __slots__ = ("columns", "params", "related", "slots", "sql")

    def __init__(self, sql: str, params: list[Any], slots: list[tuple[int, str, int | None]], query: Any) -> None:
        self.sql = sql
        self.params = params
        #: (index among the parameters, argument name, index in the argument's list or None)
        self.slots = slots
        #: a model read's joined models, as the ORM's executor takes them
        self.related = getattr(query, "_select_related_idx", None)
        #: a values read's columns: (the row's key, the conversion to Python)
        self.columns = (
            [(key, query.resolve_to_python_value(query.model, name)) for key, name in query.fields.items()]
            if isinstance(query, ValuesListQuery)
            else []
        )


class _Prepared:
    """What both kinds of prepared read share: the statement for the values given."""

    def __init__(self, model: type[Model], build: Callable[..., Any], arguments: dict[str, str]) -> None:
        self.model = model
        self._build = build
        self._arguments = arguments
        #: the fields by argument, looked up on first use: a foreign key's ``_id`` field exists only
        #: once Tortoise has started (reads are declared at import)
        self._fields: dict[str, fields.Field[Any]] = {}
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

    def _statement(self, values: dict[str, Any]) -> tuple[BaseDBAsyncClient, _Shape, list[Any]]:
        if values.keys() != self._arguments.keys():
            raise TypeError(f"a prepared read of {self.model.__name__} takes {', '.join(self._arguments)}")
        if not self._fields:
            self._fields = {name: self.model._meta.fields_map[field] for name, field in self._arguments.items()}
        db = self.model._choose_db()
        lengths = tuple(len(value) if isinstance(value, list | tuple | set) else None for value in values.values())
        key = (db.capabilities.dialect, lengths)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._prepare(db, dict(zip(values, lengths, strict=True)))
            if all(length is None or length <= MAX_KEPT_LENGTH for length in lengths):
                self._shapes[key] = shape
        params = list(shape.params)
        converted = {name: self._convert(name, value) for name, value in values.items()}
        for index, name, position in shape.slots:
            params[index] = converted[name] if position is None else converted[name][position]
        return db, shape, params

    def _convert(self, name: str, value: Any) -> Any:
        field = self._fields[name]
        if isinstance(value, list | tuple | set):
            return [field.to_db_value(item, self.model) for item in value]
        return field.to_db_value(value, self.model)

    def _prepare(self, db: BaseDBAsyncClient, lengths: dict[str, int | None]) -> _Shape:
        markers: dict[str, Any] = {}
        for name, length in lengths.items():
            field = self._fields[name]
            markers[name] = _marker(field) if length is None else [_marker(field) for _ in range(length)]
        query = self._build(**markers)
        if not isinstance(query, QuerySet | ValuesListQuery):
            raise TypeError(f"a prepared read of {self.model.__name__} is a QuerySet or a values_list()")
        if isinstance(query, QuerySet) and (query._prefetch_map or query._prefetch_queries or query._annotations):
            raise TypeError(f"a prepared read of {self.model.__name__} may not prefetch or annotate")
        if isinstance(query, ValuesListQuery) and (query._flat or query._annotations):
            raise TypeError(f"a prepared read of {self.model.__name__} may not be flat or annotate")
        query._db = db
        query._make_query()
        sql, params = query.query.get_parameterized_sql()
        # each value's places, found in one pass: a group of 500 ids has 500 markers to find
        places_of: dict[Any, list[int]] = {}
        for index, param in enumerate(params):
            places_of.setdefault(param, []).append(index)
        slots: list[tuple[int, str, int | None]] = []
        for name, marker in markers.items():
            places: Sequence[tuple[Any, int | None]] = (
                [(item, i) for i, item in enumerate(marker)] if isinstance(marker, list) else [(marker, None)]
            )
            for item, position in places:
                found = places_of.get(self._fields[name].to_db_value(item, self.model), [])
                if len(found) != 1:
                    raise TypeError(f"a prepared read of {self.model.__name__}: {name} is not one of its parameters")
                slots.append((found[0], name, position))
        return _Shape(sql, params, slots, query)


class PreparedRead(_Prepared, Generic[ModelT]):
    """A read of ``model`` rows made by ``build`` (a function of the named arguments returning a
    QuerySet), prepared once per dialect and shape. ``arguments`` names, for each argument,
    the model field its values are compared with, for their conversion to the database's
    form (a list argument's items are each converted).

        call_with_site = PreparedRead(
            Call, lambda call_id: Call.filter(id=call_id).select_related("lead", "connection").limit(1), call_id="id"
        )
        call = await call_with_site.first(call_id=call_id)
    """

    def __init__(self, model: type[ModelT], build: Callable[..., QuerySet[ModelT]], **arguments: str) -> None:
        super().__init__(model, build, arguments)

    async def all(self, **values: Any) -> list[ModelT]:
        db, shape, params = self._statement(values)
        executor = db.executor_class(
            model=self.model, db=db, prefetch_map={}, prefetch_queries={}, select_related_idx=shape.related
        )
        return await executor.execute_select(shape.sql, params, custom_fields=[])

    async def first(self, **values: Any) -> ModelT | None:
        rows = await self.all(**values)
        return rows[0] if rows else None


class PreparedValues(_Prepared):
    """:class:`PreparedRead` for a ``values_list(...)`` query (not flat): rows as tuples, converted as the
    ORM converts them."""

    def __init__(self, model: type[Model], build: Callable[..., ValuesListQuery[Any]], **arguments: str) -> None:
        super().__init__(model, build, arguments)

    async def all(self, **values: Any) -> list[tuple[Any, ...]]:
        db, shape, params = self._statement(values)
        _, rows = await db.execute_query(shape.sql, params)
        return [tuple(convert(row[key]) for key, convert in shape.columns) for row in rows]
