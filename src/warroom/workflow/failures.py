"""Recorded step failures: what is stored when a step fails for good, and how replay raises it.

A failure record holds the exception's class (``module:qualname``), its message, the text of
its traceback, and its value (``args`` and instance attributes) when the typed encoding can hold
it. Replay raises an exception of the same class when that class is loaded in the replaying
process (its module is in ``sys.modules``: reading a record imports nothing), built without
calling its constructor, as unpickling does; otherwise, or when the class cannot be built that
way, the caller's fallback (the engine's ``StepFailedError``), which names the original class.
Either way the replayed exception carries a note with the original traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from warroom.errors import UnstorableValueError, WarroomError
from warroom.workflow.typed import TypedCodec, class_ref

__all__ = ["error_text", "failure_record", "replayed_failure"]


def error_text(exc: BaseException) -> str:
    """How a failure reads in a step's or an execution's ``error``."""
    if isinstance(exc, WarroomError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def failure_record(exc: BaseException, typed: TypedCodec) -> dict[str, Any]:
    """The record of a failure, ready for the typed encoding."""
    try:
        value: bytes | None = typed.dumps([list(exc.args), dict(vars(exc))])
    except UnstorableValueError:
        value = None
    return {
        "type": class_ref(type(exc)),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "value": value,
    }


def _loaded_class(ref: str) -> type[BaseException] | None:
    module_name, _, qualname = ref.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


def replayed_failure(
    record: dict[str, Any],
    typed: TypedCodec,
    where: str,
    fallback: Callable[[str], BaseException],
) -> BaseException:
    """The exception to raise again for ``record``; ``where`` says which step it was;
    ``fallback(message)`` builds the exception used when the class cannot be."""
    cls = _loaded_class(record["type"])
    exc: BaseException | None = None
    if cls is not None:
        args, state = typed.loads(record["value"]) if record["value"] else ([record["message"]], {})
        try:
            exc = cls.__new__(cls, *args)
            exc.args = tuple(args)
            exc.__dict__.update(state)
        except Exception:  # noqa: BLE001 - a class that cannot be built bare: fall back
            exc = None
    if exc is None:
        exc = fallback(f"{where} failed: {record['type']}: {record['message']}")
    exc.add_note(f"replayed from the record of {where}; it was raised as:\n{record['traceback']}")
    return exc
