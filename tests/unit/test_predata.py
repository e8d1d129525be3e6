"""How a schema's pre-data entries are planned in parallel sessions (the order each list keeps,
what never runs in parallel, privileges never alone in a list)."""

from __future__ import annotations

import pytest

from warroom.database.postgres import predata
from warroom.database.postgres.predata import PreDataPlan, plan_pre_data, worth_planning


@pytest.fixture(autouse=True)
def _any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predata, "MIN_PARALLEL_ENTRIES", 0)


def _listing(*entries: str) -> str:
    return ";\n; Selected TOC Entries:\n;\n" + "\n".join(entries) + "\n"


SCHEMA = "1; 2615 10 SCHEMA - app postgres"
TYPE = "2; 1247 11 TYPE app mood postgres"
T1 = "10; 1259 20 TABLE app t1 postgres"
S1 = "11; 1259 21 SEQUENCE app t1_id_seq postgres"
OWNED1 = "12; 0 0 SEQUENCE OWNED BY app t1_id_seq postgres"
DEFAULT1 = "13; 2604 22 DEFAULT app t1 id postgres"
T2 = "20; 1259 30 TABLE app t2 postgres"
COMMENT2 = "21; 0 0 COMMENT app TABLE t2 postgres"
ACL2 = "22; 0 0 ACL app TABLE t2 postgres"
T3 = "30; 1259 40 TABLE app t3 postgres"
VIEW = "40; 1259 50 VIEW app v postgres"
ATTACH = "41; 0 0 TABLE ATTACH app t3 postgres"
PUBLIC_ACL = "50; 0 0 ACL - SCHEMA public pg_database_owner"
DEPENDS = {2: [1], 10: [1, 2], 11: [1], 12: [11, 10], 13: [10, 11], 20: [1], 21: [20], 22: [20]}


def test_independent_tables_are_split_and_each_list_keeps_the_archive_order() -> None:
    plan = plan_pre_data(
        _listing(SCHEMA, TYPE, T1, S1, OWNED1, DEFAULT1, T2, COMMENT2, ACL2), DEPENDS, 2
    )
    assert plan == PreDataPlan(
        first=[SCHEMA, TYPE], parallel=[[T1, S1, OWNED1, DEFAULT1], [T2, COMMENT2, ACL2]], last=[]
    )


def test_what_depends_on_several_groups_or_is_not_a_table_comes_last() -> None:
    # t3 inherits t1 and t2: one group of three; the view reads t3; t3's ATTACH is not a TABLE.
    depends = {**DEPENDS, 30: [1, 10, 20], 40: [30], 41: [30]}
    plan = plan_pre_data(
        _listing(SCHEMA, T1, S1, OWNED1, T2, T3, VIEW, ATTACH, "60; 1259 60 TABLE app t4 x"),
        depends,
        4,
    )
    assert plan is not None
    assert plan.parallel == [[T1, S1, OWNED1, T2, T3], ["60; 1259 60 TABLE app t4 x"]]
    assert plan.last == [VIEW, ATTACH]


def test_an_entry_after_the_first_table_that_is_not_of_a_table_comes_last() -> None:
    function = "15; 1255 25 FUNCTION app f(app.t1) postgres"  # on t1's row type
    uses = "16; 1259 26 TABLE app uses_f postgres"
    depends = {**DEPENDS, 15: [10], 16: [15]}
    plan = plan_pre_data(_listing(SCHEMA, T1, function, uses, T2), depends, 2)
    assert plan is not None
    assert plan.parallel == [[T1], [T2]]
    assert plan.last == [function, uses]


def test_a_dependency_listed_later_puts_the_entry_last() -> None:
    depends = {**DEPENDS, 10: [1, 20]}  # t1 needs t2, which the archive lists after it
    plan = plan_pre_data(_listing(SCHEMA, T1, T2, T3), depends, 2)
    assert plan is not None
    assert T1 in plan.last and T1 not in sum(plan.parallel, [])


def test_a_privilege_of_an_object_outside_the_archive_never_makes_a_list_alone() -> None:
    # No prefix: schema public's privileges go with the last list, or else a parallel one.
    for entries, where in (
        ((PUBLIC_ACL, T1, T2, VIEW), "last"),
        ((PUBLIC_ACL, T1, T2), "parallel"),
        ((SCHEMA, PUBLIC_ACL, T1, T2), "first"),
    ):
        plan = plan_pre_data(_listing(*entries), {**DEPENDS, 40: [10, 20]}, 2)
        assert plan is not None
        runs = [plan.first, *plan.parallel, plan.last]
        assert all(not run or any("ACL" not in line for line in run) for run in runs)
        holder = {"first": plan.first, "last": plan.last, "parallel": plan.parallel[0]}[where]
        assert PUBLIC_ACL in holder


def test_lookalike_kinds_never_run_in_parallel() -> None:
    data = "70; 0 40 TABLE DATA app t3 postgres"
    default_acl = "71; 826 70 DEFAULT ACL app DEFAULT PRIVILEGES FOR TABLES postgres"
    plan = plan_pre_data(_listing(T1, T2, ATTACH, data, default_acl), {41: [10]}, 2)
    assert plan is not None
    assert plan.last == [ATTACH, data, default_acl]


def test_one_session_is_kept_where_a_plan_would_not_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = _listing(SCHEMA, T1, T2)
    assert plan_pre_data(listing, DEPENDS, 1) is None
    assert plan_pre_data(_listing(SCHEMA, T1, S1, OWNED1), DEPENDS, 2) is None  # one group
    monkeypatch.setattr(predata, "MIN_PARALLEL_ENTRIES", 3)
    assert plan_pre_data(listing, DEPENDS, 2) is None
    assert not worth_planning(f"{T1}\n{T2}\n")  # two lines: not even listed
    assert worth_planning(listing)
    assert plan_pre_data(_listing(SCHEMA, T1, T2, T3), DEPENDS, 2) is not None


def test_no_plan_moves_a_table_ahead_of_a_cast() -> None:
    # A default parsed before the cast exists means something else (int to text: '255', or
    # to_hex's 'ff'); pg_dump records no dependency on the cast.
    wraps = "3; 1247 12 TYPE app wraps postgres"
    cast = "4; 0 13 CAST pg_catalog CAST (integer AS text) postgres"
    depends = {**DEPENDS, 3: [10]}
    assert plan_pre_data(_listing(SCHEMA, T1, wraps, cast, T2, T3), depends, 2) is None
    plan = plan_pre_data(_listing(SCHEMA, cast, T1, T2), DEPENDS, 2)  # in the prefix: first
    assert plan is not None and plan.first == [SCHEMA, cast]


def test_a_group_a_last_entry_depends_on_keeps_its_later_entries_after_it() -> None:
    # Child c (last: it needs type wraps, itself on t1) inherits p1 and p2: their defaults,
    # listed after c, must not be set before c exists (conflicting inherited defaults).
    p1, p2 = "60; 1259 60 TABLE app p1 postgres", "61; 1259 61 TABLE app p2 postgres"
    wraps = "62; 1247 62 TYPE app wraps postgres"
    child = "63; 1259 63 TABLE app c postgres"
    d1, d2 = "64; 2604 64 DEFAULT app p1 id postgres", "65; 2604 65 DEFAULT app p2 id postgres"
    depends = {62: [10], 63: [60, 61, 62], 64: [60], 65: [61]}
    plan = plan_pre_data(_listing(T1, p1, p2, wraps, child, d1, d2, T2), depends, 2)
    assert plan is not None
    assert plan.last == [wraps, child, d1, d2]
    assert sorted(sum(plan.parallel, [])) == sorted([T1, p1, p2, T2])


def test_tables_whose_type_names_may_collide_keep_their_order() -> None:
    short, underscored = "70; 1259 70 TABLE app a postgres", "71; 1259 71 TABLE app _a postgres"
    long_names = [f"{80 + i}; 1259 {80 + i} TABLE app {'x' * 62}{i} postgres" for i in range(4)]
    plan = plan_pre_data(_listing(short, T1, underscored, *long_names, T2), {}, 3)
    assert plan is not None
    lists = [run for run in plan.parallel if short in run or long_names[0] in run]
    assert [short, underscored] in [[x for x in run if x in (short, underscored)] for run in lists]
    assert any(all(name in run for name in long_names) for run in plan.parallel)

    # A table whose type name a view (last) may take, or whose line is in doubt: last.
    view = "90; 1259 90 VIEW app _t1 postgres"
    spaced = "91; 1259 91 TABLE app two words postgres"
    plan = plan_pre_data(_listing(T1, T2, view, spaced, T3), {90: [20]}, 2)
    assert plan is not None
    assert plan.last == [T1, view, spaced]
    assert sorted(plan.parallel) == [[T2], [T3]]
