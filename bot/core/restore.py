"""The SQL of a restore, cut out of a backup with PostgreSQL's own parser.

`pg_restore -f -` prints a backup as SQL; a restore needs only what recreates the objects the
rollback dropped (their types, tables, sequences, indexes and constraints, in pg_dump's order)
and the rows of the dropped tables. Statements are kept by what they act on, as pglast reads
them, so a name inside a string or a comment cannot pull in the wrong statement.
"""

from __future__ import annotations

import re
from typing import Any

from pglast import ast, parse_sql
from pydantic import BaseModel, ConfigDict

from bot.core.facts import Target

_META = re.compile(r"^\\\S+.*$", re.MULTILINE)  # psql meta-commands such as \restrict
_COPY = re.compile(
    r"^COPY (?P<table>\S+) \(.*?\) FROM stdin;\n(?P<rows>.*?)^\\\.\n",
    re.MULTILINE | re.DOTALL,
)
_SETVAL = re.compile(r"^SELECT pg_catalog\.setval\('(?P<sequence>[^']+)', .*?\);\n", re.MULTILINE)


def unquote(name: str) -> str:
    """`public."Odd Name"` as `public.Odd Name`: how names are compared here."""
    return ".".join(part.strip('"') for part in re.findall(r'"(?:[^"]|"")*"|[^.]+', name))


def _qualified(schema: str | None, name: str | None) -> str:
    return f"{schema or 'public'}.{name}"


def _split(parts: list[str]) -> tuple[str | None, str]:
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def _range_var(var: Any) -> str | None:  # noqa: ANN401 - a pglast RangeVar
    return None if var is None else _qualified(var.schemaname, var.relname)


def _target(node: Any) -> tuple[str, str | None]:  # noqa: ANN401, PLR0911 - one per node kind
    """(kind, qualified name) of the object a pg_dump statement creates or changes."""
    if isinstance(node, ast.CreateEnumStmt | ast.CreateRangeStmt):
        return "type", _qualified(*_split([n.sval for n in node.typeName or ()]))
    if isinstance(node, ast.CreateDomainStmt):
        return "type", _qualified(*_split([n.sval for n in node.domainname or ()]))
    if isinstance(node, ast.CompositeTypeStmt):
        return "type", _range_var(node.typevar)
    if isinstance(node, ast.CreateSeqStmt | ast.AlterSeqStmt):
        return "sequence", _range_var(node.sequence)
    if isinstance(node, ast.ViewStmt):
        return "table", _range_var(node.view)
    if isinstance(node, ast.CreateTableAsStmt):
        return "table", _range_var(getattr(node.into, "rel", None))
    return "table", _range_var(getattr(node, "relation", None))


def _statements(text: str) -> list[tuple[Any, str]]:
    """(node, original text) of every statement, psql meta-commands removed."""
    cleaned = _META.sub("", text)
    found = []
    for raw in parse_sql(cleaned):
        start = raw.stmt_location or 0
        end = start + (raw.stmt_len or len(cleaned) - start)
        found.append((raw.stmt, cleaned[start:end].strip() + ";"))
    return found


def owned_sequences(pre_data: str, tables: set[str]) -> set[str]:
    """Sequences owned by, or serving identity columns of, the given tables."""
    owned: set[str] = set()
    for node, _ in _statements(pre_data):
        if isinstance(node, ast.AlterSeqStmt):
            for option in node.options or ():
                parts = [p.sval for p in option.arg] if option.defname == "owned_by" else []
                sequence = _range_var(node.sequence)
                if len(parts) > 1 and _qualified(*_split(parts[:-1])) in tables and sequence:
                    owned.add(sequence)
        elif isinstance(node, ast.AlterTableStmt) and _range_var(node.relation) in tables:
            for cmd in node.cmds or ():
                for option in getattr(cmd.def_, "options", None) or ():
                    if getattr(option, "defname", None) == "sequence_name":
                        owned.add(_qualified(*_split([p.sval for p in option.arg])))
    return owned


def select_statements(
    text: str,
    tables: set[str],
    types: set[str],
    sequences: set[str],
    *,
    indexes: frozenset[str] | set[str] = frozenset(),
    constraints: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
) -> list[str]:
    """The statements of a schema section that (re)create these objects, in dump order.

    `tables` (views too) bring everything on them; `indexes` and `constraints` (table,
    name) are single objects dropped from tables that stayed.
    """
    wanted = {"table": tables, "type": types, "sequence": sequences}
    kept = []
    for node, sql in _statements(text):
        if isinstance(node, ast.CommentStmt):
            continue
        kind, name = _target(node)
        if name in wanted[kind] or _single_object(node, indexes, constraints):
            kept.append(sql)
    return kept


def _single_object(
    node: Any,  # noqa: ANN401 - a pglast statement node
    indexes: frozenset[str] | set[str],
    constraints: frozenset[tuple[str, str]] | set[tuple[str, str]],
) -> bool:
    if isinstance(node, ast.IndexStmt):
        schema = node.relation.schemaname if node.relation else None
        return _qualified(schema, node.idxname) in indexes
    if isinstance(node, ast.AlterTableStmt):
        table = _range_var(node.relation)
        return any(
            (table, getattr(cmd.def_, "conname", None)) in constraints for cmd in node.cmds or ()
        )
    return False


def select_data(text: str, tables: set[str], sequences: set[str]) -> list[tuple[str, str, int]]:
    """(object, SQL, rows): the tables' COPY blocks, then setval for their sequences."""
    copies = [
        (unquote(m["table"]), m.group(0), m["rows"].count("\n"))
        for m in _COPY.finditer(text)
        if unquote(m["table"]) in tables
    ]
    setvals = [
        (unquote(m["sequence"]), m.group(0), 0)
        for m in _SETVAL.finditer(text)
        if unquote(m["sequence"]) in sequences
    ]
    return copies + setvals


class RestorePlan(BaseModel):
    """What a restore recreates, from which backup, with the SQL a reviewer reads."""

    model_config = ConfigDict(frozen=True)

    source_run: int
    runbook_name: str
    target: Target
    backup_path: str
    backup_sha256: str
    backup_kind: str
    objects: tuple[str, ...]
    rows: tuple[tuple[str, int], ...]
    journal_restored: bool
    blockers: tuple[str, ...]
    sql: str  # as it runs, with each table's rows summarised instead of listed
    hash: str
    # The runbook's "Verify data" queries (line, SQL), run read-only after COMMIT; shown in
    # `sql` and so covered by the hash: what runs is what the approver saw.
    verify_queries: tuple[tuple[int, str], ...] = ()
    # A quarantined rollback's restore (a move back) or purge: the quarantine it acts on,
    # and (a purge) the disk it gives back.
    quarantine: str | None = None
    size_bytes: int | None = None

    @property
    def blocked(self) -> bool:
        """A restore over objects that exist again would collide: it is never run."""
        return bool(self.blockers)
