"""WARROOM_REPLICAS: the further repositories every backup and WAL file is also written to,
each with its own retention rule if it has one.

The setting is a comma-separated list of locations (directories or ``s3://bucket/prefix``).
A location may end with a query naming the retention settings that differ on that
repository, e.g. ``s3://offsite/warroom?keep_days=90&keep_last=10``: ``keep_days``
(CHECKPOINT_RETENTION_DAYS), ``keep_last`` (WARROOM_RETENTION_KEEP_LAST), ``daily``,
``weekly`` and ``monthly`` (WARROOM_RETENTION_DAILY/WEEKLY/MONTHLY); whatever is not named
follows BACKUP_DIR's settings. The query is not part of the location.
"""

from __future__ import annotations

from typing import NamedTuple

from warroom.errors import ConfigurationError

__all__ = ["RETENTION_FIELDS", "Replica", "parse_replicas"]

RETENTION_FIELDS = ("keep_days", "keep_last", "daily", "weekly", "monthly")


class Replica(NamedTuple):
    """One replica: its ``location`` and the retention settings it overrides (a named tuple,
    not a dataclass: ``wal push`` reads WARROOM_REPLICAS once per segment, and importing
    ``dataclasses`` cost it 5 ms)."""

    location: str
    retention: dict[str, int]


def _rule(location: str, query: str) -> dict[str, int]:
    rule: dict[str, int] = {}
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        if name not in RETENTION_FIELDS:
            raise ConfigurationError(
                f"WARROOM_REPLICAS: {location} has an unknown setting {name!r}; a replica's "
                f"retention is set with {', '.join(RETENTION_FIELDS)} (e.g. ?keep_days=30)"
            )
        if not value.isdigit():
            raise ConfigurationError(
                f"WARROOM_REPLICAS: {name} of {location} must be a whole number of 0 or more, "
                f"not {value!r}"
            )
        rule[name] = int(value)
    return rule


def parse_replicas(text: str) -> list[Replica]:
    """The replicas ``text`` (WARROOM_REPLICAS) names, in order; ConfigurationError saying
    what to fix for an unknown or invalid retention setting."""
    replicas = []
    for entry in text.split(","):
        location, _, query = entry.strip().partition("?")
        if location:
            replicas.append(Replica(location, _rule(location, query)))
    return replicas
