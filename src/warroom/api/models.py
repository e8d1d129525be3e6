"""Request and response bodies of the API (their JSON Schemas are in /openapi.json)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
EXECUTION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_STATE_DEPTH = 64


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unstorable(value: Any, depth: int) -> str | None:
    """Why ``value`` itself (not what it contains) cannot be stored and read back exactly."""
    if isinstance(value, str) and _printable(value) != value:
        return "a lone surrogate (\\ud800-\\udfff) is not valid Unicode"
    if isinstance(value, float) and not math.isfinite(value):
        return f"a non-finite number ({value}) cannot be stored as JSON"
    if isinstance(value, dict | list) and depth > MAX_STATE_DEPTH:
        return f"nested deeper than {MAX_STATE_DEPTH} levels"
    return None


def storable(value: Any) -> Any:
    """``value`` if it can be stored as JSON and read back exactly; otherwise a validation error
    whose ``ctx["at"]`` says where in it: a string or key with a lone surrogate, a non-finite
    number, or lists and objects nested deeper than ``MAX_STATE_DEPTH``."""
    pending: list[tuple[Any, str, int]] = [(value, "", 1)]
    while pending:
        item, at, depth = pending.pop()
        problem = _unstorable(item, depth)
        if problem is None and isinstance(item, dict):
            for key in item:
                if _printable(key) != key:
                    at, problem = f"{at}.{_printable(key)}", "a key with a lone surrogate"
                    break
                pending.append((item[key], f"{at}.{key}", depth + 1))
        elif problem is None and isinstance(item, list):
            pending.extend((child, f"{at}[{i}]", depth + 1) for i, child in enumerate(item))
        if problem is not None:
            raise PydanticCustomError("unstorable", problem, {"at": at})
    return value


Storable = AfterValidator(storable)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowCheckpointIn(Body):
    execution_id: str = Field(pattern=EXECUTION_ID)
    step_id: str = Field(min_length=1, max_length=200)
    state: Annotated[Any, Storable] = Field(
        default_factory=dict,
        description="Any JSON that reads back exactly: no lone surrogates, no non-finite "
        f"numbers, at most {MAX_STATE_DEPTH} levels deep.",
    )
    metadata: Annotated[dict[str, Any], Storable] = Field(
        default_factory=dict, description="Checked like state."
    )


class WorkflowEndIn(Body):
    result: Any = None
    error: str | None = Field(None, max_length=10_000)


class DatabaseBackupIn(Body):
    checkpoint_name: str | None = Field(None, pattern=NAME)


class RestoreIn(Body):
    """Where a restore goes. No body (or ``{}``) restores over the configured DATABASE_URL,
    as the seed's route does; ``new_db`` restores into a new database instead."""

    new_db: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        pattern=r"^[^\x00/]+$",
        description="Restore into this new database on the configured server instead.",
    )
    target: Literal["configured"] | None = Field(
        None,
        description="The default: over the configured DATABASE_URL (a safety backup of it is "
        "taken first).",
    )
    confirm: Literal[True] | None = Field(
        None, description="Accepted from earlier clients, which had to send it; not needed."
    )
    jobs: int | None = Field(
        None, ge=1, le=16, description="Stored parts loaded at once; default: one per CPU."
    )


class VerifyIn(Body):
    """What a verification checks; ``restore_test`` and ``all_copies`` are not asked together
    (400), as the schema's ``not`` says."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["restore_test", "all_copies"],
                "properties": {"restore_test": {"const": True}, "all_copies": {"const": True}},
            }
        },
    )

    restore_test: bool = Field(
        False,
        description="Also restore into a scratch database and compare every table's row count.",
    )
    all_copies: bool = Field(
        False,
        description="Check the copy in every repository (BACKUP_DIR and WARROOM_REPLICAS) on "
        "its own, not with restore_test: the job's result lists each copy (location, state, "
        "detail); it fails as an integrity failure when one is damaged, and fails when one is "
        "missing or unreachable.",
    )


class TokenIn(Body):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
    role: Literal["viewer", "operator", "admin"]


class RollbackIn(Body):
    confirm: Literal[True] = Field(description="Must be true: the version in service changes.")
    to_version: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    error: ErrorInfo


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    params: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    retry_of: str | None
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    retryable: bool


class CheckpointOut(BaseModel):
    type: str
    name: str
    status: str
    created_at: str
    source: str | None
    source_id: str | None = None
    safety: bool = False
    size_original: int | None
    size_stored: int | None
    checksum: str | None
    details: dict[str, Any]
    verified_at: str | None = None
    repositories: dict[str, str] | None = Field(
        None,
        description="With WARROOM_REPLICAS, a database backup's copy per repository (BACKUP_DIR "
        "first): present (every part there with its recorded size; no byte is read), damaged, "
        "missing or unreachable. Absent without replicas.",
        exclude_if=lambda value: value is None,
    )


class BackupBriefOut(BaseModel):
    name: str
    status: str
    created_at: str
    age_hours: float


class SourceOut(BaseModel):
    source: str
    label: str
    configured: bool
    backups: list[str]
    newest_completed: BackupBriefOut | None
    newest_restore_tested: BackupBriefOut | None
    pitr_window: dict[str, Any] | None


class CheckpointListOut(BaseModel):
    checkpoints: list[CheckpointOut]
    sources: list[SourceOut]
    recoverable_window: dict[str, Any] | None


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422)
}
