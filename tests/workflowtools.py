"""What the workflow tests share: an engine on a test catalog, moving the catalog's time past
leases, and the environment of a worker subprocess (tests/workflow_worker.py)."""

from __future__ import annotations

import os
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from warroom.catalog import open_catalog
from warroom.catalog.schema import workflow_executions
from warroom.config import Settings
from warroom.workflow import AutomationEngine

ROOT = Path(__file__).resolve().parents[1]


def new_engine(tmp_path: Path, catalog_url: str, **kwargs: Any) -> AutomationEngine:
    """An engine on ``catalog_url`` with its checkpoint directory under ``tmp_path``."""
    settings = Settings(catalog_url=catalog_url, checkpoint_dir=tmp_path / "cp")  # type: ignore[arg-type]
    return AutomationEngine(settings=settings, **kwargs)


def expire_leases(catalog_url: str) -> None:
    """Move the catalog's notion of time past every lease: they ended an hour ago."""
    with closing(open_catalog(catalog_url)) as catalog, catalog.transaction() as conn:
        conn.execute(
            update(workflow_executions)
            .where(workflow_executions.c.lease_expires_at.is_not(None))
            .values(lease_expires_at=datetime.now(UTC) - timedelta(hours=1))
        )


def worker_env(tmp_path: Path, catalog_url: str, lease_seconds: int) -> dict[str, str]:
    """The environment of a worker subprocess, none of this run's WARROOM_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        WARROOM_CATALOG_URL=catalog_url,
        CHECKPOINT_DIR=str(tmp_path / "cp"),
        WARROOM_WORKFLOW_LEASE_SECONDS=str(lease_seconds),
        STEP_LOG=str(tmp_path / "steps.log"),
        RELEASE=str(tmp_path / "release"),
        PYTHONPATH=str(ROOT),
    )
    return env
