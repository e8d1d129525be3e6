"""Retention attacked with what a bad night brings: backups dated ahead of the clock, equal
timestamps, all-damaged sources, and keep_last and days at 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warroom.retention import Candidate, Policy, plan_retention

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NONE = Policy(keep_days=0, keep_last=0, safety_days=0)


def _at(name: str, days_ago: float, status: str = "completed", **kw: bool) -> Candidate:
    return Candidate("database", name, NOW - timedelta(days=days_ago), status, "prod", **kw)


def _names(entries: list[tuple[Candidate, str]]) -> set[str]:
    return {candidate.name for candidate, _ in entries}


def test_a_backup_dated_in_the_future_does_not_take_the_real_newest_backups_places() -> None:
    """A backup made on a machine whose clock ran ten years ahead (or a forged one) must not
    become "the newest intact backup" and "one of the last 1": the real newest would go."""
    plan = plan_retention(
        [_at("ahead", -3650), _at("real", 30), _at("older", 40)],
        Policy(keep_days=7, keep_last=1),
        NOW,
    )
    reasons = {c.name: r for c, r in plan.keep}
    assert reasons["real"] == "the newest intact backup of its source"
    assert reasons["ahead"] == "dated in the future (the clock that made it ran ahead)"
    assert _names(plan.delete) == {"older"}


def test_with_nothing_kept_by_age_or_count_the_newest_survive() -> None:
    same = NOW - timedelta(days=30)
    candidates = [Candidate("database", n, same, "completed", "prod") for n in ("b", "a", "B")]
    plan = plan_retention(candidates, NONE, NOW)
    assert len(plan.keep) == 1 and len(plan.delete) == 2  # exactly one, whatever the names
    plan = plan_retention([_at("new", 1, "damaged"), _at("old", 9)], NONE, NOW)
    assert _names(plan.keep) == {"old"}
    plan = plan_retention(
        [_at("s1", 5, safety=True), _at("s2", 9, "restore-tested", safety=True)], NONE, NOW
    )
    assert _names(plan.keep) == {"s1", "s2"}
    plan = plan_retention([_at("d1", 1, "damaged"), _at("d2", 2, "damaged")], NONE, NOW)
    assert _names(plan.keep) == set()  # nothing intact: nothing to protect


def test_a_backup_dated_in_the_future_does_not_make_a_stale_source_look_fresh() -> None:
    from warroom.catalog import CheckpointRecord
    from warroom.database import Source
    from warroom.sources import group_by_source

    now = datetime(2026, 12, 1, tzinfo=UTC)
    prod = Source("postgresql:1/prod", "postgresql://db:5432/prod", "postgresql://db/prod")

    def record(name: str, at: datetime) -> CheckpointRecord:
        return CheckpointRecord("database", name, "completed", at, prod.label, source_id=prod.id)

    old, ahead = record("old", now - timedelta(days=3)), record("ahead", now + timedelta(days=3650))
    (group,) = group_by_source([old, ahead], prod, now)
    assert group.newest_intact is old and len(group.backups) == 2
