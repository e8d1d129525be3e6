"""Which pre-data entries of a schema archive can be restored in parallel sessions.

``pg_restore`` runs pre-data in one session, one entry after another. With thousands of tables
that is most of a restore: the server spends 0.5 ms of one core on each of a table's ``CREATE
TABLE``, ``CREATE SEQUENCE``, ``ALTER SEQUENCE ... OWNED BY`` and ``DEFAULT``. Tables with
their sequences, defaults and comments form groups that depend on nothing of each other's (by
the dependencies pg_dump records, the ones ``pg_restore --jobs`` orders data and post-data by):
:func:`plan_pre_data` puts them in ``workers`` lists, restored at once, between a first list
(the archive's prefix before its first table: schemas, extensions, types, functions) and a last
one (everything else, in the archive's order), each restored alone.

Only the archive's order is proven by ``pg_restore``; a plan is an optimisation. A restore that
fails under a plan starts over in a new database, in one session (see ``LogicalLoad.load``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MIN_PARALLEL_ENTRIES",
    "PARALLEL_KINDS",
    "PreDataPlan",
    "plan_pre_data",
    "worth_planning",
]

# The kinds restored in parallel groups: a table and what belongs to it alone.
PARALLEL_KINDS = ("SEQUENCE OWNED BY", "SEQUENCE", "TABLE", "DEFAULT", "COMMENT", "ACL")
# Kinds that go with the objects they depend on (a comment, privileges).
_FOLLOWER_KINDS = ("COMMENT", "ACL")
# The prefix ends at the first of these (the archive's tables come after what they build on).
_GROUP_KINDS = ("TABLE", "SEQUENCE")
# Kinds that begin like a parallel kind ("TABLE ATTACH" is not a "TABLE"): never parallel.
_LOOKALIKE_KINDS = ("TABLE ATTACH", "TABLE DATA", "DEFAULT ACL", "SEQUENCE SET")
# Below this many entries in parallel groups, the extra pg_restore runs cost more than they save.
MIN_PARALLEL_ENTRIES = 400


@dataclass(frozen=True)
class PreDataPlan:
    """Entries (``pg_restore --list`` lines), each list in the archive's order: ``first``
    alone, then the ``parallel`` lists at once, then ``last`` alone."""

    first: list[str]
    parallel: list[list[str]]
    last: list[str]


def _kind(line: str) -> str | None:
    """An entry's kind as pg_restore names it, if it is one that matters here (a parallel
    kind or a lookalike); None for any other."""
    fields = line.split(" ", 3)  # "12; 1259 16400 TABLE public t1 postgres"
    rest = fields[3] if len(fields) == 4 else ""
    known = sorted({*PARALLEL_KINDS, *_LOOKALIKE_KINDS}, key=len, reverse=True)
    return next((kind for kind in known if rest.startswith(kind + " ")), None)


def worth_planning(verbose_listing: str) -> bool:
    """Whether a schema with this ``pg_restore --list --verbose`` may have a plan: one with
    fewer lines than a plan's minimum of entries has none (no need to list its pre-data)."""
    return verbose_listing.count("\n") >= MIN_PARALLEL_ENTRIES


def plan_pre_data(
    listing: str, dependencies: dict[int, list[int]], workers: int
) -> PreDataPlan | None:
    """A plan for ``listing`` (``pg_restore --list --section=pre-data``) with ``dependencies``
    (each entry's recorded dependencies, by dump id) in ``workers`` sessions, or None where
    one session is as good: fewer than two groups, or fewer than MIN_PARALLEL_ENTRIES entries.

    The prefix: the entries before the first table or sequence that depend on prefix entries
    only. An entry is parallel if it is of a parallel kind and depends on prefix or parallel
    entries only; it joins the group of every parallel entry it depends on. A comment or a
    privilege (ACL) goes with its object; a privilege whose object is not in the archive, with
    any entry that is not a privilege. The rest is last, and so is an entry that depends on a
    pre-data entry listed after it (an order pg_dump does not make).
    """
    entries = [line for line in listing.splitlines() if line[:1].isdigit()]
    ids = [int(line.split(";", 1)[0]) for line in entries]
    pre_data = set(ids)
    first_ids: set[int] = set()
    parallel_ids: set[int] = set()
    group: dict[int, int] = {}  # union-find over parallel entries

    def root(dump_id: int) -> int:
        while group[dump_id] != dump_id:
            group[dump_id] = group[group[dump_id]]
            dump_id = group[dump_id]
        return dump_id

    seen: set[int] = set()
    floating: dict[int, str] = {}  # privileges of objects not in the archive (schema public's)
    in_prefix = True
    for line, dump_id in zip(entries, ids, strict=True):
        kind = _kind(line)
        depends = [dep for dep in dependencies.get(dump_id, ()) if dep in pre_data]
        ordered = all(dep in seen for dep in depends)
        seen.add(dump_id)
        in_prefix = in_prefix and kind not in _GROUP_KINDS
        if kind == "ACL" and not depends:
            floating[dump_id] = line
        elif not ordered:
            continue
        elif kind in _FOLLOWER_KINDS and depends and all(d in first_ids for d in depends):
            first_ids.add(dump_id)
        elif in_prefix and all(dep in first_ids for dep in depends):
            first_ids.add(dump_id)
        elif kind in PARALLEL_KINDS and all(d in first_ids or d in parallel_ids for d in depends):
            if kind in _FOLLOWER_KINDS and not any(d in parallel_ids for d in depends):
                continue  # a comment of nothing in the archive, after the prefix: last
            parallel_ids.add(dump_id)
            group[dump_id] = dump_id
            for dep in depends:
                if dep in parallel_ids:
                    group[root(dep)] = root(dump_id)
    groups: dict[int, list[str]] = {}
    for line, dump_id in zip(entries, ids, strict=True):
        if dump_id in parallel_ids:
            groups.setdefault(root(dump_id), []).append(line)
    if workers < 2 or len(groups) < 2 or len(parallel_ids) < MIN_PARALLEL_ENTRIES:
        return None
    # The largest groups first, each to the list with the fewest entries so far.
    lists: list[list[str]] = [[] for _ in range(min(workers, len(groups)))]
    for members in sorted(groups.values(), key=len, reverse=True):
        min(lists, key=len).extend(members)
    position = {line: index for index, line in enumerate(entries)}
    first = [line for line, dump_id in zip(entries, ids, strict=True) if dump_id in first_ids]
    placed = first_ids | parallel_ids | floating.keys()
    last = [line for line, dump_id in zip(entries, ids, strict=True) if dump_id not in placed]
    # pg_restore takes a list of privileges alone for a data-only restore and restores none of
    # them: floating privileges go with objects (any: pg_restore grants at the end of a run).
    next(run for run in (first, last, lists[0]) if run).extend(floating.values())
    if any(run and all(_kind(line) == "ACL" for line in run) for run in (first, *lists, last)):
        return None  # a privilege whose object is in another list: an order pg_dump does not make
    return PreDataPlan(
        first=first,
        parallel=[sorted(members, key=position.__getitem__) for members in lists],
        last=last,
    )
