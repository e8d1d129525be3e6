"""The default encoding of workflow values: MessagePack (``ormsgpack``) that keeps Python types.

Plain data (None, bool, int, float, str, bytes, list, dict with str keys) is MessagePack
itself. Everything else the encoding supports is a MessagePack extension whose payload is
itself this encoding:

====  ==================  =================================================================
code  type                payload
====  ==================  =================================================================
1     tuple               the items
2     set                 the items
3     frozenset           the items
4     dict, other keys    the [key, value] pairs (keys may be tuples, ints, dates ...)
5     int beyond 64 bits  its decimal text
6     datetime            [wall time ISO text, fold, time zone]
7     date                ISO text
8     time                [ISO text without zone, fold, time zone]
9     timedelta           [days, seconds, microseconds]
10    Decimal             its text
11    UUID                its 16 bytes
12    Enum member         [class, value]
13    dataclass           [class, {field: value}]
14    pydantic model      [class, {field: value}]
====  ==================  =================================================================

A time zone is None, ``["utc"]``, ``["zone", key]`` (a ``zoneinfo`` zone, by its key) or
``["offset", seconds, name]``. A class is written ``module:qualname`` and must be on the
codec's allow-list, both to write and to read: reading looks the class up there and never
imports a module or calls a constructor (fields are set on a bare instance; pydantic models go
through ``model_construct``), so reading a stored value runs no code of the writer's choosing.
Any other type is refused with :class:`~warroom.errors.UnstorableValueError`.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import ormsgpack

from warroom.errors import ConfigurationError, IntegrityError, UnstorableValueError

__all__ = ["TypedCodec", "class_ref"]

TUPLE, SET, FROZENSET, PAIRS, BIGINT = 1, 2, 3, 4, 5
DATETIME, DATE, TIME, TIMEDELTA, DECIMAL, UUID_, ENUM, DATACLASS, PYDANTIC = range(6, 15)

_OPTIONS = (
    ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_UUID
)


def class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class _Pairs:
    """A dict with keys that are not all strings, on its way to extension 4."""

    __slots__ = ("items",)

    def __init__(self, items: list[list[Any]]) -> None:
        self.items = items


def _zone(tz: tzinfo | None) -> list[Any] | None:
    if tz is None:
        return None
    if tz is UTC:
        return ["utc"]
    if isinstance(tz, ZoneInfo):
        return ["zone", tz.key]
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        return ["offset", offset.total_seconds(), tz.tzname(None)]
    raise UnstorableValueError(f"time zone {tz!r} of type {type(tz).__name__}")


def _unzone(spec: list[Any] | None) -> tzinfo | None:
    if spec is None:
        return None
    if spec[0] == "utc":
        return UTC
    if spec[0] == "zone":
        return ZoneInfo(spec[1])
    return timezone(timedelta(seconds=spec[1]), spec[2])


def _with_pairs(value: Any) -> Any:
    """``value`` with every dict that has a non-str key replaced by :class:`_Pairs` (only
    needed when ormsgpack refused a key; lists and str-keyed dicts are walked)."""
    if isinstance(value, list) and type(value) is list:
        return [_with_pairs(item) for item in value]
    if isinstance(value, dict) and type(value) is dict:
        if all(type(key) is str for key in value):
            return {key: _with_pairs(item) for key, item in value.items()}
        return _Pairs([[key, item] for key, item in value.items()])
    return value


class TypedCodec:
    """Encodes and decodes the types in the module docstring; ``allowed`` are the enum,
    dataclass and pydantic classes it may write and read."""

    def __init__(self, allowed: Iterable[type] = ()) -> None:
        self._allowed: dict[str, type] = {}
        for cls in allowed:
            self.allow(cls)

    def allow(self, cls: type) -> None:
        self._allowed[class_ref(cls)] = cls

    def dumps(self, value: Any) -> bytes:
        """The encoding of ``value``; UnstorableValueError names what cannot be held."""
        refused: list[UnstorableValueError] = []

        def default(item: Any) -> Any:
            try:
                return self._default(item)
            except UnstorableValueError as exc:  # ormsgpack would replace it by a TypeError
                refused.append(exc)
                raise

        try:
            return ormsgpack.packb(value, default=default, option=_OPTIONS)
        except TypeError as exc:
            if refused:
                raise refused[0] from None
            if "Dict key" not in str(exc):
                raise UnstorableValueError(f"cannot be stored: {exc}") from exc
        try:
            return ormsgpack.packb(_with_pairs(value), default=default, option=_OPTIONS)
        except TypeError as exc:
            if refused:
                raise refused[0] from None
            raise UnstorableValueError(f"cannot be stored: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            return ormsgpack.unpackb(data, ext_hook=self._ext)
        except (ormsgpack.MsgpackDecodeError, ValueError, TypeError) as exc:
            raise IntegrityError(f"a stored workflow value cannot be decoded: {exc}") from exc

    # -- reading ----------------------------------------------------------------------------

    def _ext(self, code: int, data: bytes) -> Any:
        if code in _RAW_DECODERS:
            return _RAW_DECODERS[code](data)
        if code not in _DECODERS:
            raise ValueError(f"unknown extension type {code}")
        return _DECODERS[code](self, self.loads(data))

    # -- writing ----------------------------------------------------------------------------

    def _class(self, value: Any, what: str) -> str:
        ref = class_ref(type(value))
        if self._allowed.get(ref) is not type(value):
            raise UnstorableValueError(
                f"{what} {ref} is not on the serializer's allow-list: register it with "
                f"engine.allow({type(value).__qualname__}) (or "
                "AutomationEngine(allowed_types=[...])) in the code that writes and reads it",
                type=ref,
            )
        return ref

    def _ext_of(self, code: int, payload: Any) -> ormsgpack.Ext:
        return ormsgpack.Ext(code, self.dumps(payload))

    def _default(self, value: Any) -> Any:
        kind = type(value)
        if kind is _Pairs:
            return self._ext_of(PAIRS, value.items)
        if kind is tuple:
            return self._ext_of(TUPLE, list(value))
        if kind is set:
            return self._ext_of(SET, list(value))
        if kind is frozenset:
            return self._ext_of(FROZENSET, list(value))
        if kind is int:
            return ormsgpack.Ext(BIGINT, str(value).encode())
        if kind is datetime:
            wall = value.replace(tzinfo=None, fold=0).isoformat()
            return self._ext_of(DATETIME, [wall, value.fold, _zone(value.tzinfo)])
        if kind is date:
            return ormsgpack.Ext(DATE, value.isoformat().encode())
        if kind is time:
            wall = value.replace(tzinfo=None, fold=0).isoformat()
            return self._ext_of(TIME, [wall, value.fold, _zone(value.tzinfo)])
        if kind is timedelta:
            return self._ext_of(TIMEDELTA, [value.days, value.seconds, value.microseconds])
        if kind is Decimal:
            return ormsgpack.Ext(DECIMAL, str(value).encode())
        if kind is uuid.UUID:
            return ormsgpack.Ext(UUID_, value.bytes)
        if isinstance(value, enum.Enum):
            return self._ext_of(ENUM, [self._class(value, "enum"), value.value])
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self._ext_of(DATACLASS, [self._class(value, "dataclass"), fields])
        if _is_pydantic(value):
            return self._ext_of(PYDANTIC, [self._class(value, "pydantic model"), dict(value)])
        raise UnstorableValueError(
            f"a value of type {class_ref(kind)} cannot be stored: return plain data, tuples, "
            "sets, dates and times, Decimal, UUID, bytes, or allowed enums, dataclasses and "
            "pydantic models",
            type=class_ref(kind),
        )

    def _allowed_class(self, ref: str) -> type:
        cls = self._allowed.get(ref)
        if cls is None:
            raise ConfigurationError(
                f"a stored value is of class {ref}, which is not on the serializer's "
                "allow-list: register it with engine.allow(...) before reading",
                type=ref,
            )
        return cls

    def _enum(self, payload: list[Any]) -> Any:
        return self._allowed_class(payload[0])(payload[1])

    def _dataclass(self, payload: list[Any]) -> Any:
        cls = self._allowed_class(payload[0])
        instance: Any = object.__new__(cls)
        for name, value in payload[1].items():
            object.__setattr__(instance, name, value)
        return instance

    def _pydantic(self, payload: list[Any]) -> Any:
        return self._allowed_class(payload[0]).model_construct(**payload[1])  # type: ignore[attr-defined]


def _is_pydantic(value: Any) -> bool:
    return any(base.__module__ == "pydantic.main" for base in type(value).__mro__[1:])


def _datetime(_: TypedCodec, p: list[Any]) -> datetime:
    return datetime.fromisoformat(p[0]).replace(fold=p[1], tzinfo=_unzone(p[2]))


def _time(_: TypedCodec, p: list[Any]) -> time:
    return time.fromisoformat(p[0]).replace(fold=p[1], tzinfo=_unzone(p[2]))


_DECODERS: dict[int, Any] = {
    TUPLE: lambda _, items: tuple(items),
    SET: lambda _, items: set(items),
    FROZENSET: lambda _, items: frozenset(items),
    PAIRS: lambda _, pairs: dict(pairs),
    DATETIME: _datetime,
    TIME: _time,
    TIMEDELTA: lambda _, p: timedelta(days=p[0], seconds=p[1], microseconds=p[2]),
    ENUM: TypedCodec._enum,
    DATACLASS: TypedCodec._dataclass,
    PYDANTIC: TypedCodec._pydantic,
}
_RAW_DECODERS: dict[int, Any] = {
    BIGINT: lambda data: int(data.decode()),
    DATE: lambda data: date.fromisoformat(data.decode()),
    DECIMAL: lambda data: Decimal(data.decode()),
    UUID_: lambda data: uuid.UUID(bytes=data),
}
