"""Names as text: tables (parsing, quoting, pg_dump's pattern syntax) and migration ids.

Names cross three notations here: the `schema.table` text callers pass, pg_dump's `-t`-style
patterns (where `*`, `?` and `.` mean something and letters are folded), and the unquoted
listing `pg_restore --list` prints. Getting any of them slightly wrong silently backs up the
wrong table, so each conversion is a small pure function with exact rules.
"""

from __future__ import annotations

import re

from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

_PLAIN_IDENT_RE = re.compile(r"[a-z_][a-z0-9_$]*")
_PART = r'"(?:[^"]|"")+"|[^\s".]+'
_QUALIFIED_RE = re.compile(rf"(?P<schema>{_PART})\.(?P<table>{_PART})")

# quote_ident() quotes every keyword that is not unreserved.
_NEEDS_QUOTES = frozenset(COL_NAME_KEYWORDS | RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS)

QualifiedName = tuple[str, str]

# How people name a migration: `0023`, `23`, `0023_loud_shen`, `0023_loud_shen.sql` or `.md`.
_MIGRATION_QUERY = re.compile(r"^(?P<number>\d{1,6})(?P<rest>_[A-Za-z0-9_]+)?(?:\.(?:sql|md))?$")
_TAG_ID = re.compile(r"^(?P<id>\d+)_")


def migration_query(text: str) -> tuple[str, str | None] | None:
    """(digits as typed, `_rest` of the tag or None) for `0023`, `23`, `0023_loud_shen.sql`."""
    match = _MIGRATION_QUERY.match(text.strip())
    return (match["number"], match["rest"]) if match else None


def migration_id_of(tag: str) -> str | None:
    """The number a drizzle-kit tag or file name starts with ("0023"); None for any other."""
    match = _TAG_ID.match(tag)
    return match["id"] if match else None


def _fold(text: str) -> str:
    """Fold as the server folds unquoted identifiers: ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def split_qualified(text: str) -> QualifiedName:
    """`schema.table` as SQL reads it: quoted parts verbatim, unquoted parts folded."""
    match = _QUALIFIED_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a schema-qualified table name (schema.table)")
    return _unquote(match["schema"]), _unquote(match["table"])


def _unquote(part: str) -> str:
    if part.startswith('"'):
        return part[1:-1].replace('""', '"')
    return _fold(part)


def quote_ident(name: str) -> str:
    """Quote only when needed, as the server's own quoting does, so plain names stay plain."""
    if _PLAIN_IDENT_RE.fullmatch(name) and name not in _NEEDS_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A string literal; doubling quotes suffices as standard_conforming_strings is set on.

    rollbot's transactions and restore scripts set it themselves, whatever the database says.
    """
    return "'" + text.replace("'", "''") + "'"


def qualified(name: QualifiedName) -> str:
    """The text form `split_qualified` reads back: `public.users`, `public."Weird Name"`."""
    return f"{quote_ident(name[0])}.{quote_ident(name[1])}"


def dump_pattern(*parts: str) -> str:
    """A pg_dump pattern matching exactly these names.

    Inside double quotes pg_dump takes `*`, `?`, `.` and regular-expression characters
    literally and does not fold case; only the quote itself needs doubling.
    """
    return always_quoted(*parts)


def always_quoted(*parts: str) -> str:
    """Each part quoted whether it needs it or not: `"drizzle"."__drizzle_migrations"`."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)
