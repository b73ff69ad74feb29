"""What the check before COMMIT looks for, in one place for the real run and the rehearsal.

Every object the plan drops must be gone, no other table, view or materialized view may have
disappeared, the neighbouring tables must hold the rows they held, and the tables whose rows
the statements change may only have lost rows. Objects are compared by
name, which is what stays the same between the target and a scratch copy of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.facts import Facts
    from bot.core.plan import Plan


def verification_problems(
    plan: Plan,
    facts: Facts,
    relations: tuple[dict[int, str], dict[int, str]],
    neighbours: tuple[list[int], list[int]],
) -> list[str]:
    """What differs from what the plan promised; empty when the transaction may commit."""
    dropped = {(f.statement, f.position) for f in plan.dropped}
    still_there = [
        f.name for f in facts.objects if f.exists and (f.statement, f.position) in dropped
    ]
    before, after = relations
    # A relation the statements drop and create again is there by name, under a new oid.
    dropped_names = {f.name for f in plan.dropped}
    dropped_names |= {name for name in plan.recreated if name in after.values()}
    # By oid: a table the statements rename back is still there under its old name.
    vanished = sorted(
        name for oid, name in before.items() if name not in dropped_names and oid not in after
    )
    changed = [
        f"{name}: {b} → {a}"
        for name, b, a in zip(plan.neighbours, *neighbours, strict=True)
        if b != a
    ]
    problems = []
    if still_there:
        problems.append(f"still present: {', '.join(still_there)}")
    if vanished:
        problems.append(f"dropped although the runbook does not name them: {', '.join(vanished)}")
    if changed:
        problems.append(f"row counts changed: {', '.join(changed)}")
    return problems


def change_problems(plan: Plan, before: dict[str, int], after: list[int]) -> list[str]:
    """Tables the statements change may only lose rows; where only values change, none.

    Writes to them wait on rollbot's lock and the runbook inserts nothing, so a row more means
    something the plan did not foresee wrote to the table (a trigger, a rule).
    `after` is the plan's `count_deleted`: the deleted-from tables, then the affected ones.
    """
    named = [(t.table, True) for t in plan.delete_tables]
    expected = named + [(a.table, a.deletes) for a in plan.affected]
    problems = []
    for (table, deletes), now in zip(expected, after, strict=True):
        was = before.get(table)
        if was is None:
            continue
        if now > was or (not deletes and now != was):
            problems.append(
                f"{table}: {was} → {now} rows, but the plan "
                + ("only deletes from it" if deletes else "only changes values in it")
            )
    return problems
