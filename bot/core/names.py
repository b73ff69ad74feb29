"""Table names as text: parsing, quoting, and pg_dump's pattern syntax.

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
