"""The one exception tree: every WarroomError subclass in the package is defined in
errors.py, carries an exit code and an HTTP status, and is drawn in its docstring as it is."""

from __future__ import annotations

import importlib
import pkgutil
import re

import warroom
from warroom import errors
from warroom.errors import WarroomError

DRAWN = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>\w+Error)\s+exit (?P<exit>\d)\s+(?P<http>\d{3})")


def _all_subclasses() -> set[type[WarroomError]]:
    for module in pkgutil.walk_packages(warroom.__path__, "warroom."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, pending = set(), [WarroomError]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found.add(subclass)
            pending.append(subclass)
    return found


def _drawing() -> dict[str, tuple[str | None, int, int]]:
    """Each drawn class: (its parent in the drawing, exit code, HTTP status)."""
    drawn: dict[str, tuple[str | None, int, int]] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = DRAWN.match(line[4:])
        if match is None:
            continue
        depth = len(match["indent"]) // 4
        parents[depth:] = [match["name"]]
        parent = parents[depth - 1] if depth else None
        drawn[match["name"]] = (parent, int(match["exit"]), int(match["http"]))
    return drawn


def test_every_error_class_is_in_the_one_tree() -> None:
    classes = _all_subclasses() | {WarroomError}
    misplaced = {c.__qualname__: c.__module__ for c in classes if c.__module__ != errors.__name__}
    assert misplaced == {}
    assert {c.__name__ for c in classes} == set(errors.__all__)
    for cls in classes:
        assert cls.exit_code in (1, 2, 3), cls
        assert 400 <= cls.http_status <= 599, cls
        assert cls.code and (cls is WarroomError or cls.code != cls.__base__.code), cls


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    drawn = _drawing()
    actual = {
        cls.__name__: (
            None if cls is WarroomError else cls.__base__.__name__,
            cls.exit_code,
            cls.http_status,
        )
        for cls in _all_subclasses() | {WarroomError}
    }
    assert drawn == actual
