"""Only code PostgreSQL ships may run on rollbot's behalf.

A runbook's calls are checked by name (functions.py), but PostgreSQL runs more than the calls
written: a view's query when the runbook reads the view, an operator's function, a cast's
function, a foreign-data wrapper; and, on rows a foreign-key action rewrites, the defaults it
writes, CHECK and domain constraints, index expressions and generated columns; and the
row-level security policies that apply to rollbot. Code a database user wrote can do anything
(delete another table, call nextval, end a session) and its IMMUTABLE or STABLE label is only
its author's claim, so such code blocks the plan wherever it would run, naming the object and
the function. PostgreSQL's own functions pass when the deny-list and their volatility allow.

The decision is a pure function of the catalog facts; `bot/target/catalog.py` reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.functions import HARMLESS_VOLATILE, bare_name, call_problem, denied_reason

if TYPE_CHECKING:
    from bot.core.cascade import Effect
    from bot.core.facts import Code, Facts, ForeignKey, Hook, Relation
    from bot.core.sql import Statement

_TABLES = {"r", "p", "m"}  # a materialized view is read as stored: its query ran at REFRESH
_KINDS = {"v": "a view", "f": "a foreign table", "S": "a sequence", "c": "a composite type"}
_BY_HAND = "compute the rows another way or run it by hand"


def code_problem(code: Code) -> str | None:
    """Why this function may not run for a rollback, or None when it may."""
    if not code.builtin:
        return (
            f"{code.function} is user-defined code: rollbot cannot know what it does "
            f"(its {code.volatility.upper()} label is its author's claim)"
        )
    name = bare_name(code.function.split("(", 1)[0])
    reason = denied_reason(name)
    if reason is not None:
        return f"{code.function} is never allowed: {reason}"
    if code.volatility == "volatile" and name not in HARMLESS_VOLATILE:
        return f"{code.function} is VOLATILE, so it may act outside the transaction"
    return None


def _problems(codes: tuple[Code, ...]) -> list[str]:
    return [p for c in codes if (p := code_problem(c)) is not None]


def expression_blockers(statements: tuple[Statement, ...], facts: Facts, file: str) -> list[str]:
    """What each statement's own expressions would run besides PostgreSQL's code."""
    relations = {(r.statement, r.written): r for r in facts.relations}
    hooks = _by_table(facts.hooks)
    blockers: list[str] = []
    for s in statements:
        where = f"{file}:{s.line}"
        for name in s.functions:
            blockers += [
                f"{where}: {problem}; {_BY_HAND}"
                for problem in _problems(facts.user_functions.get(name, ()))
            ]
        for written in s.relations:
            relation = relations.get((s.number, written))
            if relation is not None:
                blockers += _relation_blockers(where, relation, s.ctes, hooks)
        for operator in s.operators:
            blockers += [
                f"{where}: `{operator}` may resolve to {via.what}: {problem}; use a "
                f"built-in operator, or {_BY_HAND}"
                for via in facts.operators.get(operator, ())
                if (problem := code_problem(via.code)) is not None
            ]
        for type_name in s.types:
            blockers += [
                f"{where}: the cast to {type_name} may run {via.what}: {problem}; compare "
                f"without the cast, or {_BY_HAND}"
                for via in facts.casts.get(type_name, ())
                if (problem := code_problem(via.code)) is not None
            ]
        if s.operators or s.functions:
            blockers += [
                f"{where}: the server may apply {via.what} to the statement's values by itself: "
                f"{problem}; drop the cast (DROP CAST) or make it explicit-only, or {_BY_HAND}"
                for via in facts.implicit_casts
                if (problem := code_problem(via.code)) is not None
            ]
    return blockers


def evaluation_problem(statement: Statement, facts: Facts) -> str | None:
    """Why evaluating the statement's expressions before approval could run unsafe code, or None.

    Counting the rows a CHECK rejects evaluates its expression at preflight, before anyone
    approved anything, so it is done only when the plan itself would let every call, operator
    and cast of the statement run: the same judgement as `call_problem` and
    `expression_blockers`, never a list of its own.
    """
    for name in statement.functions:
        codes = facts.user_functions.get(name)
        problem = (
            next(iter(_problems(codes)), None)
            if codes
            else call_problem(name, facts.functions.get(name))
        )
        if problem is not None:
            return problem
    blockers = expression_blockers((statement,), facts, "")
    if blockers:
        return blockers[0].split(": ", 1)[-1]
    return None


def _relation_blockers(
    where: str, relation: Relation, ctes: tuple[str, ...], hooks: dict[int, list[Hook]]
) -> list[str]:
    if relation.kind is None:
        if relation.written in ctes:
            return []  # the WITH query of that name: the statement's own SQL
        missing = f"{where}: the statement reads {relation.written}, which this database "
        return [missing + "does not have; fix the name"]
    name = relation.name or relation.written
    if relation.kind not in _TABLES:
        kind = _KINDS.get(relation.kind, f"not a table (relkind {relation.kind})")
        if relation.kind == "f":
            runs = "reading it runs its foreign-data wrapper's code, which can reach anything"
        elif relation.kind == "v":
            calls = ", ".join(c.function for c in relation.code)
            runs = "reading it runs its query" + (f", which calls {calls}" if calls else "")
            runs += ", and rollbot does not check a view's query"
        else:
            runs = "a runbook's expressions may read only tables"
        shadow = " (a WITH query of that name does not hide it everywhere)" * (
            relation.written in ctes
        )
        instead = "read the tables it reads instead, or run the rollback by hand"
        return [f"{where}: {name} is {kind}{shadow}: {runs}; {instead}"]
    blockers = [
        f"{where}: {name} has the foreign table {table} among its partitions or inheritance "
        "children: reading it runs its foreign-data wrapper's code, which can reach anything; "
        f"read ONLY {name} or its other tables instead, or run the rollback by hand"
        for table in relation.foreign
    ]
    if relation.oid is not None:
        blockers += [
            _policy_blocker(where, hook, problem, "")
            for hook in hooks.get(relation.oid, [])
            if hook.kind == "policy" and hook.applies
            for problem in _problems(hook.code)
        ]
    return blockers


def _policy_blocker(where: str, hook: Hook, problem: str, reach: str) -> str:
    return (
        f"{where}: row-level security policy {hook.name} on {hook.table.name}{reach} applies to "
        f"rollbot's role: {problem}; run the rollback as a role the policy does not "
        "apply to (the table's owner, without FORCE ROW LEVEL SECURITY), or by hand"
    )


def hook_blockers(
    found: tuple[Effect, ...], facts: Facts, statements: tuple[Statement, ...], file: str
) -> list[str]:
    """What PostgreSQL runs on the rows the plan changes, beyond triggers and rules."""
    lines = {s.number: s.line for s in statements}
    hooks = _by_table(facts.hooks)
    written, defaulted = _written_columns(found, facts.foreign_keys)
    blockers: list[str] = []
    reported: set[tuple[int, str, str, str | None]] = set()
    for effect in found:
        where = f"{file}:{lines.get(effect.statement, 0)}"
        reach = "" if effect.direct else f" (reached by {effect.why})"
        oid = effect.table.oid
        for hook in hooks.get(oid, []):
            key = (oid, hook.kind, hook.name, hook.column)
            if key in reported or not _runs(hook, effect.event, written, defaulted):
                continue
            problems = ["its foreign-data wrapper's code"] if hook.kind == "foreign table" else []
            problems += _problems(hook.code)
            if not problems:
                continue
            reported.add(key)
            blockers += [_hook_blocker(where, hook, problem, reach) for problem in problems]
    return blockers


def _runs(
    hook: Hook,
    event: str,
    written: dict[int, set[str]],
    defaulted: dict[int, set[str]],
) -> bool:
    """Whether PostgreSQL runs the hook for this change of its table's rows."""
    if hook.kind == "foreign table":
        return True
    if hook.kind == "policy":
        return hook.applies
    if event != "UPDATE":
        return False  # a deleted row is only marked dead: no constraint, index or default runs
    if hook.kind == "column default":
        return hook.column in defaulted.get(hook.table.oid, set())
    if hook.kind == "domain constraint":
        return hook.column in written.get(hook.table.oid, set())
    return True  # CHECK constraints, indexes and generated columns: every updated row


def _hook_blocker(where: str, hook: Hook, problem: str, reach: str) -> str:
    table = hook.table.name
    if hook.kind == "foreign table":
        return (
            f"{where}: {table}{reach} is a foreign table: changing its rows runs {problem}, "
            "which can reach anything; rollbot cannot lock, count or back it up. Roll back by "
            "hand"
        )
    if hook.kind == "policy":
        return _policy_blocker(where, hook, problem, reach)
    what = {
        "column default": f"the default of {table}.{hook.column}",
        "generated column": f"generated column {table}.{hook.column}",
        "CHECK constraint": f"CHECK constraint {hook.name} on {table}",
        "domain constraint": f"domain constraint {hook.name} on column {table}.{hook.column}",
        "index": f"index {hook.name} on {table}",
    }[hook.kind]
    return (
        f"{where}: {what}{reach} runs on every row the rollback rewrites: {problem}. "
        "Change or drop it first, then ask for a new plan; or roll back by hand"
    )


def _written_columns(
    found: tuple[Effect, ...], keys: tuple[ForeignKey, ...]
) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """Per table: the columns foreign-key actions write, and those they set to their default."""
    events = {(e.table.oid, e.event) for e in found}
    written: dict[int, set[str]] = {}
    defaulted: dict[int, set[str]] = {}
    for key in keys:
        if (key.child.oid, "UPDATE") not in events:
            continue
        actions: list[tuple[str, tuple[str, ...]]] = []
        if (key.parent.oid, "DELETE") in events and key.on_delete in {"n", "d"}:
            actions.append((key.on_delete, key.delete_sets or key.columns))
        if (key.parent.oid, "UPDATE") in events and key.on_update in {"c", "n", "d"}:
            actions.append((key.on_update, key.columns))
        for action, columns in actions:
            written.setdefault(key.child.oid, set()).update(columns)
            if action == "d":
                defaulted.setdefault(key.child.oid, set()).update(columns)
    return written, defaulted


def _by_table(hooks: tuple[Hook, ...]) -> dict[int, list[Hook]]:
    found: dict[int, list[Hook]] = {}
    for hook in hooks:
        found.setdefault(hook.table.oid, []).append(hook)
    return found
