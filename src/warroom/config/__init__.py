"""Settings: environment variables, then an optional ``warroom.toml``, then defaults.

The seed's variables keep their names (``CHECKPOINT_DIR``, ``BACKUP_DIR``,
``CHECKPOINT_RETENTION_DAYS``, ``ENABLE_AUTO_CHECKPOINTS``, ``DATABASE_CHECKPOINT_SCHEDULE``,
``DATABASE_URL``); new ones start with ``WARROOM_``, except Railway's ``PORT``. In
``warroom.toml`` the same settings are written in lower case (``backup_dir = "/srv/backups"``).
Nothing is read at import time: :meth:`Settings.load` is called by the composition root.

Everything that must survive a redeploy lives under the seed's two directories: the default
catalog (tokens, workflow executions and their step checkpoints, jobs, deployment history, the
audit log) is ``$CHECKPOINT_DIR/catalog.db``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from warroom.config.deployment import DeploymentConfig
from warroom.errors import ConfigurationError
from warroom.repository.replicas import Replica, parse_replicas

__all__ = ["Settings"]

CONFIG_FILE_VARIABLE = "WARROOM_CONFIG"
DEFAULT_CONFIG_FILE = "warroom.toml"
LOCAL_HOST, ALL_INTERFACES, DEFAULT_PORT = "127.0.0.1", "0.0.0.0", 8000


def default_catalog_url(checkpoint_dir: Path | str) -> str:
    """The catalog when WARROOM_CATALOG_URL is not set: ``catalog.db`` in CHECKPOINT_DIR. A
    CHECKPOINT_DIR in an object store cannot hold a SQLite file: ValueError saying so."""
    if isinstance(checkpoint_dir, str):
        raise ValueError(
            f"CHECKPOINT_DIR is {checkpoint_dir}, which cannot hold the SQLite catalog: set "
            "WARROOM_CATALOG_URL (postgresql://... for several hosts, or sqlite:////path/catalog.db)"
        )
    return f"sqlite:///{checkpoint_dir / 'catalog.db'}"


def _aliases(env_name: str, field_name: str) -> AliasChoices:
    return AliasChoices(env_name, field_name)


def _location(value: Any) -> Any:
    """A repository URL (``s3://bucket/prefix``) stays text; anything else is a local path."""
    if not isinstance(value, str):
        return value
    if value.startswith("file://"):
        return Path(value[len("file://") :])
    return value if "://" in value else Path(value)


# Where a repository lives: a local directory (a Path) or a URL such as s3://bucket/prefix.
Location = Annotated[Path | str, BeforeValidator(_location)]


class Settings(BaseSettings):
    """Every setting of the product, validated once."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, populate_by_name=True)

    checkpoint_dir: Location = Field(
        Path("./data/checkpoints"), validation_alias=_aliases("CHECKPOINT_DIR", "checkpoint_dir")
    )
    backup_dir: Location = Field(
        Path("./data/backups"), validation_alias=_aliases("BACKUP_DIR", "backup_dir")
    )
    checkpoint_retention_days: int = Field(
        7,
        ge=0,
        validation_alias=_aliases("CHECKPOINT_RETENTION_DAYS", "checkpoint_retention_days"),
    )
    enable_auto_checkpoints: bool = Field(
        True, validation_alias=_aliases("ENABLE_AUTO_CHECKPOINTS", "enable_auto_checkpoints")
    )
    cleanup_schedule: str = Field(
        "0 2 * * *", validation_alias=_aliases("CLEANUP_SCHEDULE", "cleanup_schedule")
    )
    verify_schedule: str = Field(
        "0 4 * * 0",
        validation_alias=_aliases("VERIFY_SCHEDULE", "verify_schedule"),
        description="Restore test of the newest backup (default: Sundays 04:00).",
    )
    schedule_timezone: str = Field(
        "UTC",
        validation_alias=_aliases("WARROOM_SCHEDULE_TIMEZONE", "schedule_timezone"),
        description="Time zone of the cron expressions (a CRON_TZ=Zone prefix overrides).",
    )
    schedule_catch_up_seconds: int = Field(
        6 * 3600,
        ge=0,
        validation_alias=_aliases("WARROOM_SCHEDULE_CATCH_UP", "schedule_catch_up_seconds"),
        description="A slot missed by less than this runs once at start-up.",
    )
    scheduler_enabled: bool = Field(
        True,
        validation_alias=_aliases("WARROOM_SCHEDULER", "scheduler_enabled"),
        description="Run the scheduler inside warroom serve.",
    )
    stale_after_hours: float = Field(
        26.0,
        gt=0,
        validation_alias=_aliases("WARROOM_STALE_AFTER_HOURS", "stale_after_hours"),
        description="A configured database whose newest intact backup is older than this "
        "makes status unhealthy.",
    )
    webhook_urls: str = Field(
        "",
        validation_alias=_aliases("WARROOM_WEBHOOK_URLS", "webhook_urls"),
        description="Comma-separated URLs that receive failure notifications (JSON POST).",
    )
    retention_keep_last: int = Field(
        3,
        ge=0,
        validation_alias=_aliases("WARROOM_RETENTION_KEEP_LAST", "retention_keep_last"),
        description="Intact backups of each database always kept, whatever their age "
        "(safety backups are not counted).",
    )
    safety_retention_days: int = Field(
        7,
        ge=0,
        validation_alias=_aliases("WARROOM_SAFETY_RETENTION_DAYS", "safety_retention_days"),
        description="Safety backups (taken by a restore, of the database it replaces) are "
        "kept this long.",
    )
    retention_daily: int = Field(
        0, ge=0, validation_alias=_aliases("WARROOM_RETENTION_DAILY", "retention_daily")
    )
    retention_weekly: int = Field(
        0, ge=0, validation_alias=_aliases("WARROOM_RETENTION_WEEKLY", "retention_weekly")
    )
    retention_monthly: int = Field(
        0, ge=0, validation_alias=_aliases("WARROOM_RETENTION_MONTHLY", "retention_monthly")
    )
    database_checkpoint_schedule: str = Field(
        "0 3 * * *",
        validation_alias=_aliases("DATABASE_CHECKPOINT_SCHEDULE", "database_checkpoint_schedule"),
    )
    database_url: str | None = Field(
        None, validation_alias=_aliases("DATABASE_URL", "database_url")
    )
    catalog_url: str = Field(
        "",
        validation_alias=_aliases("WARROOM_CATALOG_URL", "catalog_url"),
        description="SQLAlchemy URL of the catalog (SQLite file or PostgreSQL database); "
        "default: sqlite:///$CHECKPOINT_DIR/catalog.db.",
    )
    # Not plain "host"/"port": those names would also read HOST and PORT from the environment.
    listen_host: str | None = Field(
        None,
        validation_alias=_aliases("WARROOM_HOST", "listen_host"),
        description="Address warroom serve listens on (default 127.0.0.1, or 0.0.0.0 with PORT).",
    )
    listen_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=_aliases("WARROOM_PORT", "listen_port"),
        description="Port warroom serve listens on (default PORT, else 8000).",
    )
    platform_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("PORT"),
        description="The port a platform such as Railway assigns; then serve listens on "
        "every interface.",
    )
    pg_bin_dir: Path | None = Field(
        None,
        validation_alias=_aliases("WARROOM_PG_BIN_DIR", "pg_bin_dir"),
        description="Directory holding pg_dump/pg_restore; found automatically when unset.",
    )
    connect_timeout: int = Field(
        10,
        ge=1,
        validation_alias=_aliases("WARROOM_CONNECT_TIMEOUT", "connect_timeout"),
        description="Seconds to wait for a database connection before giving up.",
    )
    workflow_serializer: Literal["msgpack", "json", "pickle"] = Field(
        "msgpack",
        validation_alias=_aliases("WARROOM_WORKFLOW_SERIALIZER", "workflow_serializer"),
        description="How workflow states are stored: msgpack (safe, keeps Python types), json "
        "(safe, plain data only) or signed pickle (opt-in).",
    )
    pickle_signing_key: SecretStr | None = Field(
        None,
        validation_alias=_aliases("WARROOM_PICKLE_SIGNING_KEY", "pickle_signing_key"),
        description="HMAC key that signs pickled workflow states.",
    )
    workflow_lease_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=_aliases("WARROOM_WORKFLOW_LEASE_SECONDS", "workflow_lease_seconds"),
        description="How long a dead worker's executions wait before another takes them over.",
    )
    app: str | None = Field(
        None,
        validation_alias=_aliases("WARROOM_APP", "app"),
        description="module:attribute of the AutomationEngine whose workflows the service "
        "starts (POST /api/v1/workflows/{name}/start) and whose scheduled workflows it runs, "
        "e.g. myjobs.workflows:engine.",
    )
    workflow_blob_threshold: int = Field(
        256 * 1024,
        ge=0,
        validation_alias=_aliases("WARROOM_WORKFLOW_BLOB_THRESHOLD", "workflow_blob_threshold"),
        description="States larger than this (bytes) are stored as deduplicated blobs.",
    )
    lock_wait_timeout: int = Field(
        600,
        ge=1,
        validation_alias=_aliases("WARROOM_LOCK_WAIT_TIMEOUT", "lock_wait_timeout"),
        description="Seconds a backup waits for a table lock before failing.",
    )
    deployment: DeploymentConfig = Field(
        default_factory=DeploymentConfig,
        validation_alias=_aliases("WARROOM_DEPLOYMENT", "deployment"),
        description="The [deployment] section of warroom.toml.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        validation_alias=_aliases("WARROOM_JWT_SECRET", "jwt_secret"),
        description="Shared secret of platform-signed HS256 JWTs.",
    )
    jwt_public_key: str | None = Field(
        None,
        validation_alias=_aliases("WARROOM_JWT_PUBLIC_KEY", "jwt_public_key"),
        description="PEM public key (or a path to it) of platform-signed RS256 JWTs.",
    )
    jwt_audience: str = Field(
        "warroom",
        min_length=1,
        validation_alias=_aliases("WARROOM_JWT_AUDIENCE", "jwt_audience"),
        description="The aud claim every JWT must carry; tokens for other services are refused.",
    )
    jwt_issuer: str | None = Field(
        None, validation_alias=_aliases("WARROOM_JWT_ISSUER", "jwt_issuer")
    )
    audit_retention_days: int = Field(
        90,
        ge=0,
        validation_alias=_aliases("WARROOM_AUDIT_RETENTION_DAYS", "audit_retention_days"),
        description="The service deletes audit entries older than this (0 keeps them all).",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        validation_alias=_aliases("WARROOM_MAX_BODY_BYTES", "max_body_bytes"),
        description="Largest request body the API accepts (workflow states included).",
    )
    wal_command: str | None = Field(
        None,
        validation_alias=_aliases("WARROOM_WAL_COMMAND", "wal_command"),
        description="How the PostgreSQL server's OS user runs warroom in archive_command and "
        "restore_command (default: this Python with -m warroom).",
    )
    encryption_key: SecretStr | None = Field(
        None,
        validation_alias=_aliases("WARROOM_ENCRYPTION_KEY", "encryption_key"),
        description="The repository's master key (base64 of 32 bytes): objects are encrypted.",
    )
    encryption_key_file: Path | None = Field(
        None,
        validation_alias=_aliases("WARROOM_ENCRYPTION_KEY_FILE", "encryption_key_file"),
        description="A file of master keys, one per line, the current one first.",
    )
    replicas: str = Field(
        "",
        validation_alias=_aliases("WARROOM_REPLICAS", "replicas"),
        description="Further repositories (directories or s3:// URLs, comma-separated) that "
        "every backup and WAL file is also written to; ?keep_days=N&keep_last=N (also daily, "
        "weekly, monthly) after one gives it its own retention.",
    )
    compression_level: int = Field(
        3, ge=1, le=19, validation_alias=_aliases("WARROOM_COMPRESSION_LEVEL", "compression_level")
    )

    @model_validator(mode="after")
    def _check_replicas(self) -> Settings:
        parse_replicas(self.replicas)  # ConfigurationError (exit 2) saying what to fix
        return self

    @model_validator(mode="after")
    def _default_catalog(self) -> Settings:
        if not self.catalog_url:
            self.catalog_url = default_catalog_url(self.checkpoint_dir)
        return self

    def listen_address(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Where ``warroom serve`` listens: the given values, else WARROOM_HOST/WARROOM_PORT,
        else PORT on every interface (as a platform that sets PORT expects), else
        127.0.0.1:8000."""
        default_host = ALL_INTERFACES if self.platform_port is not None else LOCAL_HOST
        return (
            host or self.listen_host or default_host,
            port or self.listen_port or self.platform_port or DEFAULT_PORT,
        )

    def master_keys(self) -> list[bytes]:
        """The configured encryption keys, current first (empty: objects are not encrypted)."""
        if self.encryption_key is None and self.encryption_key_file is None:
            return []  # without loading the keyring, and cryptography with it (4 ms)
        from warroom.repository.keyring import load_master_keys

        key = self.encryption_key.get_secret_value() if self.encryption_key else None
        return load_master_keys(key, self.encryption_key_file)

    def replica_settings(self) -> list[Replica]:
        """The replicas, each with the retention settings it overrides."""
        return parse_replicas(self.replicas)

    def pickle_signing_key_bytes(self) -> bytes | None:
        if self.pickle_signing_key is None:
            return None
        return self.pickle_signing_key.get_secret_value().encode()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file),
        )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build the settings, turning validation problems into one clear ConfigurationError."""
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file and not Path(config_file).is_file():
            raise ConfigurationError(
                f"{CONFIG_FILE_VARIABLE} names {config_file!r}, which is not a file; "
                "point it at your warroom.toml or unset it"
            )
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigurationError(f"invalid settings: {problems}") from exc
        except ValueError as exc:  # an unreadable warroom.toml
            raise ConfigurationError(f"cannot read the configuration file: {exc}") from exc
