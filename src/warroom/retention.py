"""Retention: pure functions from (checkpoints, policy, now) to a deletion plan.

Nothing here touches storage or the catalog; the caller carries the plan out (or prints it, for
a dry run). Each checkpoint appears once in the plan, kept or deleted, with the reason why.

The rules for database checkpoints, in order:

1. never delete the newest verified checkpoint (checksums checked when it was written), nor the
   newest one that passed a restore test;
2. never delete a checkpoint that a deployment still refers to for rollback;
3. keep checkpoints younger than ``keep_days``;
4. keep the newest ``keep_last``, whatever their age;
5. grandfather-father-son: keep the newest checkpoint of each of the last ``daily`` days,
   ``weekly`` ISO weeks and ``monthly`` months that have one;
6. delete the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Candidate", "Plan", "Policy", "plan_retention"]

VERIFIED_STATUSES = ("completed", "verified")


@dataclass(frozen=True)
class Policy:
    keep_days: int = 7
    keep_last: int = 3
    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@dataclass(frozen=True)
class Candidate:
    """A checkpoint as retention sees it."""

    type: str
    name: str
    created_at: datetime
    status: str


@dataclass
class Plan:
    keep: list[tuple[Candidate, str]] = field(default_factory=list)
    delete: list[tuple[Candidate, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def rows(entries: list[tuple[Candidate, str]]) -> list[dict[str, Any]]:
            return [
                {
                    "type": c.type,
                    "name": c.name,
                    "created_at": c.created_at.isoformat(),
                    "status": c.status,
                    "reason": reason,
                }
                for c, reason in entries
            ]

        return {"keep": rows(self.keep), "delete": rows(self.delete)}


def _newest_per(
    candidates: list[Candidate], period: Callable[[datetime], Any], count: int
) -> dict[str, str]:
    """The newest candidate of each of the ``count`` most recent periods that have one."""
    chosen: dict[str, str] = {}
    seen: list[Any] = []
    for candidate in candidates:  # newest first
        key = period(candidate.created_at)
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.append(key)
        chosen[candidate.name] = str(key)
    return chosen


def plan_retention(
    checkpoints: Iterable[Candidate],
    policy: Policy,
    now: datetime,
    referenced: set[str] = frozenset(),  # type: ignore[assignment]
) -> Plan:
    """The plan for one type of checkpoint (apply it per type)."""
    newest_first = sorted(checkpoints, key=lambda c: c.created_at, reverse=True)
    verified = [c for c in newest_first if c.status in VERIFIED_STATUSES]
    newest_verified = verified[0].name if verified else None
    restore_tested = [c for c in newest_first if c.status == "verified"]
    newest_tested = restore_tested[0].name if restore_tested else None
    last = {c.name for c in newest_first[: policy.keep_last]}
    daily = _newest_per(newest_first, lambda t: t.date(), policy.daily)
    weekly = _newest_per(newest_first, lambda t: t.isocalendar()[:2], policy.weekly)
    monthly = _newest_per(newest_first, lambda t: (t.year, t.month), policy.monthly)
    cutoff = now - timedelta(days=policy.keep_days)
    plan = Plan()
    for candidate in newest_first:
        reason = (
            "the newest verified checkpoint"
            if candidate.name == newest_verified
            else "the newest restore-tested checkpoint"
            if candidate.name == newest_tested
            else "a deployment refers to it for rollback"
            if candidate.name in referenced
            else f"younger than {policy.keep_days} days"
            if candidate.created_at >= cutoff
            else f"one of the last {policy.keep_last}"
            if candidate.name in last
            else f"daily: newest of {daily[candidate.name]}"
            if candidate.name in daily
            else f"weekly: newest of week {weekly[candidate.name]}"
            if candidate.name in weekly
            else f"monthly: newest of {monthly[candidate.name]}"
            if candidate.name in monthly
            else None
        )
        if reason is None:
            plan.delete.append((candidate, f"older than {policy.keep_days} days"))
        else:
            plan.keep.append((candidate, reason))
    return plan
