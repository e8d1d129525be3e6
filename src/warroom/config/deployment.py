"""The ``[deployment]`` section of ``warroom.toml``: which checks run and how deploys go.

Every key is optional; the defaults give a useful validation with no configuration at all
(storage writable, database reachable, backups fresh, ``pg_dump`` new enough)::

    [deployment]
    check_timeout = 30                        # seconds before a hanging check is failed

    [deployment.env]
    required = ["DATABASE_URL", "SECRET_KEY"]
    patterns = { SENTRY_DSN = "^https://" }  # optional, but must match when set

    [deployment.files."config/app.json"]
    format = "json"                           # json, yaml, toml or dotenv
    schema = "config/app.schema.json"         # optional JSON Schema

    [deployment.dependencies]
    requirements = "requirements.txt"         # or a lock file: poetry.lock, uv.lock, pdm.lock
    tools = { git = "2.30" }                  # pg_dump is always checked against the server

    [[deployment.commands]]
    name = "smoke tests"
    command = "pytest -q tests/smoke"
    timeout = 120
    severity = "warning"

    [deployment.deploy]
    health_url = "http://127.0.0.1:8000/healthz"
    rollback_command = "./rollback.sh {previous_version}"  # scripts/railway-deploy.sh has its own
    restore_database = false
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeploymentConfig"]

Severity = Literal["error", "warning"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvConfig(_Section):
    required: list[str] = Field(default_factory=lambda: ["DATABASE_URL"])
    patterns: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "error"


class FileConfig(_Section):
    format: Literal["json", "yaml", "toml", "dotenv"] | None = None
    schema_: str | None = Field(None, alias="schema")
    severity: Severity = "error"


class DependenciesConfig(_Section):
    requirements: str | None = None
    python: str | None = Field(
        None, description="Interpreter whose packages are checked (default: this one)."
    )
    tools: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "error"


class DatabaseCheckConfig(_Section):
    enabled: bool = True
    timeout: float = 5.0
    alembic_config: str | None = None
    severity: Severity = "error"


class StorageCheckConfig(_Section):
    min_free_mb: int = 1024
    severity: Severity = "error"


class BackupCheckConfig(_Section):
    enabled: bool = True
    max_age_hours: float = 26.0
    severity: Severity = "error"


class CommandConfig(_Section):
    name: str
    command: str
    timeout: float = 60.0
    severity: Severity = "error"


class DeployConfig(_Section):
    health_url: str | None = None
    health_timeout: float = 60.0
    health_interval: float = 2.0
    command_timeout: float = 3600.0
    rollback_command: str | None = None
    restore_database: bool = False
    tag_prefix: str = "deploy-"


class DeploymentConfig(_Section):
    check_timeout: float = 30.0
    env: EnvConfig = Field(default_factory=EnvConfig)
    files: dict[str, FileConfig] = Field(default_factory=dict)
    dependencies: DependenciesConfig = Field(default_factory=DependenciesConfig)
    database: DatabaseCheckConfig = Field(default_factory=DatabaseCheckConfig)
    storage: StorageCheckConfig = Field(default_factory=StorageCheckConfig)
    backups: BackupCheckConfig = Field(default_factory=BackupCheckConfig)
    commands: list[CommandConfig] = Field(default_factory=list)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
