"""Rows of the money transaction read and written by SQL text built once per model.

The ORM compiles every statement anew: on this machine that is 0.3–0.6 ms of CPU per lock,
read or insert, about half of a refund's Python time (issue 17's profile), while the text is
the same each time. Here the text of each shape (a model's columns, a join, an INSERT of n
rows) is built once per process and database vendor, and the rows are still Django model
instances: built by `Model.from_db` with the converters Django's compiler would apply, their
inserts' values prepared by each field's own `pre_save` and `get_db_prep_save`. Everything
above this module keeps working with models; only the compile is skipped.

Every value is a parameter; the text names only our own tables and columns. Both databases
run it (SQLite has RETURNING since 3.35); a row lock is `FOR UPDATE OF t` on PostgreSQL and
nothing on SQLite, whose write lock the transaction holds from BEGIN IMMEDIATE.

Not for a model with `save()` overridden or with pre/post-save receivers: `insert` refuses
those (the ORM's save is what runs them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import connection as default_connection
from django.db.models import AutoField, BigAutoField, Model, SmallAutoField
from django.db.models.signals import post_save, pre_save

from kassa.core import batch

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]

_AUTO = (AutoField, BigAutoField, SmallAutoField)


@dataclass(frozen=True)
class _Part:
    """One model's columns in a SELECT: where they start, their attnames and converters."""
    model: type[Model]
    start: int
    attnames: list[str]
    converters: list[tuple[int, list[Converter], Any]]  # (column offset, converters, Col)
    pk_offset: int  # where its primary key is among its columns
    relation: Any = None  # the foreign key of the main model this part is joined by


@dataclass(frozen=True)
class _Reader:
    columns: str
    joins: str
    parts: list[_Part]
    width: int  # how many columns
    tables: frozenset[str]  # what it reads (kassa.core.batch: whether held writes go along)


_readers: dict[tuple[str, type[Model], tuple[str, ...]], _Reader] = {}
_tables: dict[tuple[str, type[Model], str], tuple[str, _Part]] = {}
_others: dict[tuple[str, type[Model], tuple[str, ...], type[Model]], tuple[_Part, str]] = {}
_inserts: dict[tuple[str, type[Model], int, bool, bool], tuple[str, list[Any], bool]] = {}


def _quote(name: str | None) -> str:
    assert name, "a table or column has a name"
    return default_connection.ops.quote_name(name)


def _part(model: type[Model], alias: str, start: int, relation: Any = None
          ) -> tuple[_Part, list[str]]:
    fields = model._meta.concrete_fields
    columns, converters = [], []
    for offset, field in enumerate(fields):
        col = field.get_col(alias)
        found = (default_connection.ops.get_db_converters(col)
                 + col.get_db_converters(default_connection))
        if found:
            converters.append((offset, found, col))
        columns.append(f"{alias}.{_quote(field.column)}")
    pk_offset = next(n for n, f in enumerate(fields) if f.primary_key)
    return (_Part(model, start, [f.attname for f in fields], converters, pk_offset, relation),
            columns)


def _reader(model: type[Model], related: tuple[str, ...]) -> _Reader:
    key = (default_connection.vendor, model, related)
    if (found := _readers.get(key)) is not None:
        return found
    main, columns = _part(model, "t", 0)
    parts, joins = [main], []
    for n, name in enumerate(related):
        fk: Any = model._meta.get_field(name)
        target: type[Model] = fk.related_model
        alias = f"r{n}"
        part, more = _part(target, alias, len(columns), relation=fk)
        parts.append(part)
        columns += more
        kind = "LEFT JOIN" if fk.null else "JOIN"
        joins.append(f"{kind} {_quote(target._meta.db_table)} {alias} ON "
                     f"{alias}.{_quote(fk.target_field.column)} = t.{_quote(fk.column)}")
    reader = _Reader(", ".join(columns), " ".join(joins), parts, len(columns),
                     frozenset(part.model._meta.db_table for part in parts))
    _readers[key] = reader
    return reader


def _build(part: _Part, row: Sequence[Any]) -> Model | None:
    values = list(row[part.start:part.start + len(part.attnames)])
    if part.relation is not None and values[part.pk_offset] is None:
        return None  # a LEFT JOIN that found nothing
    connection = connections[DEFAULT_DB_ALIAS]
    for offset, converters, col in part.converters:
        value = values[offset]
        for convert in converters:
            value = convert(value, col, connection)
        values[offset] = value
    return part.model.from_db(DEFAULT_DB_ALIAS, part.attnames, values)


def _query(model: type[Model], reader: _Reader, where: str, *, lock: bool,
           joined: tuple[type[Model], str, str] | None = None, order_by: str = "",
           limit: int | None = None) -> str:
    columns, joins, locked = reader.columns, reader.joins, "t"
    if joined is not None:
        other, on, other_columns = joined
        columns += ", " + other_columns
        joins += f" JOIN {_quote(other._meta.db_table)} o ON {on}"
        locked = "t, o"  # PostgreSQL takes them in this order (kassa.core.locks' order)
    sql = (f"SELECT {columns} FROM {_quote(model._meta.db_table)} t {joins} "  # noqa: S608
           f"WHERE {where}")
    if order_by:
        sql += f" ORDER BY {order_by}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if lock and default_connection.features.has_select_for_update:
        sql += f" FOR UPDATE OF {locked}"
    return sql


def _run(sql: str, params: Sequence[Any], reads: frozenset[str]) -> list[Any]:
    return batch.run(sql, params, reads=reads)


def _object(reader: _Reader, row: Sequence[Any]) -> Model:
    obj = _build(reader.parts[0], row)
    assert obj is not None
    for part in reader.parts[1:]:
        part.relation.set_cached_value(obj, _build(part, row))
    return obj


def reader(model: type[M], table: str) -> tuple[str, Callable[[Sequence[Any]], M]]:
    """The model's columns as `table.column, …` (for a statement of one's own, such as an
    UPDATE … RETURNING) and the function that builds the instance from the start of a row."""
    key = (default_connection.vendor, model, table)
    if key not in _tables:
        part, columns = _part(model, table, 0)
        _tables[key] = (", ".join(columns), part)
    columns_sql, part = _tables[key]
    return columns_sql, lambda row: _build(part, row)  # type: ignore[return-value]


def select(model: type[M], where: str, params: Sequence[Any], *, lock: bool = False,
           related: tuple[str, ...] = (), order_by: str = "", limit: int | None = None
           ) -> list[M]:
    """Rows of `model` (aliased `t` in `where` and `order_by`), each with the objects of its
    `related` foreign keys read along by joins (aliased r0, r1, …); `lock` takes the row
    lock of `t`'s rows only."""
    reader = _reader(model, related)
    sql = _query(model, reader, where, lock=lock, order_by=order_by, limit=limit)
    return [_object(reader, row)  # type: ignore[misc]
            for row in _run(sql, params, reader.tables)]


N = TypeVar("N", bound=Model)


def select_with(model: type[M], related: tuple[str, ...], other: type[N], on: str, where: str,
                params: Sequence[Any], *, lock: bool = False) -> list[tuple[M, N]]:
    """Rows of `model` (t, with its `related`) each with the row of `other` (aliased `o`)
    joined `on` a condition; `lock` takes the row locks of `t`, then of `o`, in one statement."""
    reader = _reader(model, related)
    key = (default_connection.vendor, model, related, other)
    if key not in _others:
        part, columns = _part(other, "o", reader.width)
        _others[key] = (part, ", ".join(columns))
    part, other_columns = _others[key]
    sql = _query(model, reader, where, lock=lock, joined=(other, on, other_columns))
    found = []
    for row in _run(sql, params, reader.tables | {other._meta.db_table}):
        obj, theirs = _object(reader, row), _build(part, row)
        assert theirs is not None
        found.append((obj, theirs))
    return found  # type: ignore[return-value]


def get(model: type[M], pk: int, *, lock: bool = False, related: tuple[str, ...] = ()) -> M:
    """The row by its primary key (the model's DoesNotExist when there is none)."""
    rows = select(model, f"t.{_quote(model._meta.pk.column)} = %s", [pk], lock=lock,
                  related=related)
    if not rows:
        raise model.DoesNotExist  # type: ignore[attr-defined]
    return rows[0]


def _insert_text(model: type[Model], n: int, auto: bool, returning: bool
                 ) -> tuple[str, list[Any], bool]:
    key = (default_connection.vendor, model, n, auto, returning)
    if (found := _inserts.get(key)) is not None:
        return found
    meta = model._meta
    if model.save is not Model.save:
        raise TypeError(f"{meta.label} overrides save(): write it with the ORM")
    fields = [f for f in meta.local_concrete_fields if not (auto and f is meta.pk)]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {_quote(meta.db_table)} "  # noqa: S608
           f"({', '.join(_quote(f.column) for f in fields)}) VALUES {', '.join([row] * n)}")
    back = auto and returning
    if back:
        sql += f" RETURNING {_quote(meta.pk.column)}"
    _inserts[key] = (sql, fields, back)
    return sql, fields, back


def insert(objs: Sequence[M], *, returning: bool = True, pre_save_receivers: bool = False
           ) -> Sequence[M]:
    """INSERT the (unsaved) instances of one model in one statement; with `returning`, each
    gets its database-made primary key, as `save()` would give it. `pre_save_receivers`: the
    model's pre-save receivers run first, as `save()` runs them (post-save ones: refused)."""
    if not objs:
        return objs
    model = type(objs[0])
    assert all(type(obj) is model for obj in objs), "one model per insert"
    pk = model._meta.pk
    auto = isinstance(pk, _AUTO) and all(getattr(obj, pk.attname) is None for obj in objs)
    if (pre_save.has_listeners(model) and not pre_save_receivers) or post_save.has_listeners(
            model):
        raise TypeError(f"{model._meta.label} has save receivers: write it with the ORM")
    if pre_save_receivers:
        for obj in objs:
            pre_save.send(sender=model, instance=obj, raw=False,
                          using=default_connection.alias, update_fields=None)
    sql, fields, back = _insert_text(model, len(objs), auto, returning)
    values = []
    connection = connections[DEFAULT_DB_ALIAS]  # the thread's, looked up once (not per field)
    for obj in objs:
        # As save() does: a related object assigned before it was saved fails loudly here.
        obj._prepare_related_fields_for_save(operation_name="insert")  # type: ignore[attr-defined]
        values += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    # Nothing to give back: held for the next statement (kassa.core.batch); INSERT … VALUES
    # reads no table.
    table = model._meta.db_table
    if back:
        ids = batch.run(sql, values, reads=(), writes=table)
    else:
        batch.hold(sql, values, writes=table)
        ids = None
    for n, obj in enumerate(objs):
        if ids is not None:
            setattr(obj, pk.attname, ids[n][0])
        # Saved, as far as the ORM can tell, only with its id (a save() of a row inserted
        # without its id given back would insert it again).
        obj._state.adding = getattr(obj, pk.attname) is None
        obj._state.db = default_connection.alias
    return objs


def create(model: type[M], **values: Any) -> M:
    """`Model.objects.create(**values)` without the compile."""
    obj = model(**values)
    insert([obj])
    return obj


_linked: dict[tuple[str, type[Model], str], tuple[str, list[Any], list[Any], frozenset[Any]]] = {}


def _linked_text(model: type[Model], field: str
                 ) -> tuple[str, list[Any], list[Any], frozenset[Any]]:
    """`WITH kassa_parent AS (INSERT parent … RETURNING id) INSERT row … VALUES (…,
    (SELECT id FROM kassa_parent), …) RETURNING id, its foreign key`, with the fields whose
    values it takes, the parent's and then the row's."""
    key = (default_connection.vendor, model, field)
    if (found := _linked.get(key)) is not None:
        return found
    meta = model._meta
    fk: Any = meta.get_field(field)
    parent: type[Model] = fk.related_model
    parent_sql, parent_fields, _ = _insert_text(parent, 1, True, True)
    fields = [f for f in meta.local_concrete_fields if f is not meta.pk]
    parent_id = f"(SELECT {_quote(parent._meta.pk.column)} FROM kassa_parent)"  # noqa: S608
    marks = [parent_id if f is fk else "%s" for f in fields]
    sql = (f"WITH kassa_parent AS ({parent_sql}) "  # noqa: S608
           f"INSERT INTO {_quote(meta.db_table)} "
           f"({', '.join(_quote(f.column) for f in fields)}) VALUES ({', '.join(marks)}) "
           f"RETURNING {_quote(meta.pk.column)}, {_quote(fk.column)}")
    # The relations `_prepare_related_fields_for_save` checks: all but the parent's, whose
    # id the statement makes (a set: a list's `in` compares fields one by one).
    relations = frozenset(f for f in meta.concrete_fields if f is not fk)
    _linked[key] = found = (sql, parent_fields, [f for f in fields if f is not fk], relations)
    return found


def insert_linked(obj: M, field: str) -> M:
    """INSERT `obj` and the unsaved row its foreign key `field` points at (a refund and the
    journal entry that books it): on PostgreSQL in one statement, the parent's INSERT a WITH
    query whose id the row takes; elsewhere the parent first, then the row. Both get their
    database-made ids."""
    model = type(obj)
    parent = getattr(obj, field)
    assert parent is not None and parent.pk is None, f"{field}: an unsaved row to insert first"
    if default_connection.vendor != "postgresql":
        insert([parent])
        setattr(obj, field, parent)
        insert([obj])
        return obj
    parent_model = type(parent)
    for one in (parent_model, model):
        if one.save is not Model.save or pre_save.has_listeners(one) or post_save.has_listeners(
                one):
            raise TypeError(f"{one._meta.label} has its own save: write it with the ORM")
        if not isinstance(one._meta.pk, _AUTO):
            raise TypeError(f"{one._meta.label}: a database-made id is given back, not another")
    sql, parent_fields, fields, relations = _linked_text(model, field)
    parent._prepare_related_fields_for_save(operation_name="insert")  # type: ignore[attr-defined]
    obj._prepare_related_fields_for_save(  # type: ignore[attr-defined]
        operation_name="insert", fields=relations)
    connection = connections[DEFAULT_DB_ALIAS]  # the thread's, looked up once
    values = [f.get_db_prep_save(f.pre_save(parent, True), connection) for f in parent_fields]
    values += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    [(pk, parent_pk)] = batch.run(sql, values, reads=(), writes=model._meta.db_table)
    parent.pk = parent_pk
    obj.pk = pk
    setattr(obj, field, parent)  # the foreign key's id, and the parent cached on it
    for row in (parent, obj):
        row._state.adding = False
        row._state.db = default_connection.alias
    return obj
