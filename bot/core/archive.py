"""What a custom-format archive holds, read from `pg_restore --list`, and lists to restore.

A backup is only worth approving a rollback on if it holds the data of the tables about to
change, and the table of contents is where pg_restore says so. Its lines do not quote names
(`TABLE DATA my schema x y root`), so splitting them needs the names we expect and the
schemas the archive declares; plain names, the common case, are unambiguous.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bot.core.names import QualifiedName

# `<dump id>; <catalog table oid> <object oid> <description> <schema> <name> <owner>`
_ENTRY_RE = re.compile(r"^(?P<id>\d+); (?P<tableoid>\d+) (?P<oid>\d+) (?P<rest>.+)$")
_PG_CLASS = "1259"  # catalog of TABLE entries; TABLE DATA entries carry 0
_PG_NAMESPACE = "2615"


class ArchiveContents(NamedTuple):
    """Tables whose definition the archive holds, and those whose rows it holds."""

    tables: frozenset[QualifiedName]
    table_data: frozenset[QualifiedName]


def read_toc(listing: str, expected: Iterable[QualifiedName] = ()) -> ArchiveContents:
    """Tables and table data in a `pg_restore --list` listing.

    `expected` names (the required tables) are matched exactly against the unquoted text,
    so a required table with spaces in its name is found even where splitting is ambiguous.
    """
    entries: list[tuple[str, str]] = []
    schemas = {"public"}
    for line in listing.splitlines():
        match = _ENTRY_RE.match(line)
        if match is None:
            continue  # comments (';'), blank lines
        tableoid, rest = match["tableoid"], match["rest"]
        if tableoid == _PG_NAMESPACE and rest.startswith("SCHEMA - "):
            schemas.add(_drop_owner(rest.removeprefix("SCHEMA - ")))
        elif tableoid == _PG_CLASS and rest.startswith("TABLE "):
            entries.append(("table", rest.removeprefix("TABLE ")))
        elif tableoid == "0" and rest.startswith("TABLE DATA "):
            entries.append(("data", rest.removeprefix("TABLE DATA ")))
    wanted = list(expected)
    schemas.update(schema for schema, _ in wanted)
    tables: set[QualifiedName] = set()
    data: set[QualifiedName] = set()
    for kind, text in entries:
        name = _split_entry(text, wanted, schemas)
        if name is not None:
            (tables if kind == "table" else data).add(name)
    return ArchiveContents(frozenset(tables), frozenset(data))


def data_list(listing: str, tables: Sequence[QualifiedName]) -> str:
    """A `pg_restore --use-list` file: the rows of `tables` in that order, then every sequence.

    pg_restore restores a list in the order it is written, so callers put FK parents before
    their children. Sequence values come along so new rows do not collide with restored ones.
    """
    rows: dict[QualifiedName, str] = {}
    sequences: list[str] = []
    for line in listing.splitlines():
        match = _ENTRY_RE.match(line)
        if match is None or match["tableoid"] != "0":
            continue
        rest = match["rest"]
        if rest.startswith("SEQUENCE SET "):
            sequences.append(line)
        elif rest.startswith("TABLE DATA "):
            text = rest.removeprefix("TABLE DATA ")
            for name in tables:
                if _is_entry_of(text, name):
                    rows.setdefault(name, line)
    return "".join(f"{line}\n" for line in [*(rows[n] for n in tables if n in rows), *sequences])


def _is_entry_of(text: str, name: QualifiedName) -> bool:
    """`schema name owner` names exactly this table: one word (the owner) follows it.

    A looser match could take the entry of `a."b c"` for that of `a.b`.
    """
    prefix = f"{name[0]} {name[1]} "
    owner = text.removeprefix(prefix)
    return text.startswith(prefix) and bool(owner) and " " not in owner


def _drop_owner(text: str) -> str:
    """Owners are taken to be one word: role names with spaces are rarer than table names."""
    return text.rsplit(" ", 1)[0]


def _split_entry(
    text: str, expected: list[QualifiedName], schemas: set[str]
) -> QualifiedName | None:
    """`schema name owner` into (schema, name), preferring an expected table that fits."""
    for name in expected:
        if _is_entry_of(text, name):
            return name
    fitting = [s for s in schemas if text.startswith(s + " ")]
    schema = max(fitting, key=len) if fitting else text.split(" ", 1)[0]
    name_and_owner = text[len(schema) + 1 :]
    if " " not in name_and_owner:
        return None
    return schema, _drop_owner(name_and_owner)
