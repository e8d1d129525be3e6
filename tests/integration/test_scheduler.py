"""The scheduler driven by an injected clock; cleanup; status; webhooks."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from warroom.config import Settings
from warroom.errors import ConfigurationError
from warroom.notify import Notifier
from warroom.scheduler import ScheduledJob, Scheduler, last_runs
from warroom.scheduler.jobs import build_scheduler
from warroom.services import build_services
from warroom.status import system_status

DAY = datetime(2026, 11, 26, tzinfo=UTC)


def test_invalid_expressions_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match=r"'61 3 \* \* \*'.*out of range"):
        ScheduledJob("database-backup", "61 3 * * *", dict)
    with pytest.raises(ConfigurationError, match=r"'0 0 30 2 \*'"):
        ScheduledJob("restore-test", "0 0 30 2 *", dict)  # 30 February never comes
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        ScheduledJob("cleanup", "CRON_TZ=Mars/Olympus 0 2 * * *", dict)


def test_named_time_zones() -> None:
    job = ScheduledJob("x", "CRON_TZ=Europe/Paris 0 3 * * *", dict)
    assert job.latest_slot(DAY.replace(hour=5)) == DAY.replace(hour=2)  # 03:00 CET = 02:00 UTC
    utc = ScheduledJob("y", "0 3 * * *", dict, default_zone="America/New_York")
    assert utc.latest_slot(DAY.replace(hour=9)) == DAY.replace(hour=8)


def _scheduler(catalog_url: str, calls: list[str], owner: str, catch_up_hours: float = 6) -> Any:
    from warroom.catalog import open_catalog

    def action() -> dict[str, Any]:
        calls.append(owner)
        time.sleep(0.05)
        return {"ran": owner}

    catalog = open_catalog(catalog_url)
    job = ScheduledJob("database-backup", "0 3 * * *", action)
    return Scheduler(catalog, [job], owner, timedelta(hours=catch_up_hours))


def test_a_slot_fires_once_with_two_schedulers(catalog_url: str) -> None:
    calls: list[str] = []
    one, two = _scheduler(catalog_url, calls, "a"), _scheduler(catalog_url, calls, "b")
    at = DAY.replace(hour=3, second=5)
    barrier = threading.Barrier(2)
    results: dict[str, list[str]] = {}

    def tick(scheduler: Scheduler) -> None:
        barrier.wait()
        results[scheduler.owner] = scheduler.tick(at, wait=True)

    threads = [threading.Thread(target=tick, args=(s,)) for s in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(map(len, results.values())) == [0, 1]
    assert one.tick(at + timedelta(minutes=1), wait=True) == []  # same slot: nothing
    runs = last_runs(one.catalog)
    assert runs["database-backup"]["status"] == "succeeded"
    assert runs["database-backup"]["result"] == {"ran": calls[0]}
    for scheduler in (one, two):
        scheduler.stop()
        scheduler.catalog.close()


def test_missed_slots_run_once_after_restart(catalog_url: str) -> None:
    calls: list[str] = []
    scheduler = _scheduler(catalog_url, calls, "restarted", catch_up_hours=12)
    # Down since three days ago: the 03:00 slots of three days were missed.
    assert scheduler.tick(DAY.replace(hour=10), wait=True) == ["database-backup"]
    assert scheduler.tick(DAY.replace(hour=11), wait=True) == []
    assert len(calls) == 1
    late = _scheduler(catalog_url, calls, "late", catch_up_hours=1)
    assert late.tick((DAY + timedelta(days=1)).replace(hour=10), wait=True) == []  # too late
    assert late.tick((DAY + timedelta(days=2)).replace(hour=3, minute=30), wait=True) == [
        "database-backup"
    ]
    for s in (scheduler, late):
        s.stop()
        s.catalog.close()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Hook", (_Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.received
    server.shutdown()
    server.server_close()


def test_failed_scheduled_backup_notifies_and_turns_status_unhealthy(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    dead_hook = "http://127.0.0.1:9/never"  # nothing listens: must not fail anything
    settings = Settings(
        backup_dir=tmp_path / "b",
        checkpoint_dir=tmp_path / "c",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        database_url="postgresql://app:pw@127.0.0.1:1/gone",
        webhook_urls=f"{url},{dead_hook}",
    )
    with build_services(settings) as services:
        services.notifier.backoff = 0.01
        scheduler = build_scheduler(services, "test", clock=lambda: DAY.replace(hour=3))
        started = scheduler.tick(wait=True)
        assert "database-backup" in started and "cleanup" in started
        services.notifier.flush()
        failure = next(m for m in received if m["event"] == "scheduled_job_failed")
        assert failure["details"]["job"] == "database-backup"
        assert "127.0.0.1" in failure["text"] and "pw" not in json.dumps(failure)
        stale = next(m for m in received if m["event"] == "backups_stale")
        assert "has no intact backup" in stale["summary"]
        status = system_status(services, DAY.replace(hour=4))
        assert not status["healthy"]
        assert any("last scheduled backup failed" in p for p in status["problems"])
        assert last_runs(services.catalog)["cleanup"]["status"] == "succeeded"
        scheduler.stop()


def test_cleanup_applies_the_policy_and_removes_orphans(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS id")
    now = {"t": DAY - timedelta(days=20)}
    settings = Settings(
        backup_dir=tmp_path / "b",
        checkpoint_dir=tmp_path / "c",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        database_url=pg_db,
        retention_keep_last=1,
    )
    with build_services(settings) as services:
        services.backups.clock = lambda: now["t"]
        services.cleanup.clock = lambda: DAY
        names = []
        for _ in range(4):
            names.append(services.backups.create().name)
            now["t"] += timedelta(days=5)
        orphan = settings.backup_dir / "database" / "interrupted-run"
        orphan.mkdir(parents=True)
        (orphan / "data").write_bytes(b"half a dump")
        blob = settings.checkpoint_dir / "workflow" / "blobs" / ("ab" * 32)
        blob.parent.mkdir(parents=True)
        blob.write_bytes(b"unreferenced")
        os.utime(blob, (time.time() - 7200, time.time() - 7200))

        plan = services.cleanup.run(days=7, dry_run=True)
        # 20, 15, 10 and 5 days old: only the last is younger than 7 days.
        (source,) = plan["database"]["sources"]
        assert [e["name"] for e in source["delete"]] == names[2::-1]
        assert orphan.exists() and len(services.backups.list_backups()) == 4

        report = services.cleanup.run(days=7)
        assert {r.name for r in services.backups.list_backups()} == {names[3]}
        assert report["leftovers_removed"] == ["interrupted-run"]
        assert not orphan.exists() and not blob.exists()
        for name in names[:3]:
            assert not (settings.backup_dir / "database" / name).exists()
        kept = services.backups.manifest(names[3])
        assert services.backups.verify(names[3]).parts_checked == len(kept.parts)


def test_a_failing_webhook_is_retried_and_never_raises() -> None:
    notifier = Notifier(["http://127.0.0.1:9/none"], attempts=2, backoff=0.01, timeout=0.5)
    notifier.notify("test", "nobody listens")
    notifier.flush(timeout=10)


def test_a_slot_left_running_by_a_dead_process_fails_and_alerts(catalog_url: str) -> None:
    from warroom.catalog import open_catalog

    catalog = open_catalog(catalog_url)
    release = threading.Event()
    alerts: list[tuple[str, str]] = []

    def long_backup() -> dict[str, Any]:
        release.wait(30)
        return {}

    slot = DAY.replace(hour=3)
    # A process claimed the cleanup slot, then died: nothing refreshes its heartbeat.
    dead = Scheduler(catalog, [], "dead", timedelta(hours=6))
    assert dead.claim("cleanup", slot, slot)
    alive = Scheduler(
        catalog,
        [ScheduledJob("database-backup", "0 3 * * *", long_backup)],
        "alive",
        timedelta(hours=6),
        on_failure=lambda job, error: alerts.append((job, error)),
    )
    try:
        assert alive.tick(slot) == ["database-backup"]  # runs, and keeps running
        alive.tick(slot + timedelta(minutes=1))
        assert last_runs(catalog)["cleanup"]["status"] == "running"  # not stale yet
        later = slot + timedelta(minutes=10)
        alive.tick(later)
        runs = last_runs(catalog)
        assert runs["cleanup"]["status"] == "failed"
        assert "interrupted: the process running it stopped" in runs["cleanup"]["error"]
        assert [job for job, _ in alerts] == ["cleanup"]
        # A long run whose process is alive keeps its heartbeat: another scheduler leaves it.
        other = Scheduler(catalog, [], "other", timedelta(hours=6))
        other.tick(later + timedelta(minutes=1))
        assert last_runs(catalog)["database-backup"]["status"] == "running"
    finally:
        release.set()
        alive.stop()
    assert last_runs(catalog)["database-backup"]["status"] == "succeeded"
    catalog.close()
