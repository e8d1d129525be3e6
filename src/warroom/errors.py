"""The one exception tree of War Room Checkpoints.

Every error the product raises on purpose is a :class:`WarroomError`. Each class carries the
CLI exit code and the HTTP status it maps to, so the adapters never guess::

    WarroomError                      exit 1  500  the operation failed
    ├── InputError                    exit 2  400  bad input: says what and how to fix it
    │   ├── InvalidNameError          exit 2  400  a checkpoint name that is not allowed
    │   ├── ConfigurationError        exit 2  400  settings, URLs, missing or too old tools
    │   ├── IncompatibleBackupError   exit 2  400  e.g. a PostgreSQL backup into SQLite
    │   └── UnstorableValueError      exit 2  400  a workflow value the serializer cannot hold
    ├── AuthError                     exit 2  401  no valid credentials (API)
    ├── ForbiddenError                exit 2  403  valid credentials, too small a role (API)
    ├── NotFoundError                 exit 2  404  no such checkpoint / execution / job
    ├── ConflictError                 exit 1  409  a backup already running, a database that exists
    │   ├── NameTakenError            exit 2  409  a checkpoint name already in use
    │   ├── StepMismatchError         exit 1  409  a resume calls another step than the one recorded
    │   └── LeaseLostError            exit 1  409  another worker took the execution over
    ├── IntegrityError                exit 3  422  checksum mismatch, damaged or tampered data
    ├── TooManyFailuresError          exit 1  429  a client penalised for failed authentications
    ├── DatabaseError                 exit 1  502  the database or a client tool failed
    │   └── DatabaseUnreachableError  exit 1  503  cannot connect (host and reason, no password)
    ├── StorageError                  exit 1  503  the repository cannot be read or written
    │   ├── TransientStorageError     exit 1  503  try again: a timeout, throttling, a 5xx
    │   └── ReadOnlyStorageError      exit 1  503  a write to a repository opened read-only
    ├── StepFailedError               exit 1  500  a workflow step failed on its last attempt
    └── StepTimeoutError              exit 1  500  a workflow step ran past its timeout

A :class:`StorageError` that is not a :class:`TransientStorageError` is permanent: retrying
the same request cannot help (permission denied, a full disk, a missing bucket).

Third-party exceptions (psycopg, subprocess, OS errors, botocore) are translated where the
adapter calls them (``raise DatabaseError(...) from exc``); the domain never catches them. Messages
never contain secrets: the code that builds them works from redacted URLs.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnreachableError",
    "ForbiddenError",
    "IncompatibleBackupError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "LeaseLostError",
    "NameTakenError",
    "NotFoundError",
    "ReadOnlyStorageError",
    "StepFailedError",
    "StepMismatchError",
    "StepTimeoutError",
    "StorageError",
    "TooManyFailuresError",
    "TransientStorageError",
    "UnstorableValueError",
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


class AuthError(WarroomError):
    """No valid credentials (401)."""

    exit_code = 2
    http_status = 401
    code = "unauthorized"


class ForbiddenError(WarroomError):
    """Valid credentials without the role the operation needs (403)."""

    exit_code = 2
    http_status = 403
    code = "forbidden"


class TooManyFailuresError(WarroomError):
    """The client failed to authenticate too often; ``details["retry_after"]`` says how many
    seconds to wait (429 with ``Retry-After``)."""

    http_status = 429
    code = "too_many_failures"


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


class StepMismatchError(ConflictError):
    """The code calls a different step at a position the execution already recorded."""

    code = "step_mismatch"


class LeaseLostError(ConflictError):
    """Another worker took this execution over; this worker must stop running it."""

    code = "lease_lost"


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


class StepFailedError(WarroomError):
    """A recorded step failure replayed in a process where its exception's class is not loaded
    (the message names the class); otherwise replay raises the step's own exception type."""

    code = "step_failed"


class StepTimeoutError(WarroomError):
    """An attempt of a step ran longer than its ``timeout``."""

    code = "step_timeout"


class UnstorableValueError(InputError):
    """A workflow value (a step's result, inputs, a state) the serializer cannot hold; the
    step that produced it is recorded failed with this error, so it is not run again blindly."""

    code = "unstorable_value"
