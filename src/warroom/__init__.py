"""War Room Checkpoints: verified database backups, resumable workflows, safe deployments.

The public surface is what ``__all__`` lists; everything else is private to the package.
"""

from __future__ import annotations

from warroom.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnreachableError,
    IncompatibleBackupError,
    InputError,
    IntegrityError,
    InvalidNameError,
    NameTakenError,
    NotFoundError,
    StorageError,
    WarroomError,
)

__version__ = "0.1.0"

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
    "StorageError",
    "WarroomError",
    "__version__",
]
