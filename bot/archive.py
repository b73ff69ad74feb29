"""What a custom-format archive holds, read from `pg_restore --list`.

A backup is only worth approving a rollback on if it holds the data of the tables about to
change, and the table of contents is where pg_restore says so. Its lines do not quote names
(`TABLE DATA my schema x y root`), so splitting them needs the names we expect and the
schemas the archive declares; plain names, the common case, are unambiguous.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.pgnames import QualifiedName

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


def _drop_owner(text: str) -> str:
    """Owners are taken to be one word: role names with spaces are rarer than table names."""
    return text.rsplit(" ", 1)[0]


def _split_entry(
    text: str, expected: list[QualifiedName], schemas: set[str]
) -> QualifiedName | None:
    """`schema name owner` into (schema, name), preferring an expected table that fits.

    An expected table fits only if exactly one word (the owner) follows it: a looser match
    could report `a.b` as backed up when the archive holds `a."b c"`.
    """
    for schema, name in expected:
        prefix = f"{schema} {name} "
        owner = text.removeprefix(prefix)
        if text.startswith(prefix) and owner and " " not in owner:
            return schema, name
    fitting = [s for s in schemas if text.startswith(s + " ")]
    schema = max(fitting, key=len) if fitting else text.split(" ", 1)[0]
    name_and_owner = text[len(schema) + 1 :]
    if " " not in name_and_owner:
        return None
    return schema, _drop_owner(name_and_owner)
