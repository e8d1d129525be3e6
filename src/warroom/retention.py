"""Retention: pure functions from (checkpoints, policy, now) to a deletion plan.

Nothing here touches storage or the catalog; the caller carries the plan out (or prints it, for
a dry run). Each checkpoint appears once in the plan, kept or deleted, with the reason why.

The plan is made **per source** (the database a backup came from; deployment checkpoints form
one group): the backups of one database never take the places of another's. Within a source,
in order:

1. never delete its newest restore-tested backup, nor its newest intact one (not damaged; a
   safety backup only when the source has no other); a backup dated after ``now`` is kept
   but is not one of these, nor counted below (a clock that ran ahead must not make the real
   newest backups look old);
2. never delete a ``protected`` checkpoint (a deployment's rollback target, what a kept
   physical backup needs), whatever its age;
3. safety backups (taken by restores, of the target they replace) follow their own rule: kept
   for ``safety_days``, and never counted below;
4. keep backups younger than ``keep_days``;
5. keep the newest ``keep_last`` intact ones, whatever their age;
6. grandfather-father-son: keep the newest intact backup of each of the last ``daily`` days,
   ``weekly`` ISO weeks and ``monthly`` months that have one;
7. delete the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from warroom.database.verification import DAMAGED, RESTORE_TESTED

__all__ = ["Candidate", "Plan", "Policy", "plan_retention"]


@dataclass(frozen=True)
class Policy:
    keep_days: int = 7
    keep_last: int = 3
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    safety_days: int = 7


@dataclass(frozen=True)
class Candidate:
    """A checkpoint as retention sees it; ``source`` groups it ("" for checkpoints of no
    database, such as deployment checkpoints)."""

    type: str
    name: str
    created_at: datetime
    status: str
    source: str = ""
    safety: bool = False


Entry = tuple[Candidate, str]


@dataclass
class Plan:
    keep: list[Entry] = field(default_factory=list)
    delete: list[Entry] = field(default_factory=list)

    def by_source(self) -> dict[str, Plan]:
        """The plan of each source, in the order the sources first appear."""
        plans: dict[str, Plan] = {}
        for entries, pick in ((self.keep, "keep"), (self.delete, "delete")):
            for candidate, reason in entries:
                getattr(plans.setdefault(candidate.source, Plan()), pick).append(
                    (candidate, reason)
                )
        return plans

    def to_dict(self) -> dict[str, Any]:
        """``{"keep": [...], "delete": [...]}``, each entry with its reason."""

        def rows(entries: list[Entry]) -> list[dict[str, Any]]:
            return [
                {
                    "type": c.type,
                    "name": c.name,
                    "created_at": c.created_at.isoformat(),
                    "status": c.status,
                    "safety": c.safety,
                    "reason": reason,
                }
                for c, reason in entries
            ]

        return {"keep": rows(self.keep), "delete": rows(self.delete)}

    def to_dict_by_source(self, labels: Mapping[str, str]) -> dict[str, Any]:
        """``{"sources": [{"source", "label", "keep", "delete"}]}``; ``labels`` names each
        source for people."""
        return {
            "sources": [
                {"source": source, "label": labels.get(source, source), **plan.to_dict()}
                for source, plan in sorted(self.by_source().items())
            ]
        }


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
    protected: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for one type of checkpoint, made source by source. ``protected`` maps the
    names never to delete to the reason why."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in checkpoints:
        groups.setdefault(candidate.source, []).append(candidate)
    plan = Plan()
    for source in sorted(groups):
        _plan_source(groups[source], policy, now, protected or {}, plan)
    return plan


def _plan_source(
    candidates: list[Candidate],
    policy: Policy,
    now: datetime,
    protected: Mapping[str, str],
    plan: Plan,
) -> None:
    newest_first = sorted(candidates, key=lambda c: (c.created_at, c.name), reverse=True)
    rules = _SourceRules(policy, now, protected, newest_first)
    for candidate in newest_first:
        reason = rules.keep_reason(candidate)
        if reason is not None:
            plan.keep.append((candidate, reason))
        elif candidate.safety:
            plan.delete.append((candidate, f"a safety backup older than {policy.safety_days} days"))
        else:
            why = "damaged, " if candidate.status == DAMAGED else ""
            plan.delete.append((candidate, f"{why}older than {policy.keep_days} days"))


class _SourceRules:
    """The keep rules of the module docstring, for the checkpoints of one source."""

    def __init__(
        self,
        policy: Policy,
        now: datetime,
        protected: Mapping[str, str],
        newest_first: list[Candidate],
    ) -> None:
        self.policy, self.now, self.protected = policy, now, protected
        # A backup dated after now (made on a machine whose clock ran ahead, or forged) is
        # kept, but takes no place of the backups that really are the newest.
        self.future = {c.name for c in newest_first if c.created_at > now}
        intact = [c for c in newest_first if c.status != DAMAGED and c.name not in self.future]
        regular = [c for c in intact if not c.safety]
        safety = [c for c in intact if c.safety]
        self.must_keep: dict[str, str] = {}
        tested = [c for c in regular + safety if c.status == RESTORE_TESTED]
        if tested:
            self.must_keep[tested[0].name] = "the newest restore-tested backup of its source"
        if regular:
            self.must_keep.setdefault(regular[0].name, "the newest intact backup of its source")
        elif safety:
            self.must_keep.setdefault(
                safety[0].name,
                "the newest intact backup of its source (a safety backup: there is no other)",
            )
        self.last = {c.name for c in regular[: policy.keep_last]}
        self.periods = [
            ("daily: newest of {}", _newest_per(regular, lambda t: t.date(), policy.daily)),
            (
                "weekly: newest of week {}",
                _newest_per(regular, lambda t: t.isocalendar()[:2], policy.weekly),
            ),
            (
                "monthly: newest of {}",
                _newest_per(regular, lambda t: (t.year, t.month), policy.monthly),
            ),
        ]

    def keep_reason(self, candidate: Candidate) -> str | None:
        """Why ``candidate`` is kept, or None when it goes."""
        name, age, policy = candidate.name, self.now - candidate.created_at, self.policy
        if name in self.must_keep:
            return self.must_keep[name]
        if name in self.protected:
            return self.protected[name]
        if name in self.future:
            return "dated in the future (the clock that made it ran ahead)"
        if candidate.safety:
            if age <= timedelta(days=policy.safety_days):
                return f"a safety backup younger than {policy.safety_days} days"
            return None
        if age <= timedelta(days=policy.keep_days):
            return f"younger than {policy.keep_days} days"
        if name in self.last:
            return f"one of the last {policy.keep_last} intact backups of its source"
        for template, chosen in self.periods:
            if name in chosen:
                return template.format(chosen[name])
        return None
