"""Request and response bodies of the API (their JSON Schemas are in /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
EXECUTION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowCheckpointIn(Body):
    execution_id: str = Field(pattern=EXECUTION_ID)
    step_id: str = Field(min_length=1, max_length=200)
    state: Any = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DatabaseBackupIn(Body):
    checkpoint_name: str | None = Field(None, pattern=NAME)


class RestoreToNewDatabase(Body):
    new_db: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[^\x00/]+$",
        description="Restore into this new database on the configured server.",
    )
    jobs: int | None = Field(
        None, ge=1, le=16, description="Stored parts loaded at once; default: one per CPU."
    )


class RestoreOverConfigured(Body):
    target: Literal["configured"] = Field(
        description="Restore over the configured DATABASE_URL (a safety backup is taken first)."
    )
    confirm: Literal[True] = Field(description="Must be true: the target's data is replaced.")
    jobs: int | None = Field(
        None, ge=1, le=16, description="Stored parts loaded at once; default: one per CPU."
    )


RestoreIn = RestoreToNewDatabase | RestoreOverConfigured


class VerifyIn(Body):
    restore_test: bool = False


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
