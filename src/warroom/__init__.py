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

_WORKFLOW_NAMES = ("AutomationEngine", "Execution", "StepFailedError", "StepMismatchError")


def __getattr__(name: str) -> object:
    """The workflow engine is imported on first use: ``warroom wal push`` (PostgreSQL's
    archive_command) must start fast and needs none of it."""
    if name in _WORKFLOW_NAMES:
        import warroom.workflow

        return getattr(warroom.workflow, name)
    raise AttributeError(f"module 'warroom' has no attribute {name!r}")


__all__ = [
    "AutomationEngine",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnreachableError",
    "Execution",
    "IncompatibleBackupError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "NameTakenError",
    "NotFoundError",
    "StepFailedError",
    "StepMismatchError",
    "StorageError",
    "WarroomError",
    "__version__",
]
