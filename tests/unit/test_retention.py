"""Retention plans over many synthetic checkpoints: each keep rule and each never-delete rule,
applied per source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warroom.retention import Candidate, Policy, plan_retention

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _daily(
    days: int, status: str = "completed", source: str = "prod", prefix: str = "db", **kw: bool
) -> list[Candidate]:
    """One checkpoint a day at 03:00 for ``days`` days, the newest today."""
    return [
        Candidate(
            "database",
            f"{prefix}-{i:03d}",
            NOW.replace(hour=3) - timedelta(days=i),
            status,
            source,
            **kw,
        )
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
    assert reasons["db-009"] == "one of the last 10 intact backups of its source"
    assert all(r == "older than 7 days" for _, r in plan.delete)


def test_grandfather_father_son() -> None:
    plan = plan_retention(
        _daily(400), Policy(keep_days=0, keep_last=0, daily=7, weekly=4, monthly=12), NOW
    )
    kept = {c.name: r for c, r in plan.keep}
    # Today's is kept as the newest intact backup, the six days before it as daily.
    assert kept["db-000"] == "the newest intact backup of its source"
    assert sum(r.startswith("daily") for r in kept.values()) == 6
    # 26 Nov 2026 is a Thursday: last week's newest (Sun 22) is already a daily one.
    assert {n for n, r in kept.items() if r.startswith("weekly")} == {"db-011", "db-018"}
    monthly = {n for n, r in kept.items() if r.startswith("monthly")}
    assert len(monthly) == 11 and "db-026" in monthly  # 31 Oct, the newest of October
    assert len(plan.keep) == 20 and len(plan.delete) == 380


def test_never_delete_the_newest_intact_the_newest_tested_or_a_rollback_target() -> None:
    old = _daily(40)[20:]  # all older than 20 days
    tested = _daily(40, "restore-tested", prefix="tested")[30:31]
    damaged = [
        Candidate("database", "newer-but-damaged", NOW - timedelta(days=1), "damaged", "prod"),
        Candidate("database", "old-damaged", NOW - timedelta(days=9), "damaged", "prod"),
    ]
    plan = plan_retention(
        old + tested + damaged,
        Policy(keep_days=7, keep_last=0),
        NOW,
        protected={"db-035": "a deployment refers to it for rollback"},
    )
    kept = {c.name: r for c, r in plan.keep}
    assert kept["db-020"] == "the newest intact backup of its source"
    assert kept["tested-030"] == "the newest restore-tested backup of its source"
    assert kept["db-035"] == "a deployment refers to it for rollback"
    assert kept["newer-but-damaged"] == "younger than 7 days"
    deleted = {c.name: r for c, r in plan.delete}
    assert deleted["old-damaged"] == "damaged, older than 7 days"
    assert len(deleted) == 19


def test_nothing_to_keep_by_age_still_keeps_the_newest_intact() -> None:
    plan = plan_retention(_daily(5), Policy(keep_days=0, keep_last=0), NOW)
    assert _names(plan.keep) == {"db-000"}
    assert plan.to_dict()["delete"][0]["reason"] == "older than 0 days"


def test_other_sources_never_take_the_places_of_a_source() -> None:
    """The nightly backup of prod failed for a week while restores into staging made safety
    backups and a SQLite database was backed up daily: prod keeps its last three."""
    prod = _daily(20, source="prod", prefix="prod")[10:]  # the newest is 10 days old
    staging_safety = _daily(7, source="staging", prefix="safety", safety=True)
    sqlite = _daily(7, source="sqlite:/srv/app.db", prefix="lite")
    plan = plan_retention(prod + staging_safety + sqlite, Policy(keep_days=7, keep_last=3), NOW)
    kept = {c.name: r for c, r in plan.keep}
    assert {n for n in kept if n.startswith("prod")} == {"prod-010", "prod-011", "prod-012"}
    assert kept["prod-010"] == "the newest intact backup of its source"
    assert kept["prod-012"] == "one of the last 3 intact backups of its source"
    assert all(n.startswith("prod") for n in _names(plan.delete))
    grouped = {g["source"]: g for g in plan.to_dict_by_source({"prod": "P"})["sources"]}
    assert grouped["prod"]["label"] == "P" and len(grouped["prod"]["delete"]) == 7
    assert len(grouped["staging"]["keep"]) == 7 and not grouped["staging"]["delete"]


def test_safety_backups_have_their_own_rule_and_never_count_toward_keep_last() -> None:
    regular = _daily(30, source="db")[20:]  # 20 to 29 days old
    safety = _daily(12, source="db", prefix="safety", safety=True)
    plan = plan_retention(regular + safety, Policy(keep_days=7, keep_last=2, safety_days=7), NOW)
    kept = {c.name: r for c, r in plan.keep}
    deleted = {c.name: r for c, r in plan.delete}
    # keep-last counts the regular backups only: the two newest of them stay.
    assert {n for n in kept if n.startswith("db")} == {"db-020", "db-021"}
    assert kept["safety-006"] == "a safety backup younger than 7 days"  # 6 days 9 h old
    assert deleted["safety-007"] == "a safety backup older than 7 days"  # 7 days 9 h old
    assert len([n for n in deleted if n.startswith("safety")]) == 5


def test_a_source_with_only_safety_backups_keeps_its_newest() -> None:
    safety = _daily(30, source="staging", prefix="safety", safety=True)[20:]
    plan = plan_retention(safety, Policy(keep_days=7, safety_days=7), NOW)
    assert {c.name: r for c, r in plan.keep} == {
        "safety-020": "the newest intact backup of its source (a safety backup: there is no other)"
    }


def test_damaged_backups_take_no_keep_last_place() -> None:
    good = _daily(30, source="db")[20:22]
    damaged = _daily(30, "damaged", source="db", prefix="bad")[10:13]
    plan = plan_retention(good + damaged, Policy(keep_days=7, keep_last=2), NOW)
    assert _names(plan.keep) == {"db-020", "db-021"}
    assert _names(plan.delete) == {"bad-010", "bad-011", "bad-012"}
