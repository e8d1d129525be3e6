"""How values read on screen: sizes, ages, durations, JSON, and status words as badges that
read without colour (a word and an icon; the colour only repeats them)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

__all__ = ["FILTERS", "badge_of"]

# word -> (icon, tone); the tone picks a colour, the word and icon carry the meaning.
BADGES: dict[str, tuple[str, str]] = {
    # backups
    "restore-tested": ("✔", "good"),
    "checked": ("✓", "good"),
    "completed": ("○", "info"),
    "damaged": ("✖", "bad"),
    "unindexed": ("?", "warn"),
    # a backup's copy in one repository
    "present": ("✓", "good"),
    "intact": ("✔", "good"),
    "missing": ("✖", "bad"),
    "unreachable": ("⚠", "warn"),
    # health
    "healthy": ("✔", "good"),
    "unhealthy": ("✖", "bad"),
    "fresh": ("✔", "good"),
    "stale": ("⚠", "warn"),
    "archiving": ("✔", "good"),
    "archiving failing": ("✖", "bad"),
    # workflows, jobs and deployments
    "succeeded": ("✔", "good"),
    "passed": ("✔", "good"),
    "failed": ("✖", "bad"),
    "rollback_failed": ("✖", "bad"),
    "rolled_back": ("↩", "warn"),
    "cancelled": ("⊘", "muted"),
    "pending": ("…", "info"),
    "queued": ("…", "info"),
    "running": ("▶", "info"),
    "skipped": ("–", "muted"),
    "warning": ("⚠", "warn"),
    "revoked": ("⊘", "muted"),
    "active": ("✔", "good"),
}


def badge_of(word: str) -> tuple[str, str]:
    """The icon and tone of a status word (unknown words: a neutral dot)."""
    return BADGES.get(word, ("•", "muted"))


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    seconds = int(round(value))
    if seconds < 120:
        return f"{value:.1f} s" if value < 10 else f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def human_hours(value: float | None) -> str:
    return "–" if value is None else human_seconds(value * 3600)


def when(value: str | datetime | None) -> str:
    """An ISO time as ``2024-05-01 12:34:56 UTC`` (the screens show UTC, as the CLI does)."""
    if value is None:
        return "–"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


FILTERS = {
    "bytes": human_bytes,
    "seconds": human_seconds,
    "hours": human_hours,
    "when": when,
    "pretty_json": pretty_json,
}
