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


# Kinds whose entry names a type (a table's row type; its array type is named from it):
# ``_a`` is table ``_a``'s row type and table ``a``'s array type, which becomes ``__a`` when
# ``_a`` exists first, so such entries keep their order when their names may collide.
_TYPE_KINDS = (
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "FOREIGN TABLE",
    "TYPE",
    "SHELL TYPE",
    "DOMAIN",
)
# Casts apply to every expression parsed after them, and pg_dump records a dependency on the
# function a default or a check calls, not on the cast that made it call it: no plan moves a
# table ahead of a cast.
_CAST = "CAST"
_KNOWN_KINDS = sorted(
    {*PARALLEL_KINDS, *_LOOKALIKE_KINDS, *_TYPE_KINDS, _CAST}, key=len, reverse=True
)


def _kind(line: str) -> str | None:
    """An entry's kind as pg_restore names it, if it is one that matters here (a parallel
    kind, a lookalike, a kind that names a type, a cast); None for any other."""
    fields = line.split(" ", 3)  # "12; 1259 16400 TABLE public t1 postgres"
    rest = fields[3] if len(fields) == 4 else ""
    return next((kind for kind in _KNOWN_KINDS if rest.startswith(kind + " ")), None)


def _type_key(line: str, kind: str) -> tuple[str, bytes] | str:
    """What a type-naming entry's names may collide on: its schema and its name without
    leading underscores, cut where array type names are (63 bytes, less a margin). Where the
    line does not tell schema, name and owner apart (spaces in them), the line's text after
    its kind, to match names against."""
    tag = line.split(" ", 3)[3][len(kind) + 1 :]
    fields = tag.split(" ")
    if len(fields) != 3:
        return tag
    schema, name, _owner = fields
    return schema, name.lstrip("_").encode("utf-8", "surrogateescape")[:56]


def worth_planning(verbose_listing: str) -> bool:
    """Whether a schema with this ``pg_restore --list --verbose`` may have a plan: one with
    fewer lines than a plan's minimum of entries has none (no need to list its pre-data)."""
    return verbose_listing.count("\n") >= MIN_PARALLEL_ENTRIES


def plan_pre_data(
    listing: str, dependencies: dict[int, list[int]], workers: int
) -> PreDataPlan | None:
    """A plan for ``listing`` (``pg_restore --list --section=pre-data``) with ``dependencies``
    (each entry's recorded dependencies, by dump id) in ``workers`` sessions, or None where
    one session is as good (fewer than two groups, fewer than MIN_PARALLEL_ENTRIES entries)
    or where only one session keeps the archive's meaning (a cast after the prefix).

    The prefix: the entries before the first table or sequence that depend on prefix entries
    only. An entry is parallel if it is of a parallel kind and depends on prefix or parallel
    entries only; it joins the group of every parallel entry it depends on. A comment or a
    privilege (ACL) goes with its object; a privilege whose object is not in the archive, with
    any entry that is not a privilege. The rest is last, and so is an entry that depends on a
    pre-data entry listed after it (an order pg_dump does not make). Two more rules keep the
    archive's order where it matters:

    - once a last entry depends on a group, the group's later entries are last too (a child
      table is created before its parents' defaults are set, as pg_restore creates it);
    - tables whose type names may collide are one group, and a table whose type name may
      collide with a last entry's is last.
    """
    entries = [line for line in listing.splitlines() if line[:1].isdigit()]
    ids = [int(line.split(";", 1)[0]) for line in entries]
    kinds = [_kind(line) for line in entries]
    pre_data = set(ids)
    depends = {
        dump_id: [dep for dep in dependencies.get(dump_id, ()) if dep in pre_data]
        for dump_id in ids
    }
    ordered: set[int] = set()  # entries listed after all they depend on
    seen: set[int] = set()
    for dump_id in ids:
        if all(dep in seen for dep in depends[dump_id]):
            ordered.add(dump_id)
        seen.add(dump_id)

    # The prefix, and the privileges of objects not in the archive (schema public's).
    first_ids: set[int] = set()
    floating: dict[int, str] = {}
    in_prefix = True
    for line, dump_id, kind in zip(entries, ids, kinds, strict=True):
        in_prefix = in_prefix and kind not in _GROUP_KINDS
        deps = depends[dump_id]
        if kind == "ACL" and not deps:
            floating[dump_id] = line
        elif dump_id not in ordered:
            continue
        elif (in_prefix or (kind in _FOLLOWER_KINDS and deps)) and all(
            d in first_ids for d in deps
        ):
            first_ids.add(dump_id)
    if any(kind == _CAST and i not in first_ids for kind, i in zip(kinds, ids, strict=True)):
        return None

    # Type names of entries that restore last, as keys or (lines in doubt) as text.
    late_keys: set[tuple[str, bytes]] = set()
    late_text: list[str] = []
    for line, dump_id, kind in zip(entries, ids, kinds, strict=True):
        if kind in _TYPE_KINDS and kind != "TABLE" and dump_id not in first_ids:
            late = _type_key(line, kind)
            if isinstance(late, str):
                late_text.append(late)
            else:
                late_keys.add(late)

    def late_name(key: tuple[str, bytes] | str) -> bool:
        if isinstance(key, str):
            return True  # a table's line in doubt: last
        name = key[1].decode("utf-8", "surrogateescape")
        return key in late_keys or any(name in text for text in late_text)

    parallel_ids: set[int] = set()
    group: dict[int, int] = {}  # union-find over parallel entries
    closed: set[int] = set()  # roots of groups a last entry depends on
    table_of_key: dict[tuple[str, bytes], int] = {}

    def root(dump_id: int) -> int:
        while group[dump_id] != dump_id:
            group[dump_id] = group[group[dump_id]]
            dump_id = group[dump_id]
        return dump_id

    for line, dump_id, kind in zip(entries, ids, kinds, strict=True):
        if dump_id in first_ids or dump_id in floating:
            continue
        deps = depends[dump_id]
        joined = [d for d in deps if d in parallel_ids]
        key = _type_key(line, kind) if kind == "TABLE" else None
        alike = table_of_key.get(key) if isinstance(key, tuple) else None
        if alike is not None:
            joined.append(alike)
        parallel = (
            kind in PARALLEL_KINDS
            and dump_id in ordered
            and all(d in first_ids or d in parallel_ids for d in deps)
            and not (kind in _FOLLOWER_KINDS and not joined)  # a comment of nothing here
            and not any(root(d) in closed for d in joined)
            and not (key is not None and late_name(key))
        )
        if not parallel:
            closed.update(root(d) for d in joined)
            continue
        parallel_ids.add(dump_id)
        group[dump_id] = dump_id
        for other in joined:
            group[root(other)] = root(dump_id)
        if isinstance(key, tuple):
            table_of_key.setdefault(key, dump_id)
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
    kind_of = dict(zip(entries, kinds, strict=True))
    if any(run and all(kind_of[line] == "ACL" for line in run) for run in (first, *lists, last)):
        return None  # a privilege whose object is in another list: an order pg_dump does not make
    return PreDataPlan(
        first=first,
        parallel=[sorted(members, key=position.__getitem__) for members in lists],
        last=last,
    )
