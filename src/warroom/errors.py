"""The one exception tree of War Room Checkpoints.

Every error the product raises on purpose is a :class:`WarroomError`. Each class carries the
CLI exit code and the HTTP status it maps to, so the adapters never guess::

    WarroomError                      exit 1  500  the operation failed
    ├── InputError                    exit 2  400  bad input: says what and how to fix it
    │   ├── InvalidNameError          exit 2  400  a checkpoint name that is not allowed
    │   ├── ConfigurationError        exit 2  400  settings, URLs, missing or too old tools
    │   └── IncompatibleBackupError   exit 2  400  e.g. a PostgreSQL backup into SQLite
    ├── NotFoundError                 exit 2  404  no such checkpoint / execution / job
    ├── ConflictError                 exit 1  409  a backup already running, a database that exists
    │   └── NameTakenError            exit 2  409  a checkpoint name already in use
    ├── IntegrityError                exit 3  422  checksum mismatch, damaged or tampered data
    ├── DatabaseError                 exit 1  502  the database or a client tool failed
    │   └── DatabaseUnreachableError  exit 1  503  cannot connect (host and reason, no password)
    └── StorageError                  exit 1  503  the repository cannot be read or written
        ├── TransientStorageError     exit 1  503  try again: a timeout, throttling, a 5xx
        └── ReadOnlyStorageError      exit 1  503  a write to a repository opened read-only

A :class:`StorageError` that is not a :class:`TransientStorageError` is permanent: retrying
the same request cannot help (permission denied, a full disk, a missing bucket).

Third-party exceptions (psycopg, subprocess, OS errors, botocore) are translated where the
adapter calls them (``raise DatabaseError(...) from exc``); the domain never catches them. Messages
never contain secrets: the code that builds them works from redacted URLs.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnreachableError",
    "IncompatibleBackupError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "NameTakenError",
    "NotFoundError",
    "ReadOnlyStorageError",
    "StorageError",
    "TransientStorageError",
    "WarroomError",
]


class WarroomError(Exception):
    """Base of every error the product raises on purpose.

    ``details`` holds structured fields (the checkpoint name, the damaged part ...) that the API
    returns beside the message and the CLI prints with ``--json``.
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "failed"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InputError(WarroomError):
    exit_code = 2
    http_status = 400
    code = "bad_input"


class InvalidNameError(InputError):
    code = "invalid_name"


class ConfigurationError(InputError):
    code = "configuration"


class IncompatibleBackupError(InputError):
    code = "incompatible_backup"


class NotFoundError(WarroomError):
    exit_code = 2
    http_status = 404
    code = "not_found"


class ConflictError(WarroomError):
    http_status = 409
    code = "conflict"


class NameTakenError(ConflictError):
    exit_code = 2
    code = "name_taken"


class IntegrityError(WarroomError):
    exit_code = 3
    http_status = 422
    code = "integrity"


class DatabaseError(WarroomError):
    http_status = 502
    code = "database"


class DatabaseUnreachableError(DatabaseError):
    http_status = 503
    code = "database_unreachable"


class StorageError(WarroomError):
    http_status = 503
    code = "storage"


class TransientStorageError(StorageError):
    """The same request may succeed if tried again (a timeout, throttling, a server error)."""

    code = "storage_transient"


class ReadOnlyStorageError(StorageError):
    code = "storage_read_only"
