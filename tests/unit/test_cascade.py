"""The walk through foreign-key actions, and the plan built on it, from hand-written facts."""

from datetime import timedelta

from bot.core.cascade import Effect, walk
from bot.core.facts import (
    Descendant,
    EventTrigger,
    Facts,
    FkAction,
    ForeignKey,
    Found,
    Rule,
    Table,
    Target,
    Trigger,
)
from bot.core.plan import Plan, build_plan
from bot.core.runbook import parse_runbook
from bot.core.sql import ObjectKind

USERS = Table(oid=1, name="public.users")
ORDERS = Table(oid=2, name="public.orders")
ITEMS = Table(oid=3, name="public.order_items")
NOTES = Table(oid=4, name="public.item_notes")
PROFILES = Table(oid=5, name="public.profiles")
AUDIT = Table(oid=6, name="public.audit")


def fk(
    child: Table,
    parent: Table,
    on_delete: FkAction = "c",
    on_update: FkAction = "a",
    *,
    columns: tuple[str, ...] = ("parent_id",),
    referenced: tuple[str, ...] = ("id",),
    delete_sets: tuple[str, ...] = (),
) -> ForeignKey:
    return ForeignKey(
        name=f"{child.name.split('.')[1]}_fk",
        child=child,
        parent=parent,
        columns=columns,
        referenced=referenced,
        on_delete=on_delete,
        on_update=on_update,
        delete_sets=delete_sets,
    )


def delete_from(table: Table) -> Effect:
    return Effect(table=table, event="DELETE", statement=1, why="named", direct=True)


def reached(effects: tuple[Effect, ...]) -> set[tuple[str, str]]:
    return {(e.table.name, e.event) for e in effects}


CHAIN = (
    fk(ORDERS, USERS),
    fk(ITEMS, ORDERS),
    fk(NOTES, ITEMS),
    fk(PROFILES, USERS, "n", columns=("user_id",)),
    fk(AUDIT, USERS, "a"),  # NO ACTION: a DELETE fails or changes nothing there
)


def test_three_cascades_and_a_set_null_are_all_reached_with_their_reason() -> None:
    """CASCADE follows children's children; SET NULL updates; NO ACTION changes nothing."""
    effects = walk([delete_from(USERS)], CHAIN)
    assert reached(effects) == {
        ("public.users", "DELETE"),
        ("public.orders", "DELETE"),
        ("public.order_items", "DELETE"),
        ("public.item_notes", "DELETE"),
        ("public.profiles", "UPDATE"),
    }
    why = {e.table.name: e.why for e in effects}
    assert why["public.item_notes"] == "ON DELETE CASCADE from public.order_items (item_notes_fk)"
    assert why["public.profiles"] == "ON DELETE SET NULL from public.users (profiles_fk)"
    assert [e.direct for e in effects] == [True, False, False, False, False]


def test_a_cycle_of_cascades_ends() -> None:
    """A cycle users → orders → items → users, all CASCADE: each table once, and it ends."""
    effects = walk([delete_from(USERS)], (fk(ORDERS, USERS), fk(ITEMS, ORDERS), fk(USERS, ITEMS)))
    assert [e.table.name for e in effects] == [
        "public.users",
        "public.orders",
        "public.order_items",
    ]


def test_a_self_reference_cascades_and_sets_null_on_its_own_table() -> None:
    """A tree table: CASCADE reaches itself (once); SET NULL makes it an UPDATE too."""
    assert reached(walk([delete_from(USERS)], (fk(USERS, USERS),))) == {("public.users", "DELETE")}
    set_null = walk([delete_from(USERS)], (fk(USERS, USERS, "n", columns=("manager_id",)),))
    assert reached(set_null) == {("public.users", "DELETE"), ("public.users", "UPDATE")}


def test_set_null_follows_on_update_actions_of_the_changed_columns_only() -> None:
    """A nulled column referenced ON UPDATE CASCADE carries on; other columns' keys do not."""
    keys = (
        fk(ORDERS, USERS, "n", columns=("owner_email",), referenced=("email",)),
        fk(ITEMS, ORDERS, "a", "c", columns=("order_owner",), referenced=("owner_email",)),
        fk(NOTES, ORDERS, "a", "c", columns=("order_id",), referenced=("id",)),
    )
    effects = walk([delete_from(USERS)], keys)
    assert reached(effects) == {
        ("public.users", "DELETE"),
        ("public.orders", "UPDATE"),
        ("public.order_items", "UPDATE"),
    }
    assert {e.table.name: e.why for e in effects}["public.order_items"] == (
        "ON UPDATE CASCADE from public.orders (order_items_fk)"
    )


def test_set_null_with_a_column_list_changes_only_those_columns() -> None:
    """ON DELETE SET NULL (a): a key on the child's column b is not followed."""
    keys = (
        fk(ORDERS, USERS, "n", columns=("a", "b"), referenced=("x", "y"), delete_sets=("a",)),
        fk(ITEMS, ORDERS, "a", "n", columns=("ob",), referenced=("b",)),
    )
    assert reached(walk([delete_from(USERS)], keys)) == {
        ("public.users", "DELETE"),
        ("public.orders", "UPDATE"),
    }


def test_partitions_are_reached_by_cascades_and_inheritance_children_only_by_the_statement() -> (
    None
):
    """RI actions use ONLY on plain tables, so only a statement reaches inheritance children."""
    part = Table(oid=10, name="public.orders_2026")
    child = Table(oid=11, name="public.orders_archive")
    kid = Table(oid=12, name="public.users_legacy")
    descendants = (
        Descendant(parent=ORDERS, child=part, partition=True),
        Descendant(parent=ORDERS, child=child, partition=False),
        Descendant(parent=USERS, child=kid, partition=False),
    )
    effects = walk([delete_from(USERS)], (fk(ORDERS, USERS),), descendants)
    assert reached(effects) == {
        ("public.users", "DELETE"),
        ("public.users_legacy", "DELETE"),
        ("public.orders", "DELETE"),
        ("public.orders_2026", "DELETE"),
    }


# The plan built on the walk.

RUNBOOK = """---
journal: false
---
# Remove the test users

**Migration File**: `0031_test_users.sql`

## Quick Rollback

```sql
DELETE FROM users WHERE email LIKE '%@test.invalid';
ALTER TABLE orders DROP COLUMN IF EXISTS legacy_code;
```
"""


def facts_for(**more: object) -> Facts:
    rows = Found(
        statement=1,
        position=0,
        kind=ObjectKind.ROWS,
        name="public.users",
        exists=True,
        oid=USERS.oid,
        table=USERS,
    )
    column = Found(
        statement=2,
        position=0,
        kind=ObjectKind.COLUMN,
        name="public.orders.legacy_code",
        exists=True,
        oid=ORDERS.oid,
        attnum=4,
        table=ORDERS,
        fk_parents=(USERS,),
    )
    values: dict[str, object] = {
        "target": Target(host="db", dbname="shop"),
        "objects": (rows, column),
        "foreign_keys": CHAIN,
    }
    return Facts.model_validate(values | more)


def plan_of(facts: Facts) -> Plan:
    return build_plan(
        parse_runbook(RUNBOOK, file="runbooks/0031_test_users.md"),
        facts,
        lock_timeout=timedelta(seconds=2),
        statement_timeout=timedelta(seconds=30),
    )


def test_cascaded_tables_are_write_locked_counted_and_no_longer_neighbours() -> None:
    """A table that was a neighbour (an FK parent locked) now changes, with its why."""
    plan = plan_of(facts_for())
    assert not plan.blocked, plan.blockers
    assert plan.write_locked == (
        "public.item_notes",
        "public.order_items",
        "public.orders",
        "public.profiles",
        "public.users",
    )
    assert "public.orders" not in plan.neighbours
    assert "public.users" not in plan.neighbours
    why = {a.table: (a.why, a.deletes) for a in plan.affected}
    assert why["public.orders"] == (
        "ON DELETE CASCADE from public.users (orders_fk); column legacy_code dropped at line 12",
        True,
    )
    assert why["public.profiles"] == ("ON DELETE SET NULL from public.users (profiles_fk)", False)
    assert (
        "LOCK TABLE public.item_notes, public.order_items, public.orders, public.profiles, "
        "public.users IN SHARE ROW EXCLUSIVE MODE;"
    ) in plan.sql
    assert (
        "SELECT count(*) FROM public.order_items;  -- rows before: ON DELETE CASCADE from "
        "public.orders (order_items_fk)"
    ) in plan.sql
    assert (
        "SELECT count(*) FROM public.profiles;  -- rows after: ON DELETE SET NULL from "
        "public.users (profiles_fk)"
    ) in plan.sql
    assert plan.script.count_deleted[0] == "SELECT count(*) FROM public.users"
    assert len(plan.script.count_deleted) == 1 + len(plan.affected)


def test_a_table_only_losing_a_column_is_backed_up_too() -> None:
    """DROP COLUMN alone: the column's table is write-locked and counted for the final backup."""
    plan = plan_of(facts_for(foreign_keys=()))
    assert plan.write_locked == ("public.orders", "public.users")
    ((table, why),) = [(a.table, a.why) for a in plan.affected]
    assert (table, why) == ("public.orders", "column legacy_code dropped at line 12")


def test_a_trigger_on_a_cascaded_table_blocks_naming_file_line_and_what_to_do() -> None:
    """An audit trigger on order_items for DELETE: blocked at the DELETE's line, with the fix."""
    audit = Trigger(
        name="audit_items",
        table=ITEMS,
        events=("DELETE", "UPDATE"),
        function="audit.log_change()",
    )
    inserts_only = Trigger(
        name="stamp", table=NOTES, events=("INSERT",), function="stamp()"
    )  # nothing inserts: harmless
    plan = plan_of(facts_for(triggers=(audit, inserts_only)))
    (blocker,) = plan.blockers
    assert blocker.startswith("runbooks/0031_test_users.md:11: trigger audit_items on ")
    assert "public.order_items (reached by ON DELETE CASCADE from public.orders" in blocker
    assert "runs arbitrary code (audit.log_change()) on DELETE" in blocker
    assert "ALTER TABLE public.order_items DISABLE TRIGGER audit_items" in blocker


def test_an_update_trigger_on_a_set_null_child_blocks_and_a_delete_one_does_not() -> None:
    """SET NULL updates profiles: its UPDATE trigger fires, its DELETE trigger cannot."""
    on_update = Trigger(name="touch", table=PROFILES, events=("UPDATE",), function="touch()")
    on_delete = Trigger(name="gone", table=PROFILES, events=("DELETE",), function="gone()")
    assert len(plan_of(facts_for(triggers=(on_update,))).blockers) == 1
    assert plan_of(facts_for(triggers=(on_delete,))).blockers == ()


def test_a_rule_on_a_cascaded_table_blocks() -> None:
    """CREATE RULE … ON DELETE DO INSTEAD rewrites the cascade's own DELETE."""
    rule = Rule(name="keep_orders", table=ORDERS, event="DELETE")
    (blocker,) = plan_of(facts_for(rules=(rule,))).blockers
    assert "rule keep_orders on public.orders" in blocker
    assert "DROP RULE keep_orders ON public.orders" in blocker


def test_an_event_trigger_blocks_ddl_unless_its_tags_leave_the_statement_out() -> None:
    """ddl_command_end on every command blocks the DROP COLUMN; one on DROP TABLE only does not."""
    everything = EventTrigger(name="ddl_log", event="ddl_command_end", function="log_ddl()")
    (blocker,) = plan_of(facts_for(event_triggers=(everything,))).blockers
    assert blocker.startswith("runbooks/0031_test_users.md:12: event trigger ddl_log ")
    assert "on ddl_command_end of ALTER TABLE" in blocker
    assert "ALTER EVENT TRIGGER ddl_log DISABLE" in blocker
    drops = EventTrigger(name="drops", event="sql_drop", tags=("DROP TABLE",), function="f()")
    assert plan_of(facts_for(event_triggers=(drops,))).blockers == ()


def test_the_hash_covers_foreign_key_actions_and_triggers() -> None:
    """Changing an action, or adding a disabled-then-enabled trigger, voids an approval."""
    base = plan_of(facts_for()).hash
    restrict = (*CHAIN[:3], fk(PROFILES, USERS, "r", columns=("user_id",)), CHAIN[4])
    assert plan_of(facts_for(foreign_keys=restrict)).hash != base
    trigger = Trigger(name="t", table=AUDIT, events=("INSERT",), function="f()")
    assert plan_of(facts_for(triggers=(trigger,))).hash != base
    assert plan_of(facts_for()).hash == base


def test_a_dropped_column_leaves_the_partitions_too_and_only_they_are_backed_up() -> None:
    """DROP COLUMN on a partitioned table: its partitions lose it; the dump holds their rows."""
    part = Table(oid=10, name="public.orders_2026")
    facts = facts_for(
        foreign_keys=(), descendants=(Descendant(parent=ORDERS, child=part, partition=True),)
    )
    plan = plan_of(facts)
    assert {a.table: a.why for a in plan.affected} == {
        "public.orders": "column legacy_code dropped at line 12",
        "public.orders_2026": "column legacy_code dropped from public.orders at line 12",
    }
    assert "public.orders" in plan.write_locked
    assert plan.kept_tables() == ("public.orders_2026", "public.users")
