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

from warroom.workflow import (  # noqa: E402 - after __version__, which the domain imports
    AutomationEngine,
    Execution,
    StepFailedError,
    StepMismatchError,
)

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
