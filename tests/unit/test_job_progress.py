"""A job's progress as the UI shows it: rate from the stage's start, percentage and time left
only where the stage's total is known from the backup's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from warroom.app.jobs import job_progress
from warroom.jobs import Job

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeManifest:
    size_stored: int = 1000
    size_original: int = 4000


def services() -> Any:
    return SimpleNamespace(backups=SimpleNamespace(manifest=lambda name: FakeManifest()))


def job(kind: str, stage: str, done: int, seconds: float, status: str = "running") -> Job:
    progress = {
        "stage": stage,
        "bytes": done,
        "stage_started_at": START.isoformat(),
        "at": (START + timedelta(seconds=seconds)).isoformat(),
    }
    return Job(
        "0" * 32, kind, status, {"name": "b1"}, progress, None, None, None, "me", START, START, None
    )


def test_a_stage_with_a_known_total_has_a_percentage_and_time_left() -> None:
    shown = job_progress(services(), job("verify", "verifying b1", 1000, 2.0))
    assert shown is not None
    assert (shown.total_bytes, shown.percent, shown.bytes_per_second) == (4000, 25.0, 500.0)
    assert shown.eta_seconds == 6.0
    stored = job_progress(services(), job("verify", "checking the stored bytes of b1", 500, 1.0))
    assert stored is not None and (stored.total_bytes, stored.percent) == (1000, 50.0)


def test_a_stage_without_a_known_total_shows_bytes_and_rate_only() -> None:
    shown = job_progress(services(), job("restore", "backing up the target", 300, 3.0))
    assert shown is not None
    assert (shown.total_bytes, shown.percent, shown.eta_seconds) == (None, None, None)
    assert shown.bytes_per_second == 100.0


def test_a_finished_job_has_no_progress() -> None:
    assert job_progress(services(), job("verify", "verifying b1", 10, 1, "succeeded")) is None
