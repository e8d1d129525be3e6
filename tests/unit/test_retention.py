"""Retention plans over many synthetic checkpoints: each keep rule and each never-delete rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warroom.retention import Candidate, Policy, plan_retention

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _daily(days: int, status: str = "completed") -> list[Candidate]:
    """One checkpoint a day at 03:00 for ``days`` days, the newest today."""
    return [
        Candidate("database", f"db-{i:03d}", NOW.replace(hour=3) - timedelta(days=i), status)
        for i in range(days)
    ]


def _names(entries: list[tuple[Candidate, str]]) -> set[str]:
    return {candidate.name for candidate, _ in entries}


def test_age_and_keep_last() -> None:
    plan = plan_retention(_daily(30), Policy(keep_days=7, keep_last=10), NOW)
    assert _names(plan.keep) == {f"db-{i:03d}" for i in range(10)}
    assert len(plan.delete) == 20
    reasons = {c.name: r for c, r in plan.keep}
    assert reasons["db-001"] == "younger than 7 days"
    assert reasons["db-009"] == "one of the last 10"
    assert all(r == "older than 7 days" for _, r in plan.delete)


def test_grandfather_father_son() -> None:
    plan = plan_retention(
        _daily(400), Policy(keep_days=0, keep_last=0, daily=7, weekly=4, monthly=12), NOW
    )
    kept = {c.name: r for c, r in plan.keep}
    # Today's is kept as the newest verified checkpoint, the six days before it as daily.
    assert kept["db-000"] == "the newest verified checkpoint"
    assert sum(r.startswith("daily") for r in kept.values()) == 6
    # 26 Nov 2026 is a Thursday: last week's newest (Sun 22) is already a daily one.
    assert {n for n, r in kept.items() if r.startswith("weekly")} == {"db-011", "db-018"}
    monthly = {n for n, r in kept.items() if r.startswith("monthly")}
    assert len(monthly) == 11 and "db-026" in monthly  # 31 Oct, the newest of October
    assert len(plan.keep) == 20 and len(plan.delete) == 380


def test_never_delete_the_newest_verified_or_a_rollback_target() -> None:
    old = _daily(40)[20:]  # all older than 20 days
    damaged = [Candidate("database", "newer-but-damaged", NOW - timedelta(days=1), "damaged")]
    plan = plan_retention(
        old + damaged, Policy(keep_days=7, keep_last=0), NOW, referenced={"db-035"}
    )
    kept = {c.name: r for c, r in plan.keep}
    assert kept["db-020"] == "the newest verified checkpoint"
    assert kept["db-035"] == "a deployment refers to it for rollback"
    assert kept["newer-but-damaged"] == "younger than 7 days"
    assert len(plan.delete) == 18


def test_nothing_to_keep_by_age_still_keeps_the_newest_verified() -> None:
    plan = plan_retention(_daily(5), Policy(keep_days=0, keep_last=0), NOW)
    assert _names(plan.keep) == {"db-000"}
    assert plan.to_dict()["delete"][0]["reason"] == "older than 0 days"
